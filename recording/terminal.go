package recording

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// TerminalOptions tune a Terminal.
type TerminalOptions struct {
	// Idle is how long a partial line is held before it is recorded masked on its own.
	// Default 2s.
	Idle time.Duration
	// MaxLine is the longest line held whole. Default 4 KiB.
	MaxLine int
	// Clock stamps the events. Default the real clock.
	Clock clock.WithDelayedExecution
}

// Terminal records a terminal session as asciicast v3 into a Writer: what the command printed
// (stdout "o", stderr "e"), what was typed ("i"), resizes ("r"), markers ("m") and the exit status
// ("x"), each with its time.
//
// What is recorded is masked again, line by line, with the session's Masker: output arrives
// already masked for the client (a LiveMasker passes partial lines on early, and an echo of
// typed keys at once, so a secret typed key by key passes it unseen), and input is raw. A line
// is held until it ends (or for Idle, or up to MaxLine); when masking leaves it unchanged its
// pieces are recorded with their own times, so playback keeps the session's timing; when it does
// not, the masked line is recorded at the time of its first piece. Events are recorded in the
// order they happened: an event after a held line waits for it.
type Terminal struct {
	w    *Writer
	m    *Masker
	opts TerminalOptions

	mu      sync.Mutex
	start   time.Time
	last    time.Time
	pending []*termEvent         // in order; the head is written when it is resolved
	held    map[string]*lineHold // by code: o, e, i
	carry   map[string][]byte    // an incomplete UTF-8 sequence at the end of the last event, by code
	buf     []byte
	closed  bool
}

type termEvent struct {
	t        time.Time
	code     string
	data     []byte
	resolved bool
}

type lineHold struct {
	buf    []byte
	events []*termEvent
	timer  clock.Timer
	// line counts the lines resolved: the idle timer of a line that was resolved otherwise (its
	// function may already be waiting for t.mu when Stop is called) leaves the next line alone.
	line uint64
}

// NewTerminal starts recording into w, whose recording began at start (the header's timestamp).
func NewTerminal(w *Writer, m *Masker, start time.Time, opts TerminalOptions) *Terminal {
	if opts.Idle <= 0 {
		opts.Idle = 2 * time.Second
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = 4 << 10
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Terminal{w: w, m: m, opts: opts, start: start, last: start,
		held: map[string]*lineHold{}, carry: map[string][]byte{}}
}

// HeaderLine returns the header line of a recording.
func HeaderLine(h Header) []byte {
	h.Version = Version
	b, _ := json.Marshal(h)
	return append(b, '\n')
}

// Output records what the command wrote to stdout (CodeOutput) or stderr (CodeStderr).
func (t *Terminal) Output(code string, p []byte) { t.hold(code, p) }

// OutputMasked records output that is whole lines a LiveMasker masked whole (its emit's whole):
// unless a line of the same stream is held, it is recorded as it is, not masked again.
func (t *Terminal) OutputMasked(code string, p []byte) {
	t.mu.Lock()
	if h := t.held[code]; !t.closed && (h == nil || len(h.events) == 0) && len(p) > 0 && p[len(p)-1] == '\n' {
		t.pending = append(t.pending, &termEvent{t: t.opts.Clock.Now(), code: code, data: bytes.Clone(p), resolved: true})
		t.drain()
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.hold(code, p)
}

// Input records what was typed.
func (t *Terminal) Input(p []byte) { t.hold(CodeInput, p) }

// Resize records a new terminal size.
func (t *Terminal) Resize(cols, rows uint16) {
	t.event(CodeResize, []byte(strconv.Itoa(int(cols))+"x"+strconv.Itoa(int(rows))))
}

// Marker records a marker, masked.
func (t *Terminal) Marker(label string) {
	t.event(CodeMarker, t.m.Mask(nil, []byte(label)))
}

// Exit records the command's exit status.
func (t *Terminal) Exit(status int) {
	t.event(CodeExit, []byte(strconv.Itoa(status)))
}

// Err returns the recording's error: ErrFailed once a chunk could not be stored.
func (t *Terminal) Err() error { return t.w.Err() }

func (t *Terminal) event(code string, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	now := t.opts.Clock.Now()
	t.pending = append(t.pending, &termEvent{t: now, code: code, data: data, resolved: true})
	t.drain()
}

func (t *Terminal) hold(code string, p []byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	h := t.held[code]
	if h == nil {
		h = &lineHold{}
		t.held[code] = h
	}
	ev := &termEvent{t: t.opts.Clock.Now(), code: code, data: bytes.Clone(p)}
	t.pending = append(t.pending, ev)
	h.events = append(h.events, ev)
	h.buf = append(h.buf, p...)
	if bytes.IndexByte(p, '\n') >= 0 || (code == CodeInput && bytes.IndexByte(p, '\r') >= 0) || len(h.buf) >= t.opts.MaxLine {
		t.resolve(h)
		t.drain()
		return
	}
	if h.timer == nil {
		line := h.line
		h.timer = t.opts.Clock.AfterFunc(t.opts.Idle, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if h.line != line {
				return
			}
			h.timer = nil
			t.resolve(h)
			t.drain()
		})
	}
}

// resolve masks a held line and settles its events. t.mu is held.
func (t *Terminal) resolve(h *lineHold) {
	if len(h.events) == 0 {
		return
	}
	masked := t.m.Mask(nil, h.buf)
	if !bytes.Equal(masked, h.buf) {
		h.events[0].data = masked
		for _, ev := range h.events[1:] {
			ev.data = nil
		}
	}
	for _, ev := range h.events {
		ev.resolved = true
	}
	h.events = h.events[:0]
	h.buf = h.buf[:0]
	h.line++
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

// drain writes the resolved events at the head. t.mu is held.
func (t *Terminal) drain() {
	n := 0
	for n < len(t.pending) && t.pending[n].resolved {
		n++
	}
	if n == 0 {
		return
	}
	t.buf = t.buf[:0]
	at := t.pending[0].t
	for _, ev := range t.pending[:n] {
		data := ev.data
		switch ev.code {
		case CodeOutput, CodeStderr, CodeInput:
			if c := t.carry[ev.code]; len(c) > 0 {
				data = append(bytes.Clone(c), data...)
			}
			k := incompleteUTF8(data)
			t.carry[ev.code] = append(t.carry[ev.code][:0], data[len(data)-k:]...)
			data = data[:len(data)-k]
			if len(data) == 0 {
				continue
			}
		}
		evt := ev.t
		if evt.Before(t.last) {
			evt = t.last
		}
		t.buf = appendEvent(t.buf, evt.Sub(t.last), ev.code, data)
		t.last = evt
	}
	copy(t.pending, t.pending[n:])
	clear(t.pending[len(t.pending)-n:])
	t.pending = t.pending[:len(t.pending)-n]
	if len(t.buf) > 0 {
		// An error breaks the recording; Err reports it to the session.
		_ = t.w.Append(at, t.buf)
	}
}

// Close records what is held, masked, and closes the recording: the final chunk is stored
// before it returns (or ctx ends). It returns the recording's error.
func (t *Terminal) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		for _, h := range t.held {
			t.resolve(h)
		}
		t.drain()
		t.buf = t.buf[:0]
		for code, c := range t.carry {
			if len(c) > 0 {
				t.buf = appendEvent(t.buf, 0, code, c)
			}
		}
		if len(t.buf) > 0 {
			_ = t.w.Append(t.last, t.buf)
		}
		t.closed = true
	}
	t.mu.Unlock()
	return t.w.Close(ctx)
}
