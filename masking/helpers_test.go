package masking

import (
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var testKey = Key("gatehouse-test-key-0123456789abcdef")

// newMasker returns a Masker with the test key and the given configuration.
func newMasker(t testing.TB, cfg Config) *Masker {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	m, err := New(cfg)
	require.NoError(t, err)
	return m
}

// fixture reads a file of testdata. The fixtures are in the format kube-apiserver v1.36 writes
// (compact JSON, fields in Go struct order, list items without kind); captures from a real API
// server can replace them.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// placeholderRE matches a plain placeholder.
var placeholderRE = regexp.MustCompile(`^gatehouse:masked:[0-9a-f]{12}$`)

// ghToken builds a classic GitHub token with a valid checksum.
func ghToken(prefix, random string) string {
	sum := crc32.ChecksumIEEE([]byte(random))
	var enc [6]byte
	for i := 5; i >= 0; i-- {
		enc[i] = base62[sum%62]
		sum /= 62
	}
	return prefix + random + string(enc[:])
}

// testJWT is the service account token of the fixtures.
func testJWT() string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"Yx3kP0qLmN7sT2vW9zB4cD6fH8jK1"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":["https://kubernetes.default.svc.cluster.local"],"exp":1773480413,"iat":1773476813,"iss":"https://kubernetes.default.svc.cluster.local","kubernetes.io":{"namespace":"payments","serviceaccount":{"name":"billing","uid":"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10"}},"nbf":1773476813,"sub":"system:serviceaccount:payments:billing"}`))
	s := base64.RawURLEncoding.EncodeToString([]byte("canary-jwt-signature-0123456789abcdef0123456789abcdef0123456789"))
	return h + "." + p + "." + s
}

// fixtureSecrets are secret values planted in the fixtures that do not contain "canary".
func fixtureSecrets() []string {
	return []string{
		"AKIAQ3EGRJ7XW5LN2TBV",
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
		ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA"),
		testJWT(),
		"eyJhbGciOiJSUzI1NiIs",
		base64.StdEncoding.EncodeToString([]byte("bot:canary-ghcr-pass")),
	}
}

// requireNoCanary fails if out contains a planted secret: the word canary in any case, its
// base64 encoding (aligned, as at the start of a value), or one of fixtureSecrets.
func requireNoCanary(t testing.TB, out []byte, extra ...string) {
	t.Helper()
	require.NotContains(t, strings.ToLower(string(out)), "canary", "a canary leaked")
	require.NotContains(t, string(out), "Y2FuYXJ5", "a base64 canary leaked")
	for _, s := range append(fixtureSecrets(), extra...) {
		require.NotContains(t, string(out), s, "a planted secret leaked")
	}
}

// requireValidJSON fails if b is not one JSON document.
func requireValidJSON(t testing.TB, b []byte) {
	t.Helper()
	require.True(t, json.Valid(b), "invalid JSON: %.300s", b)
}

// lines splits a watch stream into its events.
func lines(b []byte) []string {
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

func bytesReader(b []byte) *strings.Reader { return strings.NewReader(string(b)) }
