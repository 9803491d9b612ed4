package policy

import (
	"encoding/json"
	"testing"

	"github.com/google/cel-go/common/types"
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
