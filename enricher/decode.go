package enricher

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// This file decodes the consumer's messages. encoding/json costs about 15 µs per audit event,
// the largest share of the pipeline; this decoder, written for exactly the types the consumer
// needs and built on package jsonlex's lexer, costs a fraction of that. It accepts what encoding/json accepts for these types
// (FuzzDecodeBatch compares the two) and fails on anything else, without panicking.

// jsonUnmarshal decodes a message into v, which must be a *wireBatch; the benchmarks' baseline
// decodes with it too.
func jsonUnmarshal(data []byte, v any) error {
	switch x := v.(type) {
	case *wireBatch:
		return decodeWith(&decoderMem{}, data, x)
	default:
		return json.Unmarshal(data, v)
	}
}

// decodeWith decodes a message into wb with the memory mem keeps between messages.
func decodeWith(mem *decoderMem, data []byte, wb *wireBatch) error {
	d := decoder{b: data, decoderMem: mem}
	return d.document(d.batch, wb)
}

type decoder struct {
	b     []byte
	i     int
	depth int
	*decoderMem
}

// decoderMem is what a decoder keeps between the messages it decodes, so that decoding a message
// allocates little more than the strings of its events: the interned values, and blocks from
// which the string slices and the structs the events point to are cut. A block is never written
// again where it was cut (the rows keep the slices until their INSERT): a full block is replaced,
// not reused.
type decoderMem struct {
	intern   map[string]string // repeated short values: verbs, resources, users, groups
	unesc    []byte            // scratch: an unescaped string value
	vals     []string          // scratch: the elements of the array being decoded
	strs     []string          // block of string slices
	refs     []objectRef
	users    []userInfo
	statuses []responseStatus
}

// memBlock is the number of elements of a decoderMem block.
const memBlock = 512

// cut returns a copy of vals in a slice cut from the block of string slices.
func (m *decoderMem) cut(vals []string) []string {
	if len(m.strs)+len(vals) > cap(m.strs) {
		m.strs = make([]string, 0, max(memBlock, len(vals)))
	}
	n := len(m.strs)
	m.strs = append(m.strs, vals...)
	return m.strs[n:len(m.strs):len(m.strs)]
}

// block returns a pointer to a new zero T from *b, a block of Ts.
func block[T any](b *[]T) *T {
	if len(*b) == cap(*b) {
		*b = make([]T, 0, memBlock)
	}
	*b = (*b)[:len(*b)+1]
	return &(*b)[len(*b)-1]
}

var errDecode = errors.New("invalid JSON")

func (d *decoder) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errDecode, what, d.i)
}

// lexFail turns an error of the lexer into the decoder's.
func (d *decoder) lexFail(err error) error {
	var se *jsonlex.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %s at offset %d", errDecode, se.Msg, se.Offset)
	}
	return fmt.Errorf("%w: %w", errDecode, err)
}

func (d *decoder) ws() { d.i = jsonlex.SkipSpace(d.b, d.i) }

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

// open consumes the opening byte of an object or array, and the white space after it.
func (d *decoder) open(c byte, what string) error {
	if d.i >= len(d.b) || d.b[d.i] != c {
		return d.fail(what)
	}
	if d.depth >= jsonlex.MaxDepth {
		return d.fail("nesting too deep")
	}
	d.depth++
	d.i = jsonlex.SkipSpace(d.b, d.i+1)
	return nil
}

// next consumes the separator after a member or element and reports whether another follows;
// at the end of the container it consumes the closing byte.
func (d *decoder) next(closing byte) (bool, error) {
	j, more, err := jsonlex.Next(d.b, d.i, closing)
	if err != nil {
		return false, d.lexFail(err)
	}
	d.i = j
	if !more {
		d.depth--
	}
	return more, nil
}

// object calls member for every member of an object; member must consume the value.
func (d *decoder) object(member func(key []byte) error) error {
	d.ws()
	if err := d.open('{', "expected an object"); err != nil {
		return err
	}
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		// A sub-slice of the input when the key has no escapes; never written to.
		key, err := d.stringBytes()
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
		if more, err := d.next('}'); err != nil || !more {
			return err
		}
	}
}

// array calls elem for every element of an array (or not at all for null).
func (d *decoder) array(elem func() error) error {
	if d.null() {
		return nil
	}
	if err := d.open('[', "expected an array"); err != nil {
		return err
	}
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if more, err := d.next(']'); err != nil || !more {
			return err
		}
	}
}

