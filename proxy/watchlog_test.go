package proxy_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestClientClosingAWatchIsNotAWarning closes watches from the client, as every kubectl get -w
// and controller does, over HTTP/2 and HTTP/1.1, ConfigMaps and Secrets: the proxy logs
// nothing at warning level or above for it.
func TestClientClosingAWatchIsNotAWarning(t *testing.T) {
	var logs testbed.SyncBuffer
	o := env.opts
	o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.NewProxy(o)
	require.NoError(t, err)
	var handling sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handling.Add(1)
		defer handling.Done()
		p.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	ns := env.kube.Namespace(t, "watch-close")
	_, err = env.kube.Clientset.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "first"}, Data: map[string]string{"password": "watch-close-canary"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.kube.Clientset.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "first"}, StringData: map[string]string{"password": "watch-close-canary"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	for _, resource := range []string{"configmaps", "secrets"} {
		for _, h2 := range []bool{true, false} {
			ctx, cancel := context.WithCancel(t.Context())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/namespaces/"+ns+"/"+resource+"?watch=true", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token(t, "alice", nil))
			c := srv.Client()
			c.Transport.(*http.Transport).ForceAttemptHTTP2 = h2
			resp, err := c.Do(req)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			_, err = resp.Body.Read(make([]byte, 64)) // the first event (ADDED) has arrived
			require.NoError(t, err)
			cancel()
			resp.Body.Close()
		}
	}
	srv.CloseClientConnections()
	handling.Wait()
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		require.Empty(t, line, "a client closing a watch is logged at warning level or above")
	}
}
