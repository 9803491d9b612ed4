package jsonlex

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects, as encoding/json does.
const MaxDepth = 10000

// Mode says what a scan accepts in strings besides what RFC 8259 allows. It matters to the
// functions that scan strings; the others scan no string or call these.
type Mode uint8

const (
	// Strict accepts valid UTF-8 only, as RFC 8259 requires.
	Strict Mode = iota
	// Lenient accepts any byte but a control character, as encoding/json does; [Unescape]
	// replaces invalid UTF-8 by U+FFFD, as encoding/json does when it decodes.
	Lenient
)

// plain marks the bytes a JSON string may contain without inspection: printable ASCII other
// than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainWord reports whether all eight bytes of x are plain string bytes.
func plainWord(x uint64) bool {
	quote := x ^ (lsb * '"')
	bslash := x ^ (lsb * '\\')
	// A byte of v has its high bit set in (v-lsb)&^v when it is zero (borrows can only add
	// false positives above a true zero, which the byte loop then sorts out).
	zq := (quote - lsb) &^ quote
	zb := (bslash - lsb) &^ bslash
	ctl := (x - lsb*0x20) &^ x
	return (zq|zb|ctl|x)&msb == 0
}

// skipPlain returns the index of the first byte at or after i that is not a plain string byte.
func skipPlain(src []byte, i int) int {
	for i+8 <= len(src) && plainWord(binary.LittleEndian.Uint64(src[i:])) {
		i += 8
	}
	for i < len(src) && plain[src[i]] {
		i++
	}
	return i
}

// IsSpace reports whether c is JSON white space.
func IsSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// IsDigit reports whether c is a decimal digit.
func IsDigit(c byte) bool { return '0' <= c && c <= '9' }

// SkipSpace returns the index of the first non-whitespace byte at or after i.
func SkipSpace(src []byte, i int) int {
	for i < len(src) && IsSpace(src[i]) {
		i++
	}
	return i
}

