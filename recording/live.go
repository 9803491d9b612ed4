package recording

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// TextMasker masks free text with the detectors. *masking.Masker implements it.
type TextMasker interface {
	// Text appends src, masked, to dst, which does not overlap src, and returns the result.
	Text(dst, src []byte) ([]byte, masking.Stats)
}

var _ TextMasker = (*masking.Masker)(nil)

// DetectorSessionValue names, in masking statistics, the values masked because a Secret the
// session read held them.
const DetectorSessionValue = "session-secret-value"

// Masker masks the text of one session: first the values in Values, then what the text
// detectors find. It counts what it masked. It is safe for concurrent use.
type Masker struct {
	text   TextMasker
	values *Values

	mu    sync.Mutex
	stats masking.Stats
}

// NewMasker returns a Masker using the detectors of text and the session's values (which may be
// nil, and may grow while the Masker is in use).
func NewMasker(text TextMasker, values *Values) *Masker {
	return &Masker{text: text, values: values}
}

// Mask appends src, masked, to dst, which must not overlap src.
func (m *Masker) Mask(dst, src []byte) []byte {
	tmp, n := m.values.Replace(src)
	out, st := m.text.Text(dst, tmp)
	if n > 0 || st.Fields > 0 {
		m.mu.Lock()
		if n > 0 {
			m.stats.Merge(masking.Stats{Fields: n, Detectors: map[string]int{DetectorSessionValue: n}})
		}
		m.stats.Merge(st)
		m.mu.Unlock()
	}
	return out
}

// Stats returns what the Masker masked so far.
func (m *Masker) Stats() masking.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := masking.Stats{}
	s.Merge(m.stats)
	return s
}

// Echo remembers what was typed into a terminal and not yet seen echoed back, so that a
// LiveMasker passes an echoed keystroke on at once.
//
// It keeps up with a terminal that does not echo every key as it was typed (a password read with
// echo off, a carriage return echoed as a line end, a key typed while a prompt was held back,
// whose echo comes with the prompt): what was typed before the bytes seen echoed is forgotten.
// What passes at once is only ever bytes that were typed, in the order they were typed.
type Echo struct {
	mu  sync.Mutex
	buf []byte
}

// maxEcho bounds what an Echo remembers.
const maxEcho = 256

// Input notes bytes typed.
func (e *Echo) Input(p []byte) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buf = append(e.buf, p...)
	if len(e.buf) > maxEcho {
		e.buf = append(e.buf[:0], e.buf[len(e.buf)-maxEcho:]...)
	}
}

// consume reports whether out, output held back, is exactly bytes typed and not yet seen echoed,
// and forgets them and what was typed before them.
func (e *Echo) consume(out []byte) bool {
	if e == nil || len(out) == 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i := bytes.Index(e.buf, out)
	if i < 0 {
		return false
	}
	e.buf = append(e.buf[:0], e.buf[i+len(out):]...)
	return true
}

// LiveOptions tune a LiveMasker.
type LiveOptions struct {
	// Delay is how long a partial line is held back, from its first byte, for what may complete
	// it. Default 10ms.
	Delay time.Duration
	// MaxLine is the longest partial line kept as context; a longer line is passed on in pieces
	// and masked piece by piece. Default 4 KiB.
	MaxLine int
	// Echo, when set, lets a partial line that is exactly what was just typed pass at once.
	Echo *Echo
	// Clock schedules the delayed flushes. Default the real clock.
	Clock clock.WithDelayedExecution
}

// LiveMasker masks a terminal output stream (a command's stdout or stderr) on its way to the
// client, keeping state across frame boundaries without making an interactive shell wait for
// line ends:
//
//   - complete lines are masked whole, together with the part of their line already passed on;
//   - a partial line (a prompt, a progress bar, the rest of a frame) is held back for Delay, so
//     that the frames that follow it at once (a secret cut by a frame boundary) are masked with
//     it, and passed on masked when nothing follows; an echo of what was just typed passes at once;
//   - when a line continues after its start was passed on, it is masked again whole and only
//     what is new is passed on. If a secret started in the part already passed on (the output
//     paused in the middle of it for longer than Delay), the placeholder of the whole secret is
//     passed on after it: the start cannot be taken back.
//
// What is passed on goes to emit, in order, one call at a time, with whole set when it is whole
// lines masked whole (from the start of a line to a newline). Write returns emit's error (the
// client went away) and every Write after it fails.
type LiveMasker struct {
	m    *Masker
	emit func(b []byte, whole bool) error
	opts LiveOptions

	mu      sync.Mutex
	line    []byte // the raw bytes of the current line already passed on
	emitted []byte // what was passed on for line
	pending []byte // raw bytes not yet passed on
	out     []byte
	masked  []byte // scratch: the current line, masked
	whole   bool   // out holds whole lines masked whole
	timer   clock.Timer
	// held counts the partial lines held back: the timer of one that was passed on otherwise (its
	// function may already be waiting for l.mu when Stop is called) leaves the next one alone.
	held   uint64
	err    error
	closed bool
}

