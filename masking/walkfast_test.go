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
