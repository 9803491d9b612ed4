package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file checks the hiding of Secret data against a reference written from the placeholder
// format alone (encoding/base64, crypto/hmac, encoding/json): a value decodes while it is
// scanned (decodePrefix) and a value repeated in a document is hashed once (hideMemo), and
// neither may change a byte of the output or a call of the SecretValue hook.

var refPlaceholderRE = regexp.MustCompile(`^gatehouse:masked:[0-9a-f]{12}$`)

// refPlaceholder is the placeholder of v under testKey.
func refPlaceholder(v []byte) string {
	mac := hmac.New(sha256.New, testKey)
	mac.Write(v)
	return PlaceholderPrefix + hex.EncodeToString(mac.Sum(nil)[:hashBytes])
}

// refHidden returns what a hidden string whose JSON text is raw becomes, and the value the
// SecretValue hook receives for it (ok false: none, the string is kept). base64 is the mode of
// Secret data, ifValid that of data in an object of unknown type.
func refHidden(t *testing.T, raw string, mode hideMode) (out string, value []byte, ok bool) {
	t.Helper()
	var text string
	require.NoError(t, json.Unmarshal([]byte(raw), &text))
	if refPlaceholderRE.MatchString(text) {
		return raw, nil, false
	}
	v := []byte(text)
	if mode != hidePlain {
		dec, err := base64.StdEncoding.DecodeString(text)
		switch {
		case err == nil && refPlaceholderRE.Match(dec):
			return raw, nil, false
		case err == nil:
			v = dec
		case mode == hideBase64IfValid:
			mode = hidePlain
		}
	}
	ph := refPlaceholder(v)
	if mode == hidePlain {
		return `"` + ph + `"`, v, true
	}
	return `"` + base64.StdEncoding.EncodeToString([]byte(ph)) + `"`, v, true
}

