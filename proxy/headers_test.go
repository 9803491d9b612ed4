package proxy

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/authn"
)

func TestJSONOnly(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "application/json"},
		{"application/vnd.kubernetes.protobuf", "application/json"},
		{"application/vnd.kubernetes.protobuf, */*", "*/*"},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
			"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"},
		{"application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json", "application/json"},
		{"application/cbor, application/json;stream=watch", "application/json;stream=watch"},
		{"text/plain", "text/plain"},
		{"garbage;;;", "application/json"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, jsonOnly(tc.in), tc.in)
	}
}

func TestHeaderRules(t *testing.T) {
	for _, name := range []string{"Impersonate-User", "impersonate-group", "IMPERSONATE-UID", "Impersonate_Extra-x", "impersonate-extra-a%2fb"} {
		assert.True(t, isImpersonation(name), name)
		assert.True(t, dropOutbound(name), name)
	}
	for _, name := range []string{"Authorization", "authorization", "Audit-Id", "X-Forwarded-For", "x_forwarded_host", "X-Remote-User", "Forwarded", "Cookie", "Proxy-Authorization"} {
		assert.True(t, dropOutbound(name), name)
	}
	for _, name := range []string{"Accept", "Content-Type", "User-Agent", "Impersonator", "X-Request-Id"} {
		assert.False(t, dropOutbound(name), name)
		assert.False(t, isImpersonation(name), name)
	}
	name, ok := impersonationHeader(http.Header{"Connection": {"keep-alive, Impersonate-User"}})
	assert.True(t, ok)
	assert.Equal(t, "Connection: Impersonate-User", name)
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
		ok     bool
	}{
		{"bearer", http.Header{"Authorization": {"Bearer abc"}}, "abc", true},
		{"case", http.Header{"Authorization": {"bearer abc"}}, "abc", true},
		{"basic", http.Header{"Authorization": {"Basic YTpi"}}, "", false},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "", false},
		{"websocket protocol", http.Header{"Sec-Websocket-Protocol": {"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io." +
			base64.RawURLEncoding.EncodeToString([]byte("tok"))}}, "tok", true},
		{"bad websocket protocol", http.Header{"Sec-Websocket-Protocol": {"base64url.bearer.authorization.k8s.io.!!"}}, "", false},
		{"none", http.Header{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = tc.header
			got, err := bearerToken(r)
			assert.Equal(t, tc.ok, err == nil)
			assert.Equal(t, tc.want, got)
		})
	}
	h := http.Header{"Sec-Websocket-Protocol": {"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.dG9r"}}
	stripTokenProtocol(h)
	assert.Equal(t, "v5.channel.k8s.io", h.Get("Sec-Websocket-Protocol"), "the token never goes upstream")
}

func TestSessionID(t *testing.T) {
	alice := &authn.Identity{}
	alice.Issuer, alice.Subject, alice.User = "https://idp", "1", "alice"
	bob := &authn.Identity{}
	bob.Issuer, bob.Subject, bob.User = "https://idp", "2", "bob"
	req := func(label string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if label != "" {
			r.Header.Set(SessionHeader, label)
		}
		return r
	}
	a1, l1, err := sessionID(req("run-1"), "tok-a", alice)
	require.NoError(t, err)
	assert.Equal(t, "run-1", l1)
	a2, _, _ := sessionID(req("run-1"), "tok-a2", alice)
	assert.Equal(t, a1, a2, "the same label of the same identity is the same session, whatever the token")
	b1, _, _ := sessionID(req("run-1"), "tok-b", bob)
	assert.NotEqual(t, a1, b1, "a label is bound to its identity")
	t1, l, _ := sessionID(req(""), "tok-a", alice)
	t2, _, _ := sessionID(req(""), "tok-a", alice)
	assert.Equal(t, t1, t2)
	assert.Empty(t, l)
	assert.NotContains(t, t1, "tok-a")
	for _, bad := range []string{"has space", "-leading", "a/b", string(make([]byte, 65))} {
		_, _, err := sessionID(req(bad), "tok", alice)
		assert.Error(t, err, bad)
	}
}

// FuzzRequestParsing feeds arbitrary header values to what the proxy reads from clients: it
// never panics. (With -fuzz every worker starts the package's test bed, so fuzzing is slow here:
// about 24k inputs in a first minute on two cores, no findings.)
func FuzzRequestParsing(f *testing.F) {
	f.Add("Bearer a.b.c", "keep-alive, Impersonate-User", "application/json;as=Table", "base64url.bearer.authorization.k8s.io.YQ")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, auth, conn, accept, proto string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("Connection", conn)
		r.Header.Set("Sec-Websocket-Protocol", proto)
		r.Header.Set("Impersonate-Extra-"+conn, accept)
		_, _ = bearerToken(r)
		_, _ = impersonationHeader(r.Header)
		_, _ = onlyCanonical(r.Header)
		_, _ = impersonationRequest(r.Header)
		_ = jsonOnly(accept)
		_ = clientName(accept)
		stripTokenProtocol(r.Header)
	})
}
