package enricher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// This file reads audit events one at a time from a stream: the items of an audit.k8s.io/v1
// EventList (a webhook request body) or JSON lines (kube-apiserver's log backend). It holds at
// most one event in memory, and an event larger than its limit is cut while it is read, as
// kube-apiserver's own truncating backend cuts it: its requestObject and responseObject are
// dropped (and, should the rest still not fit, every member that alone does not), so a 50 MB
// event costs as much memory as a small one. The reader only finds the events' boundaries; the
// masker validates each event fully afterwards. It never panics on malformed input and reports
// offsets, never content.

// errSyntax is wrapped by every scanning error; errRead by every error reading the source.
var (
	errSyntax = errors.New("malformed JSON")
	errRead   = errors.New("reading the batch failed")
)

// Members of an audit event that the truncating backend drops first.
var (
	keyRequestObject  = []byte(`"requestObject"`)
	keyResponseObject = []byte(`"responseObject"`)
)

// readBufferSize is the buffer the reader reads its source with.
const readBufferSize = 64 << 10

// eventReader reads audit events from a stream. Create it with newEventListReader or
// newEventLinesReader.
type eventReader struct {
	r        *bufio.Reader
	off      int64 // bytes consumed
	maxEvent int
	lines    bool

	// EventList state.
	started, inItems, done, firstItem, seenItems bool
	kind, apiVersion                             string

	// The current event.
	inEvent   bool                // reading an event: in JSON-lines mode a newline ends it too early
	split     jsonlex.Splitter    // finds where a string, object or array ends
	whole     jsonlex.Splitter    // finds where an event ends that is buffered whole
	buf       []byte              // captured members, each preceded by a comma, after a '{'
	objects   [][2]int            // captured requestObject and responseObject members of buf
	member    int                 // start of the member being captured
	capturing bool                // the value being scanned goes into buf
	truncated bool                // objects dropped
	dropped   []string            // other members dropped
	overflows func(need int) bool // frees room in buf for need more bytes of the member being captured
}

var (
	bComma = []byte{','}
	bColon = []byte{':'}
)

// newEventListReader reads the items of an audit.k8s.io/v1 EventList from r.
func newEventListReader(r io.Reader, maxEvent int) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, readBufferSize), maxEvent: maxEvent}
}

// newEventLinesReader reads events written one per line (JSON lines) from r.
func newEventLinesReader(r io.Reader, maxEvent int) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, readBufferSize), maxEvent: maxEvent, lines: true}
}

// offset returns the number of bytes consumed so far.
func (e *eventReader) offset() int64 { return e.off }

// typeMeta returns the kind and apiVersion of an EventList, once next returned io.EOF.
func (e *eventReader) typeMeta() (kind, apiVersion string) { return e.kind, e.apiVersion }

func (e *eventReader) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, e.off)
}

// readErr turns a read error into the reader's error: the end of the input where more is needed
// is a syntax error; other errors (a body larger than allowed) pass through.
func (e *eventReader) readErr(err error) error {
	if errors.Is(err, io.EOF) {
		return e.fail("unexpected end of input")
	}
	return fmt.Errorf("%w at offset %d: %w", errRead, e.off, err)
}

// chunk returns the buffered input, reading more when none is buffered.
func (e *eventReader) chunk() ([]byte, error) {
	if e.r.Buffered() == 0 {
		if _, err := e.r.Peek(1); err != nil {
			return nil, err
		}
	}
	b, _ := e.r.Peek(e.r.Buffered())
	return b, nil
}

func (e *eventReader) discard(n int) {
	_, _ = e.r.Discard(n)
	e.off += int64(n)
}

// peek skips white space and returns the next byte without consuming it.
func (e *eventReader) peek() (byte, error) {
	for {
		b, err := e.chunk()
		if err != nil {
			return 0, err
		}
		i := 0
		for i < len(b) && jsonlex.IsSpace(b[i]) && (b[i] != '\n' || !e.lines || !e.inEvent) {
			i++
		}
		e.discard(i)
		if i < len(b) {
			return b[i], nil
		}
	}
}

// expect consumes the byte c, after white space.
func (e *eventReader) expect(c byte, what string) error {
	got, err := e.peek()
	if err != nil {
		return e.readErr(err)
	}
	if got != c {
		return e.fail("expected " + what)
	}
	e.discard(1)
	return nil
}

