package authn_test

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
)

// recorder is an HTTPS server that records the requests it receives.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD path Authorization"
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.Path+" "+req.Header.Get("Authorization"))
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestClusterIssuerClientRoutes checks, against a stand-in API server, that the client sends the
// issuer's discovery document and key set requests to the API server's paths with the proxy's
// credentials, whatever hosts the issuer and jwks_uri name, and sends nothing anywhere else.
func TestClusterIssuerClientRoutes(t *testing.T) {
	const (
		issuer  = "https://kubernetes.default.svc.gatehouse-test.invalid"
		jwksURI = "https://jwks.gatehouse-test.invalid/openid/v1/jwks"
	)
	api := newRecorder(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch req.URL.Path {
		case "/prefix/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": jwksURI})
		case "/prefix/openid/v1/jwks":
			_, _ = io.WriteString(w, `{"keys":[]}`)
		default:
			http.NotFound(w, req)
		}
	})
	elsewhere := newRecorder(t, func(http.ResponseWriter, *http.Request) {})
	client, err := authn.ClusterIssuerClient(&rest.Config{
		Host:            api.srv.URL + "/prefix",
		BearerToken:     "proxy-credential",
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw})},
	}, issuer+"/")
	require.NoError(t, err)

	get := func(url string) (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	_, err = get(jwksURI)
	require.Error(t, err, "the key set is routed only once the discovery document named it")

	doc, err := get(issuer + "/.well-known/openid-configuration")
	require.NoError(t, err)
	assert.Contains(t, doc, jwksURI, "the document reaches the caller intact")
	keys, err := get(jwksURI)
	require.NoError(t, err)
	assert.JSONEq(t, `{"keys":[]}`, keys)
	assert.Equal(t, []string{
		"GET /prefix/.well-known/openid-configuration Bearer proxy-credential",
		"GET /prefix/openid/v1/jwks Bearer proxy-credential",
	}, api.requests())

	// Nothing else leaves with the proxy's credentials.
	for _, url := range []string{
		elsewhere.srv.URL + "/.well-known/openid-configuration",
		elsewhere.srv.URL + "/openid/v1/jwks",
		issuer + "/api/v1/secrets",
		issuer + "/.well-known/openid-configuration?x=1",
		"https://jwks.gatehouse-test.invalid/other",
	} {
		_, err := get(url)
		require.Error(t, err, url)
		assert.Contains(t, err.Error(), "cluster issuer client", url)
	}
	resp, err := client.Post(issuer+"/.well-known/openid-configuration", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "only GET")
	assert.Empty(t, elsewhere.requests())
	assert.Len(t, api.requests(), 2)
}
