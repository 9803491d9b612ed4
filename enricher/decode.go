package enricher

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file decodes the consumer's messages. encoding/json costs about 15 µs per audit event,
// the largest share of the pipeline; this decoder, written for exactly the types the consumer
// needs, costs a fraction of that. It accepts what encoding/json accepts for these types
// (FuzzDecodeBatch compares the two) and fails on anything else, without panicking.

// jsonUnmarshal decodes a message into v, which must be a *wireBatch; the benchmarks' baseline
// decodes with it too.
func jsonUnmarshal(data []byte, v any) error {
	switch x := v.(type) {
	case *wireBatch:
		d := decoder{b: data}
		return d.document(d.batch, x)
	default:
		return json.Unmarshal(data, v)
	}
}

type decoder struct {
	b      []byte
	i      int
	depth  int
	intern map[string]string // repeated short values: verbs, resources, users, groups
}

var errDecode = errors.New("invalid JSON")

func (d *decoder) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errDecode, what, d.i)
}

func (d *decoder) ws() {
	for d.i < len(d.b) && isSpace(d.b[d.i]) {
		d.i++
	}
}

// document decodes one value with f and checks that nothing follows.
func (d *decoder) document(f func(*wireBatch) error, wb *wireBatch) error {
	if err := f(wb); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return d.fail("data after the document")
	}
	return nil
}

// null consumes a JSON null if one comes next.
func (d *decoder) null() bool {
	d.ws()
	if d.i+4 <= len(d.b) && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// object calls member for every member of an object; member must consume the value.
func (d *decoder) object(member func(key []byte) error) error {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return d.fail("expected an object")
	}
	if d.depth++; d.depth > maxDepth {
		return d.fail("nesting too deep")
	}
	defer func() { d.depth-- }()
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		// A sub-slice of the input when the key has no escapes; never written to.
		key, err := d.stringBytes(nil)
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.fail("expected a colon")
		}
		d.i++
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ',' {
			d.i++
			continue
		}
		if d.i < len(d.b) && d.b[d.i] == '}' {
			d.i++
			return nil
		}
		return d.fail("expected a comma or the end of an object")
	}
}

// array calls elem for every element of an array (or not at all for null).
func (d *decoder) array(elem func() error) error {
	if d.null() {
		return nil
	}
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return d.fail("expected an array")
	}
	if d.depth++; d.depth > maxDepth {
		return d.fail("nesting too deep")
	}
	defer func() { d.depth-- }()
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ',' {
			d.i++
			continue
		}
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return nil
		}
		return d.fail("expected a comma or the end of an array")
	}
}

// skip consumes any value, checking it fully.
func (d *decoder) skip() error {
	d.ws()
	if d.i >= len(d.b) {
		return d.fail("expected a value")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(func([]byte) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, err := d.stringBytes(nil)
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		_, err := d.number()
		return err
	}
}

func (d *decoder) literal(s string) error {
	if d.i+len(s) > len(d.b) || string(d.b[d.i:d.i+len(s)]) != s {
		return d.fail("invalid literal")
	}
	d.i += len(s)
	return nil
}

// number consumes a JSON number and returns its text.
func (d *decoder) number() ([]byte, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	default:
		return nil, d.fail("expected a value")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return nil, d.fail("invalid number")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return nil, d.fail("invalid number")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	return d.b[start:d.i], nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// int decodes a JSON number into an integer of bits bits, as encoding/json does (no fraction,
// no exponent, in range); null leaves it zero.
func (d *decoder) int(bits int) (int64, error) {
	if d.null() {
		return 0, nil
	}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '"' {
		return 0, d.fail("expected a number")
	}
	num, err := d.number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(num), 10, bits)
	if err != nil {
		return 0, d.fail("number out of range or not an integer")
	}
	return n, nil
}

// bool decodes true, false or null.
func (d *decoder) bool() (bool, error) {
	if d.null() {
		return false, nil
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == 't':
		return true, d.literal("true")
	case d.i < len(d.b) && d.b[d.i] == 'f':
		return false, d.literal("false")
	}
	return false, d.fail("expected a boolean")
}

// stringBytes decodes a JSON string, appending it to dst; with dst nil and no escapes it
// returns a sub-slice of the input, which callers must not modify.
func (d *decoder) stringBytes(dst []byte) ([]byte, error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, d.fail("expected a string")
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if dst == nil {
				return s, nil
			}
			return append(dst, s...), nil
		case c == '\\':
			return d.escapedString(append(dst, d.b[start:d.i]...))
		case c < 0x20:
			return nil, d.fail("control character in string")
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				// encoding/json replaces invalid UTF-8; do the same on the slow path.
				return d.escapedString(append(dst, d.b[start:d.i]...))
			}
			d.i += n
		default:
			d.i++
		}
	}
	return nil, d.fail("unterminated string")
}

