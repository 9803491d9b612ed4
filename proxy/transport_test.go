package proxy

import (
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gatehouse-dev/gatehouse/authn"
)

// TestBearerAuthAsClientGo: the upstream transport's bearer token reaches the API server as
// client-go's own wrapper sends it (static, from a file, both), every other header unchanged, the
// caller's request untouched, and a request that carries an Authorization already passes as it
// is, as with client-go.
func TestBearerAuthAsClientGo(t *testing.T) {
	srv := newHeaderServer(t)
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("from-the-file\n"), 0o600))

	tests := []struct {
		name        string
		token, file string
		header      http.Header
	}{
		{name: "static", token: "static-token", header: http.Header{"Impersonate-Group": {"a", "b"}, "Audit-Id": {"x"}}},
		{name: "file", file: file, header: http.Header{"Impersonate-User": {"alice"}}},
		{name: "both", token: "static-token", file: file},
		{name: "authorization already there", token: "static-token", header: http.Header{"Authorization": {"Bearer other"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &rest.Config{
				Host: srv.URL, BearerToken: tc.token, BearerTokenFile: tc.file,
				TLSClientConfig: rest.TLSClientConfig{CAData: srv.caData()},
			}
			ours, err := transportFor(cfg)
			require.NoError(t, err)
			require.IsType(t, &bearerAuth{}, ours)
			theirs, err := rest.TransportFor(cfg)
			require.NoError(t, err)
			send := func(rt http.RoundTripper) http.Header {
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/api", nil)
				require.NoError(t, err)
				for k, vs := range tc.header {
					req.Header[k] = append([]string(nil), vs...)
				}
				before := req.Header.Clone()
				resp, err := rt.RoundTrip(req)
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, before, req.Header, "the caller's request is not changed")
				return srv.last()
			}
			want, got := send(theirs), send(ours)
			assert.Equal(t, want, got)
			assert.NotEmpty(t, got.Get("Authorization"))
			// Twice: the cached header value is the same token's.
			assert.Equal(t, want, send(ours))
		})
	}
}

// TestBearerAuthFollowsTheTokenFile: a token file's new token (a rotated service-account token)
// is sent from the next request on, and the last one read while the file cannot be read, as
// client-go does.
func TestBearerAuthFollowsTheTokenFile(t *testing.T) {
	var sent []string
	next := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.Header.Get("Authorization"))
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	file := []struct {
		token string
		err   error
	}{{"tok-1", nil}, {"tok-1", nil}, {"tok-2", nil}, {"", os.ErrNotExist}, {"tok-3", nil}}
	var read int
	b := &bearerAuth{bearer: "tok-0", next: next, source: func() (string, error) {
		f := file[read]
		read++
		return f.token, f.err
	}}
	b.value.Store(&bearerValue{})
	for range file {
		req, err := http.NewRequest(http.MethodGet, "https://kube-apiserver/api", nil)
		require.NoError(t, err)
		resp, err := b.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	// client-go falls back to the token configured when the file cannot be read.
	assert.Equal(t, []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-0", "Bearer tok-3"}, sent)
	// The wrapped round tripper is the one below: it adds no token.
	req, err := http.NewRequest(http.MethodGet, "https://kube-apiserver/api", nil)
	require.NoError(t, err)
	resp, err := b.WrappedRoundTripper().RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "", sent[len(sent)-1])
}

// TestTransportForLeavesOtherCredentialsToClientGo: basic auth, exec plugins and auth providers,
// with or without a token beside them, keep client-go's own wrappers (and its errors).
func TestTransportForLeavesOtherCredentialsToClientGo(t *testing.T) {
	exec := &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "true", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
	provider := &clientcmdapi.AuthProviderConfig{Name: "not-registered"}
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
	}{
		{"basic", &rest.Config{Host: "https://127.0.0.1:1", Username: "u", Password: "p"}},
		{"none", &rest.Config{Host: "https://127.0.0.1:1"}},
		{"token and basic", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "t", Username: "u", Password: "p"}},
		{"token and exec", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "t", ExecProvider: exec}},
		{"token and auth provider", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "t", AuthProvider: provider}},
		{"exec", &rest.Config{Host: "https://127.0.0.1:1", ExecProvider: exec}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, wantErr := rest.TransportFor(tc.cfg)
			ours, err := transportFor(tc.cfg)
			if wantErr != nil {
				require.Error(t, err)
				assert.Equal(t, wantErr.Error(), err.Error())
				return
			}
			require.NoError(t, err)
			assert.IsType(t, rt, ours)
			_, isOurs := ours.(*bearerAuth)
			assert.False(t, isOurs)
		})
	}
}

