package policy

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// lazyJSONValue returns the CEL value of a JSON document as decodeJSONValue does, except that a
// top-level object is decoded as the condition reads it: the document is validated at once (the
// same errors as decodeJSONValue), and each object's members are located on the first lookup,
// each value decoded on its first use. A condition reads a few fields of an object whose most
// members (status, managedFields, the other containers' settings) it never touches; building
// every one of them cost more than evaluating the conditions. Any operation on an object other
// than a lookup by string key (size, iteration, equality, conversion) decodes its members into a
// map as decodeJSONValue does and answers from it, so the values behave exactly as
// decodeJSONValue's. Arrays are decoded into lists of such values when first used.
//
// The values are for one evaluation: they are not safe for concurrent use.
func lazyJSONValue(a types.Adapter, data []byte) (ref.Val, error) {
	return new(jsonDoc).load(a, data)
}

// load is lazyJSONValue with doc's buffers: what doc held before is dropped, and the values it
// returned before must no longer be used (see reset).
func (doc *jsonDoc) load(a types.Adapter, data []byte) (ref.Val, error) {
	doc.reset()
	c := jsonChecker{jsonDecoder: jsonDecoder{data: data, adapter: a}}
	if len(data) <= math.MaxUint32 {
		// Where each object and array ends, so that locating members skips them at once.
		if n := bytes.Count(data, []byte{'{'}) + bytes.Count(data, []byte{'['}); cap(doc.spans) >= n {
			c.spans = doc.spans[:0]
		} else {
			c.spans = make([]jsonSpan, 0, n)
		}
	}
	c.space()
	if err := c.check(0); err != nil {
		return nil, err
	}
	c.space()
	if c.pos != len(c.data) {
		return nil, c.errorf("data after the top-level value")
	}
	start := jsonlex.SkipSpace(data, 0)
	if data[start] != '{' || len(data) > math.MaxUint32 {
		return decodeJSONValue(a, data)
	}
	doc.data, doc.adapter, doc.spans = data, a, c.spans
	return doc.object(start), nil
}

// jsonChecker validates a JSON document, as jsonDecoder decodes it, and records where its
// objects and arrays end (when spans is not nil).
type jsonChecker struct {
	jsonDecoder
	spans []jsonSpan
}

// jsonSpan is where an object or array starts and ends (just after its closing byte).
type jsonSpan struct{ start, end uint32 }

// check validates the value at d.pos and moves past it, as value would, building nothing.
func (d *jsonChecker) check(depth int) error {
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end")
	}
	switch c := d.data[d.pos]; {
	case c == '{', c == '[':
		if depth >= maxJSONDepth {
			return d.errorf("nested too deeply")
		}
		return d.checkContainer(depth+1, c)
	case c == '"':
		end, _, err := jsonlex.Lenient.ScanString(d.data, d.pos)
		if err != nil {
			return d.lexError(err)
		}
		d.pos = end
		return nil
	case c == '-' || jsonlex.IsDigit(c):
		end, err := jsonlex.ScanNumber(d.data, d.pos)
		if err != nil {
			return d.lexError(err)
		}
		text := d.data[d.pos:end]
		d.pos = end
		if mayOverflow(text) {
			if _, err := strconv.ParseFloat(string(text), 64); err != nil {
				return d.errorf("number %s: %v", text, err)
			}
		}
		return nil
	default:
		end, err := jsonlex.ScanLiteral(d.data, d.pos)
		if err != nil {
			return d.lexError(err)
		}
		d.pos = end
		return nil
	}
}

// checkContainer validates the object or array at d.pos, as object and array would.
func (d *jsonChecker) checkContainer(depth int, open byte) error {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	span := -1
	if d.spans != nil {
		span = len(d.spans)
		d.spans = append(d.spans, jsonSpan{start: uint32(d.pos)})
	}
	d.pos++
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == closing {
		d.pos++
		if span >= 0 {
			d.spans[span].end = uint32(d.pos)
		}
		return nil
	}
	for {
		d.space()
		if open == '{' {
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				return d.errorf("expected a key")
			}
			end, _, err := jsonlex.Lenient.ScanString(d.data, d.pos)
			if err != nil {
				return d.lexError(err)
			}
			d.pos = end
			d.space()
			if d.pos >= len(d.data) || d.data[d.pos] != ':' {
				return d.errorf("expected ':'")
			}
			d.pos++
			d.space()
		}
		if err := d.check(depth); err != nil {
			return err
		}
		more, err := d.next(closing)
		if err != nil {
			return err
		}
		if !more {
			if span >= 0 {
				d.spans[span].end = uint32(d.pos)
			}
			return nil
		}
	}
}