// escapedString continues a string with escapes or invalid UTF-8 at d.i, appending to dst.
func (d *decoder) escapedString(dst []byte) ([]byte, error) {
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if dst == nil {
				dst = []byte{}
			}
			return dst, nil
		case c < 0x20:
			return nil, d.fail("control character in string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return nil, d.fail("unterminated escape")
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
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
				r, ok := d.hex4()
				if !ok {
					return nil, d.fail("invalid unicode escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						var ok2 bool
						if r2, ok2 = d.hex4(); !ok2 {
							return nil, d.fail("invalid unicode escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							continue
						}
						d.i = save
					}
					dst = utf8.AppendRune(dst, utf8.RuneError)
					continue
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return nil, d.fail("invalid escape")
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, d.b[d.i:d.i+n]...)
			}
			d.i += n
		}
	}
	return nil, d.fail("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// str decodes a string (null gives "").
func (d *decoder) str() (string, error) {
	if d.null() {
		return "", nil
	}
	b, err := d.stringBytes(nil)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// istr decodes a string that is likely to repeat, sharing one copy per distinct value.
func (d *decoder) istr() (string, error) {
	if d.null() {
		return "", nil
	}
	b, err := d.stringBytes(nil)
	if err != nil {
		return "", err
	}
	if len(b) > 128 {
		return string(b), nil
	}
	if s, ok := d.intern[string(b)]; ok {
		return s, nil
	}
	if d.intern == nil || len(d.intern) > 4096 {
		d.intern = make(map[string]string, 64)
	}
	s := string(b)
	d.intern[s] = s
	return s, nil
}

func (d *decoder) strings(dst []string) ([]string, error) {
	dst = dst[:0]
	if d.null() {
		return nil, nil
	}
	err := d.array(func() error {
		s, err := d.istr()
		dst = append(dst, s)
		return err
	})
	return dst, err
}

// raw returns an embedded value's JSON text, as json.RawMessage does (null included).
func (d *decoder) raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.skip(); err != nil {
		return nil, err
	}
	return d.b[start:d.i], nil
}

// time decodes a timestamp exactly as encoding/json does, with time.Time's UnmarshalJSON.
func (d *decoder) time() (time.Time, error) {
	if d.null() {
		return time.Time{}, nil
	}
	start := d.i
	if _, err := d.stringBytes(nil); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		return time.Time{}, d.fail("invalid time")
	}
	return t, nil
}