// skip consumes any value, checking it fully.
func (d *decoder) skip() error {
	d.ws()
	end, err := jsonlex.Lenient.SkipValue(d.b, d.i, d.depth)
	if err != nil {
		return d.lexFail(err)
	}
	d.i = end
	return nil
}

// number consumes a JSON number and returns its text.
func (d *decoder) number() ([]byte, error) {
	d.ws()
	start := d.i
	end, err := jsonlex.ScanNumber(d.b, d.i)
	if err != nil {
		return nil, d.lexFail(err)
	}
	d.i = end
	return d.b[start:end], nil
}

// int decodes a JSON number into an integer of bits bits, as encoding/json does (no fraction,
// no exponent, in range); null leaves it zero.
func (d *decoder) int(bits int) (int64, error) {
	if d.null() {
		return 0, nil
	}
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
	if d.i >= len(d.b) || (d.b[d.i] != 't' && d.b[d.i] != 'f') {
		return false, d.fail("expected a boolean")
	}
	end, err := jsonlex.ScanLiteral(d.b, d.i)
	if err != nil {
		return false, d.lexFail(err)
	}
	v := d.b[d.i] == 't'
	d.i = end
	return v, nil
}

// stringBytes decodes a JSON string. Without escapes (or invalid UTF-8, which encoding/json
// replaces) it returns a sub-slice of the input, which callers must not modify.
func (d *decoder) stringBytes() ([]byte, error) {
	body, esc, err := d.scanString()
	if esc {
		return jsonlex.Unescape(nil, body), nil
	}
	return body, err
}

// str decodes a string (null gives "").
func (d *decoder) str() (string, error) {
	if d.null() {
		return "", nil
	}
	b, err := d.valueBytes()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// valueBytes is stringBytes for a string value: an escaped one is unescaped into scratch
// space, valid until the next call.
func (d *decoder) valueBytes() ([]byte, error) {
	body, esc, err := d.scanString()
	if esc {
		d.unesc = jsonlex.Unescape(d.unesc[:0], body)
		return d.unesc, nil
	}
	return body, err
}

// scanString reads a JSON string and returns its body as it is in the input, and whether it
// has escapes.
func (d *decoder) scanString() (body []byte, esc bool, err error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false, d.fail("expected a string")
	}
	end, esc, err := jsonlex.Lenient.ScanString(d.b, d.i)
	if err != nil {
		return nil, false, d.lexFail(err)
	}
	body = d.b[d.i+1 : end-1]
	d.i = end
	return body, esc, nil
}

// istr decodes a string that is likely to repeat, sharing one copy per distinct value.
func (d *decoder) istr() (string, error) {
	if d.null() {
		return "", nil
	}
	b, err := d.valueBytes()
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

// strings decodes an array of strings (null and [] give nil).
func (d *decoder) strings() ([]string, error) {
	if d.null() {
		return nil, nil
	}
	start := len(d.vals)
	err := d.array(func() error {
		s, err := d.istr()
		d.vals = append(d.vals, s)
		return err
	})
	var out []string
	if vals := d.vals[start:]; err == nil && len(vals) > 0 {
		out = d.cut(vals)
	}
	clear(d.vals[start:])
	d.vals = d.vals[:start]
	return out, err
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
	if _, err := d.stringBytes(); err != nil {
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
				ev.ImpersonatedUser = block(&d.users)
			}
			err = d.user(ev.ImpersonatedUser)
		case "sourceIPs":
			ev.SourceIPs, err = d.strings()
		case "userAgent":
			ev.UserAgent, err = d.istr()
		case "objectRef":
			if d.null() {
				ev.ObjectRef = nil
				return nil
			}
			if ev.ObjectRef == nil {
				ev.ObjectRef = block(&d.refs)
			}
			err = d.objectRef(ev.ObjectRef)
		case "responseStatus":
			if d.null() {
				ev.ResponseStatus = nil
				return nil
			}
			if ev.ResponseStatus == nil {
				ev.ResponseStatus = block(&d.statuses)
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
			u.Groups, err = d.strings()
		case "extra":
			if d.null() {
				return nil
			}
			if u.Extra == nil {
				u.Extra = map[string][]string{}
			}
			err = d.object(func(k []byte) error {
				vs, err := d.strings()
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
	if len(k) > 128 {
		return string(k)
	}
	if d.intern == nil || len(d.intern) > 4096 {
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
