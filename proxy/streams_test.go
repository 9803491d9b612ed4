package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// wsDial opens a WebSocket to path through the proxy (or, with direct, to kube-apiserver as an
// administrator) with the subprotocols given.
func wsDial(t *testing.T, path, tok string, direct bool, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	// kube-apiserver's WebSocket watches require an Origin, as browsers send.
	hdr := http.Header{"Origin": {"https://console.example.com"}}
	var base string
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if direct {
		cfg := env.kube.Config
		base = strings.TrimSuffix(cfg.Host, "/")
		tc, err := rest.TLSConfigFor(cfg)
		require.NoError(t, err)
		tlsCfg = tc
		if cfg.BearerToken != "" {
			hdr.Set("Authorization", "Bearer "+cfg.BearerToken)
		}
	} else {
		base = env.proxy.URL
		pool := x509.NewCertPool()
		pool.AddCert(env.proxy.Certificate())
		tlsCfg.RootCAs = pool
		hdr.Set("Authorization", "Bearer "+tok)
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: protocols, HandshakeTimeout: 10 * time.Second}
	return d.DialContext(t.Context(), "wss"+strings.TrimPrefix(base, "https")+path, hdr)
}

// readUntil reads messages until one contains marker, and returns all read.
func readUntil(t *testing.T, c *websocket.Conn, marker string) string {
	t.Helper()
	var all strings.Builder
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
	for !strings.Contains(all.String(), marker) {
		_, msg, err := c.ReadMessage()
		require.NoError(t, err, "read so far: %s", all.String())
		all.Write(msg)
	}
	return all.String()
}

