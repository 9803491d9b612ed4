package recording

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAddBatchAsAdd plays random sequences of values into two sets, one by Add and one by
// AddBatch, and requires the same set: the same values in the same order (which decides what is
// forgotten next), with the same placeholders and sizes. The values repeat (already kept, or
// forgotten and kept again), span lines, are too short, blank or too long, and fill the set by
// count and by bytes; the sets start empty or full, and batches are added whole or in pieces.
func TestAddBatchAsAdd(t *testing.T) {
	tests := []struct {
		name    string
		pool    int // distinct values drawn from
		n       int // values added
		initial int // values added one by one first
		size    func(r *rand.Rand) int
		pieces  int // batches the values are split into
	}{
		{"few values", 10, 30, 0, func(r *rand.Rand) int { return r.IntN(40) }, 1},
		{"repeats past the count bound", 300, 3000, 0, func(r *rand.Rand) int { return 4 + r.IntN(30) }, 1},
		{"repeats of a full set", 400, 2000, 300, func(r *rand.Rand) int { return 6 + r.IntN(20) }, 1},
		{"bytes bound", 120, 200, 40, func(r *rand.Rand) int { return 16<<10 + r.IntN(32<<10) }, 3},
		{"too long and blank", 50, 200, 20, func(r *rand.Rand) int {
			if r.IntN(10) == 0 {
				return MaxValueBytes - 8 + r.IntN(16)
			}
			return r.IntN(12)
		}, 2},
		{"in many batches", 600, 4000, 100, func(r *rand.Rand) int { return 6 + r.IntN(200) }, 17},
	}
	for _, tc := range tests {
		for _, collide := range []bool{false, true} {
			for seed := range uint64(2) {
				t.Run(fmt.Sprintf("%s/collisions=%v/seed=%d", tc.name, collide, seed), func(t *testing.T) {
					r := rand.New(rand.NewPCG(seed, 19))
					pool := make([][]byte, tc.pool)
					for i := range pool {
						pool[i] = randomValue(r, i, tc.size(r))
					}
					draw := func() ([]byte, []byte) {
						i := r.IntN(len(pool))
						return pool[i], fmt.Appendf(nil, "P%d-%d", i, r.IntN(3)) // a value takes its newest placeholder
					}
					one, batched := &Values{}, &Values{}
					if collide {
						// 29 hashes for all values, spread over the table so that the large
						// cases stay quick under the race detector.
						h := func(b []byte) uint64 { return uint64(len(b)%29) * 0x9e3779b97f4a7c15 }
						one.hash, batched.hash = h, h
					}
					for range tc.initial {
						v, ph := draw()
						one.Add(v, ph)
						batched.Add(v, ph)
					}
					var b Batch
					for p := range tc.pieces {
						b.Reset()
						for range tc.n / tc.pieces {
							v, ph := draw()
							one.Add(v, ph)
							b.Add(v, ph)
							clear(v[:min(len(v), 2)]) // the batch holds copies
							copy(v, fmt.Sprintf("%02d", p))
						}
						batched.AddBatch(&b)
						requireSameSet(t, one, batched)
					}
				})
			}
		}
	}
}

