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