// capture appends b to the current event, if capturing, making room or stopping the capture
// when the event would outgrow its limit.
func (e *eventReader) capture(b []byte) {
	if !e.capturing {
		return
	}
	if len(e.buf)+len(b) > e.maxEvent && !e.overflows(len(b)) {
		return
	}
	e.buf = append(e.buf, b...)
}

// value consumes one JSON value (after white space), capturing it when e.capturing.
func (e *eventReader) value() error {
	c, err := e.peek()
	if err != nil {
		return e.readErr(err)
	}
	switch c {
	case '{', '[', '"':
		return e.delimited()
	case ',', ':', '}', ']':
		return e.fail("expected a value")
	default:
		return e.scalar()
	}
}

// scalar consumes a number or a literal: everything up to the next delimiter.
func (e *eventReader) scalar() error {
	n := 0
	for {
		b, err := e.chunk()
		if errors.Is(err, io.EOF) && n > 0 {
			return nil
		}
		if err != nil {
			return e.readErr(err)
		}
		for i, c := range b {
			if jsonlex.IsSpace(c) || c == ',' || c == '}' || c == ']' || c == ':' {
				e.capture(b[:i])
				e.discard(i)
				if n+i == 0 {
					return e.fail("expected a value")
				}
				return nil
			}
			if c == '{' || c == '[' || c == '"' {
				return e.fail("unexpected character")
			}
		}
		n += len(b)
		e.capture(b)
		e.discard(len(b))
	}
}

// delimited consumes a string, object or array (the next byte opens it) with the lexer's
// Splitter: it follows strings so that brackets inside them do not count, and checks that
// brackets match, not the grammar in between: captured values are validated by the masker,
// and skipped ones are dropped. In JSON-lines mode a newline outside a string ends the line
// inside the event, an error.
func (e *eventReader) delimited() error {
	for {
		b, err := e.chunk()
		if err != nil {
			e.split.Reset()
			return e.readErr(err)
		}
		lim, nl := len(b), false
		if e.lines {
			if k := bytes.IndexByte(b, '\n'); k >= 0 {
				lim, nl = k+1, true
			}
		}
		n, done, err := e.split.Scan(b[:lim])
		var se *jsonlex.SyntaxError
		switch {
		case errors.As(err, &se):
			e.discard(se.Offset)
			return e.fail(se.Msg)
		case err != nil:
			return e.fail(err.Error())
		case done:
			e.capture(b[:n])
			e.discard(n)
			return nil
		case nl:
			e.split.Reset()
			e.capture(b[:lim-1])
			e.discard(lim - 1)
			return e.fail("line ends inside an event")
		}
		e.capture(b)
		e.discard(len(b))
	}
}

// key reads an object member's key and the colon after it, capturing the key. It returns the
// key's raw text, quotes included, when it was captured.
func (e *eventReader) key() ([]byte, error) {
	c, err := e.peek()
	if err != nil {
		return nil, e.readErr(err)
	}
	if c != '"' {
		return nil, e.fail("expected a string")
	}
	start := len(e.buf)
	if err := e.delimited(); err != nil {
		return nil, err
	}
	var k []byte
	if e.capturing && len(e.buf) > start {
		k = e.buf[start:]
	}
	if err := e.expect(':', "a colon"); err != nil {
		return nil, err
	}
	e.capture(bColon)
	return k, nil
}

// shortString reads a string value of at most 1 KiB and returns it unquoted.
func (e *eventReader) shortString() (string, error) {
	c, err := e.peek()
	if err != nil {
		return "", e.readErr(err)
	}
	if c != '"' {
		return "", e.fail("expected a string")
	}
	saved, savedCapturing, savedMax := e.buf, e.capturing, e.maxEvent
	e.buf, e.capturing, e.maxEvent = nil, true, 1<<10
	e.overflows = func(int) bool { return false }
	err = e.delimited()
	raw := e.buf
	e.buf, e.capturing, e.maxEvent = saved, savedCapturing, savedMax
	if err != nil {
		return "", err
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", e.fail("invalid or overlong string")
	}
	return s, nil
}

