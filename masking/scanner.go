package masking

import (
	"encoding/binary"
	"unicode/utf8"
)

// This file holds the byte-level JSON primitives the rewriter is built on. They validate as they
// go (RFC 8259 syntax and UTF-8), never allocate, and report errEOF when the input ends inside a
// value so that stream readers can wait for more data.

// maxDepth bounds the nesting of arrays and objects, as encoding/json does.
const maxDepth = 10000

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

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(src []byte, i int) int {
	for i < len(src) && isSpace(src[i]) {
		i++
	}
	return i
}

// scanString scans the string starting at src[i], which must be '"'. It returns the index just
// after the closing quote and whether the string contains escape sequences.
func scanString(src []byte, i int) (end int, esc bool, err error) {
	i++
	for {
		for i+8 <= len(src) && plainWord(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		for i < len(src) && plain[src[i]] {
			i++
		}
		if i >= len(src) {
			return i, esc, errEOF
		}
		switch c := src[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(src) {
				return i, esc, errEOF
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(src) {
						return k, esc, errEOF
					}
					if hexVal(src[k]) < 0 {
						return k, esc, malformed(k, "invalid \\u escape")
					}
				}
				i += 6
			default:
				return i, esc, malformed(i, "invalid escape")
			}
		case c < 0x20:
			return i, esc, malformed(i, "control character in string")
		default:
			if !utf8.FullRune(src[i:]) {
				return i, esc, errEOF
			}
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				return i, esc, malformed(i, "invalid UTF-8 in string")
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

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber scans the number starting at src[i].
func scanNumber(src []byte, i int) (int, error) {
	start := i
	if i < len(src) && src[i] == '-' {
		i++
	}
	if i >= len(src) {
		return i, errEOF
	}
	switch {
	case src[i] == '0':
		i++
	case '1' <= src[i] && src[i] <= '9':
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	default:
		return i, malformed(start, "invalid number")
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) {
			return i, errEOF
		}
		if !isDigit(src[i]) {
			return i, malformed(start, "invalid number")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) {
			return i, errEOF
		}
		if !isDigit(src[i]) {
			return i, malformed(start, "invalid number")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	return i, nil
}

// scanLiteral scans true, false or null starting at src[i].
func scanLiteral(src []byte, i int) (int, error) {
	var lit string
	switch src[i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	case 'n':
		lit = "null"
	default:
		return i, malformed(i, "invalid value")
	}
	for k := 0; k < len(lit); k++ {
		if i+k >= len(src) {
			return i + k, errEOF
		}
		if src[i+k] != lit[k] {
			return i, malformed(i, "invalid literal")
		}
	}
	return i + len(lit), nil
}

// skipValue validates and skips the value starting at src[i] (no leading whitespace).
func skipValue(src []byte, i, depth int) (int, error) {
	if i >= len(src) {
		return i, errEOF
	}
	switch c := src[i]; {
	case c == '"':
		end, _, err := scanString(src, i)
		return end, err
	case c == '{':
		return skipContainer(src, i, depth, '}')
	case c == '[':
		return skipContainer(src, i, depth, ']')
	case c == '-' || isDigit(c):
		return scanNumber(src, i)
	default:
		return scanLiteral(src, i)
	}
}

// skipContainer skips the object or array starting at src[i].
func skipContainer(src []byte, i, depth int, closing byte) (int, error) {
	if depth >= maxDepth {
		return i, malformed(i, "nesting too deep")
	}
	i = skipSpace(src, i+1)
	if i >= len(src) {
		return i, errEOF
	}
	if src[i] == closing {
		return i + 1, nil
	}
	for {
		var err error
		if closing == '}' {
			if i, err = skipKey(src, i); err != nil {
				return i, err
			}
		}
		if i, err = skipValue(src, i, depth+1); err != nil {
			return i, err
		}
		i, err = next(src, i, closing)
		if err != nil {
			return i, err
		}
		if i < 0 {
			return -i, nil
		}
	}
}

// skipKey scans an object key and its colon, returning the index of the value.
func skipKey(src []byte, i int) (int, error) {
	_, vi, err := scanKey(src, i)
	return vi, err
}

// scanKey scans the object key at src[i] and the colon after it. It returns the index just after
// the key's closing quote and the index of the value.
func scanKey(src []byte, i int) (keyEnd, value int, err error) {
	if i >= len(src) {
		return i, i, errEOF
	}
	if src[i] != '"' {
		return i, i, malformed(i, "expected object key")
	}
	keyEnd, _, err = scanString(src, i)
	if err != nil {
		return keyEnd, keyEnd, err
	}
	i = skipSpace(src, keyEnd)
	if i >= len(src) {
		return keyEnd, i, errEOF
	}
	if src[i] != ':' {
		return keyEnd, i, malformed(i, "expected colon")
	}
	i = skipSpace(src, i+1)
	if i >= len(src) {
		return keyEnd, i, errEOF
	}
	return keyEnd, i, nil
}

// next consumes the separator after a member or element. It returns the index of the next
// member, or the negated index just after the closing byte when the container ends.
func next(src []byte, i int, closing byte) (int, error) {
	i = skipSpace(src, i)
	if i >= len(src) {
		return i, errEOF
	}
	switch src[i] {
	case ',':
		i = skipSpace(src, i+1)
		if i >= len(src) {
			return i, errEOF
		}
		return i, nil
	case closing:
		return -(i + 1), nil
	}
	return i, malformed(i, "expected comma or end of container")
}

// unescape appends the text of the JSON string body raw (without quotes, already validated by
// scanString) to dst. Invalid surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(raw[i+2:]))
			i += 6
			if 0xD800 <= r && r < 0xDC00 {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := rune(hex4(raw[i+2:])); 0xDC00 <= r2 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if 0xDC00 <= r && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) int {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as a JSON string, escaped like encoding/json does it (HTML-safe, with
// U+2028 and U+2029 escaped and invalid UTF-8 replaced by U+FFFD).
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends s escaped as the body of a JSON string, as appendQuoted does.
func appendEscaped(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
