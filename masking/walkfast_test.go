package masking

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file guard the walker's fast paths: each checks that what a fast path skips
// could not have been masked, or recognised, by the slow one.

func TestIndexTypeEscape(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{``, -1},
		{`{"a":"say \"hi\"\n\t\r\b\f\\"}`, -1},
		{`{"type":"helm.sh\/release.v1"}`, 16},
		{`{"type":"\u0068elm.sh/release.v1"}`, 9},
		{`{"\u0074ype":"x"}`, 2},
		{`{"a":"\"\\u"}`, 9}, // an escaped backslash before u: a false alarm, never a miss
		{`\`, -1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, indexTypeEscape([]byte(tt.in)), tt.in)
	}
	// Every escape JSON allows other than \u and \/ decodes to a byte that neither "type" nor
	// "helm.sh/release.v1" contains.
	for _, e := range []string{`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`} {
		dec := unescape(nil, []byte(e))
		require.Len(t, dec, 1)
		assert.NotContains(t, "type"+HelmReleaseType, string(dec), e)
	}
}

// TestHelmReleaseTypeAfterOtherEscapes lists Secrets whose annotations are full of the escapes a
// last-applied annotation has (\" \n), before release Secrets whose type, or type key, is spelled
// with the escapes that can spell it: the release Secrets are still recognised, and every other
// Secret's data.release is a placeholder.
func TestHelmReleaseTypeAfterOtherEscapes(t *testing.T) {
	m := newMasker(t, Config{})
	payload := base64.StdEncoding.EncodeToString(EncodeHelmRelease(helmRelease(t)))
	const note = `{\"apiVersion\":\"v1\",\"kind\":\"Secret\"}\n`
	secret := func(name, typeMember string) string {
		return fmt.Sprintf(`{"metadata":{"name":%q,"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"%s"}},"data":{"release":%q},%s}`,
			name, note, payload, typeMember)
	}
	tests := []struct {
		name  string
		items []string
		helm  []bool
	}{
		{"plain", []string{secret("a", `"type":"Opaque"`), secret("b", `"type":"helm.sh/release.v1"`)}, []bool{false, true}},
		{"escaped slash", []string{secret("a", `"type":"Opaque"`), secret("b", `"type":"helm.sh\/release.v1"`)}, []bool{false, true}},
		{"escaped letters", []string{secret("a", `"type":"Opaque"`), secret("b", `"type":"\u0068\u0065lm.sh/release.v1"`)}, []bool{false, true}},
		{"escaped key and value", []string{secret("a", `"type":"Opaque"`), secret("b", `"\u0074ype":"helm.sh\/release.v1"`)}, []bool{false, true}},
		{"no release", []string{secret("a", `"type":"Opaque"`), secret("b", `"type":"kubernetes.io/tls"`)}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[` + strings.Join(tt.items, ",") + `]}`
			out, _, err := m.Body("application/json", "", []byte(doc), Target{Version: "v1", Resource: "secrets"})
			require.NoError(t, err)
			requireValidJSON(t, out)
			var list struct {
				Items []struct {
					Data map[string]string `json:"data"`
				} `json:"items"`
			}
			require.NoError(t, json.Unmarshal(out, &list))
			require.Len(t, list.Items, len(tt.helm))
			for i, item := range list.Items {
				release, err := base64.StdEncoding.DecodeString(item.Data["release"])
				require.NoError(t, err)
				if tt.helm[i] {
					checkMaskedRelease(t, decodeRelease(t, string(release)))
				} else {
					assert.Regexp(t, placeholderRE, string(release), "item %d: masked whole", i)
				}
			}
		})
	}
}

func TestSyntaxOf(t *testing.T) {
	tests := []struct {
		in   string
		want fixedSyntax
	}{
		{"", synNone},
		{"0", synDecimal},
		{"250000", synDecimal},
		{"12345678901234567890", synDecimal},
		{"123456789012345678901", synNone}, // longer than any resourceVersion
		{"12a45", synNone},
		{"-1", synNone},
		{"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10", synUUID},
		{"7D0F3A52-6B1E-4C8E-9A41-2F5E8C7D9B10", synNone}, // the API server writes lower case
		{"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b1g", synNone},
		{"7d0f3a526-b1e-4c8e-9a41-2f5e8c7d9b10", synNone},
		{"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10x", synNone},
		{"2026-03-14T09:26:53Z", synTime},
		{"2026-03-14T09:26:53.123456Z", synTime},
		{"2026-03-14T09:26:53.123456789Z", synTime},
		{"2026-03-14T09:26:53.1234567890Z", synNone},
		{"2026-03-14T09:26:53.Z", synNone},
		{"2026-03-14T09:26:53+01:00", synNone},
		{"2026-03-14t09:26:53z", synNone},
		{"2026-03-14T09:26:53", synNone},
		{"2026-03-14T09:26:53ZZ", synNone},
		{"2026-03-14T09:26:5xZ", synNone},
		{"2026-03-14 09:26:53Z", synNone},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, syntaxOf([]byte(tt.in)), tt.in)
	}
}

// TestSyntaxCleanFollowsKeywords checks that the built-in detectors leave decimal numbers and
// timestamps to the skip (uids hold keywords such as "acca"), and that an operator's detector
// whose keyword fits a syntax turns the skip off for it, so that it finds its secret there.
func TestSyntaxCleanFollowsKeywords(t *testing.T) {
	m := newMasker(t, Config{})
	assert.Equal(t, [numSyntaxes]bool{synDecimal: true, synTime: true}, m.eng.clean)

	custom := newMasker(t, Config{Detectors: []DetectorSpec{
		{Name: "pin", Regex: `\b(31415\d{5})\b`, Keywords: []string{"31415"}},
		{Name: "epoch-secret", Regex: `T(09:26:53)Z`, Keywords: []string{"t09:2"}},
	}})
	assert.Equal(t, [numSyntaxes]bool{}, custom.eng.clean)
	doc := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","resourceVersion":"3141592653","creationTimestamp":"2026-03-14T09:26:53Z"}}`
	out, st, err := custom.JSON(nil, []byte(doc), Target{})
	require.NoError(t, err)
	assert.NotContains(t, string(out), "3141592653")
	assert.NotContains(t, string(out), "09:26:53")
	assert.Equal(t, 2, st.Fields)

	// A detector without keywords runs on every string, those of a clean syntax included.
	always := newMasker(t, Config{Detectors: []DetectorSpec{{Name: "clock", Regex: `T(09:26:53)Z`}}})
	assert.Equal(t, [numSyntaxes]bool{synDecimal: true, synTime: true}, always.eng.clean)
	out, st, err = always.JSON(nil, []byte(doc), Target{})
	require.NoError(t, err)
	assert.NotContains(t, string(out), "09:26:53")
	assert.Equal(t, 1, st.Fields)
}

// TestSyntaxSkipAsDetectors compares the walker with a walker that runs the detectors on every
// string, on documents whose strings are of the skipped syntaxes, near misses of them, and
// credentials: the outputs are identical.
func TestSyntaxSkipAsDetectors(t *testing.T) {
	fast := newMasker(t, Config{})
	slow := newMasker(t, Config{})
	slow.eng.clean = [numSyntaxes]bool{}
	values := []string{
		"250000", "0", "12345678901234567890", "2026-03-14T09:26:53Z", "2026-03-14T09:26:53.123456789Z",
		"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10", "abcdef.0123456789abcdef", "2026-03-14T09:26:53.acca4b1dZ",
		ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA"), "AKIAQ3EGRJ7XW5LN2TBV", "s.ABCDEFGHijklmnop12345678",
	}
	for range 200 {
		values = append(values, fmt.Sprintf("%d", randUint()), fmt.Sprintf("20%02d-%02d-%02dT%02d:%02d:%02d.%dZ",
			randUint()%100, randUint()%13, randUint()%32, randUint()%24, randUint()%60, randUint()%60, randUint()%1000000))
	}
	for _, v := range values {
		doc := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","uid":%[1]q,"resourceVersion":%[1]q,"creationTimestamp":%[1]q,"labels":{"l":%[1]q}},"data":{"k":%[1]q}}`, v)
		want, wst, werr := slow.JSON(nil, []byte(doc), Target{})
		got, gst, gerr := fast.JSON(nil, []byte(doc), Target{})
		require.Equal(t, werr, gerr, v)
		require.Equal(t, string(want), string(got), v)
		require.Equal(t, wst, gst, v)
	}
}

var randState uint64 = 88172645463325252

// randUint is a xorshift generator: the differential tests need varied digits, not quality.
func randUint() uint64 {
	randState ^= randState << 13
	randState ^= randState >> 7
	randState ^= randState << 17
	return randState
}

// TestCredentialInSystemFields smuggles credentials into the metadata fields kube-apiserver sets
// (an audit event's requestObject holds what the client sent, whatever it was): uid,
// resourceVersion, creationTimestamp, deletionTimestamp, generation and managedFields times.
// None of them has the syntax the detectors are skipped for, and each is masked.
func TestCredentialInSystemFields(t *testing.T) {
	m := newMasker(t, Config{})
	tok := func(r string) string { return ghToken("ghp_", r) }
	creds := []struct{ value, secret string }{
		{tok("R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA"), tok("R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA")},
		{"AKIAQ3EGRJ7XW5LN2TBV", "AKIAQ3EGRJ7XW5LN2TBV"},
		{testJWT(), testJWT()},
		{"abcdef.0123456789abcdef", "0123456789abcdef"}, // a bootstrap token: a detector without keywords
		{"2026-03-14T09:26:53Z " + tok("Z7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sB"), tok("Z7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sB")},
		{"250000 " + tok("Y7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sC"), tok("Y7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sC")},
		{"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10 " + tok("X7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sD"), tok("X7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sD")},
	}
	fields := []string{"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"}
	for _, cred := range creds {
		for _, f := range fields {
			obj := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","%s":%q,"managedFields":[{"manager":"kubectl","time":%q}]}}`, f, cred.value, cred.value)
			docs := map[string]string{
				"object": obj,
				"audit":  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"configmaps","apiVersion":"v1"},"requestObject":` + obj + `}`,
				"watch":  `{"type":"ADDED","object":` + obj + `}`,
			}
			for name, doc := range docs {
				out, _, err := m.JSON(nil, []byte(doc), Target{Resource: "configmaps"})
				require.NoError(t, err)
				assert.NotContains(t, string(out), cred.secret, "%s in %s of %s", cred.value, f, name)
			}
		}
	}
}
