package proxy

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// TestBearerAuthAsClientGo: the upstream transport's bearer token reaches the API server as
// client-go's own wrapper sends it (static, from a file, both), every other header unchanged, the
// caller's request untouched, and a request that carries an Authorization already passes as it
// is, as with client-go.
func TestBearerAuthAsClientGo(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
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
				TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
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
				mu.Lock()
				defer mu.Unlock()
				return seen[len(seen)-1]
			}
			want, got := send(theirs), send(ours)
			assert.Equal(t, want, got)
			assert.NotEmpty(t, got.Get("Authorization"))
			// Twice: the cached header value is the same token's.
			assert.Equal(t, want, send(ours))
		})
	}
}

// TestTransportForLeavesOtherCredentialsToClientGo: basic auth and exec plugins keep client-go's
// own wrappers.
func TestTransportForLeavesOtherCredentialsToClientGo(t *testing.T) {
	for _, cfg := range []*rest.Config{
		{Host: "https://127.0.0.1:1", Username: "u", Password: "p"},
		{Host: "https://127.0.0.1:1"},
	} {
		rt, err := transportFor(cfg)
		require.NoError(t, err)
		_, ours := rt.(*bearerAuth)
		assert.False(t, ours)
	}
}
