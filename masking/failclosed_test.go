package masking

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestFailClosed(t *testing.T) {
	secret := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"password":"Y2FuYXJ5LXRydW5jYXRlZA=="}}`
	gz := gzipped(t, []byte(secret))
	tests := []struct {
		name    string
		ct, enc string
		body    []byte
		target  Target
		wantErr error
	}{
		{"truncated", "application/json", "", []byte(secret[:len(secret)-10]), Target{Resource: "secrets"}, ErrMalformed},
		{"truncated in a string", "application/json", "", []byte(secret[:strings.Index(secret, "Y2Fu")+6]), Target{Resource: "secrets"}, ErrMalformed},
		{"trailing garbage", "application/json", "", []byte(secret + `{"x":1}`), Target{Resource: "secrets"}, ErrMalformed},
		{"garbage", "application/json", "", []byte(`not json at all canary`), Target{Resource: "secrets"}, ErrMalformed},
		{"control character in a string", "application/json", "", []byte("{\"data\":{\"a\":\"canary\x01\"}}"), Target{}, ErrMalformed},
		{"invalid UTF-8 in a secret", "application/json", "", []byte("{\"kind\":\"Secret\",\"data\":{\"a\":\"canary\xff\"}}"), Target{}, ErrMalformed},
		{"invalid escape", "application/json", "", []byte(`{"data":{"a":"canary\x"}}`), Target{}, ErrMalformed},
		{"missing colon", "application/json", "", []byte(`{"data" {"a":"canary"}}`), Target{}, ErrMalformed},
		{"bad number", "application/json", "", []byte(`{"data":{"a":01,"b":"canary"}}`), Target{}, ErrMalformed},
		{"bad gzip", "application/json", "gzip", append([]byte{0x1f, 0x8b}, []byte("canary not gzip")...), Target{Resource: "secrets"}, ErrMalformed},
		{"truncated gzip", "application/json", "gzip", gz[:len(gz)-12], Target{Resource: "secrets"}, ErrMalformed},
		{"gzip with trailing garbage", "application/json", "gzip", append(append([]byte{}, gz...), "canary"...), Target{Resource: "secrets"}, ErrMalformed},
		{"protobuf", "application/vnd.kubernetes.protobuf", "", []byte("k8s\x00\n\x0c\n\x02v1\x12\x06Secret canary"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"protobuf watch", "application/vnd.kubernetes.protobuf;stream=watch", "", []byte("\x00\x00\x00\x10canary"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"cbor", "application/cbor", "", []byte("\xd9\xd9\xf7canary"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"yaml", "application/yaml", "", []byte("kind: Secret\ndata:\n  a: canary\n"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"unknown type", "application/octet-stream", "", []byte("canary"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"no type", "", "", []byte(secret), Target{Resource: "secrets"}, ErrUnmaskable},
		{"brotli", "application/json", "br", []byte("canary"), Target{Resource: "secrets"}, ErrUnmaskable},
		{"deep nesting", "application/json", "", []byte(strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)), Target{}, ErrMalformed},
		{"watch stream with a truncated event", "application/json;stream=watch", "", []byte(`{"type":"ADDED","object":` + secret + "}\n" + `{"type":"ADDED","object":` + secret[:40]), Target{Resource: "secrets"}, ErrMalformed},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := m.Body(tt.ct, tt.enc, tt.body, tt.target)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.wantErr), "got %v", err)
			assert.Nil(t, out, "nothing may be returned on error")
			assert.Zero(t, st.Fields)
			assert.NotContains(t, strings.ToLower(err.Error()), "canary", "errors must not quote the body")
		})
	}
}

func TestJSONErrorKeepsDst(t *testing.T) {
	m := newMasker(t, Config{})
	dst := []byte("kept")
	out, _, err := m.JSON(dst, []byte(`{"data":{"a":"x"`), Target{})
	require.ErrorIs(t, err, ErrMalformed)
	assert.Equal(t, "kept", string(out))
}

func TestBodyPassThrough(t *testing.T) {
	m := newMasker(t, Config{})
	disc := []byte(`{"kind":"APIVersions","versions":["v1"]}`)
	out, _, err := m.Body("application/octet-stream", "", disc, Target{Path: "/version"})
	require.NoError(t, err)
	assert.Equal(t, disc, out)

	out, _, err = m.Body("application/json", "", []byte("  \n"), Target{Resource: "secrets"})
	require.NoError(t, err)
	assert.Equal(t, "  \n", string(out))

	plain := []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`)
	out, st, err := m.Body("application/json; charset=utf-8", "identity", plain, Target{Resource: "pods"})
	require.NoError(t, err)
	assert.Zero(t, st.Fields)
	assert.Equal(t, plain, out)
}

func TestBodyGzip(t *testing.T) {
	m := newMasker(t, Config{})
	in := fixture(t, "secret.json")
	out, st, err := m.Body("application/json", "gzip", gzipped(t, in), Target{Resource: "secrets"})
	require.NoError(t, err)
	requireNoCanary(t, out)
	requireValidJSON(t, out)
	assert.Positive(t, st.Detectors["secret-data"])

	small := newMasker(t, Config{Limits: Limits{MaxBodyBytes: 100}})
	_, _, err = small.Body("application/json", "gzip", gzipped(t, in), Target{Resource: "secrets"})
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestBodyText(t *testing.T) {
	m := newMasker(t, Config{})
	out, st, err := m.Body("text/plain; charset=utf-8", "", []byte("db password=hunter2\n"), Target{Resource: "pods", Subresource: "log"})
	require.NoError(t, err)
	assert.Equal(t, expand("db password=<<P:hunter2>>\n"), string(out))
	assert.Equal(t, 1, st.Fields)
}

func TestNeedsMasking(t *testing.T) {
	m := newMasker(t, Config{})
	for _, tt := range []struct {
		t    Target
		want bool
	}{
		{Target{}, true},
		{Target{Resource: "secrets"}, true},
		{Target{Resource: "configmaps"}, true},
		{Target{Resource: "pods", Subresource: "log"}, true},
		{Target{Group: "apps", Resource: "deployments"}, true},
		{Target{Resource: "serviceaccounts", Subresource: "token"}, true},
		{Target{Resource: "namespaces"}, true},
		{Target{Group: "example.com", Resource: "widgets"}, true},
		{Target{Path: "/version"}, false},
		{Target{Path: "/healthz"}, false},
		{Target{Path: "/readyz/etcd"}, false},
		{Target{Path: "/openapi/v3/apis/apps/v1"}, false},
		{Target{Path: "/api"}, false},
		{Target{Path: "/api/v1"}, false},
		{Target{Path: "/apis"}, false},
		{Target{Path: "/apis/apps"}, false},
		{Target{Path: "/apis/apps/v1"}, false},
		{Target{Path: "/.well-known/openid-configuration"}, false},
		{Target{Path: "/openid/v1/jwks"}, false},
		{Target{Path: "/api/v1/namespaces/default/secrets"}, true},
		{Target{Path: "/apis/apps/v1/deployments"}, true},
		{Target{Path: "/logs/kube-apiserver.log"}, true},
		{Target{Path: "/metrics"}, true},
	} {
		assert.Equal(t, tt.want, m.NeedsMasking(tt.t), "%+v", tt.t)
	}
}

func TestStartOverBudget(t *testing.T) {
	// Objects that each name their kind after their data make the engine start them over;
	// the work stays linear and ends in an error when it would not.
	m := newMasker(t, Config{})
	var b strings.Builder
	b.WriteString(`{"kind":"ConfigMapList","apiVersion":"v1","items":[`)
	for i := 0; i < 200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"data":{"k":"YQ=="},"kind":"Secret","kind":"ConfigMap"}`)
	}
	b.WriteString(`]}`)
	out, _, err := m.JSON(nil, []byte(b.String()), Target{})
	require.NoError(t, err)
	assert.NotContains(t, string(out), `"k":"YQ=="`)
}