// next returns the next event and, when it had to be cut to its limit, why. The event is valid
// until the next call. At the end of the input it returns io.EOF; for an EventList the kind and
// apiVersion are then known (typeMeta). In JSON-lines mode a malformed line is reported with an
// error wrapping errSyntax and skipped: the next call continues with the following line.
func (e *eventReader) next() ([]byte, string, error) {
	if e.lines {
		return e.nextLine()
	}
	for {
		switch {
		case e.done:
			return nil, "", io.EOF
		case !e.started:
			e.started = true
			if err := e.expect('{', "an object"); err != nil {
				return nil, "", err
			}
			c, err := e.peek()
			if err != nil {
				return nil, "", e.readErr(err)
			}
			if c == '}' {
				e.discard(1)
				if err := e.end(); err != nil {
					return nil, "", err
				}
				continue
			}
			if err := e.members(); err != nil {
				return nil, "", err
			}
		case e.inItems:
			c, err := e.peek()
			if err != nil {
				return nil, "", e.readErr(err)
			}
			if !e.firstItem {
				switch c {
				case ']':
					e.discard(1)
					e.inItems = false
					if err := e.afterMember(); err != nil {
						return nil, "", err
					}
					if !e.done {
						if err := e.members(); err != nil {
							return nil, "", err
						}
					}
					continue
				case ',':
					e.discard(1)
					if c, err = e.peek(); err != nil {
						return nil, "", e.readErr(err)
					}
				default:
					return nil, "", e.fail("expected a comma or the end of items")
				}
			}
			e.firstItem = false
			if c != '{' {
				return nil, "", e.fail("an item must be an object")
			}
			return e.event()
		default:
			return nil, "", e.fail("unexpected state")
		}
	}
}

// members reads the EventList's members until it enters the items array (e.inItems) or the
// object ends (e.done).
func (e *eventReader) members() error {
	for {
		c, err := e.peek()
		if err != nil {
			return e.readErr(err)
		}
		if c != '"' {
			return e.fail("expected a string")
		}
		k, err := e.shortString()
		if err != nil {
			return err
		}
		if err := e.expect(':', "a colon"); err != nil {
			return err
		}
		switch k {
		case "kind":
			if e.kind, err = e.shortString(); err != nil {
				return err
			}
		case "apiVersion":
			if e.apiVersion, err = e.shortString(); err != nil {
				return err
			}
		case "items":
			if e.seenItems {
				return e.fail("items given twice")
			}
			e.seenItems = true
			c, err := e.peek()
			if err != nil {
				return e.readErr(err)
			}
			if c == 'n' { // "items": null
				if err := e.value(); err != nil {
					return err
				}
				break
			}
			if c != '[' {
				return e.fail("items must be an array")
			}
			e.discard(1)
			if c, err = e.peek(); err != nil {
				return e.readErr(err)
			}
			if c == ']' {
				e.discard(1)
				break
			}
			e.inItems, e.firstItem = true, true
			return nil
		default:
			if err := e.value(); err != nil {
				return err
			}
		}
		if err := e.afterMember(); err != nil || e.done {
			return err
		}
	}
}

// afterMember consumes the comma after a member of the EventList, or its closing brace and
// what follows it.
func (e *eventReader) afterMember() error {
	c, err := e.peek()
	if err != nil {
		return e.readErr(err)
	}
	switch c {
	case ',':
		e.discard(1)
		return nil
	case '}':
		e.discard(1)
		return e.end()
	}
	return e.fail("expected a comma or the end of the object")
}

// end checks that nothing but white space follows the EventList.
func (e *eventReader) end() error {
	e.done = true
	_, err := e.peek()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return e.readErr(err)
	}
	return e.fail("data after the object")
}

// nextLine returns the next event of a JSON-lines stream.
func (e *eventReader) nextLine() ([]byte, string, error) {
	c, err := e.peek()
	if errors.Is(err, io.EOF) {
		return nil, "", io.EOF
	}
	if err != nil {
		return nil, "", e.readErr(err)
	}
	if c != '{' {
		err = e.fail("expected an object")
	} else {
		var ev []byte
		var why string
		if ev, why, err = e.event(); err == nil {
			// The rest of the line must be blank.
			for {
				b, rerr := e.chunk()
				if rerr != nil {
					return ev, why, nil
				}
				i := 0
				for i < len(b) && jsonlex.IsSpace(b[i]) && b[i] != '\n' {
					i++
				}
				e.discard(i)
				if i < len(b) {
					if b[i] == '\n' {
						e.discard(1)
						return ev, why, nil
					}
					err = e.fail("data after the event")
					break
				}
			}
		}
	}
	// Skip to the end of the line: a raw newline cannot occur inside a JSON string, so the
	// next one ends the bad line.
	for {
		b, rerr := e.chunk()
		if rerr != nil {
			return nil, "", err
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			e.discard(i + 1)
			return nil, "", err
		}
		e.discard(len(b))
	}
}