// mayOverflow reports whether a JSON number may be outside float64's range, which
// strconv.ParseFloat refuses: only one with an exponent or with more integer digits than
// the largest float64 (about 1.8e308) has.
func mayOverflow(num []byte) bool {
	digits, fraction := 0, false
	for _, c := range num {
		switch {
		case c == 'e' || c == 'E':
			return true
		case c == '.':
			fraction = true
		case jsonlex.IsDigit(c) && !fraction:
			digits++
		}
	}
	return digits > 300
}

// jsonDoc is the document lazy values are decoded from. It has been validated.
type jsonDoc struct {
	data    []byte
	adapter types.Adapter
	// spans are the document's objects and arrays, in the order they start.
	spans []jsonSpan
	// objects and members are allocated from here: one evaluation reads a few of each.
	objects []jsonObject
	members []jsonMember
	arrays  []jsonArray
	items   []ref.Val
	// scratch holds an escaped key unescaped, for comparing it.
	scratch []byte
}

// reset empties doc for another document, keeping its buffers: every value it returned before
// is invalid from then on (an evaluation resets its documents only once it is over). It drops
// every reference into the document it held, so a document kept for reuse holds nothing of a
// request.
func (doc *jsonDoc) reset() {
	// A slab is used from its start, and cleared up to its length at every reset: what lies
	// beyond holds nothing. scratch is rewritten from its start for every key, so a shorter key
	// leaves a longer one's tail past its length: it is cleared whole. spans hold offsets only.
	clear(doc.objects)
	clear(doc.members)
	clear(doc.arrays)
	clear(doc.items)
	clear(doc.scratch[:cap(doc.scratch)])
	*doc = jsonDoc{spans: keep(doc.spans), objects: keep(doc.objects), members: keep(doc.members),
		arrays: keep(doc.arrays), items: keep(doc.items), scratch: keep(doc.scratch)}
}

// maxKept is the capacity beyond which reset drops a buffer rather than keep it: one large
// object must not make every idle evaluation hold as much.
const maxKept = 4096

// keep returns s emptied, or nil when it is too large to keep.
func keep[T any](s []T) []T {
	if cap(s) > maxKept {
		return nil
	}
	return s[:0]
}

// object returns the lazy object at data[start].
func (doc *jsonDoc) object(start int) *jsonObject {
	if len(doc.objects) == cap(doc.objects) {
		doc.objects = make([]jsonObject, 0, 8)
	}
	doc.objects = append(doc.objects, jsonObject{doc: doc, start: start})
	return &doc.objects[len(doc.objects)-1]
}

// value decodes the value at data[start:], which is valid JSON: objects lazily, arrays into
// lists of lazily decoded values, scalars at once.
func (doc *jsonDoc) value(start int) ref.Val {
	switch doc.data[start] {
	case '{':
		return doc.object(start)
	case '[':
		if len(doc.arrays) == cap(doc.arrays) {
			doc.arrays = make([]jsonArray, 0, 4)
		}
		doc.arrays = append(doc.arrays, jsonArray{doc: doc, start: start})
		return &doc.arrays[len(doc.arrays)-1]
	}
	d := jsonDecoder{data: doc.data, pos: start, adapter: doc.adapter}
	v, err := d.value(0)
	if err != nil {
		// The document was validated: this cannot happen.
		return types.NewErr("invalid JSON: %v", err)
	}
	return v
}

// skip returns the index just after the value at data[start].
func (doc *jsonDoc) skip(start int) int {
	switch doc.data[start] {
	case '{', '[':
		if i, ok := slices.BinarySearchFunc(doc.spans, uint32(start), func(s jsonSpan, start uint32) int {
			return cmp.Compare(s.start, start)
		}); ok {
			return int(doc.spans[i].end)
		}
	case '"':
		end, _, _ := jsonlex.Lenient.ScanString(doc.data, start)
		return end
	}
	end, _ := jsonlex.Lenient.SkipValue(doc.data, start, 0)
	return end
}

