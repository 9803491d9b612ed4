package proxy

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// TestKeepableAsTrimSpace compares keepable with the length of bytes.TrimSpace on values that
// start and end with ASCII spaces, printable ASCII, Unicode spaces and broken UTF-8.
func TestKeepableAsTrimSpace(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte(" \t\n\r\x00\x7fa~\xc2\x85\xa0\xe3\x80\x80")
	for range 50000 {
		v := make([]byte, r.IntN(14))
		for i := range v {
			v[i] = alphabet[r.IntN(len(alphabet))]
		}
		require.Equal(t, len(bytes.TrimSpace(v)) >= recording.MinValueBytes, keepable(v), "%q", v)
	}
}
