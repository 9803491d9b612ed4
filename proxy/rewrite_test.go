package proxy_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRewriteKeepsOwnedHeaders: headers a client names in Connection are removed before
// Rewrite runs; what the proxy sets there must still reach the API server, and the client's
// own credentials and assertions must not.
func TestRewriteKeepsOwnedHeaders(t *testing.T) {
	u := newUpstream(t)
	p := newStubProxy(t, u, nil)
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

	got := u.last()
	assert.Equal(t, "Bearer gatehouse-proxy-credential", got.Get("Authorization"), "the proxy's credential, never the client's")
	assert.Equal(t, "oidc:alice", got.Get("Impersonate-User"))
	assert.Equal(t, []string{"oidc:dev"}, got.Values("Impersonate-Group"))
	assert.Equal(t, resp.Header.Get("Audit-Id"), got.Get("Audit-Id"))
	assert.NotEqual(t, "client-chosen", got.Get("Audit-Id"))
	assert.NotEmpty(t, got.Get("Impersonate-Extra-Gatehouse.dev%2fsession-Id"))
	assert.Empty(t, got.Get("X-Forwarded-For"))
	assert.Empty(t, got.Get("X-Remote-User"))
}

// TestClientHeadersNeverReachTheAPIServer: only the headers kube-apiserver needs are forwarded.
// Addresses a client claims (kube-apiserver would take the first as the source IP), and a token
// in the WebSocket subprotocol of a request that is not an upgrade, never reach it.
func TestClientHeadersNeverReachTheAPIServer(t *testing.T) {
	u := newUpstream(t)
	p := newStubProxy(t, u, nil)
	tok := token(t, "alice", nil)
	claimed := map[string]string{
		"X-Real-Ip": "6.6.6.1", "X-Forwarded-For": "6.6.6.2", "Forwarded": "for=6.6.6.3", "True-Client-Ip": "6.6.6.4",
		"X-Client-Ip": "6.6.6.5", "X-Cluster-Client-Ip": "6.6.6.6", "Cf-Connecting-Ip": "6.6.6.7", "X-Forwarded-Host": "evil.example.com",
		"X-Originating-Ip": "6.6.6.8", "Client-Ip": "6.6.6.9", "X-Remote-Group": "system:masters", "X-Remote-Extra-Scopes": "all",
		"Cookie": "session=1", "Gatehouse-Reason": "shown to approvers only",
	}
	req, err := http.NewRequest(http.MethodGet, p.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	// A second token in the subprotocol of a request that is no upgrade.
	req.Header.Set("Sec-WebSocket-Protocol", "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io."+base64.RawURLEncoding.EncodeToString([]byte(token(t, "mallory", nil))))
	for k, v := range claimed {
		req.Header.Set(k, v)
	}
	resp, err := p.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	got := u.last()
	for k := range claimed {
		assert.Empty(t, got.Values(k), "%s reached the API server", k)
	}
	assert.Equal(t, "v5.channel.k8s.io", got.Get("Sec-WebSocket-Protocol"), "the token is stripped, upgrade or not")
	assert.Equal(t, "application/json", got.Get("Accept"))
	for name := range got {
		assert.NotContains(t, []string{"Cookie", "X-Real-Ip", "Forwarded"}, name)
	}
}

// TestClientPathPrefix: a kubeconfig whose server URL carries client options reaches the same
// API paths; the prefix never reaches the API server.
func TestClientPathPrefix(t *testing.T) {
	u := newUpstream(t)
	p := newStubProxy(t, u, nil)
	tok := token(t, "alice", nil)
	get := func(path string, hdr http.Header) *http.Response {
		req, err := http.NewRequest(http.MethodGet, p.URL+path, nil)
		require.NoError(t, err)
		req.Header = hdr.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := p.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	byPrefix := get("/gatehouse/client/session=run-7,hold=refuse/api/v1/namespaces/default/configmaps/settings", nil)
	require.Equal(t, http.StatusOK, byPrefix.StatusCode)
	assert.Equal(t, "/api/v1/namespaces/default/configmaps/settings", u.seen()[0].path)
	byHeader := get("/api/v1/namespaces/default/configmaps/settings", http.Header{"Gatehouse-Session": {"run-7"}})
	assert.Equal(t, byHeader.Header.Get("Gatehouse-Session"), byPrefix.Header.Get("Gatehouse-Session"), "the same session either way")

	bad := get("/gatehouse/client/hold=sometimes/api/v1/namespaces/default/configmaps/settings", nil)
	assert.Equal(t, http.StatusBadRequest, bad.StatusCode)
	assert.Len(t, u.seen(), 2, "a request with invalid options is not forwarded")
}

// TestUpstreamHeadersOfAGet pins every header a small GET carries to the API server, over
// HTTP/2 and HTTP/1.1: the proxy's credential, the full impersonation, the attempt's Audit-ID and
// the client headers that are forwarded, and nothing else.
func TestUpstreamHeadersOfAGet(t *testing.T) {
	u := newUpstream(t)
	p := newStubProxy(t, u, nil)
	tok := token(t, "alice", map[string]any{"groups": []string{"dev", "ops"}})
	for _, tc := range []struct {
		name  string
		http2 bool
	}{{"http2", true}, {"http1", false}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := p.Client().Transport.(*http.Transport).Clone()
			if !tc.http2 {
				tr.ForceAttemptHTTP2 = false
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			req, err := http.NewRequest(http.MethodGet, p.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("User-Agent", "kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef")
			req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf, application/json")
			req.Header.Set("Kubectl-Command", "kubectl get")
			req.Header.Set("Gatehouse-Reason", "checking the settings")
			req.Header.Set("Impersonate-User", "system:admin")
			req.Header.Set("Impersonate-Extra-Gatehouse.dev%2fsession-Id", "forged")
			req.Header.Set("X-Forwarded-For", "10.0.0.1")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "a client's Impersonate-* is refused")

			req.Header.Del("Impersonate-User")
			req.Header.Del("Impersonate-Extra-Gatehouse.dev%2fsession-Id")
			resp, err = (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)

			auditID, session := resp.Header.Get("Audit-Id"), resp.Header.Get("Gatehouse-Session")
			require.NotEmpty(t, auditID)
			require.NotEmpty(t, session)
			assert.Equal(t, http.Header{
				"Accept":          {"application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
				"Accept-Encoding": {"gzip"},
				"Audit-Id":        {auditID},
				"Authorization":   {"Bearer gatehouse-proxy-credential"},
				"Impersonate-Extra-Gatehouse.dev%2fclient":     {"kubectl/v1.36.3"},
				"Impersonate-Extra-Gatehouse.dev%2fissuer":     {env.issuer.URL},
				"Impersonate-Extra-Gatehouse.dev%2freason":     {"checking the settings"},
				"Impersonate-Extra-Gatehouse.dev%2fsession-Id": {session},
				"Impersonate-Extra-Gatehouse.dev%2fsubject":    {"alice"},
				"Impersonate-Group":                            {"oidc:dev", "oidc:ops"},
				"Impersonate-Uid":                              {"uid-alice"},
				"Impersonate-User":                             {"oidc:alice"},
				"Kubectl-Command":                              {"kubectl get"},
				"User-Agent":                                   {"kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef"},
			}, u.last())
			assert.Equal(t, []string{auditID}, resp.Header.Values("Audit-Id"), "the client's answer names the attempt once")
		})
	}
}

// TestOnlyTheProxyCredentialReachesTheAPIServer: whatever a client does with its own credential
// headers (names it in Connection, sends it twice, in another case, as Proxy-Authorization),
// the API server gets one Authorization, the proxy's, as the transport adds it.
func TestOnlyTheProxyCredentialReachesTheAPIServer(t *testing.T) {
	u := newUpstream(t)
	p := newStubProxy(t, u, nil)
	tok := token(t, "alice", nil)
	tr := p.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"named in Connection", http.Header{"Connection": {"Authorization"}}},
		{"twice", http.Header{"Authorization": {"Bearer " + tok, "Bearer other"}}},
		{"lower case", http.Header{"authorization": {"Bearer " + tok}}},
		{"as Proxy-Authorization", http.Header{"Proxy-Authorization": {"Bearer " + tok}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, p.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+tok)
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			got := u.last()
			assert.Equal(t, []string{"Bearer gatehouse-proxy-credential"}, got.Values("Authorization"))
			assert.Empty(t, got.Values("Proxy-Authorization"))
		})
	}
}
