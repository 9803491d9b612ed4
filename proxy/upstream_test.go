package proxy_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

const configMapJSON = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"settings","namespace":"default","uid":"0b6a4a3c-6f5e-4d8e-9d51-1a2b3c4d5e6f","resourceVersion":"4242","creationTimestamp":"2026-11-26T00:00:00Z","labels":{"app":"web"}},"data":{"mode":"safe","replicas":"3","endpoint":"https://api.example.com/v1"}}`

// upstream is an in-process stand-in for kube-apiserver that records what reaches it. By default
// it answers every request with a ConfigMap (or a stream of watch events); respond, when set,
// answers instead when it returns true. Like kube-apiserver (its audit filter), it answers every
// request with an Audit-Id: the request's, or a new one; a benchmark's plain reverse proxy passes
// it on, as it would in front of kube-apiserver.
type upstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []seen
	respond  func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// discard keeps no requests: for benchmarks, whose memory would grow with them.
	discard bool
}

// seen is a request as it reached the upstream.
type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auditID := r.Header.Get("Audit-Id")
		if auditID == "" {
			auditID = uuid.NewString()
		}
		w.Header().Set("Audit-Id", auditID)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		if !u.discard {
			u.requests = append(u.requests, seen{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		}
		respond := u.respond
		u.mu.Unlock()
		if respond != nil && respond(w, r, body) {
			return
		}
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

// last returns the headers of the latest request that reached u.
func (u *upstream) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[len(u.requests)-1].header
}

// seen returns the requests that reached u so far.
func (u *upstream) seen() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.requests...)
}

func (u *upstream) setRespond(f func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.respond, u.requests = f, nil
}

// discardRequests makes u keep no requests from now on.
func (u *upstream) discardRequests() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.discard, u.requests = true, nil
}

func (u *upstream) config() *rest.Config {
	return &rest.Config{
		Host:            u.srv.URL,
		BearerToken:     "gatehouse-proxy-credential",
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw})},
	}
}

// newStubProxy serves a proxy in front of u with the real authenticator, masker and trail (in a
// benchmark, on the benchmarks' NATS server: benchRecorder);
// configure, when set, changes its options first (to break the proxy's cost down, or to give it
// policies and approvals).
func newStubProxy(t testing.TB, u *upstream, configure func(*proxy.Options)) *httptest.Server {
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
	m, err := masking.New(masking.Config{Key: []byte(testMaskingKey)})
	require.NoError(t, err)
	var rec proxy.Recorder
	if b, ok := t.(*testing.B); ok {
		// A benchmark's NATS runs in a process of its own, as deployed.
		rec = benchRecorder(b)
	} else {
		pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{MaxPending: 1 << 16})
		require.NoError(t, err)
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
		rec = pub
	}
	o := proxy.Options{Upstream: u.config(), Authenticator: a, Masker: m, Recorder: rec, Recordings: env.recordings}
	if configure != nil {
		configure(&o)
	}
	p, err := proxy.NewProxy(o)
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

// testMaskingKey is the masking key of the proxies the tests start.
const testMaskingKey = "gatehouse-test-masking-key-0001"