// TestNewTransportNamesTheBearerCredential: newTransport hands the proxy the bearerAuth of its
// ordinary requests when the credential is a bearer token (static or from a file), and nothing
// for any other credential. The Authorization the proxy sets from it is the one the transport
// adds itself, and the transport sends a request that carries it as it is.
func TestNewTransportNamesTheBearerCredential(t *testing.T) {
	srv := newHeaderServer(t)
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("from-the-file\n"), 0o600))
	exec := &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "true", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}

	for _, tc := range []struct {
		name       string
		cfg        rest.Config
		credential bool
	}{
		{"static", rest.Config{BearerToken: "static-token"}, true},
		{"file", rest.Config{BearerTokenFile: file}, true},
		{"both", rest.Config{BearerToken: "static-token", BearerTokenFile: file}, true},
		{"none", rest.Config{}, false},
		{"basic", rest.Config{Username: "u", Password: "p"}, false},
		{"token and exec", rest.Config{BearerToken: "t", ExecProvider: exec}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Host = srv.URL
			cfg.TLSClientConfig = rest.TLSClientConfig{CAData: srv.caData()}
			rt, credential, err := newTransport(&cfg)
			require.NoError(t, err)
			if !tc.credential {
				assert.Nil(t, credential)
				return
			}
			require.NotNil(t, credential)
			send := func(authorization string) http.Header {
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/api", nil)
				require.NoError(t, err)
				req.Header.Set("Audit-Id", "x")
				if authorization != "" {
					req.Header.Set("Authorization", authorization)
				}
				resp, err := rt.RoundTrip(req)
				require.NoError(t, err)
				resp.Body.Close()
				return srv.last()
			}
			byTransport := send("")
			require.NotEmpty(t, byTransport.Get("Authorization"))
			assert.Equal(t, byTransport, send(credential.header()))
		})
	}
}

// TestTheProxyCredentialIsReadPerAttempt: rewrite puts the proxy's token on an outbound request
// as it is at that moment (a token file is followed), and the re-sent call of a held request
// carries the token as it is when it is re-sent, not as it was before the hold.
func TestTheProxyCredentialIsReadPerAttempt(t *testing.T) {
	var sent []string
	next := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.Header.Get("Authorization"))
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	current := "tok-1"
	b := &bearerAuth{bearer: "tok-0", next: next, source: func() (string, error) { return current, nil }}
	b.value.Store(&bearerValue{})
	upstream, err := url.Parse("https://kube-apiserver")
	require.NoError(t, err)
	p := &Proxy{credential: b, upstream: upstream, log: slog.New(slog.DiscardHandler)}

	outbound := func() *http.Request {
		in := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/configmaps", nil)
		st := &requestState{auditID: "audit-1", id: &authn.Identity{}, w: newRecordingWriter(httptest.NewRecorder())}
		in = in.WithContext(&forwardContext{Context: in.Context(), st: st})
		pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
		p.rewrite(pr)
		return pr.Out
	}
	assert.Equal(t, "Bearer tok-1", outbound().Header.Get("Authorization"))
	current = "tok-2"
	out := outbound()
	assert.Equal(t, "Bearer tok-2", out.Header.Get("Authorization"), "rewrite follows the token source")

	// Held while the token rotates, then re-sent.
	current = "tok-3"
	h := &holdTransport{next: b, p: p}
	resp, err := h.resend(out, stateOf(out), "approval-1")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"Bearer tok-3"}, sent, "the re-sent call carries the token of the moment")
}

// headerServer is a TLS server speaking HTTP/2, as kube-apiserver does, that keeps the headers of
// the requests it receives.
type headerServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newHeaderServer(t *testing.T) *headerServer {
	s := &headerServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Header.Clone())
		s.mu.Unlock()
	}))
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// last returns the headers of the last request received.
func (s *headerServer) last() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// caData returns the server's certificate, PEM-encoded, for a client to trust.
func (s *headerServer) caData() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}
