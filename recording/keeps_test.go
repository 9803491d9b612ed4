package recording

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTrimmedAtLeastAsTrimSpace compares trimmedAtLeast with bytes.TrimSpace on values that start
// and end with every kind of byte: ASCII spaces and controls, printable ASCII, Unicode spaces
// (U+0085, U+00A0, U+3000), other multi-byte runes and broken UTF-8.
func TestTrimmedAtLeastAsTrimSpace(t *testing.T) {
	ends := []string{"", " ", "\t", "\n", "\r", "\v", "\f", "\x00", "\x1f", "\x7f", "!", "~", "a", "Z",
		"\u0085", "\u00a0", "\u3000", "é", "\x80", "\xc2", "\xe3\x80", "\xff"}
	mids := []string{"", "x", "abcde", "abcdef", "a b c d", "\u00a0\u00a0\u00a0", "secret-value"}
	for _, a := range ends {
		for _, m := range mids {
			for _, b := range ends {
				v := []byte(a + m + b)
				for n := range 9 {
					require.Equal(t, len(bytes.TrimSpace(v)) >= n, trimmedAtLeast(v, n), "%q, %d", v, n)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(" \t\n\x00\x7fa~\xc2\x85\xa0\xe3\x80\x80")
	for range 20000 {
		v := make([]byte, r.IntN(12))
		for i := range v {
			v[i] = alphabet[r.IntN(len(alphabet))]
		}
		require.Equal(t, len(bytes.TrimSpace(v)) >= MinValueBytes, trimmedAtLeast(v, MinValueBytes), "%q", v)
	}
}
