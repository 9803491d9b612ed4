package masking

import (
	"bytes"
	"fmt"
	"runtime/debug"
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
// halves at once, when Go may run more than one goroutine at a time (GOMAXPROCS, which follows
// the CPUs the process may use). Below it, starting the second half costs more than it saves.
// Only a top-level list of compact objects is split, as the API server writes it: not a Table,
// not a pretty-printed body.
const defaultForkMin = 256 << 10

// maxPooledFork is the largest buffer a pooled fork keeps.
const maxPooledFork = 4 << 20

// maxForkPattern bounds what an element after the middle must open with.
const maxForkPattern = 128

// errHalted ends a second half that is no longer needed. Nothing takes it from a halted half;
// should it escape, it is a masking failure like any other.
var errHalted = fmt.Errorf("%w: second half of a list not needed", ErrMalformed)

// Who masks the second half: the goroutine started for it, or the caller's, which claims it
// when it gets there first (the machine is busy and the goroutine has not run yet).
const (
	forkOpen int32 = iota
	forkRunning
	forkClaimed
)

// fork is the second half of a list's items, masked on its own goroutine by its own walker.
type fork struct {
	w      *walker
	start  int // index in src of the element the second half starts with
	budget int // w.budget when it started
	state  atomic.Int32
	halt   atomic.Bool
	wg     sync.WaitGroup
	taken  bool
	wait   bool // the caller never claims it (Masker.forkWait)

	// Set by the goroutine, read after wg.Wait.
	end      int
	err      error
	panicked any
	stack    []byte

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

// forkPattern returns what an element of the list whose first element is at src[i] is
// guessed to open with: a closing brace, a comma, and the first element's opening up to its
// first member's value, or through its first two members when their values are strings
// (`},{"metadata":`, `},{"apiVersion":"example.com/v1","kind":"Widget",`), so that the objects
// of a nested array (managedFields, ownerReferences) rarely match. The quote after the brace
// cannot be inside a string of a valid document, so a match is an object that opens like the
// first element; whether it is an element of this list only the first half can tell. It
// returns nil when the first element is not a compact object.
func forkPattern(buf []byte, src []byte, i int) []byte {
	if i+1 >= len(src) || src[i] != '{' || src[i+1] != '"' {
		return nil
	}
	end, short := 0, 0
	for j, members := i+1, 0; members < 2; members++ {
		ke, esc, err := scanString(src, j)
		if err != nil || esc || ke >= len(src) || src[ke] != ':' {
			break
		}
		end = ke + 1
		if members == 0 {
			short = end
		}
		if ke+1 >= len(src) || src[ke+1] != '"' {
			break
		}
		ve, esc, err := scanString(src, ke+1)
		if err != nil || esc || ve >= len(src) || src[ve] != ',' || ve+1 >= len(src) || src[ve+1] != '"' {
			break
		}
		if members == 1 {
			end = ve + 1
		}
		j = ve + 1
	}
	if end-i+2 > cap(buf) {
		end = short
	}
	if end == 0 || end-i+2 > cap(buf) {
		return nil
	}
	return append(append(buf[:0], '}', ','), src[i:end]...)
}

// forkItems starts masking the second half of the items of the list whose first element is at
// src[i], in context c, and returns it, or nil when the list is not split: it is not the
// document's top-level list, its elements are not compact objects, or no element after the
// middle opens like the first. The caller must release the fork.
func (w *walker) forkItems(i int, c vctx, depth int) *fork {
	if !w.forks || c.role != roleItems || c.rules != 0 || c.hide != noHide || w.posDep != 1 {
		return nil
	}
	w.forks = false // one split a document
	src := w.src
	var buf [maxForkPattern]byte
	p := forkPattern(buf[:0], src, i)
	if p == nil {
		return nil
	}
	mid := i + (len(src)-i)/2
	k := bytes.Index(src[mid:], p)
	if k < 0 {
		return nil
	}
	f, _ := w.m.forks.Get().(*fork)
	if f == nil {
		f = &fork{}
	}
	f.start, f.budget, f.taken, f.wait = mid+k+2, w.budget, false, w.m.forkWait
	f.end, f.err, f.panicked, f.stack = 0, nil, nil, nil
	f.state.Store(forkOpen)
	f.halt.Store(false)
	f.vals, f.lens = f.vals[:0], f.lens[:0]

	hw := w.m.getWalker(Target{})
	hw.reset(nil, src, w.target)
	hw.root, hw.mark, hw.budget, hw.posDep = w.root, f.start, w.budget, w.posDep
	hw.objs = append(hw.objs[:0], w.objs[:w.posDep]...)
	hw.keys = append(hw.keys[:0], w.keys...)
	hw.items, hw.lookups = w.items, 2*(len(src)-f.start)
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

// run masks the second half, unless the caller's goroutine claimed it first.
func (f *fork) run(c vctx, depth int) {
	defer f.wg.Done()
	tr := f.w.m.forkTrace
	if tr != nil {
		tr("run")
	}
	if !f.state.CompareAndSwap(forkOpen, forkRunning) {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			f.panicked, f.stack = r, debug.Stack()
		}
	}()
	if tr != nil {
		tr("start")
	}
	f.end, f.err = f.w.elements(f.start, c, depth, nil)
}

// reached tells f that the first half has reached src[i], the first element at or after
// f.start, and reports whether the first half should take the second half's work: it started
// at i, and runs. Otherwise the caller's goroutine masks the rest itself.
func (f *fork) reached(i int) bool {
	if !f.wait && f.state.CompareAndSwap(forkOpen, forkClaimed) {
		if tr := f.w.m.forkTrace; tr != nil {
			tr("claimed")
		}
		return false
	}
	if i != f.start {
		f.halt.Store(true) // it started inside an element
		return false
	}
	return true
}

// take waits for the second half, whose first element the first half has just reached, and
// adds what it did to w: its output, its masked fields, its SecretValue calls. It returns the
// index after the list, or the second half's error. A budget spent by both halves together is
// reported where the second half started.
func (w *walker) take(f *fork) (int, error) {
	f.wg.Wait()
	f.taken = true
	if f.panicked != nil {
		panic(fmt.Sprintf("masking: second half of a list: %v\n\n%s", f.panicked, f.stack))
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
// buffers back. A second half that panicked is not reused; one that panicked and was not taken
// walked what one goroutine would not have walked, and is forgotten.
func (w *walker) release(f *fork) {
	f.halt.Store(true)
	f.wg.Wait()
	if tr := w.m.forkTrace; tr != nil {
		if f.taken {
			tr("taken")
		} else {
			tr("dropped")
		}
	}
	hw := f.w
	f.w = nil
	if f.panicked != nil {
		return
	}
	// The output of a second half is cleared before it is pooled: taken, it may still have
	// been dropped when the list was walked again for another type, unmasked for that type.
	// Past its end, what an object started over within the second half left stays, as in
	// any buffer of masked output (proxy/bodies.go) and the walkers' own scratch space.
	if hw.dst != nil && cap(hw.dst) <= maxPooledFork {
		clear(hw.dst)
		f.buf = hw.dst[:0]
	}
	hw.dst, hw.halt = nil, nil
	clear(hw.objs)
	hw.objs = hw.objs[:0]
	w.m.putWalker(hw)
	clear(f.vals) // no Secret value outlives its response in a pool
	if cap(f.vals) > maxPooledFork || cap(f.lens) > maxPooledFork/8 {
		f.vals, f.lens = nil, nil
	}
	w.m.forks.Put(f)
}