// NewLiveMasker returns a LiveMasker masking with m and passing what it masked to emit.
func NewLiveMasker(m *Masker, emit func(b []byte, whole bool) error, opts LiveOptions) *LiveMasker {
	if opts.Delay <= 0 {
		opts.Delay = 10 * time.Millisecond
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = 4 << 10
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &LiveMasker{m: m, emit: emit, opts: opts}
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("recording: masker closed")

// Write masks p with what came before it.
func (l *LiveMasker) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	if l.closed {
		return 0, errClosed
	}
	l.pending = append(l.pending, p...)
	l.out = l.out[:0]
	l.whole = len(l.line) == 0
	if i := bytes.LastIndexByte(l.pending, '\n'); i >= 0 {
		// The partial line held back ends here: what follows is a new one, held for its own delay.
		l.stopTimer()
		l.maskInto(l.pending[:i+1])
		l.line, l.emitted = l.line[:0], l.emitted[:0]
		n := copy(l.pending, l.pending[i+1:])
		l.pending = l.pending[:n]
	}
	switch {
	case len(l.pending) == 0:
	case len(l.line)+len(l.pending) >= l.opts.MaxLine:
		l.whole = false
		l.flushPartial()
	case l.opts.Echo.consume(l.pending):
		l.whole = false
		l.flushPartial()
	case l.timer == nil:
		held := l.held
		l.timer = l.opts.Clock.AfterFunc(l.opts.Delay, func() { l.timed(held) })
	}
	if err := l.send(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// maskInto masks the current line continued by text and appends what is new to l.out. It
// returns the masked line, valid until the next call.
func (l *LiveMasker) maskInto(text []byte) []byte {
	full := append(l.line, text...)
	l.line = full
	l.masked = l.m.Mask(l.masked[:0], full)
	common := commonPrefix(l.emitted, l.masked)
	l.out = append(l.out, l.masked[common:]...)
	return l.masked
}

// flushPartial passes the pending partial line on.
func (l *LiveMasker) flushPartial() {
	masked := l.maskInto(l.pending)
	l.emitted = append(l.emitted[:0], masked...)
	l.pending = l.pending[:0]
	l.stopTimer()
	if len(l.line) >= l.opts.MaxLine {
		// The context would grow without bound: start afresh.
		l.line, l.emitted = l.line[:0], l.emitted[:0]
	}
}

func (l *LiveMasker) send() error {
	if len(l.out) == 0 {
		return nil
	}
	whole := l.whole && l.out[len(l.out)-1] == '\n'
	l.whole = false
	if err := l.emit(l.out, whole); err != nil {
		l.err = err
		return err
	}
	l.out = l.out[:0]
	return nil
}

// stopTimer stops the timer of the partial line held back, which is passed on or complete.
func (l *LiveMasker) stopTimer() {
	l.held++
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// timed passes on the partial line held, the held-th, when nothing completed it within the
// delay.
func (l *LiveMasker) timed(held uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held != l.held {
		return
	}
	l.timer = nil
	if l.err != nil || l.closed || len(l.pending) == 0 {
		return
	}
	l.out = l.out[:0]
	l.flushPartial()
	_ = l.send()
}

// Flush passes on what is held back.
func (l *LiveMasker) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if len(l.pending) > 0 {
		l.out = l.out[:0]
		l.flushPartial()
		return l.send()
	}
	return nil
}

// Close passes on what is held back; later writes fail.
func (l *LiveMasker) Close() error {
	err := l.Flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.stopTimer()
	return err
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
