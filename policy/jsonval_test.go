package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

var jsonValueCorpus = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `1.0`, `1.5`, `1e3`, `-1E-3`, `1.5e+10`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`, `1e400`,
	`""`, `"a"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`,
	"\"\xff\xfe\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", `"\u12"`, `"\x"`, "\"a\x01\"", `"unterminated`,
	` { "a" : [ 1 , 2.5 , "x" , null , true , { "b" : { } } ] , "a" : "dup" } `,
	`{"metadata":{"name":"web","labels":{"team":"shop"}},"spec":{"containers":[{"name":"c","image":"i:1","ports":[{"containerPort":8080}]}]}}`,
	`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `{1:2}`, `[1 2]`, `01`, `-`, `1.`, `.5`, `+1`, `tru`, `nul`, `truex`, `{"a":1} x`, `[`, `{`, `"`,
}

// FuzzDecodeJSONValue checks that decodeJSONValue accepts what util/json.Unmarshal accepts and
// decodes it to the same values.
func FuzzDecodeJSONValue(f *testing.F) {
	for _, s := range jsonValueCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkJSONValue(t, data)
	})
}

func TestDecodeJSONValue(t *testing.T) {
	for _, s := range jsonValueCorpus {
		t.Run(s, func(t *testing.T) { checkJSONValue(t, []byte(s)) })
	}
	deep := make([]byte, 0, 2*maxJSONDepth+2)
	for range maxJSONDepth + 1 {
		deep = append(deep, '[')
	}
	for range maxJSONDepth + 1 {
		deep = append(deep, ']')
	}
	_, err := decodeJSONValue(types.DefaultTypeAdapter, deep)
	require.ErrorIs(t, err, errJSONSyntax, "nesting beyond encoding/json's limit is refused")
}

func checkJSONValue(t *testing.T, data []byte) {
	t.Helper()
	var want any
	wantErr := utiljson.Unmarshal(data, &want)
	got, err := decodeJSONValue(types.DefaultTypeAdapter, data)
	if wantErr != nil {
		require.Error(t, err, "util/json refuses %q: %v", data, wantErr)
		return
	}
	require.NoError(t, err, "%q", data)
	native, err := nativeJSON(got)
	require.NoError(t, err)
	// Compare through JSON too: map order and number types are what matter.
	assert.Equal(t, want, native, "%q", data)
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	gotJSON, err := json.Marshal(native)
	require.NoError(t, err)
	assert.JSONEq(t, string(wantJSON), string(gotJSON))
}

// FuzzLazyJSONValue checks that lazyJSONValue refuses what decodeJSONValue refuses, with the same
// error, and that its values are decodeJSONValue's, whether a condition looks fields up first or
// uses a whole object or list first.
func FuzzLazyJSONValue(f *testing.F) {
	for _, s := range jsonValueCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLazyJSONValue(t, data)
	})
}

func TestLazyJSONValue(t *testing.T) {
	corpus := append(slices.Clone(jsonValueCorpus),
		`{"a":{"b":[{"c":1},{"c":2}]},"a":{"b":[]}}`, `{"\u0061":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"k\"ey":{"x":null}}`,
		`{"n":1e400}`, `{"n":-1e400}`, `{"n":1e-400}`, `{"n":0.1e700}`, `0.1e700A`, `{"n":1`+strings.Repeat("0", 400)+`}`, `{"l":[1,[2,[3,{}]]],"m":{}}`, `{"a":[`, `{"a":1} {}`, `  {"a" : "b" }  `, manyMembers(40))
	for _, s := range corpus {
		t.Run(s, func(t *testing.T) { checkLazyJSONValue(t, []byte(s)) })
	}
	deep := []byte(`{"a":`)
	for range maxJSONDepth {
		deep = append(deep, '[')
	}
	for range maxJSONDepth {
		deep = append(deep, ']')
	}
	deep = append(deep, '}')
	_, err := lazyJSONValue(types.DefaultTypeAdapter, deep)
	require.ErrorIs(t, err, errJSONSyntax, "nesting beyond encoding/json's limit is refused")
}

func checkLazyJSONValue(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeJSONValue(types.DefaultTypeAdapter, data)
	got, err := lazyJSONValue(types.DefaultTypeAdapter, data)
	if wantErr != nil {
		require.Error(t, err, "decodeJSONValue refuses %q: %v", data, wantErr)
		assert.Equal(t, wantErr.Error(), err.Error(), "%q", data)
		return
	}
	require.NoError(t, err, "%q", data)
	// Lookups first, then the whole value.
	sameJSONValue(t, want, got, "$")
	assert.Equal(t, types.True, got.Equal(want), "%q", data)
	assert.Equal(t, types.True, want.Equal(got), "%q", data)
	// The whole value first, on a fresh one.
	got, err = lazyJSONValue(types.DefaultTypeAdapter, data)
	require.NoError(t, err)
	wantNative, err := nativeJSON(want)
	require.NoError(t, err)
	gotNative, err := nativeJSON(got)
	require.NoError(t, err)
	assert.Equal(t, wantNative, gotNative, "%q", data)
	sameJSONValue(t, want, got, "$")
}

// sameJSONValue compares a lazily decoded value with decodeJSONValue's, looking each member up
// before it uses the whole object.
func sameJSONValue(t *testing.T, want, got ref.Val, path string) {
	t.Helper()
	switch w := want.(type) {
	case traits.Mapper:
		g, ok := got.(traits.Mapper)
		require.True(t, ok, "%s: a %T, want a map", path, got)
		var keys []ref.Val
		for it := w.Iterator(); it.HasNext() == types.True; {
			keys = append(keys, it.Next())
		}
		for _, k := range keys {
			gv, found := g.Find(k)
			require.True(t, found, "%s: key %v missing", path, k)
			wv, _ := w.Find(k)
			sameJSONValue(t, wv, gv, fmt.Sprintf("%s[%v]", path, k))
			assert.Equal(t, types.True, g.Contains(k), "%s: Contains(%v)", path, k)
		}
		_, found := g.Find(types.String("\x00absent"))
		assert.False(t, found, "%s: an absent key is found", path)
		assert.True(t, types.IsError(g.Get(types.String("\x00absent"))), "%s: Get of an absent key", path)
		_, found = g.Find(types.Int(1))
		assert.False(t, found, "%s: an int key is found", path)
		assert.Equal(t, w.Size(), g.Size(), path)
		assert.Equal(t, types.MapType, g.Type(), path)
		assert.Equal(t, w.(traits.Zeroer).IsZeroValue(), g.(traits.Zeroer).IsZeroValue(), path)
	case traits.Lister:
		g, ok := got.(traits.Lister)
		require.True(t, ok, "%s: a %T, want a list", path, got)
		require.Equal(t, w.Size(), g.Size(), path)
		for i := range int(w.Size().(types.Int)) {
			sameJSONValue(t, w.Get(types.Int(i)), g.Get(types.Int(i)), fmt.Sprintf("%s[%d]", path, i))
		}
		assert.Equal(t, types.ListType, g.Type(), path)
	default:
		assert.Equal(t, want, got, path)
	}
}

// manyMembers returns an object of n members, one of them duplicated.
func manyMembers(n int) string {
	var b strings.Builder
	b.WriteString(`{"m0":"first"`)
	for i := range n {
		fmt.Fprintf(&b, `,"m%d":{"i":%d}`, i, i)
	}
	b.WriteString("}")
	return b.String()
}