// randomValue returns a value of about size bytes, which may span lines (\n or \r\n) and may be
// blank. Its lines are about 12 bytes long, or about 16 KiB in a value of 16 KiB or more, so that
// large values fill the set's byte bound before its count bound.
func randomValue(r *rand.Rand, i, size int) []byte {
	if r.IntN(20) == 0 {
		return []byte(strings.Repeat(" ", size))
	}
	every := 12
	if size >= 16<<10 {
		every = 32 << 10
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "v%d-", i)
	for b.Len() < size {
		switch r.IntN(every) {
		case 0:
			b.WriteByte('\n')
		case 1:
			b.WriteString("\r\n")
		case 2:
			b.WriteByte(' ')
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.Bytes()[:max(size, 0)]
}

// list returns the values s keeps, the oldest first, checking the links both ways.
func (s *Values) list() []*value {
	var l []*value
	for x := s.oldest; x != nil; x = x.newer {
		if x.newer == nil && x != s.newest || x.newer != nil && x.newer.older != x {
			panic("broken list")
		}
		l = append(l, x)
	}
	return l
}

func requireSameSet(t *testing.T, want, got *Values) {
	t.Helper()
	require.Equal(t, want.Len(), got.Len(), "number of values")
	require.Equal(t, want.bytes, got.bytes, "bytes")
	require.Len(t, got.list(), got.Len(), "the list holds every value once")
	gotList := got.list()
	for i, w := range want.list() {
		g := gotList[i]
		require.Equal(t, string(w.raw), string(g.raw), "value %d", i)
		require.Equal(t, string(w.placeholder), string(g.placeholder), "placeholder of value %d", i)
		require.True(t, got.Contains(w.raw), "value %d is found", i)
	}
	n := 0
	for _, head := range got.byHash {
		for x := head; x != nil; x = x.next {
			n++
		}
	}
	require.Equal(t, got.Len(), n, "every value is indexed once")
	text := bytes.Join(func() [][]byte {
		var vs [][]byte
		for _, v := range want.list() {
			vs = append(vs, v.raw)
		}
		return vs
	}(), []byte(" | "))
	wantOut, wantN := want.Replace(text)
	gotOut, gotN := got.Replace(text)
	assert.Equal(t, wantN, gotN)
	assert.Equal(t, string(wantOut), string(gotOut))
}

// TestAddBatchAgainKeepsMemory: a batch of more values than a set keeps, added again to the set
// it filled (a session that lists the same Secrets again), leaves the set as it was and keeps
// the values in the memory they had, instead of copying each again.
func TestAddBatchAgainKeepsMemory(t *testing.T) {
	var b Batch
	for i := range 3 * MaxValues {
		b.Add(fmt.Appendf(nil, "value-%04d-s3cr3t", i), fmt.Appendf(nil, "P%04d", i))
	}
	s := &Values{}
	s.AddBatch(&b)
	require.Equal(t, MaxValues, s.Len())
	before := s.list()
	s.AddBatch(&b)
	after := s.list()
	require.Len(t, after, len(before))
	for i := range before {
		require.Same(t, before[i], after[i], "the same values, in the same memory, in the same order")
	}
	assert.Len(t, s.byHash, MaxValues, "no value forgotten twice or kept twice")
	allocs := testing.AllocsPerRun(5, func() { s.AddBatch(&b) })
	assert.Less(t, allocs, 10.0, "the set's values are not allocated again")
	out, n := s.Replace([]byte("echo value-0767-s3cr3t"))
	assert.Equal(t, 1, n)
	assert.Equal(t, "echo P0767", string(out))
}

// TestBatchCopies checks that a batch keeps copies: the masker's buffers are reused after each
// value it hands over.
func TestBatchCopies(t *testing.T) {
	v, ph := []byte("s3cr3t-value\nsecond-line"), []byte("P1")
	var b Batch
	b.Add(v, ph)
	copy(v, "XXXXXXXXXXXXXXXXXXXXXXXX")
	copy(ph, "QQ")
	s := &Values{}
	s.AddBatch(&b)
	assert.True(t, s.Contains([]byte("s3cr3t-value\nsecond-line")))
	assert.True(t, s.Contains([]byte("second-line")))
	out, n := s.Replace([]byte("echo s3cr3t-value"))
	assert.Equal(t, 1, n)
	assert.Equal(t, "echo P1", string(out))
	assert.Equal(t, 3, b.Len(), "the value and its two lines")
	b.Reset()
	assert.Zero(t, b.Len())
	b.Add([]byte("short"), ph)
	b.Add([]byte("a\nb\n \r\n"), ph)
	assert.Zero(t, b.Len(), "nothing a set would keep")
	assert.Zero(t, b.Bytes(), "and nothing copied")
}

// TestAddBatchLaterHoldsReaders: from AddBatchLater on, whatever reads the set or adds to it waits
// until the values are added, and then sees them; nothing reads a set that misses a batch whose
// placeholders a client may already hold.
func TestAddBatchLaterHoldsReaders(t *testing.T) {
	s := &Values{}
	s.Add([]byte("older-value"), []byte("P0"))
	var b Batch
	b.Add([]byte("s3cr3t-value\nsecond-line"), []byte("P1"))
	add := s.AddBatchLater(&b)
	type read struct {
		name string
		ok   bool
	}
	reads := make(chan read, 4)
	go func() { reads <- read{"Contains", s.Contains([]byte("s3cr3t-value\nsecond-line"))} }()
	go func() {
		out, n := s.Replace([]byte("cat second-line"))
		reads <- read{"Replace", n == 1 && string(out) == "cat P1"}
	}()
	go func() { reads <- read{"Len", s.Len() >= 4} }()
	go func() {
		s.Add([]byte("newer-value"), []byte("P2"))
		reads <- read{"Add", true}
	}()
	select {
	case r := <-reads:
		t.Fatalf("%s returned before the batch was added", r.name)
	case <-time.After(50 * time.Millisecond):
	}
	add()
	for range 4 {
		r := <-reads
		assert.True(t, r.ok, "%s after the batch", r.name)
	}
	assert.Equal(t, 5, s.Len(), "the older value, the batch's value and two lines, and the newer one")

	// A second call changes nothing and does not unlock the set again.
	add()
	assert.Equal(t, 5, s.Len())
	s.Add([]byte("newest-value"), []byte("P3"))
	assert.Equal(t, 6, s.Len())

	// An empty batch locks nothing.
	var empty Batch
	done := s.AddBatchLater(&empty)
	assert.Equal(t, 6, s.Len())
	done()
}

// FuzzAddBatch adds the values a fuzzer makes up (split at 0xff; a 0xfe byte starts a new
// batch) to one set by Add and to another by AddBatch, both starting from the same values, and
// requires the same set. Values repeat often: they are drawn by their first byte from the ones
// made up so far.
func FuzzAddBatch(f *testing.F) {
	f.Add([]byte("password-1\xffpassword-1\xfftoken-abc\ndef\xfe\xfftoken-abc\ndef\xff   x  \xff"), uint8(3), false)
	f.Add([]byte(strings.Repeat("value-0123456789\xff", 300)), uint8(0), true)
	f.Fuzz(func(t *testing.T, data []byte, initial uint8, collide bool) {
		one, batched := &Values{}, &Values{}
		if collide {
			h := func(b []byte) uint64 { return uint64(len(b) % 2) }
			one.hash, batched.hash = h, h
		}
		var seen [][]byte
		var b Batch
		for i, part := range bytes.Split(data, []byte{0xff}) {
			newBatch := len(part) > 0 && part[0] == 0xfe
			if newBatch {
				batched.AddBatch(&b)
				b.Reset()
				part = part[1:]
			}
			v := part
			if len(part) == 1 && len(seen) > 0 {
				v = seen[int(part[0])%len(seen)] // a value made up before
			}
			seen = append(seen, v)
			ph := fmt.Appendf(nil, "P%d", i)
			one.Add(v, ph)
			if i < int(initial) {
				batched.Add(v, ph)
			} else {
				b.Add(v, ph)
			}
		}
		batched.AddBatch(&b)
		requireSameSet(t, one, batched)
	})
}