// newMembers returns a slice of n members.
func (doc *jsonDoc) newMembers(n int) []jsonMember {
	if cap(doc.members)-len(doc.members) < n {
		doc.members = make([]jsonMember, 0, max(n, 24))
	}
	m := doc.members[len(doc.members) : len(doc.members)+n : len(doc.members)+n]
	doc.members = doc.members[:len(doc.members)+n]
	return m
}

// newItems returns a copy of items, never nil.
func (doc *jsonDoc) newItems(items []ref.Val) []ref.Val {
	n := len(items)
	if n == 0 {
		return []ref.Val{}
	}
	if cap(doc.items)-len(doc.items) < n {
		doc.items = make([]ref.Val, 0, max(n, 16))
	}
	out := doc.items[len(doc.items) : len(doc.items)+n : len(doc.items)+n]
	doc.items = doc.items[:len(doc.items)+n]
	copy(out, items)
	return out
}

// jsonMember is one member of a lazily decoded object: offsets in the document, which
// lazyJSONValue only decodes lazily when they fit in 32 bits.
type jsonMember struct {
	// keyStart and keyEnd delimit the key's body; when escaped, it goes through
	// jsonlex.Unescape to give the key (jsonObject.keyOf).
	keyStart, keyEnd uint32
	escaped          bool
	// start is where the value begins; val is the value once decoded.
	start uint32
	val   ref.Val
}

// jsonObject is a JSON object as a CEL map (see lazyJSONValue).
type jsonObject struct {
	doc     *jsonDoc
	start   int // the opening brace
	members []jsonMember
	indexed bool
	// full is the object as decodeJSONValue's map, built on first use.
	full traits.Mapper
}

var (
	_ traits.Mapper   = (*jsonObject)(nil)
	_ traits.Foldable = (*jsonObject)(nil)
	_ traits.Zeroer   = (*jsonObject)(nil)
	_ traits.Lister   = (*jsonArray)(nil)
	_ traits.Foldable = (*jsonArray)(nil)
	_ traits.Zeroer   = (*jsonArray)(nil)
)

// index locates the members.
func (o *jsonObject) index() {
	if o.indexed {
		return
	}
	o.indexed = true
	data := o.doc.data
	pos := jsonlex.SkipSpace(data, o.start+1)
	if data[pos] == '}' {
		return
	}
	// Most objects have few members: collect them here, then take what they need from the
	// document's members.
	var buf [16]jsonMember
	members := buf[:0]
	for {
		pos = jsonlex.SkipSpace(data, pos)
		keyEnd, esc, _ := jsonlex.Lenient.ScanString(data, pos)
		m := jsonMember{keyStart: uint32(pos + 1), keyEnd: uint32(keyEnd - 1), escaped: esc}
		pos = jsonlex.SkipSpace(data, keyEnd) + 1 // the colon
		pos = jsonlex.SkipSpace(data, pos)
		m.start = uint32(pos)
		members = append(members, m)
		var more bool
		if pos, more, _ = jsonlex.Next(data, o.doc.skip(pos), '}'); !more {
			break
		}
	}
	o.members = o.doc.newMembers(len(members))
	copy(o.members, members)
}

// member returns the value of member i.
func (o *jsonObject) member(i int) ref.Val {
	m := &o.members[i]
	if m.val == nil {
		m.val = o.doc.value(int(m.start))
	}
	return m.val
}

// keyOf returns member i's key.
func (o *jsonObject) keyOf(i int) string {
	m := &o.members[i]
	body := o.doc.data[m.keyStart:m.keyEnd]
	if m.escaped {
		return string(jsonlex.Unescape(make([]byte, 0, len(body)), body))
	}
	return string(body)
}

// maxScannedMembers is the most members Find compares keys with; it looks a key up in the map
// of a larger object.
const maxScannedMembers = 32

