package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// ClusterIssuerClient returns the HTTP client that verifies the cluster's own service-account
// tokens (IssuerClients[issuer]) through kube-apiserver, with the credentials of cfg.
//
// kube-apiserver serves its issuer's discovery document at /.well-known/openid-configuration and
// its keys at /openid/v1/jwks, but the issuer URL (--service-account-issuer, often
// https://kubernetes.default.svc...) and the document's jwks_uri name hosts that resolve only
// inside the cluster, if at all. The client therefore sends a GET of the issuer's discovery
// document (issuer + "/.well-known/openid-configuration") to the API server's discovery path, and
// a GET of the jwks_uri that document names to the API server's key set path, whatever hosts they
// name. It refuses every other request: the client authenticates as the proxy, and its
// credentials must reach nothing but the API server. (So the issuer's entry in the
// AuthenticationConfiguration must not have a discoveryURL of its own.) The credentials need
// get on the non-resource URLs /.well-known/openid-configuration and /openid/v1/jwks, as the
// system:service-account-issuer-discovery ClusterRole grants.
func ClusterIssuerClient(cfg *rest.Config, issuer string) (*http.Client, error) {
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("authn: cluster issuer client: %w", err)
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("authn: cluster issuer client: %w", err)
	}
	t := &clusterIssuerTransport{
		base:         rt,
		discovery:    strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
		apiDiscovery: base.JoinPath("/.well-known/openid-configuration"),
		apiKeys:      base.JoinPath("/openid/v1/jwks"),
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}, nil
}

// maxDiscoveryBytes bounds the discovery document read to learn its jwks_uri.
const maxDiscoveryBytes = 1 << 20

// clusterIssuerTransport routes the cluster issuer's two URLs to the API server.
type clusterIssuerTransport struct {
	base                  http.RoundTripper
	discovery             string
	apiDiscovery, apiKeys *url.URL
	// jwksURI is the jwks_uri of the last discovery document served.
	jwksURI atomic.Pointer[string]
}

var errNotClusterIssuer = errors.New("authn: the cluster issuer client sends only the issuer's discovery document and key set requests to the API server")

func (t *clusterIssuerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch u := req.URL.String(); {
	case req.Method != http.MethodGet:
	case u == t.discovery:
		resp, err := t.base.RoundTrip(t.to(req, t.apiDiscovery))
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, err
		}
		return t.learnKeys(resp)
	case u == t.keysURL():
		return t.base.RoundTrip(t.to(req, t.apiKeys))
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return nil, fmt.Errorf("%w (refused %s %s)", errNotClusterIssuer, req.Method, req.URL.Redacted())
}

// keysURL returns the jwks_uri learned from the discovery document, or "".
func (t *clusterIssuerTransport) keysURL() string {
	if p := t.jwksURI.Load(); p != nil {
		return *p
	}
	return ""
}

// to returns req aimed at target on the API server.
func (t *clusterIssuerTransport) to(req *http.Request, target *url.URL) *http.Request {
	out := req.Clone(req.Context())
	out.URL = target
	out.Host = ""
	return out
}

// learnKeys records the jwks_uri of a discovery document and returns the response intact.
func (t *clusterIssuerTransport) learnKeys(resp *http.Response) (*http.Response, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("authn: read the cluster issuer's discovery document: %w", err)
	}
	if len(body) > maxDiscoveryBytes {
		return nil, fmt.Errorf("authn: the cluster issuer's discovery document exceeds %d bytes", maxDiscoveryBytes)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err == nil && doc.JWKSURI != "" {
		// As the key set's request will spell it.
		if u, err := url.Parse(doc.JWKSURI); err == nil {
			keys := u.String()
			t.jwksURI.Store(&keys)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}
