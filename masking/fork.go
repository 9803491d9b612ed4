package masking

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
)

// This file holds the split of a large list: while the caller's goroutine masks the first half
// of its items, another goroutine masks the second half, from an element that opens like the
// first one. The guess of where an element starts is checked by the first half: it is taken
// only when the first half's last element ends right before it, so that the second half was
// masked in exactly the state the caller's goroutine would have masked it in; otherwise it is
// stopped and thrown away, and the caller's goroutine goes on alone. Either way the result is
// what one goroutine would have produced: the same bytes, Stats, error or not, and SecretValue
// calls, in the same order.

// defaultForkMin is the size of a body from which the items of its list are masked in two
// halves at once (on a machine with more than one CPU). Below it, starting the second half
// costs more than it saves.
const defaultForkMin = 256 << 10

// maxPooledFork is the largest output buffer a pooled fork keeps.
const maxPooledFork = 4 << 20

// errHalted ends the second half of a list whose first half did not meet it.
var errHalted = errors.New("masking: second half of a list not needed")

// fork is the second half of a list's items, masked on its own goroutine by its own walker.
type fork struct {
	w      *walker
	start  int // index in src of the element the second half starts with
	budget int // w.budget when it started
	halt   atomic.Bool
	wg     sync.WaitGroup
	taken  bool

	// Set by the goroutine, read after wg.Wait.
	end      int
	err      error
	panicked any

	// The SecretValue calls of the second half, replayed in order when it is taken: the
	// values and placeholders one after the other, and their lengths.
	vals []byte
	lens []int
	buf  []byte // the second half's output buffer, kept for the next list
}

// collect is the second half's SecretValue hook.
func (f *fork) collect(value, placeholder []byte) {
	f.vals = append(append(f.vals, value...), placeholder...)
	f.lens = append(f.lens, len(value), len(placeholder))
}

// fork starts masking the second half of the items of the list whose first element is at
// src[i], in context c, and returns it, or nil when the list is not split: it is not the
// document's top-level list, its elements are not compact objects, or no element after the
// middle opens like the first. The caller must release the fork.
func (w *walker) fork(i int, c vctx, depth int) *fork {
	if !w.forks || c.role != roleItems || c.rules != 0 || c.hide != noHide || w.posDep != 1 {
		return nil
	}
	w.forks = false // one split a document
	src := w.src
	if i+1 >= len(src) || src[i] != '{' || src[i+1] != '"' {
		return nil
	}
	ke, esc, err := scanString(src, i+1)
	if err != nil || esc || ke >= len(src) || src[ke] != ':' {
		return nil
	}
	// An element that opens like the first: `},{"metadata":`. The quote after the brace
	// cannot be inside a string of a valid document, so the match is a brace that closes an
	// object, a comma and one that opens an object with the same first key; whether that
	// object is an element of this list only the first half can tell.
	var pat [64]byte
	if ke+1-i+2 > len(pat) {
		return nil
	}
	p := append(append(pat[:0], '}', ','), src[i:ke+1]...)
	mid := i + (len(src)-i)/2
	k := bytes.Index(src[mid:], p)
	if k < 0 {
		return nil
	}
	f, _ := w.m.forks.Get().(*fork)
	if f == nil {
		f = &fork{}
	}
	f.start, f.budget, f.taken = mid+k+2, w.budget, false
	f.end, f.err, f.panicked = 0, nil, nil
	f.halt.Store(false)
	f.vals, f.lens = f.vals[:0], f.lens[:0]

	hw := w.m.getWalker(Target{})
	hw.reset(nil, src, w.target)
	hw.root, hw.mark, hw.budget, hw.posDep = w.root, f.start, w.budget, w.posDep
	hw.objs = append(hw.objs[:0], w.objs[:w.posDep]...)
	hw.keys = append(hw.keys[:0], w.keys...)
	hw.sizeHint = len(src) - f.start + (len(src)-f.start)/8
	if cap(f.buf) >= hw.sizeHint {
		hw.dst = f.buf[:0]
	}
	if w.onSecret != nil {
		hw.onSecret = f.collect
	}
	hw.halt = &f.halt
	f.w = hw
	f.wg.Add(1)
	go f.run(c, depth)
	return f
}

// run masks the second half.
func (f *fork) run(c vctx, depth int) {
	defer f.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			f.panicked = r
		}
	}()
	if tr := f.w.m.forkTrace; tr != nil {
		tr(true, false)
	}
	f.end, f.err = f.w.elements(f.start, c, depth, nil)
}

// take waits for the second half, whose first element the first half has just reached, and
// adds what it did to w: its output, its masked fields, its SecretValue calls. It returns the
// index after the list, or the second half's error.
func (w *walker) take(f *fork) (int, error) {
	f.wg.Wait()
	f.taken = true
	if f.panicked != nil {
		panic(f.panicked)
	}
	hw := f.w
	if w.onSecret != nil {
		vals := f.vals
		for k := 0; k+1 < len(f.lens); k += 2 {
			v, p := vals[:f.lens[k]], vals[f.lens[k]:f.lens[k]+f.lens[k+1]]
			vals = vals[len(v)+len(p):]
			w.onSecret(v, p)
		}
	}
	if f.err != nil {
		return f.end, f.err
	}
	// The budget for starting objects over is the document's, not each half's.
	if w.budget -= f.budget - hw.budget; w.budget < 0 {
		return f.start, malformed(f.start, "too many objects name their kind after their data")
	}
	if hw.mark > f.start {
		w.open(f.start)
		w.dst = append(w.dst, hw.dst...)
		w.mark = hw.mark
	}
	w.log = append(w.log, hw.log...)
	return f.end, nil
}

// release stops the second half unless it was taken, waits for it, and gives its walker and
// buffers back.
func (w *walker) release(f *fork) {
	f.halt.Store(true)
	f.wg.Wait()
	if tr := w.m.forkTrace; tr != nil {
		tr(false, f.taken)
	}
	hw := f.w
	f.w = nil
	if f.panicked != nil {
		if !f.taken {
			panic(f.panicked)
		}
		return // a walker that panicked is not reused
	}
	if hw.dst != nil && cap(hw.dst) <= maxPooledFork {
		f.buf = hw.dst[:0]
	}
	hw.dst, hw.halt = nil, nil
	clear(hw.objs)
	hw.objs = hw.objs[:0]
	w.m.putWalker(hw)
	if cap(f.vals) > maxPooledFork {
		f.vals, f.lens = nil, nil
	}
	clear(f.vals) // no Secret value outlives its response in a pool
	w.m.forks.Put(f)
}
