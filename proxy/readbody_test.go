package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// TestReadBody reads bodies of sizes around its chunk boundaries and the limit, in reads of
// every size, with a Content-Length that is right, missing, too small or too large: it returns
// each body whole and unchanged up to the limit, and ErrTooLarge past it, whatever the
// Content-Length says.
func TestReadBody(t *testing.T) {
	const limit = 200 << 10
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/251)
		}
		return b
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"one byte": iotest.OneByteReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, n := range []int{0, 1, 4<<10 - 1, 4 << 10, 4<<10 + 1, 68<<10 + 3, limit - 1, limit, limit + 1, 3 * limit} {
		for _, cl := range []struct {
			name string
			v    int64
		}{{"none", -1}, {"right", int64(n)}, {"too small", int64(n / 2)}, {"too large", int64(n)*2 + 10}} {
			for rname, wrap := range readers {
				if rname == "one byte" && n > 70<<10 {
					continue // slow and adds nothing
				}
				t.Run(fmt.Sprintf("%d/%s/%s", n, cl.name, rname), func(t *testing.T) {
					want := body(n)
					got, err := readBody(wrap(bytes.NewReader(want)), cl.v, limit)
					if n > limit {
						require.ErrorIs(t, err, masking.ErrTooLarge)
						assert.Nil(t, got)
						return
					}
					require.NoError(t, err)
					assert.True(t, bytes.Equal(want, got), "the body is read whole and unchanged")
				})
			}
		}
	}
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := readBody(io.MultiReader(bytes.NewReader(body(100<<10)), iotest.ErrReader(boom)), -1, limit)
		require.ErrorIs(t, err, boom)
	})
}