// hiddenInputs returns JSON strings to hide: base64 of every length around the groups of eight
// decodePrefix reads, with padding, line breaks and bytes outside the alphabet at every place
// near them, written with and without JSON escapes, and placeholders.
func hiddenInputs() []string {
	raw := make([]byte, 40)
	for i := range raw {
		raw[i] = byte(i*131 + i*i)
	}
	var texts []string
	for n := range len(raw) {
		texts = append(texts, base64.StdEncoding.EncodeToString(raw[:n]), base64.RawStdEncoding.EncodeToString(raw[:n]))
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for i := range 26 {
		for _, bad := range []string{"=", "\n", "-", " ", "\"", "\\", "\u00e9"} {
			texts = append(texts, enc[:i]+bad+enc[i+1:], enc[:i]+bad+enc[i:])
		}
	}
	ph := refPlaceholder([]byte("s3cr3t"))
	texts = append(texts, "", "Zm9v\r\nYmFy", "Zm9vYmFyZm9vYg=", ph, base64.StdEncoding.EncodeToString([]byte(ph)), ph[:len(ph)-1]+"x")
	var out []string
	for _, s := range texts {
		q, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		out = append(out, string(q))
		// The same text with one byte written as an escape, in the first groups and at the end.
		for _, p := range []int{0, 7, 8, 9, 16, len(s) - 1} {
			if p < 0 || p >= len(s) || s[p] >= 0x80 || s[p] == '"' || s[p] == '\\' {
				continue
			}
			esc := `\u00` + hex.EncodeToString([]byte{s[p]})
			if s[p] == '/' {
				esc = `\/`
			}
			inner := string(q[1 : len(q)-1])
			if strings.Contains(inner, `\`) {
				continue // positions would shift
			}
			out = append(out, `"`+inner[:p]+esc+inner[p+1:]+`"`)
		}
	}
	return out
}

type hookCall struct{ value, placeholder string }

// checkHiddenAsReference masks raw (a JSON string) and other in a Secret, the first three times
// in data and once in stringData, and in an object of unknown type, and compares the output and
// the SecretValue hook's calls with the reference.
func checkHiddenAsReference(t *testing.T, m *Masker, raw, other string) {
	t.Helper()
	var calls, want []hookCall
	hook := func(v, ph []byte) { calls = append(calls, hookCall{string(v), string(ph)}) }
	expect := func(raw string, mode hideMode) string {
		out, v, ok := refHidden(t, raw, mode)
		if ok {
			var text string
			require.NoError(t, json.Unmarshal([]byte(out), &text))
			if mode != hidePlain && !refPlaceholderRE.MatchString(text) {
				dec, err := base64.StdEncoding.DecodeString(text)
				require.NoError(t, err)
				text = string(dec)
			}
			want = append(want, hookCall{string(v), text})
		}
		return out
	}

	// The memo answers for the second and third data values; stringData hides the same text
	// in another mode.
	const secret = `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"a":%s,"b":%s,"c":%s,"d":%s},"stringData":{"a":%s}}`
	doc := fmt.Sprintf(secret, raw, other, raw, raw, raw)
	wantDoc := fmt.Sprintf(secret, expect(raw, hideBase64), expect(other, hideBase64), expect(raw, hideBase64), expect(raw, hideBase64), expect(raw, hidePlain))
	got, _, err := m.JSON(nil, []byte(doc), Target{SecretValue: hook})
	require.NoError(t, err, doc)
	require.Equal(t, wantDoc, string(got), "input %s", raw)
	require.Equal(t, want, calls, "input %s", raw)

	calls, want = nil, nil
	const unknown = `{"data":{"a":%s,"b":%s}}`
	doc = fmt.Sprintf(unknown, raw, raw)
	wantDoc = fmt.Sprintf(unknown, expect(raw, hideBase64IfValid), expect(raw, hideBase64IfValid))
	got, _, err = m.JSON(nil, []byte(doc), Target{SecretValue: hook})
	require.NoError(t, err, doc)
	require.Equal(t, wantDoc, string(got), "input %s", raw)
	require.Equal(t, want, calls, "input %s", raw)
}

// TestHiddenStringsAsReference masks every input in a Secret (data, repeated, and stringData) and
// in an object of unknown type, and compares the output and the hook's calls with the reference.
func TestHiddenStringsAsReference(t *testing.T) {
	m := newMasker(t, Config{})
	inputs := hiddenInputs()
	for k, raw := range inputs {
		checkHiddenAsReference(t, m, raw, inputs[(k*7+3)%len(inputs)])
	}
}

// FuzzHiddenStrings is TestHiddenStringsAsReference for any two strings.
func FuzzHiddenStrings(f *testing.F) {
	for _, in := range hiddenInputs()[:64] {
		var s string
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			f.Add(s, "YWJj")
		}
	}
	m := newMasker(f, Config{})
	f.Fuzz(func(t *testing.T, a, b string) {
		qa, err := json.Marshal(a)
		require.NoError(t, err)
		qb, err := json.Marshal(b)
		require.NoError(t, err)
		checkHiddenAsReference(t, m, string(qa), string(qb))
	})
}

// TestHideMemoForgetsDocument masks two documents with one walker: a value of the second lies
// where one of the first did, with the same length and the same first and last bytes. Its
// placeholder is its own.
func TestHideMemoForgetsDocument(t *testing.T) {
	m := newMasker(t, Config{})
	first := []byte(`{"kind":"Secret","apiVersion":"v1","data":{"a":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}}`)
	second := []byte(`{"kind":"Secret","apiVersion":"v1","data":{"a":"QUFBQUFBQUFCQkJCQkJCQUFBQUFBQUFB"}}`)
	w := newWalker(m)
	hint := m.targetType(Target{})
	for _, doc := range [][]byte{first, second, first} {
		var text string
		require.NoError(t, json.Unmarshal(doc[len(`{"kind":"Secret","apiVersion":"v1","data":{"a":`):len(doc)-2], &text))
		dec, err := base64.StdEncoding.DecodeString(text)
		require.NoError(t, err)
		want := strings.Replace(string(doc), text, base64.StdEncoding.EncodeToString([]byte(refPlaceholder(dec))), 1)

		w.reset(nil, doc, hint)
		_, err = w.document(0, hint)
		require.NoError(t, err)
		require.Equal(t, want, string(w.finish()))
	}
}

// TestBase64PlaceholderTables compares the base64 placeholders written from b64Digest with the
// base64 of the placeholder text, for digests that run every table entry through every place.
func TestBase64PlaceholderTables(t *testing.T) {
	h := newHasher(testKey)
	check := func(d [hashBytes]byte) {
		want := base64.StdEncoding.EncodeToString(h.format(d))
		require.Equal(t, want, string(appendBase64Placeholder(nil, d)), "%x", d)
	}
	for x := range 1 << 12 {
		// The twelve bits at each of the three places of the triples, and at the ends.
		for _, shift := range []uint{0, 8, 20, 32, 36} {
			v := uint64(x) << shift
			check([hashBytes]byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var d [hashBytes]byte
		for k := range d {
			d[k] = byte(r.Uint32())
		}
		check(d)
	}
}

// TestHideMemoCollisions hides, in one Secret, values that share a memo slot (the same length,
// first and last bytes) but differ in between: each gets its own placeholder.
func TestHideMemoCollisions(t *testing.T) {
	m := newMasker(t, Config{})
	values := []string{
		"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
		"QUFBQUFBQUFCQkJCQkJCQUFBQUFBQUFB",
		"QUFBQUFBQUFDQ0NDQ0NDQUFBQUFBQUFB",
	}
	var members, want []string
	for k := range 3 * len(values) {
		v := values[k%len(values)]
		dec, err := base64.StdEncoding.DecodeString(v)
		require.NoError(t, err)
		members = append(members, fmt.Sprintf(`"k%d":"%s"`, k, v))
		want = append(want, fmt.Sprintf(`"k%d":"%s"`, k, base64.StdEncoding.EncodeToString([]byte(refPlaceholder(dec)))))
	}
	doc := `{"kind":"Secret","apiVersion":"v1","data":{` + strings.Join(members, ",") + `}}`
	got, _, err := m.JSON(nil, []byte(doc), Target{})
	require.NoError(t, err)
	require.Equal(t, `{"kind":"Secret","apiVersion":"v1","data":{`+strings.Join(want, ",")+`}}`, string(got))
}
