package recording

import (
	"bytes"
	"sync"
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
// add must be called (a call after the first does nothing); b must not change until it returned.
func (s *Values) AddBatchLater(b *Batch) (add func()) {
	if s == nil || b == nil || len(b.cands) == 0 {
		return func() {}
	}
	s.mu.Lock()
	var once sync.Once
	return func() {
		once.Do(func() {
			defer s.mu.Unlock()
			s.addBatch(b)
		})
	}
}

// addBatch adds the values of b to s. The caller holds s.mu.
//
// Add makes each value the newest and then forgets the oldest values past the set's bounds, so
// the set ends holding the newest values that fit, whatever it held before: the batch's values
// from its last back (a value by its last place in the batch), and then the set's own values from
// its newest back, up to the first that does not fit. addBatch looks at no more of the batch than
// that: a list of thousands of Secrets hashes only the values the set keeps.
func (s *Values) addBatch(b *Batch) {
	s.init()
	picks := make([]pick, 0, min(len(b.cands), MaxValues))
	var seen pickTable
	n, size, full := 0, 0, false
	for i := len(b.cands) - 1; i >= 0; i-- {
		c := b.cands[i]
		v := b.value(c)
		h := s.hashOf(v)
		if seen.has(v, h, b, picks) {
			continue // a newer place of the same value
		}
		if n == MaxValues || size+len(v) > MaxValuesBytes {
			full = true
			break
		}
		n++
		size += len(v)
		seen.insert(h, len(picks))
		picks = append(picks, pick{c: c, hash: h, kept: s.lookup(v, h)})
	}
	// A value the set keeps and the batch adds again moves to its place among the batch's, in
	// the memory it has. The set's other values are older than all of the batch's: the newest
	// stay while they fit beside them, and the rest are forgotten.
	for _, p := range picks {
		if p.kept != nil {
			s.remove(p.kept)
		}
	}
	x := s.newest
	for ; x != nil && !full; x = x.older {
		if n == MaxValues || size+len(x.raw) > MaxValuesBytes {
			break
		}
		n++
		size += len(x.raw)
	}
	for x != nil {
		older := x.older
		s.forget(x)
		x = older
	}
	for i := len(picks) - 1; i >= 0; i-- {
		p := picks[i]
		if p.kept != nil {
			s.push(p.kept)
			if ph := b.placeholder(p.c); !bytes.Equal(p.kept.placeholder, ph) {
				p.kept.placeholder = bytes.Clone(ph)
			}
		} else {
			s.insert(b.value(p.c), b.placeholder(p.c), p.hash)
		}
	}
}

// pick is a value of a batch that the set keeps.
type pick struct {
	c    candidate
	hash uint64
	kept *value // the set's value equal to it, if any
}

// pickTable finds the values picked so far by hash: an open-addressing hash table (linear
// probing) of indexes into the picks. It never holds more than MaxValues entries.
type pickTable struct {
	slots []int32 // index + 1; 0 is empty
}

const pickTableSize = 1024 // a power of two, at least four times MaxValues

func (t *pickTable) insert(h uint64, i int) {
	if t.slots == nil {
		t.slots = make([]int32, pickTableSize)
	}
	for j := h & (pickTableSize - 1); ; j = (j + 1) & (pickTableSize - 1) {
		if t.slots[j] == 0 {
			t.slots[j] = int32(i) + 1
			return
		}
	}
}

// has reports whether a pick of b is v, whose hash is h.
func (t *pickTable) has(v []byte, h uint64, b *Batch, picks []pick) bool {
	if t.slots == nil {
		return false
	}
	for j := h & (pickTableSize - 1); t.slots[j] != 0; j = (j + 1) & (pickTableSize - 1) {
		p := picks[t.slots[j]-1]
		if p.hash == h && bytes.Equal(b.value(p.c), v) {
			return true
		}
	}
	return false
}
