package recording

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// TestTrimmedAtLeastAsTrimSpace compares TrimmedAtLeast with bytes.TrimSpace on values that start
// and end with every kind of byte: ASCII spaces and controls, printable ASCII, Unicode spaces
// (U+0085, U+00A0, U+3000), other multi-byte runes and broken UTF-8.
// TestSpaceBytes checks canStartSpace and canEndSpace against every white space character.
func TestSpaceBytes(t *testing.T) {
	n := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.IsSpace(r) {
			continue
		}
		n++
		b := []byte(string(r))
		require.True(t, canStartSpace(b[0]), "%U", r)
		require.True(t, canEndSpace(b[len(b)-1]), "%U", r)
	}
	require.Equal(t, 25, n)
}

func TestTrimmedAtLeastAsTrimSpace(t *testing.T) {
	ends := []string{"", " ", "\t", "\n", "\r", "\v", "\f", "\x00", "\x1f", "\x7f", "!", "~", "a", "Z",
		"\u0085", "\u00a0", "\u1680", "\u2000", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
		"\u200b", "\u2030", "é", "\x80", "\xc2", "\xe3\x80", "\xe2\x80", "\xff", "\x85", "\xa0"}
	mids := []string{"", "x", "abcde", "abcdef", "a b c d", "\u00a0\u00a0\u00a0", "secret-value"}
	for _, a := range ends {
		for _, m := range mids {
			for _, b := range ends {
				v := []byte(a + m + b)
				for n := range 9 {
					require.Equal(t, len(bytes.TrimSpace(v)) >= n, TrimmedAtLeast(v, n), "%q, %d", v, n)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(" \t\n\x00\x7fa~\xc2\x85\xa0\xe3\x80\x80\xe1\x9a\xe2\x8a\xa8\xa9\xaf\x81\x9f\xc3")
	for range 20000 {
		v := make([]byte, r.IntN(12))
		for i := range v {
			v[i] = alphabet[r.IntN(len(alphabet))]
		}
		require.Equal(t, len(bytes.TrimSpace(v)) >= MinValueBytes, TrimmedAtLeast(v, MinValueBytes), "%q", v)
	}
}
