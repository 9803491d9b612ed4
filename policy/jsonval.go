package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// decodeJSONValue decodes a JSON document into CEL values: objects into maps with string keys,
// arrays into lists, numbers into int when they are integers that fit (as
// k8s.io/apimachinery/pkg/util/json keeps them, and Kubernetes' CEL expects) and double
// otherwise, strings, bools and null.
//
// A condition reads the request's object as such values. Decoding into map[string]any first
// and letting CEL wrap each map and value again on every field a condition selects cost more
// than evaluating the conditions; this builds the values once per request. Its semantics are
// those of util/json.Unmarshal into an any: the last of duplicate keys wins and invalid UTF-8
// and lone surrogates become U+FFFD (FuzzDecodeJSONValue compares the two).
func decodeJSONValue(a types.Adapter, data []byte) (ref.Val, error) {
	d := jsonDecoder{data: data, adapter: a}
	d.space()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.pos != len(d.data) {
		return nil, d.errorf("data after the top-level value")
	}
	return v, nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = jsonlex.MaxDepth

// jsonDecoder builds CEL values from JSON text; the lexing is jsonlex's.
type jsonDecoder struct {
	data    []byte
	pos     int
	adapter types.Adapter
}

var errJSONSyntax = errors.New("invalid JSON")

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errJSONSyntax, d.pos, fmt.Sprintf(format, args...))
}

// lexError wraps an error of the lexer.
func (d *jsonDecoder) lexError(err error) error {
	return fmt.Errorf("%w: %w", errJSONSyntax, err)
}

// next consumes the separator after a member or element of the object or array that closing
// ends, and reports whether another follows.
func (d *jsonDecoder) next(closing byte) (more bool, err error) {
	if d.pos, more, err = jsonlex.Next(d.data, d.pos, closing); err != nil {
		return false, d.lexError(err)
	}
	return more, nil
}

func (d *jsonDecoder) space() {
	d.pos = jsonlex.SkipSpace(d.data, d.pos)
}

func (d *jsonDecoder) value(depth int) (ref.Val, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, d.errorf("nested too deeply")
		}
		return d.object(depth + 1)
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, d.errorf("nested too deeply")
		}
		return d.array(depth + 1)
	case c == '"':
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		return types.String(s), nil
	case c == '-' || jsonlex.IsDigit(c):
		return d.number()
	default:
		end, err := jsonlex.ScanLiteral(d.data, d.pos)
		if err != nil {
			return nil, d.lexError(err)
		}
		d.pos = end
		switch c {
		case 't':
			return types.True, nil
		case 'f':
			return types.False, nil
		}
		return types.NullValue, nil
	}
}

func (d *jsonDecoder) object(depth int) (ref.Val, error) {
	d.pos++ // {
	m := map[ref.Val]ref.Val{}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return types.NewRefValMap(d.adapter, m), nil
	}
	for {
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("expected a key")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("expected ':'")
		}
		d.pos++
		d.space()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[types.String(k)] = v
		more, err := d.next('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return types.NewRefValMap(d.adapter, m), nil
		}
	}
}

func (d *jsonDecoder) array(depth int) (ref.Val, error) {
	d.pos++ // [
	var items []ref.Val
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return types.NewRefValList(d.adapter, []ref.Val{}), nil
	}
	for {
		d.space()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		more, err := d.next(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return types.NewRefValList(d.adapter, items), nil
		}
	}
}

// number reads a JSON number: an int when it is an integer literal that fits int64, else a
// double, as util/json converts json.Number.
func (d *jsonDecoder) number() (ref.Val, error) {
	end, err := jsonlex.ScanNumber(d.data, d.pos)
	if err != nil {
		return nil, d.lexError(err)
	}
	text := string(d.data[d.pos:end])
	d.pos = end
	if !strings.ContainsAny(text, ".eE") {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return types.Int(i), nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		// Out of float64's range: encoding/json refuses it too.
		return nil, d.errorf("number %s: %v", text, err)
	}
	return types.Double(f), nil
}

// string reads a JSON string, as encoding/json unquotes it: invalid UTF-8 and lone surrogates
// become U+FFFD.
func (d *jsonDecoder) string() (string, error) {
	end, esc, err := jsonlex.Lenient.ScanString(d.data, d.pos)
	if err != nil {
		return "", d.lexError(err)
	}
	body := d.data[d.pos+1 : end-1]
	d.pos = end
	if !esc {
		return string(body), nil
	}
	return string(jsonlex.Unescape(make([]byte, 0, len(body)), body)), nil
}

// nativeJSON converts a CEL value holding JSON data back into what JSON decodes to:
// map[string]any, []any, string, int64, float64, bool and nil.
func nativeJSON(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return int64(v), nil
	case types.Double:
		return float64(v), nil
	case types.String:
		return string(v), nil
	case traits.Mapper:
		m := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is not a string", k)
			}
			val, err := nativeJSON(v.Get(k))
			if err != nil {
				return nil, err
			}
			m[string(ks)] = val
		}
		return m, nil
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, errors.New("list without a size")
		}
		l := make([]any, 0, int(n))
		for i := range int(n) {
			val, err := nativeJSON(v.Get(types.Int(i)))
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		return l, nil
	}
	return nil, fmt.Errorf("a %s is not JSON data", v.Type())
}
