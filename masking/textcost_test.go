package masking

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The tests of this file check the shortcuts that keep text detection cheap against what they
// stand in for: the quick tests in front of the bearer-token and basic-auth expressions
// against the expressions, the key-end test in front of keyBefore against the key cache, and
// the one-pass prefilter against the detectors run without it.

// wordRunPieces are pieces of texts for the expressions behind mayHoldWordRun: their words in
// every case and with the runes Unicode folds onto k and s, blanks, runs of their alphabets of
// lengths around the minimum, and bytes outside them.
var wordRunPieces = []string{
	"bearer", "BEARER", "Bearer", "token", "TOKEN", "to\u212aen", "TO\u212aEN", "basic", "BASIC", "ba\u017fic", "BA\u017fIC",
	"bea", "tok", "bas", " ", "\t", "  ", " \t", "\n", "=", "==", ":", ",", "x", "_", "-", ".", "~", "+", "/",
	"\u212a", "\u017f", "é", "\xe2\x84", "\xff", "Zk29fLq0", "Qx7f", "8f14e45fceea167a5a36dedd4bea2543", "dXNlcjpwYXNz",
	"YWxpY2U6czNjcjN0", "0123456789abcdef", "path", "/var/run/tokens", "ab", "abc",
}

// TestMayHoldWordRunAsExpression masks random texts of wordRunPieces with the bearer-token and
// basic-auth detectors with and without their quick tests: the same spans, and the tests turn
// some texts away.
func TestMayHoldWordRunAsExpression(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 5))
	for _, id := range []int{idBearer, idBasicAuth} {
		d := builtinDetectors[slices.IndexFunc(builtinDetectors, func(d *detector) bool { return d.id == id })]
		require.NotNil(t, d.mayMatch)
		plain := *d
		plain.mayMatch = nil
		rejected, matched := 0, 0
		for range 200000 {
			var b strings.Builder
			for range 1 + r.IntN(10) {
				b.WriteString(wordRunPieces[r.IntN(len(wordRunPieces))])
			}
			text := []byte(b.String())
			if d.re.Match(text) {
				matched++
				require.True(t, d.mayMatch(text), "%s: %q", coreNames[id], text)
			}
			if !d.mayMatch(text) {
				rejected++
			}
			require.Equal(t, plain.run(nil, text, nil), d.run(nil, text, nil), "%s: %q", coreNames[id], text)
		}
		require.Greater(t, matched, 1000, "%s: the texts match: the test can fail", coreNames[id])
		require.Greater(t, rejected, 1000, "%s: the quick test turns texts away", coreNames[id])
	}
}

func FuzzMayHoldWordRun(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543", "to\u212aen \u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f", "ba\u017fic dXNlcjpwYXNz"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, d := range builtinDetectors {
			if d.mayMatch != nil && d.re.Match(text) {
				require.True(t, d.mayMatch(text), "%s: %q", coreNames[d.id], text)
			}
		}
	})
}

// keyPieces are pieces of keys and what surrounds them: secret and plain words, the bytes
// that are key bytes but not letters or digits, digits, quotes, blanks and separators.
var keyPieces = []string{
	"password", "PASSWORD", "Token", "tokens", "apiKey", "api_key", "secret", "auth", "sig", "pw", "pass", "cookie", "creds",
	"name", "url", "data", "checksum", "public", "x", "Ab", "s", "_", "-", ".", "--", "0", "42", "\"", "'", "`", " ", "\t", "=", ":", "\n",
	strings.Repeat("a", 120), strings.Repeat("9", 130),
}

// TestKeyEndMayBeSecret asks keyEndMayBeSecret about every separator of random texts of
// keyPieces: when it answers false, the key keyBefore finds there, if any, is classified
// keyPlain.
func TestKeyEndMayBeSecret(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 6))
	skipped, secret := 0, 0
	for range 20000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(keyPieces[r.IntN(len(keyPieces))])
		}
		text := []byte(b.String())
		for sep, c := range text {
			if !assignmentSeps[c] {
				continue
			}
			flag := c == ' ' || c == '\t'
			key, ok := keyBefore(text, sep, flag)
			if !ok {
				continue
			}
			class := classifyKey(key)
			if class != keyPlain {
				secret++
			}
			if !keyEndMayBeSecret(text, keyEnd(text, sep, flag)) {
				skipped++
				require.Equal(t, keyPlain, class, "text %q separator %d key %q", text, sep, key)
			}
		}
	}
	require.Greater(t, secret, 1000, "secret keys are among the random ones: the test can fail")
	require.Greater(t, skipped, 1000, "the test skips keys")
}

func FuzzKeyEndMayBeSecret(f *testing.F) {
	f.Add([]byte("--db_password.2 = x"), 3)
	f.Fuzz(func(t *testing.T, text []byte, sep int) {
		if sep < 0 || sep >= len(text) {
			return
		}
		for _, flag := range []bool{false, true} {
			if key, ok := keyBefore(text, sep, flag); ok && !keyEndMayBeSecret(text, keyEnd(text, sep, flag)) {
				require.Equal(t, keyPlain, classifyKey(key), "key %q", key)
			}
		}
	})
}

// TestPrefilterScansNeededBytes checks that a text with keywords and a byte a detector
// without keywords needs, but no nested document, is scanned once by the prefilter: its
// detectors run from the prefilter's bits, and find what find finds.
func TestPrefilterScansNeededBytes(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	for _, s := range []string{
		"url=jdbc:postgresql://db-3.internal:5432/app\nuser=app\npassword=pw-0001ee7f-Qx7f\n",
		"bootstrap abcdef.0123456789abcdef",
		"the token is abcdef.0123456789abcdef",
		"a.b|c%d",
	} {
		text := []byte(s)
		none, scanned := m.eng.prefilter(text, w.trig)
		require.True(t, scanned, "%q", text)
		require.False(t, none)
		got := slices.Clone(m.eng.findScanned(w, text, w.trig, nil))
		require.Equal(t, m.eng.find(w, text, w.trig, nil), got, "%q", text)
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
	}
	for _, s := range []string{"a.b", "{\"password\":\"x\"}", "[token x.y]"} {
		none, scanned := m.eng.prefilter([]byte(s), w.trig)
		require.Equal(t, len(s) < minDetectLen, none, "%q", s)
		require.False(t, scanned, "%q", s)
	}
}
