package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/identity"
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
		assert.False(t, forwarded(http.CanonicalHeaderKey(name)), name)
	}
	// Credentials, identity assertions, the Audit-ID and every address a client could claim.
	for _, name := range []string{"Authorization", "Audit-Id", "X-Forwarded-For", "X-Forwarded-Host", "X_Forwarded_For", "X-Remote-User",
		"X-Remote-Group", "Forwarded", "Cookie", "Proxy-Authorization", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip",
		"X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Originating-Ip", "X-Remote-Addr", "Client-Ip",
		"Gatehouse-Session", "Gatehouse-Hold", "Gatehouse-Reason", "X-Request-Id", "Impersonator"} {
		assert.False(t, forwarded(http.CanonicalHeaderKey(name)), name)
	}
	for _, name := range []string{"Accept", "Content-Type", "User-Agent", "Upgrade", "Connection", "X-Stream-Protocol-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Key"} {
		assert.True(t, forwarded(http.CanonicalHeaderKey(name)), name)
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
	digest := func(tok string) [sha256.Size]byte { return sha256.Sum256([]byte(tok)) }
	a1 := sessionID("run-1", digest("tok-a"), alice)
	assert.Equal(t, a1, sessionID("run-1", digest("tok-a2"), alice), "the same label of the same identity is the same session, whatever the token")
	assert.NotEqual(t, a1, sessionID("run-1", digest("tok-b"), bob), "a label is bound to its identity")
	t1 := sessionID("", digest("tok-a"), alice)
	assert.Equal(t, t1, sessionID("", digest("tok-a"), alice))
	assert.NotEqual(t, t1, sessionID("", digest("tok-b"), alice))
	assert.NotContains(t, t1, "tok-a")

	// The IDs as they were written (records and rows carry them): the first 10 bytes of the
	// SHA-256 of the token, or of the identity and label, in hex.
	tokenSum := sha256.Sum256([]byte("tok-a"))
	assert.Equal(t, "t-"+hex.EncodeToString(tokenSum[:10]), t1)
	labelSum := sha256.Sum256([]byte("https://idp\x001\x00alice\x00run-1"))
	assert.Equal(t, "s-"+hex.EncodeToString(labelSum[:10]), a1)
}

// TestClientOptions: the headers and the server-URL path prefix are one set of options, read by
// one parser; the prefix is stripped from the path.
func TestClientOptions(t *testing.T) {
	tests := []struct {
		name     string
		target   string
		header   http.Header
		want     clientOptions
		wantPath string
		wantErr  string
	}{
		{name: "none", target: "/api/v1/pods", wantPath: "/api/v1/pods"},
		{name: "headers", target: "/api/v1/pods", header: http.Header{"Gatehouse-Session": {"run-1"}, "Gatehouse-Hold": {"refuse"}, "Gatehouse-Reason": {"ticket 42"}},
			want: clientOptions{session: "run-1", refuse: true, reason: "ticket 42"}, wantPath: "/api/v1/pods"},
		{name: "path prefix", target: "/gatehouse/client/session=run-1,hold=90s,reason=fix%20the%2C%20bug%2Fnow/api/v1/namespaces/a/pods",
			want: clientOptions{session: "run-1", holdFor: 90 * time.Second, reason: "fix the, bug/now"}, wantPath: "/api/v1/namespaces/a/pods"},
		{name: "commas in a value, escaped or not", target: "/gatehouse/client/reason=a,%20b%2C%20c,hold=wait,session=s/version",
			want: clientOptions{session: "s", reason: "a, b, c"}, wantPath: "/version"},
		{name: "prefix and the same header", target: "/gatehouse/client/hold=refuse/version", header: http.Header{"Gatehouse-Hold": {"refuse"}},
			want: clientOptions{refuse: true}, wantPath: "/version"},
		{name: "prefix without a rest", target: "/gatehouse/client/hold=wait", wantPath: "/"},
		{name: "escaped rest stays escaped", target: "/gatehouse/client/session=s/api/v1/namespaces/a/configmaps/b%2Fc", want: clientOptions{session: "s"}, wantPath: "/api/v1/namespaces/a/configmaps/b/c"},
		{name: "conflict", target: "/gatehouse/client/hold=refuse/version", header: http.Header{"Gatehouse-Hold": {"wait"}}, wantErr: "hold is \"refuse\" in the server URL and \"wait\""},
		{name: "unknown key", target: "/gatehouse/client/color=blue/version", wantErr: `unknown option "color"`},
		{name: "not key=value", target: "/gatehouse/client/refuse/version", wantErr: "is not key=value"},
		{name: "an unknown key after a comma", target: "/gatehouse/client/hold=wait,color=blue/version", wantErr: "must be wait, refuse"},
		{name: "twice", target: "/gatehouse/client/hold=wait,hold=refuse/version", wantErr: "given twice"},
		{name: "bad hold", target: "/version", header: http.Header{"Gatehouse-Hold": {"forever"}}, wantErr: "must be wait, refuse or a positive duration"},
		{name: "negative hold", target: "/gatehouse/client/hold=-5s/version", wantErr: "positive duration"},
		{name: "bad session", target: "/version", header: http.Header{"Gatehouse-Session": {"bad label!"}}, wantErr: "1-64 letters"},
		{name: "control characters in the reason", target: "/gatehouse/client/reason=a%0Ab/version", wantErr: "without control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, v := range tc.header {
				r.Header[k] = v
			}
			got, err := readClientOptions(r)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrClientOptions)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantPath, r.URL.Path)
		})
	}
	assert.Equal(t, 90*time.Second, clientOptions{holdFor: 90 * time.Second}.holdLimit(10*time.Minute))
	assert.Equal(t, 10*time.Minute, clientOptions{holdFor: time.Hour}.holdLimit(10*time.Minute), "a client cannot exceed the proxy's limit")
	assert.Equal(t, 10*time.Minute, clientOptions{}.holdLimit(10*time.Minute))
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
		r.URL.Path = "/gatehouse/client/" + conn + "/" + accept
		r.Header.Set(HoldHeader, proto)
		_, _ = readClientOptions(r)
	})
}

func TestExtraHeader(t *testing.T) {
	for _, key := range []string{identity.ExtraSessionID, identity.ExtraIssuer, identity.ExtraSubject, identity.ExtraClient,
		identity.ExtraApprovalID, identity.ExtraReason, identity.ExtraOriginalUser, "example.com/team", "plain"} {
		assert.Equal(t, "Impersonate-Extra-"+url.PathEscape(key), extraHeader(key), key)
	}
}

// TestIsImpersonation compares isImpersonation with the plain definition, on names in any case,
// with underscores, short, and with bytes outside ASCII.
func TestIsImpersonation(t *testing.T) {
	plain := func(name string) bool {
		return strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "impersonate-")
	}
	for _, name := range []string{"", "Impersonate", "Impersonate-", "impersonate_", "IMPERSONATE_USER", "Impersonate-Extra-a",
		"Impersonatex-User", "xImpersonate-User", "İmpersonate-User", "Impersonate\u2010User", "impersonate-\xff", "\xffmpersonate-User",
		"Impersonation-User", "Accept", "impersonate-uid", "x\u0130mpersonate-User", "\u0130MPERSONATE_USER"} {
		assert.Equal(t, plain(name), isImpersonation(name), "%q", name)
	}
}
