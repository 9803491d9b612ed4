package proxy_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

const configMapJSON = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"settings","namespace":"default","uid":"0b6a4a3c-6f5e-4d8e-9d51-1a2b3c4d5e6f","resourceVersion":"4242","creationTimestamp":"2026-11-26T00:00:00Z","labels":{"app":"web"}},"data":{"mode":"safe","replicas":"3","endpoint":"https://api.example.com/v1"}}`

// upstream is an in-process stand-in for kube-apiserver that records what reaches it.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last http.Header
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		if r.URL.Query().Get("watch") == "true" {
			w.Header().Set("Content-Type", "application/json")
			n := 100
			fmt.Sscan(r.URL.Query().Get("events"), &n)
			for i := range n {
				fmt.Fprintf(w, `{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-%d","namespace":"default","resourceVersion":"%d"},"data":{"mode":"safe"}}}`+"\n", i, i)
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, configMapJSON)
	}))
	u.srv.EnableHTTP2 = true
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) config() *rest.Config {
	return &rest.Config{
		Host:            u.srv.URL,
		BearerToken:     "gatehouse-proxy-credential",
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw})},
	}
}

// newBenchProxy serves a proxy in front of u with the real authenticator, masker and trail.
func newBenchProxy(t testing.TB, u *upstream) *httptest.Server {
	return newBenchProxyWith(t, u, nil, nil)
}

// newBenchProxyWith is newBenchProxy with the masker or the recorder replaced when not nil, to
// break the proxy's cost down.
func newBenchProxyWith(t testing.TB, u *upstream, mk proxy.Masker, rc proxy.Recorder) *httptest.Server {
	t.Helper()
	authCfg, err := authn.ParseAuthenticationConfig([]byte(authenticationConfig()))
	require.NoError(t, err)
	authCfg.JWT = authCfg.JWT[:1] // the test issuer only: no cluster behind this upstream
	a, err := authn.NewAuthenticator(authn.AuthenticatorOptions{Config: authCfg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = a.Start(ctx) }()
	require.Eventually(t, func() bool { return a.Ready(ctx) == nil }, 10*time.Second, 20*time.Millisecond)
	m, err := masking.New(masking.Config{Key: []byte("gatehouse-test-masking-key-0001")})
	require.NoError(t, err)
	pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{MaxPending: 1 << 16})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	if mk == nil {
		mk = m
	}
	if rc == nil {
		rc = pub
	}
	p, err := proxy.NewProxy(proxy.Options{Upstream: u.config(), Authenticator: a, Masker: mk, Recorder: rc})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(p)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// newBaselineProxy serves a plain httputil.ReverseProxy in front of u with the same transport.
func newBaselineProxy(t testing.TB, u *upstream) *httptest.Server {
	t.Helper()
	rt, err := rest.TransportFor(u.config())
	require.NoError(t, err)
	target, _ := url.Parse(u.srv.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: rt}
	srv := httptest.NewUnstartedServer(rp)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestRewriteKeepsOwnedHeaders: headers a client names in Connection are removed before
// Rewrite runs; what the proxy sets there must still reach the API server, and the client's
// own credentials and assertions must not.
func TestRewriteKeepsOwnedHeaders(t *testing.T) {
	u := newUpstream(t)
	p := newBenchProxy(t, u)
	tok := token(t, "alice", map[string]any{"groups": []string{"dev"}})
	tr := p.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	req, err := http.NewRequest(http.MethodGet, p.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Connection", "Audit-Id, X-Forwarded-For, Gatehouse-Session")
	req.Header.Set("Audit-Id", "client-chosen")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("X-Remote-User", "system:admin")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	u.mu.Lock()
	got := u.last
	u.mu.Unlock()
	assert.Equal(t, "Bearer gatehouse-proxy-credential", got.Get("Authorization"), "the proxy's credential, never the client's")
	assert.Equal(t, "oidc:alice", got.Get("Impersonate-User"))
	assert.Equal(t, []string{"oidc:dev"}, got.Values("Impersonate-Group"))
	assert.Equal(t, resp.Header.Get("Audit-Id"), got.Get("Audit-Id"))
	assert.NotEqual(t, "client-chosen", got.Get("Audit-Id"))
	assert.NotEmpty(t, got.Get("Impersonate-Extra-Gatehouse.dev%2fsession-Id"))
	assert.Empty(t, got.Get("X-Forwarded-For"))
	assert.Empty(t, got.Get("X-Remote-User"))
}

// BenchmarkProxyGet compares a small GET through Gatehouse (cached token, masking, trail record)
// with a plain httputil.ReverseProxy to the same upstream, in the same run. Two more cases break
// the cost down: without the trail (records dropped), and without masking as well.
func BenchmarkProxyGet(b *testing.B) {
	u := newUpstream(b)
	tok := token(b, "alice", nil)
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"baseline=reverseproxy", newBaselineProxy(b, u)},
		{"gatehouse", newBenchProxy(b, u)},
		{"gatehouse-without-trail", newBenchProxyWith(b, u, nil, dropRecorder{})},
		{"gatehouse-without-trail-and-masking", newBenchProxyWith(b, u, passMasker{}, dropRecorder{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := tc.srv.Client()
			do := func() {
				req, _ := http.NewRequest(http.MethodGet, tc.srv.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for range 100 { // warm connections and the token cache
				do()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				do()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkProxyWatches streams watch events over 50 concurrent watches through Gatehouse
// (masked event by event) and through a plain reverse proxy.
func BenchmarkProxyWatches(b *testing.B) {
	u := newUpstream(b)
	tok := token(b, "alice", nil)
	const watches, events = 50, 200
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"baseline=reverseproxy", newBaselineProxy(b, u)},
		{"gatehouse", newBenchProxy(b, u)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := tc.srv.Client()
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				for range watches {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/default/configmaps?watch=true&events=%d", tc.srv.URL, events), nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if n == 0 {
							b.Error("empty watch")
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*watches*events)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// dropRecorder takes records and drops them: for the cost breakdown only.
type dropRecorder struct{}

func (dropRecorder) Ready() error                                { return nil }
func (dropRecorder) Publish(context.Context, trail.Record) error { return nil }

// passMasker says nothing needs masking: for the cost breakdown only.
type passMasker struct{}

func (passMasker) NeedsMasking(masking.Target) bool { return false }
func (passMasker) Body(_, _ string, b []byte, _ masking.Target) ([]byte, masking.Stats, error) {
	return b, masking.Stats{}, nil
}
func (passMasker) Stream(_, _ string, r io.Reader, t masking.Target) (*masking.Reader, error) {
	return nil, errors.New("passMasker does not stream")
}