// TestWebSocketWatchesAreMasked watches, over WebSocket, every kind of resource that can carry a
// secret, with a secret in it. Directly from kube-apiserver the frames carry the secret; through
// Gatehouse they carry placeholders.
func TestWebSocketWatchesAreMasked(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "ws-watch")
	const canary = "ws-canary-Qm7vR2xK9pL4sT8w"
	cs := env.kube.Clientset
	envVar := []corev1.EnvVar{{Name: "DB_PASSWORD", Value: canary}}
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox", Env: envVar}}}
	lastApplied := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"token":"` + canary + `"}}`}
	tests := []struct {
		resource string
		create   func() error
	}{
		{"secrets", func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "obj"}, StringData: map[string]string{"anything": canary}}, metav1.CreateOptions{})
			return err
		}},
		{"configmaps", func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "obj"}, Data: map[string]string{"db_password": canary}}, metav1.CreateOptions{})
			return err
		}},
		{"pods", func() error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "obj"}, Spec: podSpec}, metav1.CreateOptions{})
			return err
		}},
		{"deployments", func() error {
			labels := map[string]string{"app": "obj"}
			_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "obj"},
				Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}}}, metav1.CreateOptions{})
			return err
		}},
		{"serviceaccounts", func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "obj", Annotations: lastApplied}}, metav1.CreateOptions{})
			return err
		}},
		{"services", func() error {
			_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "obj", Annotations: lastApplied},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			return err
		}},
	}
	tok := token(t, "alice", nil)
	leaks := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))}
	for _, tc := range tests {
		t.Run(tc.resource, func(t *testing.T) {
			group := "/api/v1"
			if tc.resource == "deployments" {
				group = "/apis/apps/v1"
			}
			path := group + "/namespaces/" + ns + "/" + tc.resource + "?watch=true"
			direct, _, err := wsDial(t, path, "", true)
			require.NoError(t, err)
			defer direct.Close()
			viaGatehouse, resp, err := wsDial(t, path, tok, false)
			require.NoError(t, err)
			defer viaGatehouse.Close()
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			require.NoError(t, tc.create())

			raw := readUntil(t, direct, `"name":"obj"`)
			assert.True(t, strings.Contains(raw, leaks[0]) || strings.Contains(raw, leaks[1]), "the direct watch carries the secret: the test can fail")
			masked := readUntil(t, viaGatehouse, `"name":"obj"`)
			for _, leak := range leaks {
				assert.NotContains(t, masked, leak)
			}
			assert.True(t, strings.Contains(masked, "gatehouse:masked:") || strings.Contains(masked, base64.StdEncoding.EncodeToString([]byte("gatehouse:masked:"))[:16]),
				"the watch event arrives masked: %s", masked)
		})
	}
}

// TestWebSocketLogsAreMasked follows a pod log over WebSocket, binary and base64, with a secret
// in a line that reaches kube-apiserver in two pieces.
func TestWebSocketLogsAreMasked(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "ws-logs")
	_, err := env.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
	require.NoError(t, err)
	const token1 = "ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5" // made up, GitHub's shape
	tok := token(t, "alice", nil)
	for i, protocol := range []string{"", "base64.binary.k8s.io"} {
		t.Run("protocol="+protocol, func(t *testing.T) {
			c, resp, err := wsDial(t, "/api/v1/namespaces/"+ns+"/pods/app/log?follow=true&container=main", tok, false, protocol)
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, protocol, resp.Header.Get("Sec-Websocket-Protocol"))
			marker := fmt.Sprintf("end-%d", i)
			// The token reaches kube-apiserver in two pieces: the second is appended once the
			// kubelet sent the first.
			first := "export GITHUB_TOKEN=" + token1[:12]
			sent := env.kubelet.LogSent(ns, "app", "main")
			env.kubelet.AppendLog(ns, "app", "main", first)
			require.Eventually(t, func() bool { return env.kubelet.LogSent(ns, "app", "main") >= sent+len(first) }, 20*time.Second, time.Millisecond)
			env.kubelet.AppendLog(ns, "app", "main", token1[12:]+"\n"+marker+"\n")
			var all strings.Builder
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
			for !strings.Contains(all.String(), marker) {
				typ, msg, err := c.ReadMessage()
				require.NoError(t, err)
				if protocol != "" {
					assert.Equal(t, websocket.TextMessage, typ)
					msg, err = base64.StdEncoding.DecodeString(string(msg))
					require.NoError(t, err)
				}
				all.Write(msg)
			}
			assert.NotContains(t, all.String(), token1)
			assert.NotContains(t, all.String(), token1[4:12])
			assert.Contains(t, all.String(), "export GITHUB_TOKEN=gatehouse:masked:")
		})
	}
}

// TestUnmaskableUpgradesAreRefused: an upgrade that would carry API data the proxy cannot mask
// is refused before it reaches kube-apiserver.
func TestUnmaskableUpgradesAreRefused(t *testing.T) {
	tok := token(t, "alice", nil)
	for _, tc := range []struct{ name, path string }{
		{"pod proxy", "/api/v1/namespaces/default/pods/web/proxy/?marker=ws-proxy"},
		{"service proxy", "/api/v1/namespaces/default/services/web/proxy/?marker=ws-svc"},
		{"a get that is not a watch", "/api/v1/namespaces/default/secrets/db?marker=ws-get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := wsDial(t, tc.path, tok, false)
			require.Error(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			body, _ := io.ReadAll(resp.Body)
			assert.Contains(t, string(body), "could not mask")
		})
	}
	for _, e := range auditEvents(t) {
		assert.NotContains(t, e.RequestURI, "marker=ws-", "a refused upgrade reached the API server")
	}
}

// trailRecords reads the Request records of a session from JetStream until stop says it has
// what it waits for.
func trailRecords(t *testing.T, session string, stop func(map[string]*trail.Request) bool) map[string]*trail.Request {
	t.Helper()
	cons, err := env.inspect.OrderedConsumer(t.Context(), trail.StreamTrail, jetstream.OrderedConsumerConfig{FilterSubjects: []string{trail.SubjectSession(session)}})
	require.NoError(t, err)
	recs := map[string]*trail.Request{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !stop(recs); {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			for r, err := range trail.DecodeAll(m.Data()) {
				if req, ok := r.(*trail.Request); ok && err == nil {
					recs[req.ID] = req
				}
			}
		}
	}
	return recs
}

// TestLongRequestsAreRecordedWhenTheyStart: a watch has its open record stored before it is
// forwarded and its finished record when it ends.
func TestLongRequestsAreRecordedWhenTheyStart(t *testing.T) {
	tok := token(t, "alice", nil)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.proxy.URL+"/api/v1/namespaces/default/configmaps?watch=true", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Gatehouse-Session", "open-records")
	resp, err := proxyClient(t).Do(req)
	require.NoError(t, err)
	auditID, session := resp.Header.Get("Audit-Id"), resp.Header.Get("Gatehouse-Session")
	open := trailRecords(t, session, func(m map[string]*trail.Request) bool { return m[trail.OpenID(auditID)] != nil })
	require.NotNil(t, open[trail.OpenID(auditID)], "the watch's open record is stored while it runs")
	assert.Equal(t, trail.PhaseOpen, open[trail.OpenID(auditID)].Phase)
	assert.Equal(t, "watch", open[trail.OpenID(auditID)].Operation.Verb)
	assert.Nil(t, open[auditID], "no finished record while the watch runs")

	cancel()
	_ = resp.Body.Close()
	done := trailRecords(t, session, func(m map[string]*trail.Request) bool { return m[auditID] != nil })
	require.NotNil(t, done[auditID], "the finished record follows when the watch ends")
	assert.Empty(t, done[auditID].Phase)
	assert.Positive(t, done[auditID].Duration)
}

// TestWritesAreRecordedBeforeTheyAreAnswered: the answer to a write waits for its trail record;
// a NATS blip while the write runs is waited out, a longer outage turns the answer into an error
// that says the write took effect.
func TestWritesAreRecordedBeforeTheyAreAnswered(t *testing.T) {
	u := newUpstream(t)
	release := make(chan struct{})
	var arrived atomic.Int32
	u.setRespond(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost {
			return false
		}
		arrived.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
		return true
	})
	for _, tc := range []struct {
		name string
		// back says when NATS comes back: after the proxy failed to record the write (a blip),
		// or after the client got its answer (an outage longer than WriteRecordTimeout).
		back     string
		wantCode int
	}{
		{"blip", "after a failed attempt", http.StatusCreated},
		{"outage", "after the answer", http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := &failingRecorder{}
			srv := newStubProxy(t, u, func(o *proxy.Options) {
				o.WriteRecordTimeout = 1500 * time.Millisecond
				failed.Recorder = o.Recorder
				o.Recorder = failed
			})
			arrived.Store(0)
			type result struct {
				code            int
				body, auditID   string
				session         string
				answeredWhileUp bool
			}
			res := make(chan result, 1)
			natsUp := atomic.Bool{}
			natsUp.Store(true)
			go func() {
				body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w"},"data":{"a":"b"}}`
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/namespaces/default/configmaps", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token(t, "alice", nil))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Gatehouse-Session", "writes-"+tc.name)
				resp, err := srv.Client().Do(req)
				if err != nil {
					res <- result{}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				res <- result{resp.StatusCode, string(b), resp.Header.Get("Audit-Id"), resp.Header.Get("Gatehouse-Session"), natsUp.Load()}
			}()
			require.Eventually(t, func() bool { return arrived.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
			// NATS goes away after the proxy forwarded the write, before the answer comes back.
			env.nats.Shutdown()
			natsUp.Store(false)
			require.Eventually(t, func() bool { return !env.nc.IsConnected() }, 5*time.Second, 5*time.Millisecond)
			release <- struct{}{}
			var r result
			switch tc.back {
			case "after a failed attempt":
				require.Eventually(t, func() bool { return failed.syncFailures.Load() > 0 }, 10*time.Second, 5*time.Millisecond,
					"the proxy tried to record the write while NATS was away")
			case "after the answer":
				r = <-res
			}
			natsUp.Store(true)
			require.NoError(t, env.nats.Start())
			require.Eventually(t, env.nc.IsConnected, 10*time.Second, 10*time.Millisecond)
			if tc.back != "after the answer" {
				r = <-res
			}
			require.Equal(t, tc.wantCode, r.code, r.body)
			if tc.wantCode == http.StatusCreated {
				assert.True(t, r.answeredWhileUp, "the client got its answer only after NATS was back")
				recs := trailRecords(t, r.session, func(m map[string]*trail.Request) bool { return m[r.auditID] != nil })
				require.NotNil(t, recs[r.auditID], "the write's record is stored")
				assert.Equal(t, http.StatusCreated, recs[r.auditID].Code)
				assert.Equal(t, "create", recs[r.auditID].Operation.Verb)
				return
			}
			assert.False(t, r.answeredWhileUp, "the client got its error while NATS was away")
			assert.Contains(t, r.body, "carried out this request")
		})
	}
}

// failingRecorder counts the synchronous publishes of its Recorder that failed.
type failingRecorder struct {
	proxy.Recorder
	syncFailures atomic.Int32
}

func (f *failingRecorder) PublishSync(ctx context.Context, r trail.Record) error {
	err := f.Recorder.PublishSync(ctx, r)
	if err != nil {
		f.syncFailures.Add(1)
	}
	return err
}
