package jsonlex

import (
	"bytes"
	"unicode/utf8"
)

// Unescape appends the value of the string whose body (without quotes) is raw to dst. raw must
// have been scanned by [Mode.ScanString]. Invalid surrogate escapes and invalid UTF-8 become
// U+FFFD, as in encoding/json.
func Unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				j = len(raw)
			} else {
				j += i
			}
			dst = appendValidUTF8(dst, raw[i:j])
			i = j
			continue
		}
		if raw[i+1] == 'u' {
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
		}
		dst = append(dst, shortEscape(raw[i+1]))
		i += 2
	}
	return dst
}

// UnescapeValid is [Unescape] for a body scanned in [Strict] mode, which refuses invalid
// UTF-8: the bytes between escapes are copied without being checked again. A body with a \u
// escape is left to Unescape, whose surrogate rules decide what it stands for.
func UnescapeValid(dst, raw []byte) []byte {
	n := len(dst)
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return append(dst, raw[i:]...)
		}
		dst = append(dst, raw[i:i+j]...)
		i += j + 1 // the escape's letter; a scanned body has one
		if raw[i] == 'u' {
			return Unescape(dst[:n], raw)
		}
		dst = append(dst, shortEscape(raw[i]))
		i++
	}
	return dst
}

// shortEscape returns the byte the two-character escape \c stands for.
func shortEscape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\', '/'
}

// appendValidUTF8 appends s to dst with each invalid UTF-8 byte replaced by U+FFFD.
func appendValidUTF8(dst, s []byte) []byte {
	if utf8.Valid(s) {
		return append(dst, s...)
	}
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[:size]...)
		}
		s = s[size:]
	}
	return dst
}

func hex4(b []byte) int {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

const hexDigits = "0123456789abcdef"

// htmlSafe marks the ASCII bytes encoding/json writes as they are: plain string bytes but <, >
// and &.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = plain[c] && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendQuoted appends s as a JSON string, escaped as encoding/json's Marshal does it: HTML-safe
// (<, > and & escaped), with U+2028 and U+2029 escaped and invalid UTF-8 replaced by U+FFFD.
func AppendQuoted[S ~[]byte | ~string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, &htmlSafe)
	return append(dst, '"')
}

// AppendEscaped appends s escaped as the body of a JSON string, as [AppendQuoted] does.
func AppendEscaped(dst, s []byte) []byte {
	return appendEscaped(dst, s, &htmlSafe)
}

// AppendQuotedText appends s as a JSON string as [AppendQuoted] does, but leaves <, > and &
// as they are, as an encoding/json Encoder does after SetEscapeHTML(false).
func AppendQuotedText(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, (*[utf8.RuneSelf]bool)(plain[:utf8.RuneSelf]))
	return append(dst, '"')
}

// appendEscaped appends s escaped as the body of a JSON string, writing the ASCII bytes that
// safe marks as they are.
func appendEscaped[S ~[]byte | ~string](dst []byte, s S, safe *[utf8.RuneSelf]bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
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
		r, size := decodeRune(s[i:])
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

// decodeRune is utf8.DecodeRune for a string or a byte slice.
func decodeRune[S ~[]byte | ~string](s S) (rune, int) {
	if b, ok := any(s).([]byte); ok {
		return utf8.DecodeRune(b)
	}
	return utf8.DecodeRuneInString(string(s))
}

// EscapeLen returns the length of the escape sequence at raw[r] ('\\') of a string body that
// [Mode.ScanString] scanned, and the length of the text [Unescape] decodes it to.
func EscapeLen(raw []byte, r int) (rawLen, outLen int) {
	if raw[r+1] != 'u' {
		return 2, 1
	}
	c := rune(hex4(raw[r+2:]))
	switch {
	case 0xD800 <= c && c < 0xDC00:
		if r+12 <= len(raw) && raw[r+6] == '\\' && raw[r+7] == 'u' {
			if c2 := rune(hex4(raw[r+8:])); 0xDC00 <= c2 && c2 < 0xE000 {
				return 12, 4
			}
		}
		return 6, utf8.RuneLen(utf8.RuneError)
	case 0xDC00 <= c && c < 0xE000:
		return 6, utf8.RuneLen(utf8.RuneError)
	}
	return 6, utf8.RuneLen(c)
}
