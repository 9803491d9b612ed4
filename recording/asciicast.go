package recording

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// Event codes of asciicast v3, and Gatehouse's own code for stderr.
const (
	CodeOutput = "o" // data written to the terminal (stdout)
	CodeInput  = "i" // data typed (stdin)
	CodeResize = "r" // the terminal resized: "COLSxROWS"
	CodeMarker = "m" // a marker with a label
	CodeExit   = "x" // the exit status of the command, as a decimal number
	// CodeStderr is a command's stderr. asciicast has no code for it; players ignore unknown
	// codes, so ToStandard turns it into CodeOutput for them.
	CodeStderr = "e"
)

// Version is the asciicast version Gatehouse writes.
const Version = 3

// Header is the first line of an asciicast v3 recording.
type Header struct {
	Version int  `json:"version"`
	Term    Term `json:"term"`
	// Timestamp is the start of the recording, in Unix seconds.
	Timestamp int64 `json:"timestamp,omitempty"`
	// Command is what ran (exec) or what was attached to.
	Command string `json:"command,omitempty"`
	Title   string `json:"title,omitempty"`
	// IdleTimeLimit, when set, caps pauses during playback, in seconds.
	IdleTimeLimit float64           `json:"idle_time_limit,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
}

// Term describes the terminal of a recording.
type Term struct {
	Cols int    `json:"cols"`
	Rows int    `json:"rows"`
	Type string `json:"type,omitempty"`
}

// Event is one event of a recording.
type Event struct {
	// Time is the time since the start of the recording (asciicast v3 stores intervals; Decode
	// sums them).
	Time time.Duration
	Code string
	Data string
}

// Cast is a decoded recording.
type Cast struct {
	Header Header
	Events []Event
}

// Duration is the time of the last event.
func (c *Cast) Duration() time.Duration {
	if len(c.Events) == 0 {
		return 0
	}
	return c.Events[len(c.Events)-1].Time
}

// Output returns the data of the output events (stdout and stderr) in order: what the terminal
// showed.
func (c *Cast) Output() string {
	var b strings.Builder
	for _, e := range c.Events {
		if e.Code == CodeOutput || e.Code == CodeStderr {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// Input returns the data of the input events in order: what was typed.
func (c *Cast) Input() string {
	var b strings.Builder
	for _, e := range c.Events {
		if e.Code == CodeInput {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// ExitStatus returns the exit status the recording ends with, if it has one.
func (c *Cast) ExitStatus() (int, bool) {
	for i := len(c.Events) - 1; i >= 0; i-- {
		if c.Events[i].Code == CodeExit {
			n, err := strconv.Atoi(c.Events[i].Data)
			return n, err == nil
		}
	}
	return 0, false
}

// ErrFormat is returned by Decode for data that is not an asciicast v3 recording.
var ErrFormat = errors.New("recording: not an asciicast v3 recording")

// maxLine bounds one line of a recording Decode reads.
const maxLine = 16 << 20

// Decode reads an asciicast v3 recording. Comment lines (#) and blank lines are skipped.
func Decode(r io.Reader) (*Cast, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	c := &Cast{}
	var at time.Duration
	headerSeen := false
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || (headerSeen && b[0] == '#') {
			continue
		}
		if !headerSeen {
			if err := json.Unmarshal(b, &c.Header); err != nil {
				return nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
			}
			if c.Header.Version != Version {
				return nil, fmt.Errorf("%w: version %d", ErrFormat, c.Header.Version)
			}
			headerSeen = true
			continue
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 3 {
			return nil, fmt.Errorf("%w: line %d is not an event", ErrFormat, line)
		}
		var interval float64
		var e Event
		if err := json.Unmarshal(raw[0], &interval); err != nil || interval < 0 {
			return nil, fmt.Errorf("%w: line %d: bad interval", ErrFormat, line)
		}
		if err := json.Unmarshal(raw[1], &e.Code); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad code", ErrFormat, line)
		}
		if err := json.Unmarshal(raw[2], &e.Data); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad data", ErrFormat, line)
		}
		at += time.Duration(interval * float64(time.Second))
		e.Time = at
		c.Events = append(c.Events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("recording: reading: %w", err)
	}
	if !headerSeen {
		return nil, fmt.Errorf("%w: no header", ErrFormat)
	}
	return c, nil
}

// Encode writes c as asciicast v3.
func Encode(w io.Writer, c *Cast) error {
	h, err := json.Marshal(c.Header)
	if err != nil {
		return err
	}
	buf := append(h, '\n')
	var last time.Duration
	for _, e := range c.Events {
		buf = appendEvent(buf, e.Time-last, e.Code, []byte(e.Data))
		last = e.Time
		if len(buf) > 64<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err = w.Write(buf)
	return err
}

// ToStandard returns c with Gatehouse's stderr events as output events, for players that know
// only the standard codes.
func ToStandard(c *Cast) *Cast {
	out := &Cast{Header: c.Header, Events: make([]Event, len(c.Events))}
	for i, e := range c.Events {
		if e.Code == CodeStderr {
			e.Code = CodeOutput
		}
		out.Events[i] = e
	}
	return out
}

// appendEvent appends one event line: [interval, "code", "data"].
func appendEvent(dst []byte, interval time.Duration, code string, data []byte) []byte {
	if interval < 0 {
		interval = 0
	}
	dst = append(dst, '[')
	dst = strconv.AppendFloat(dst, interval.Seconds(), 'f', 6, 64)
	dst = append(dst, ", "...)
	// Invalid UTF-8 in the data becomes U+FFFD, as asciinema itself records it.
	dst = jsonlex.AppendQuotedText(dst, []byte(code))
	dst = append(dst, ", "...)
	dst = jsonlex.AppendQuotedText(dst, data)
	return append(dst, "]\n"...)
}

// incompleteUTF8 returns how many bytes at the end of b are the start of a UTF-8 sequence that
// the next bytes may complete.
func incompleteUTF8(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			need := 0
			switch {
			case c&0xE0 == 0xC0:
				need = 2
			case c&0xF0 == 0xE0:
				need = 3
			case c&0xF8 == 0xF0:
				need = 4
			default:
				return 0
			}
			if need > n {
				return n
			}
			return 0
		}
	}
	return 0
}
