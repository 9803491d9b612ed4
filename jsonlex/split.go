package jsonlex

// Splitter finds where a JSON string, object or array ends in text that arrives in pieces. It
// follows strings and nesting only: it checks that brackets match, that nesting stays within
// [MaxDepth], that strings hold no control characters and that escapes name a valid escape
// character, not the rest of the grammar, which the consumer of the value checks (with
// [Mode.SkipValue], say). The zero Splitter is ready to use; it holds no input between calls.
type Splitter struct {
	stack []byte // the open arrays and objects: '[' or '{'
	str   bool   // inside a string
	esc   bool   // the last byte was a backslash inside a string
	began bool   // the value's first byte was seen
}

// Scan continues the value with b, whose first byte starts the value on the first call ('"',
// '{' or '['). Once the value ends within b it returns the number of bytes of b up to and
// including its last byte, and done; the Splitter is then ready for the next value. Otherwise
// it returns len(b) and wants the bytes that follow. An error is a [*SyntaxError] whose offset
// is an index into b; the Splitter is then ready for a new value too.
func (s *Splitter) Scan(b []byte) (n int, done bool, err error) {
	i := 0
	if !s.began && len(b) > 0 {
		s.began = true
		switch b[0] {
		case '"':
			s.str = true
		case '{', '[':
			s.stack = append(s.stack[:0], b[0])
		default:
			s.Reset()
			return 0, false, syntaxError(0, "expected a string, object or array")
		}
		i = 1
	}
	for i < len(b) {
		if s.str {
			if s.esc {
				s.esc = false
				switch b[i] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't', 'u':
				default:
					s.Reset()
					return i, false, syntaxError(i, "invalid escape")
				}
				i++
				continue
			}
			i = skipPlain(b, i)
			if i >= len(b) {
				break
			}
			switch c := b[i]; {
			case c == '\\':
				s.esc = true
			case c == '"':
				s.str = false
				if len(s.stack) == 0 {
					s.Reset()
					return i + 1, true, nil
				}
			case c < 0x20:
				s.Reset()
				return i, false, syntaxError(i, "control character in string")
			}
			i++
			continue
		}
		switch c := b[i]; c {
		case '"':
			s.str = true
		case '{', '[':
			if len(s.stack) >= MaxDepth {
				s.Reset()
				return i, false, syntaxError(i, "nesting too deep")
			}
			s.stack = append(s.stack, c)
		case '}', ']':
			if open := s.stack[len(s.stack)-1]; open+2 != c { // '{'+2 == '}', '['+2 == ']'
				s.Reset()
				return i, false, syntaxError(i, "mismatched bracket")
			}
			s.stack = s.stack[:len(s.stack)-1]
			if len(s.stack) == 0 {
				s.Reset()
				return i + 1, true, nil
			}
		}
		i++
	}
	return len(b), false, nil
}

// Reset makes the Splitter ready for a new value, dropping the one it was following.
func (s *Splitter) Reset() {
	*s = Splitter{stack: s.stack[:0]}
}

// Started reports whether the Splitter is inside a value: Scan saw its first byte and not yet
// its last.
func (s *Splitter) Started() bool { return s.began }