// ScanString scans the string starting at src[i], which must be '"'. It returns the index just
// after the closing quote and whether the body (src[i+1:end-1]) must go through [Unescape] to
// give the string's value: it has escape sequences or, in Lenient mode, invalid UTF-8.
func (m Mode) ScanString(src []byte, i int) (end int, esc bool, err error) {
	i++
	for {
		i = skipPlain(src, i)
		if i >= len(src) {
			return i, esc, ErrEOF
		}
		switch c := src[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(src) {
				return i, esc, ErrEOF
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(src) {
						return k, esc, ErrEOF
					}
					if hexVal(src[k]) < 0 {
						return k, esc, syntaxError(k, "invalid \\u escape")
					}
				}
				i += 6
			default:
				return i, esc, syntaxError(i, "invalid escape")
			}
		case c < 0x20:
			return i, esc, syntaxError(i, "control character in string")
		default:
			if !utf8.FullRune(src[i:]) {
				return i, esc, ErrEOF
			}
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				if m != Lenient {
					return i, esc, syntaxError(i, "invalid UTF-8 in string")
				}
				esc = true
			}
			i += size
		}
	}
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ScanNumber scans the number starting at src[i].
func ScanNumber(src []byte, i int) (int, error) {
	start := i
	if i < len(src) && src[i] == '-' {
		i++
	}
	if i >= len(src) {
		return i, ErrEOF
	}
	switch {
	case src[i] == '0':
		i++
	case '1' <= src[i] && src[i] <= '9':
		for i < len(src) && IsDigit(src[i]) {
			i++
		}
	default:
		return i, syntaxError(start, "invalid number")
	}
	if i < len(src) && src[i] == '.' {
		var err error
		if i, err = scanDigits(src, i+1, start); err != nil {
			return i, err
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		return scanDigits(src, i, start)
	}
	return i, nil
}

// scanDigits scans the digits, one at least, of a fraction or an exponent at src[i] of the
// number that starts at src[start].
func scanDigits(src []byte, i, start int) (int, error) {
	if i >= len(src) {
		return i, ErrEOF
	}
	if !IsDigit(src[i]) {
		return i, syntaxError(start, "invalid number")
	}
	for i < len(src) && IsDigit(src[i]) {
		i++
	}
	return i, nil
}

// ScanLiteral scans true, false or null starting at src[i].
func ScanLiteral(src []byte, i int) (int, error) {
	if i >= len(src) {
		return i, ErrEOF
	}
	var lit string
	switch src[i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	case 'n':
		lit = "null"
	default:
		return i, syntaxError(i, "invalid value")
	}
	for k := 0; k < len(lit); k++ {
		if i+k >= len(src) {
			return i + k, ErrEOF
		}
		if src[i+k] != lit[k] {
			return i, syntaxError(i, "invalid literal")
		}
	}
	return i + len(lit), nil
}

// SkipValue validates and skips the value starting at src[i] (no leading white space), inside
// depth open arrays and objects. It returns the index just after the value.
func (m Mode) SkipValue(src []byte, i, depth int) (int, error) {
	if i >= len(src) {
		return i, ErrEOF
	}
	switch c := src[i]; {
	case c == '"':
		end, _, err := m.ScanString(src, i)
		return end, err
	case c == '{':
		return m.skipContainer(src, i, depth, '}')
	case c == '[':
		return m.skipContainer(src, i, depth, ']')
	case c == '-' || IsDigit(c):
		return ScanNumber(src, i)
	default:
		return ScanLiteral(src, i)
	}
}

// skipContainer skips the object or array starting at src[i].
func (m Mode) skipContainer(src []byte, i, depth int, closing byte) (int, error) {
	if depth >= MaxDepth {
		return i, syntaxError(i, "nesting too deep")
	}
	i = SkipSpace(src, i+1)
	if i >= len(src) {
		return i, ErrEOF
	}
	if src[i] == closing {
		return i + 1, nil
	}
	for {
		var err error
		if closing == '}' {
			if _, i, err = m.ScanKey(src, i); err != nil {
				return i, err
			}
		}
		if i, err = m.SkipValue(src, i, depth+1); err != nil {
			return i, err
		}
		var more bool
		if i, more, err = Next(src, i, closing); err != nil || !more {
			return i, err
		}
	}
}

// ScanKey scans the object key at src[i] and the colon after it. It returns the index just
// after the key's closing quote and the index of the value (white space skipped).
func (m Mode) ScanKey(src []byte, i int) (keyEnd, value int, err error) {
	if i >= len(src) {
		return i, i, ErrEOF
	}
	if src[i] != '"' {
		return i, i, syntaxError(i, "expected object key")
	}
	keyEnd, _, err = m.ScanString(src, i)
	if err != nil {
		return keyEnd, keyEnd, err
	}
	i = SkipSpace(src, keyEnd)
	if i >= len(src) {
		return keyEnd, i, ErrEOF
	}
	if src[i] != ':' {
		return keyEnd, i, syntaxError(i, "expected colon")
	}
	i = SkipSpace(src, i+1)
	if i >= len(src) {
		return keyEnd, i, ErrEOF
	}
	return keyEnd, i, nil
}

// Next consumes the separator after a member or element of the object or array that closing
// ('}' or ']') ends. With more it returns the index of the next member or element (white space
// skipped); without, the index just after the closing byte.
func Next(src []byte, i int, closing byte) (j int, more bool, err error) {
	i = SkipSpace(src, i)
	if i >= len(src) {
		return i, false, ErrEOF
	}
	switch src[i] {
	case ',':
		i = SkipSpace(src, i+1)
		if i >= len(src) {
			return i, false, ErrEOF
		}
		return i, true, nil
	case closing:
		return i + 1, false, nil
	}
	return i, false, syntaxError(i, "expected comma or end of container")
}