func (d *decoder) batch(wb *wireBatch) error {
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "apiVersion":
			wb.APIVersion, err = d.str()
		case "kind":
			wb.Kind, err = d.str()
		case "origin":
			wb.Origin, err = d.istr()
		case "items":
			wb.Items = wb.Items[:0]
			err = d.array(func() error {
				wb.Items = append(wb.Items, auditEvent{})
				return d.event(&wb.Items[len(wb.Items)-1])
			})
		case "masking":
			wb.Masking = wb.Masking[:0]
			err = d.array(func() error {
				wb.Masking = append(wb.Masking, eventStats{})
				return d.stats(&wb.Masking[len(wb.Masking)-1])
			})
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) event(ev *auditEvent) error {
	if d.null() {
		return nil
	}
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "level":
			ev.Level, err = d.istr()
		case "auditID":
			ev.AuditID, err = d.str()
		case "stage":
			ev.Stage, err = d.istr()
		case "requestURI":
			ev.RequestURI, err = d.str()
		case "verb":
			ev.Verb, err = d.istr()
		case "user":
			err = d.user(&ev.User)
		case "impersonatedUser":
			if d.null() {
				ev.ImpersonatedUser = nil
				return nil
			}
			if ev.ImpersonatedUser == nil {
				ev.ImpersonatedUser = &userInfo{}
			}
			err = d.user(ev.ImpersonatedUser)
		case "sourceIPs":
			ev.SourceIPs, err = d.strings(ev.SourceIPs)
		case "userAgent":
			ev.UserAgent, err = d.istr()
		case "objectRef":
			if d.null() {
				ev.ObjectRef = nil
				return nil
			}
			if ev.ObjectRef == nil {
				ev.ObjectRef = &objectRef{}
			}
			err = d.objectRef(ev.ObjectRef)
		case "responseStatus":
			if d.null() {
				ev.ResponseStatus = nil
				return nil
			}
			if ev.ResponseStatus == nil {
				ev.ResponseStatus = &responseStatus{}
			}
			err = d.status(ev.ResponseStatus)
		case "requestObject":
			ev.RequestObject, err = d.raw()
		case "responseObject":
			ev.ResponseObject, err = d.raw()
		case "requestReceivedTimestamp":
			ev.RequestReceivedTimestamp, err = d.time()
		case "stageTimestamp":
			ev.StageTimestamp, err = d.time()
		case "annotations":
			ev.Annotations, err = d.stringMap(ev.Annotations)
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) user(u *userInfo) error {
	if d.null() {
		return nil
	}
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "username":
			u.Username, err = d.istr()
		case "uid":
			u.UID, err = d.istr()
		case "groups":
			u.Groups, err = d.strings(u.Groups)
		case "extra":
			if d.null() {
				return nil
			}
			if u.Extra == nil {
				u.Extra = map[string][]string{}
			}
			err = d.object(func(k []byte) error {
				vs, err := d.strings(nil)
				if err != nil {
					return err
				}
				u.Extra[d.key(k)] = vs
				return nil
			})
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) key(k []byte) string {
	if s, ok := d.intern[string(k)]; ok {
		return s
	}
	if d.intern == nil {
		d.intern = make(map[string]string, 64)
	}
	s := string(k)
	d.intern[s] = s
	return s
}

func (d *decoder) objectRef(r *objectRef) error {
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "resource":
			r.Resource, err = d.istr()
		case "namespace":
			r.Namespace, err = d.istr()
		case "name":
			r.Name, err = d.str()
		case "uid":
			r.UID, err = d.str()
		case "apiGroup":
			r.APIGroup, err = d.istr()
		case "apiVersion":
			r.APIVersion, err = d.istr()
		case "resourceVersion":
			r.ResourceVersion, err = d.str()
		case "subresource":
			r.Subresource, err = d.istr()
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) status(s *responseStatus) error {
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "code":
			var n int64
			n, err = d.int(32)
			s.Code = int32(n)
		case "status":
			s.Status, err = d.istr()
		case "reason":
			s.Reason, err = d.istr()
		case "message":
			s.Message, err = d.str()
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) stringMap(m map[string]string) (map[string]string, error) {
	if d.null() {
		return m, nil
	}
	if m == nil {
		m = map[string]string{}
	}
	err := d.object(func(k []byte) error {
		v, err := d.str()
		m[d.key(k)] = v
		return err
	})
	return m, err
}

func (d *decoder) stats(s *eventStats) error {
	if d.null() {
		return nil
	}
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "fields":
			var n int64
			n, err = d.int(strconv.IntSize)
			s.Fields = int(n)
		case "truncated":
			s.Truncated, err = d.bool()
		case "detectors":
			if d.null() {
				return nil
			}
			if s.Detectors == nil {
				s.Detectors = map[string]int{}
			}
			err = d.object(func(k []byte) error {
				n, err := d.int(strconv.IntSize)
				s.Detectors[d.key(k)] = int(n)
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
}