// Find implements traits.Mapper. Of duplicate keys the last wins, as in decodeJSONValue.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return o.materialize().Find(key)
	}
	o.index()
	if o.full != nil || len(o.members) > maxScannedMembers {
		// A lookup in a large object, or in one a condition iterates over, must not cost as
		// much as the object is large.
		return o.materialize().Find(key)
	}
	for i := len(o.members) - 1; i >= 0; i-- {
		m := &o.members[i]
		body := o.doc.data[m.keyStart:m.keyEnd]
		if m.escaped {
			// Unescaped into the document's scratch buffer: no allocation per key compared.
			o.doc.scratch = jsonlex.Unescape(o.doc.scratch[:0], body)
			body = o.doc.scratch
		}
		if string(body) == string(k) {
			return o.member(i), true
		}
	}
	return nil, false
}

// Get implements traits.Indexer, as baseMap does.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container.
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	_, found := o.Find(key)
	return types.Bool(found)
}

// materialize returns the object as decodeJSONValue's map of the same (lazy) values.
func (o *jsonObject) materialize() traits.Mapper {
	if o.full != nil {
		return o.full
	}
	o.index()
	m := make(map[ref.Val]ref.Val, len(o.members))
	for i := range o.members {
		m[types.String(o.keyOf(i))] = o.member(i)
	}
	o.full = types.NewRefValMap(o.doc.adapter, m)
	return o.full
}

func (o *jsonObject) Iterator() traits.Iterator { return o.materialize().Iterator() }
func (o *jsonObject) Size() ref.Val             { return o.materialize().Size() }
func (o *jsonObject) Type() ref.Type            { return types.MapType }
func (o *jsonObject) Value() any                { return o.materialize().Value() }
func (o *jsonObject) Equal(other ref.Val) ref.Val {
	return o.materialize().Equal(other)
}
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.materialize().ConvertToNative(t)
}
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val { return o.materialize().ConvertToType(t) }
func (o *jsonObject) IsZeroValue() bool                { return o.materialize().(traits.Zeroer).IsZeroValue() }
func (o *jsonObject) Fold(f traits.Folder)             { o.materialize().(traits.Foldable).Fold(f) }
func (o *jsonObject) String() string                   { return fmt.Sprint(o.materialize()) }

// jsonArray is a JSON array as a CEL list, decoded on first use into a list of lazily decoded
// values.
type jsonArray struct {
	doc   *jsonDoc
	start int // the opening bracket
	full  traits.Lister
}

func (l *jsonArray) materialize() traits.Lister {
	if l.full != nil {
		return l.full
	}
	data := l.doc.data
	// Most arrays are short: collect the items here, then take what they need from the
	// document's items.
	var buf [16]ref.Val
	items := buf[:0]
	pos := jsonlex.SkipSpace(data, l.start+1)
	if data[pos] != ']' {
		for {
			pos = jsonlex.SkipSpace(data, pos)
			items = append(items, l.doc.value(pos))
			var more bool
			if pos, more, _ = jsonlex.Next(data, l.doc.skip(pos), ']'); !more {
				break
			}
		}
	}
	l.full = types.NewRefValList(l.doc.adapter, l.doc.newItems(items))
	return l.full
}

func (l *jsonArray) Add(other ref.Val) ref.Val        { return l.materialize().Add(other) }
func (l *jsonArray) Contains(v ref.Val) ref.Val       { return l.materialize().Contains(v) }
func (l *jsonArray) Get(i ref.Val) ref.Val            { return l.materialize().Get(i) }
func (l *jsonArray) Iterator() traits.Iterator        { return l.materialize().Iterator() }
func (l *jsonArray) Size() ref.Val                    { return l.materialize().Size() }
func (l *jsonArray) Type() ref.Type                   { return types.ListType }
func (l *jsonArray) Value() any                       { return l.materialize().Value() }
func (l *jsonArray) Equal(other ref.Val) ref.Val      { return l.materialize().Equal(other) }
func (l *jsonArray) ConvertToType(t ref.Type) ref.Val { return l.materialize().ConvertToType(t) }
func (l *jsonArray) IsZeroValue() bool                { return l.materialize().(traits.Zeroer).IsZeroValue() }
func (l *jsonArray) Fold(f traits.Folder)             { l.materialize().(traits.Foldable).Fold(f) }
func (l *jsonArray) String() string                   { return fmt.Sprint(l.materialize()) }
func (l *jsonArray) ConvertToNative(t reflect.Type) (any, error) {
	return l.materialize().ConvertToNative(t)
}
