package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
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
					got, err := readBody(nil, wrap(bytes.NewReader(want)), cl.v, limit)
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
		_, err := readBody(nil, io.MultiReader(bytes.NewReader(body(100<<10)), iotest.ErrReader(boom)), -1, limit)
		require.ErrorIs(t, err, boom)
	})
}

// TestReadBodyIntoBuffers reads bodies into buffers that held other bytes before, smaller and
// larger than the body: the result is the body, whatever the buffer held.
func TestReadBodyIntoBuffers(t *testing.T) {
	dirty := func(n int) []byte { return bytes.Repeat([]byte{0xAA}, n)[:0] }
	want := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	for name, buf := range map[string][]byte{"none": nil, "smaller": dirty(100), "same size": dirty(len(want)), "larger": dirty(4 * len(want))} {
		for _, cl := range []int64{-1, int64(len(want))} {
			t.Run(fmt.Sprintf("%s/content-length %d", name, cl), func(t *testing.T) {
				got, err := readBody(buf, iotest.HalfReader(bytes.NewReader(want)), cl, 1<<20)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want, got))
			})
		}
	}
}

// TestReadBodyWithoutLimit reads with the largest limit, which has no limit+1.
func TestReadBodyWithoutLimit(t *testing.T) {
	want := bytes.Repeat([]byte("x"), 100<<10)
	got, err := readBody(nil, bytes.NewReader(want), -1, math.MaxInt64)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got))
}

// TestPooledBodiesForgetValues is the attacker's test of the body buffers: a body as it was
// read holds Secrets' values, and its buffer serves the next response, of any client. Once
// the masked body is closed, no buffer it gives back holds a byte of it, whichever buffer the
// masked body was (the body itself when nothing was masked, the buffer it was meant for, or
// one of its own).
func TestPooledBodiesForgetValues(t *testing.T) {
	secret := []byte("s3cr3t-value-that-must-not-outlive-its-response")
	for _, tt := range []struct {
		name string
		// masked returns the masked body for body and out.
		masked func(body, out []byte) []byte
	}{
		{"masked into out", func(_, out []byte) []byte { return append(out, "masked"...) }},
		{"nothing masked", func(body, _ []byte) []byte { return body }},
		{"masked into a buffer of its own", func(_, _ []byte) []byte { return []byte("masked") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &bodyBuffers{}
			body, err := readBody(b.getRead(), bytes.NewReader(bytes.Repeat(secret, 1000)), -1, 1<<20)
			require.NoError(t, err)
			out := make([]byte, 0, 64<<10)
			masked := tt.masked(body, out)
			read := body[:cap(body)]
			require.True(t, bytes.Contains(read, secret), "the test can fail")

			rc := b.reader(body, out, masked)
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			assert.Equal(t, masked, got, "the client is sent the masked body")
			require.NoError(t, rc.Close())
			require.NoError(t, rc.Close(), "a second Close does nothing")
			assert.False(t, bytes.Contains(read, secret[:8]), "the body as read is cleared when it goes back")
		})
	}
}

// TestBodyBuffersGivenBackOnce checks that Close gives each buffer back once, and the body as
// read only to the pool of read bodies, whatever slice of them the masked body is: a buffer
// pooled twice would serve two responses at once.
func TestBodyBuffersGivenBackOnce(t *testing.T) {
	body := make([]byte, 100, 200)
	out := make([]byte, 0, 300)
	own := make([]byte, 50)
	for name, masked := range map[string][]byte{
		"body":                   body,
		"body, capacity reduced": body[:10:10],
		"body, from an offset":   body[5:],
		"out":                    out[:40],
		"out, capacity reduced":  out[:40:40],
		"out, from an offset":    out[3:40],
		"its own":                own,
	} {
		t.Run(name, func(t *testing.T) {
			read, back := (&pooledBody{body: body, out: out, masked: masked}).giveBack()
			assert.True(t, sameBuffer(read, body))
			all := append([][]byte{read}, back...)
			for i := range all {
				for j := range i {
					assert.False(t, sameBuffer(all[i], all[j]), "buffers %d and %d are one", j, i)
				}
			}
			for _, m := range back {
				assert.False(t, sameBuffer(m, body), "the body as read goes back to the read bodies only")
			}
			assert.Len(t, back, map[bool]int{true: 2, false: 1}[name == "its own"])
		})
	}
}

func TestSameBuffer(t *testing.T) {
	a := make([]byte, 10, 20)
	assert.True(t, sameBuffer(a, a[:0]))
	assert.True(t, sameBuffer(a[:3], a[:15]))
	assert.True(t, sameBuffer(a[:3:3], a))
	assert.True(t, sameBuffer(a[4:], a))
	assert.False(t, sameBuffer(a, make([]byte, 10, 20)))
	assert.False(t, sameBuffer(nil, a))
	assert.False(t, sameBuffer(nil, nil))
}