// event reads one audit event object, cutting it to maxEvent.
func (e *eventReader) event() ([]byte, string, error) {
	e.inEvent = true
	defer func() { e.inEvent = false }()
	if ev, ok := e.wholeEvent(); ok {
		return ev, "", nil
	}
	e.buf = append(e.buf[:0], '{')
	e.objects = e.objects[:0]
	e.truncated, e.dropped = false, e.dropped[:0]
	e.discard(1) // '{'
	c, err := e.peek()
	if err != nil {
		return nil, "", e.readErr(err)
	}
	if c == '}' {
		e.discard(1)
		return append(e.buf, '}'), "", nil
	}
	var memberKey []byte
	isObject := false
	e.overflows = func(need int) bool {
		if !e.truncated {
			e.truncated = true
			e.dropObjects()
			if !isObject && len(e.buf)+need <= e.maxEvent {
				return true // the dropped objects made room
			}
		}
		// This member alone does not fit: drop it.
		e.buf = e.buf[:e.member]
		e.capturing = false
		if !isObject && len(e.dropped) < 8 {
			e.dropped = append(e.dropped, shortKey(memberKey))
		}
		return false
	}
	for {
		e.member = len(e.buf)
		e.capturing = true
		memberKey, isObject = memberKey[:0], false
		e.capture(bComma)
		k, err := e.key()
		if err != nil {
			return nil, "", err
		}
		memberKey = append(memberKey[:0], k...)
		isObject = bytes.Equal(k, keyRequestObject) || bytes.Equal(k, keyResponseObject)
		if isObject && e.truncated {
			e.buf = e.buf[:e.member]
			e.capturing = false
		}
		if err := e.value(); err != nil {
			return nil, "", err
		}
		if e.capturing && isObject {
			e.objects = append(e.objects, [2]int{e.member, len(e.buf)})
		}
		e.capturing = false
		c, err := e.peek()
		if err != nil {
			return nil, "", e.readErr(err)
		}
		e.discard(1)
		switch c {
		case ',':
			continue
		case '}':
		default:
			return nil, "", e.fail("expected a comma or the end of an event")
		}
		break
	}
	ev := e.buf
	if len(ev) > 1 && ev[1] == ',' {
		ev = append(ev[:1], ev[2:]...)
	}
	ev = append(ev, '}')
	e.buf = ev
	if !e.truncated {
		return ev, "", nil
	}
	why := "event larger than " + strconv.Itoa(e.maxEvent) + " bytes"
	if len(e.dropped) > 0 {
		why += "; dropped too large " + joinKeys(e.dropped)
	}
	return ev, why, nil
}

// wholeEvent returns the event that starts at the reader's position (its '{') when the buffered
// input holds all of it and it is within maxEvent: found with one scan of the lexer's Splitter
// and copied as it is, which is what reading it member by member would return but for white
// space between its tokens. Otherwise (an event larger than the buffer or the limit, a syntax
// error, JSON-lines mode) it consumes nothing and reports false: the event is then read member
// by member, which cuts it or reports the error.
func (e *eventReader) wholeEvent() ([]byte, bool) {
	if e.lines {
		return nil, false
	}
	b, _ := e.r.Peek(e.r.Buffered())
	if len(b) > e.maxEvent {
		b = b[:e.maxEvent]
	}
	n, done, err := e.whole.Scan(b)
	if err != nil || !done {
		e.whole.Reset()
		return nil, false
	}
	e.buf = append(e.buf[:0], b[:n]...)
	e.discard(n)
	return e.buf, true
}

// dropObjects removes the captured requestObject and responseObject members from buf.
func (e *eventReader) dropObjects() {
	removed := 0
	for _, r := range e.objects {
		start, end := r[0]-removed, r[1]-removed
		e.buf = append(e.buf[:start], e.buf[end:]...)
		removed += end - start
	}
	e.objects = e.objects[:0]
	e.member -= removed
}

// shortKey returns a member name for a log or an annotation: unquoted, at most 64 bytes.
func shortKey(raw []byte) string {
	k := bytes.Trim(raw, `"`)
	if len(k) > 64 {
		k = k[:64]
	}
	return strconv.Quote(string(k))
}

func joinKeys(keys []string) string {
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
	}
	return b.String()
}
