package enricher

import (
	"errors"
	"fmt"
)

// This file holds the byte-level JSON scanning the intake needs to split an EventList into its
// events without decoding them: the masker validates every event fully afterwards. The scanner
// never panics on malformed input; it reports an offset, never content.

// errSyntax is wrapped by every scanning error.
var errSyntax = errors.New("malformed JSON")

// maxDepth bounds the nesting the scanner follows, as encoding/json does.
const maxDepth = 10000

func syntaxError(off int, what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, off)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString returns the end of the string starting at b[i] == '"' (the index after its closing
// quote) and whether it contains escapes.
func scanString(b []byte, i int) (int, bool, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, false, syntaxError(i, "expected a string")
	}
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, nil
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			return 0, false, syntaxError(j, "control character in string")
		}
	}
	return 0, false, syntaxError(len(b), "unterminated string")
}

// skipValue returns the index after the JSON value starting at b[i] (after white space).
func skipValue(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, syntaxError(i, "expected a value")
	}
	switch b[i] {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{', '[':
		return skipContainer(b, i)
	default:
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			if b[j] == '{' || b[j] == '[' || b[j] == '"' {
				return 0, syntaxError(j, "unexpected character")
			}
			j++
		}
		if j == i {
			return 0, syntaxError(i, "expected a value")
		}
		return j, nil
	}
}

// skipContainer skips an object or array, following strings so that brackets inside them do
// not count. It checks bracket matching, not the grammar in between.
func skipContainer(b []byte, i int) (int, error) {
	stack := make([]byte, 0, 16)
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			end, _, err := scanString(b, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			if len(stack) >= maxDepth {
				return 0, syntaxError(j, "nesting too deep")
			}
			stack = append(stack, c)
		case '}', ']':
			if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
				return 0, syntaxError(j, "mismatched bracket")
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, syntaxError(len(b), "unterminated object or array")
}

// eventList is what splitEventList finds in an audit.k8s.io EventList.
type eventList struct {
	Kind, APIVersion string
	// Items are the raw bytes of each event, sub-slices of the input.
	Items [][]byte
}

// splitEventList finds the kind, apiVersion and items of a JSON object without decoding the
// items.
func splitEventList(b []byte) (eventList, error) {
	var l eventList
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return l, syntaxError(i, "expected an object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return l, checkTrailing(b, i+1)
	}
	for {
		kend, esc, err := scanString(b, i)
		if err != nil {
			return l, err
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return l, syntaxError(i, "expected a colon")
		}
		i = skipSpace(b, i+1)
		switch {
		case !esc && (string(key) == "kind" || string(key) == "apiVersion"):
			vend, vesc, err := scanString(b, i)
			if err != nil {
				return l, err
			}
			if vesc {
				return l, syntaxError(i, "escaped type field")
			}
			if string(key) == "kind" {
				l.Kind = string(b[i+1 : vend-1])
			} else {
				l.APIVersion = string(b[i+1 : vend-1])
			}
			i = vend
		case !esc && string(key) == "items":
			if i < len(b) && b[i] == 'n' { // "items": null
				if i, err = skipValue(b, i); err != nil {
					return l, err
				}
				break
			}
			if i >= len(b) || b[i] != '[' {
				return l, syntaxError(i, "items must be an array")
			}
			l.Items = l.Items[:0]
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			for {
				start := i
				if i >= len(b) || b[i] != '{' {
					return l, syntaxError(i, "an item must be an object")
				}
				end, err := skipContainer(b, i)
				if err != nil {
					return l, err
				}
				l.Items = append(l.Items, b[start:end])
				i = skipSpace(b, end)
				if i < len(b) && b[i] == ',' {
					i = skipSpace(b, i+1)
					continue
				}
				if i < len(b) && b[i] == ']' {
					i++
					break
				}
				return l, syntaxError(i, "expected a comma or the end of items")
			}
		default:
			if i, err = skipValue(b, i); err != nil {
				return l, err
			}
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return l, checkTrailing(b, i+1)
		}
		return l, syntaxError(i, "expected a comma or the end of the object")
	}
}

func checkTrailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return syntaxError(i, "data after the object")
	}
	return nil
}
