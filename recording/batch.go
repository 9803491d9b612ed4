package recording

import (
	"bytes"
	"hash/maphash"
)

// Batch collects values to add to a Values set in one step (AddBatch). A masked list of Secrets
// hands over thousands of values, of which a set keeps only the newest MaxValues: adding them one
// by one copies and indexes each only to forget most of them again. A batch copies them into one
// buffer instead, and AddBatch works out which of them the set keeps before it copies those.
//
// A Batch is not safe for concurrent use. Reset empties it for reuse; it keeps its buffers.
type Batch struct {
	buf   []byte      // the values and their placeholders
	cands []candidate // what Add would try to keep, in order: values and their lines
}

// candidate is a value (or a line of one) in Batch.buf that Values.add would try to keep.
type candidate struct {
	off, n     int // the value: buf[off:off+n]
	phOff, phN int // its placeholder: buf[phOff:phOff+phN]
}

// Add collects v with its placeholder, as Values.Add would take them: only v and the lines of v
// that a set would keep are collected.
func (b *Batch) Add(v, placeholder []byte) {
	multi := bytes.IndexByte(v, '\n') >= 0
	if !keeps(v) && !multi {
		return
	}
	off := len(b.buf)
	b.buf = append(b.buf, v...)
	b.buf = append(b.buf, placeholder...)
	phOff, phN := off+len(v), len(placeholder)
	n := len(b.cands)
	if keeps(v) {
		b.cands = append(b.cands, candidate{off: off, n: len(v), phOff: phOff, phN: phN})
	}
	if multi {
		start := 0
		for start <= len(v) {
			end := bytes.IndexByte(v[start:], '\n')
			if end < 0 {
				end = len(v)
			} else {
				end += start
			}
			line := bytes.TrimRight(v[start:end], "\r")
			if keeps(line) {
				b.cands = append(b.cands, candidate{off: off + start, n: len(line), phOff: phOff, phN: phN})
			}
			start = end + 1
		}
	}
	if len(b.cands) == n {
		b.buf = b.buf[:off] // nothing of v is kept
	}
}

// Len returns the number of values and lines collected.
func (b *Batch) Len() int { return len(b.cands) }

// Bytes returns the size of the batch's buffer.
func (b *Batch) Bytes() int { return len(b.buf) }

// Cap returns the capacity of the batch's buffer.
func (b *Batch) Cap() int { return cap(b.buf) }

// Reset empties the batch, keeping its buffers.
func (b *Batch) Reset() {
	clear(b.buf)
	b.buf, b.cands = b.buf[:0], b.cands[:0]
}

func (b *Batch) value(c candidate) []byte { return b.buf[c.off : c.off+c.n : c.off+c.n] }
func (b *Batch) placeholder(c candidate) []byte {
	return b.buf[c.phOff : c.phOff+c.phN : c.phOff+c.phN]
}

// AddBatch adds the values of b to s, leaving s exactly as Add would have, called for each value
// of b in the order it was collected. It works the outcome out on the values' hashes and offsets
// first and then copies only the values the set keeps. b is left as it was.
func (s *Values) AddBatch(b *Batch) {
	if s == nil || b == nil || len(b.cands) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addBatch(b)
}

// AddBatchLater is AddBatch in two steps: it locks s now and returns add, which adds the values
// of b and unlocks s. Whatever reads s after AddBatchLater returned (Replace, Contains, Len)
// waits until add has run, and sees the values of b, as it would after AddBatch; so does a
// second AddBatch or Add. A caller can thus hand the work to another goroutine and go on (send a
// response whose placeholders stand for the values) with the same guarantee as AddBatch gives.
// add must be called exactly once; b must not change until it returned.
func (s *Values) AddBatchLater(b *Batch) (add func()) {
	if s == nil || b == nil || len(b.cands) == 0 {
		return func() {}
	}
	s.mu.Lock()
	return func() {
		defer s.mu.Unlock()
		s.addBatch(b)
	}
}

// addBatch adds the values of b to s. The caller holds s.mu.
func (s *Values) addBatch(b *Batch) {
	if s.byHash == nil {
		s.byHash = map[uint64]*value{}
		s.seed = maphash.MakeSeed()
	}
	sim := simulation{entries: make([]simEntry, 0, len(s.fifo)+min(len(b.cands), 2*MaxValues))}
	sim.table.init()
	for _, v := range s.fifo {
		sim.push(simEntry{raw: v.raw, hash: v.hash, old: true}, v.hash)
	}
	nOld := len(s.fifo)
	for _, c := range b.cands {
		v := b.value(c)
		h := s.hashOf(v)
		if sim.find(v, h) {
			continue
		}
		sim.push(simEntry{raw: v, ph: b.placeholder(c), hash: h}, h)
		for sim.live() > MaxValues || sim.bytes > MaxValuesBytes {
			sim.evict()
		}
		sim.compact()
	}
	// The set keeps sim's window: the old values not evicted, then the new ones, in order.
	// An evicted value the batch adds again (a session that reads the same list again) is
	// kept in the memory it had.
	evicted := min(sim.evicted, nOld)
	spares := s.fifo[:evicted]
	for _, old := range spares {
		old.spare = true
		s.bytes -= len(old.raw)
	}
	s.fifo = s.fifo[evicted:]
	if evicted > 0 {
		s.sorted = nil
	}
	for _, e := range sim.window() {
		if e.old {
			continue
		}
		// The window holds each value once, and no old value the set keeps: as add would,
		// but without hashing and looking the value up again.
		if x := s.spare(e.raw, e.ph, e.hash); x != nil {
			x.spare = false
			s.keep(x)
		} else {
			s.insert(e.raw, e.ph, e.hash)
		}
	}
	for _, old := range spares {
		if old.spare {
			old.spare = false
			s.unlink(old)
		}
	}
	clear(spares)
}

// spare returns the spare value equal to v, whose hash is h, with the placeholder ph, or nil.
func (s *Values) spare(v, ph []byte, h uint64) *value {
	for x := s.byHash[h]; x != nil; x = x.next {
		if x.spare && bytes.Equal(x.raw, v) && bytes.Equal(x.placeholder, ph) {
			return x
		}
	}
	return nil
}

// simulation plays a set's FIFO forward on the values' hashes: entries[head:] is the window of
// values the set would keep, bytes their size, and table finds them by hash.
type simulation struct {
	entries []simEntry
	head    int
	evicted int // entries evicted since the start, old and new
	bytes   int
	table   simTable
}

type simEntry struct {
	raw, ph []byte
	hash    uint64
	old     bool // already in the set
}

func (s *simulation) live() int          { return len(s.entries) - s.head }
func (s *simulation) window() []simEntry { return s.entries[s.head:] }

func (s *simulation) push(e simEntry, h uint64) {
	s.entries = append(s.entries, e)
	s.bytes += len(e.raw)
	s.table.insert(h, int32(len(s.entries)-1+s.evicted-s.head))
}

// find reports whether the window holds v, whose hash is h.
func (s *simulation) find(v []byte, h uint64) bool {
	return s.table.lookup(h, v, s) >= 0
}

func (s *simulation) evict() {
	e := s.entries[s.head]
	s.table.remove(e.hash, int32(s.evicted), s)
	s.bytes -= len(e.raw)
	s.entries[s.head] = simEntry{}
	s.head++
	s.evicted++
}

// compact moves the window to the front of entries once enough of it was evicted, so that
// entries stays about twice the window whatever the batch's length. Table slots hold sequence
// numbers (evicted + index in the window), which do not change.
func (s *simulation) compact() {
	if s.head < MaxValues || s.head < len(s.entries)/2 {
		return
	}
	n := copy(s.entries, s.entries[s.head:])
	clear(s.entries[n:])
	s.entries = s.entries[:n]
	s.head = 0
}

// at returns the entry of sequence number seq.
func (s *simulation) at(seq int32) *simEntry {
	return &s.entries[int(seq)-s.evicted+s.head]
}

// simTable is an open-addressing hash table (linear probing, deletion by backward shift) of the
// window's sequence numbers by hash. It never holds more than MaxValues+1 entries.
type simTable struct {
	slots []int32 // sequence number + 1; 0 is empty
	mask  uint64
}

func (t *simTable) init() {
	const size = 1024 // a power of two, at least four times MaxValues+1
	t.slots = make([]int32, size)
	t.mask = size - 1
}

func (t *simTable) insert(h uint64, seq int32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = seq + 1
			return
		}
	}
}

func (t *simTable) lookup(h uint64, v []byte, s *simulation) int32 {
	for i := h & t.mask; t.slots[i] != 0; i = (i + 1) & t.mask {
		e := s.at(t.slots[i] - 1)
		if e.hash == h && bytes.Equal(e.raw, v) {
			return t.slots[i] - 1
		}
	}
	return -1
}

// remove deletes seq, whose hash is h, and shifts the entries after it back so that every
// entry stays reachable from its home slot.
func (t *simTable) remove(h uint64, seq int32, s *simulation) {
	i := h & t.mask
	for t.slots[i] != seq+1 {
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.slots[j] != 0; j = (j + 1) & t.mask {
		home := s.at(t.slots[j]-1).hash & t.mask
		// Move slots[j] into the hole at i unless its home lies cyclically in (i, j].
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
}
