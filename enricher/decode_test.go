package enricher

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	kjson "sigs.k8s.io/json"
)

// referenceDecode decodes a message the way Kubernetes decodes JSON: encoding/json semantics
// with case-sensitive keys.
func referenceDecode(data []byte) (wireBatch, error) {
	var wb wireBatch
	err := kjson.UnmarshalCaseSensitivePreserveInts(data, &wb)
	return wb, err
}

func decodeSeed(t testing.TB) []byte {
	t.Helper()
	m := newMasker(t)
	l, err := splitEventList(testEventList(0, 20, genOptions{id: "dec", session: "s-1"}))
	require.NoError(t, err)
	var msg []byte
	p := newPacker(m, OriginWebhook, 0, func(b []byte) error { msg = append([]byte(nil), b...); return nil })
	for _, it := range l.Items {
		require.NoError(t, p.add(it, ""))
	}
	require.NoError(t, p.flush())
	return msg
}

func TestDecodeMatchesReference(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"real batch", string(decodeSeed(t))},
		{"escapes", `{"apiVersion":"enricher.gatehouse.dev/v1","kind":"MaskedEventList","origin":"web\u0068ook","items":[{"auditID":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800x","stage":"ResponseComplete","requestURI":"/x?\u003c","user":{"username":"\u0000z","extra":{"k\u0031":["v","\t"]}},"annotations":{"a":"b","a":"c"}}],"masking":[{"fields":2,"detectors":{"jwt":2},"truncated":true}]}`},
		{"nulls", `{"apiVersion":null,"kind":"MaskedEventList","items":[null,{"user":null,"impersonatedUser":null,"objectRef":null,"responseStatus":null,"sourceIPs":null,"annotations":null,"requestObject":null,"requestReceivedTimestamp":null}],"masking":[null,{"detectors":null}]}`},
		{"unknown fields and white space", " {\n\"x\":[1,2.5e3,-0,true,false,null,{\"y\":[]}],\"items\":[ { \"unknown\" : {\"deep\":[[[]]]} , \"responseStatus\" : { \"code\" : 403 , \"metadata\" : { } } } ] , \"masking\" : [ { } ] } "},
		{"invalid utf-8", "{\"items\":[{\"auditID\":\"a\xffb\"}],\"masking\":[{}]}"},
		{"duplicate arrays", `{"items":[{"sourceIPs":["a","b"],"sourceIPs":["c"]}],"masking":[{}]}`},
		{"objects kept verbatim", `{"items":[{"requestObject":{"b": [1, "x\"y"] },"responseObject":"text"}],"masking":[{}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, werr := referenceDecode([]byte(tc.data))
			var got wireBatch
			gerr := jsonUnmarshal([]byte(tc.data), &got)
			require.NoError(t, werr)
			require.NoError(t, gerr)
			assert.Equal(t, want, got)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, data := range []string{
		``, `{`, `[]`, `{"items":[{"auditID":1}]}`, `{"items":[{"responseStatus":{"code":"403"}}]}`,
		`{"items":[{"responseStatus":{"code":1.5}}]}`, `{"items":[{"responseStatus":{"code":99999999999}}]}`,
		`{"items":[{"stageTimestamp":"yesterday"}]}`, `{"items":[{"auditID":"a\x01"}]}`, `{"items":[{"auditID":"\q"}]}`,
		`{"items":[{"auditID":"\u12"}]}`, `{"items":[]} {}`, `{"items":[{"user":{"extra":{"k":"v"}}}]}`,
		`{"items":[01]}`, `{"x":tru}`, `{"x":-}`, `{"x":1.}`, `{"x":1e}`, `{"masking":[{"truncated":"yes"}]}`,
	} {
		var wb wireBatch
		err := jsonUnmarshal([]byte(data), &wb)
		assert.Error(t, err, "%q", data)
		_, rerr := referenceDecode([]byte(data))
		assert.Error(t, rerr, "the reference rejects %q too", data)
	}
}

// FuzzDecodeBatch checks the decoder against the reference: same result or both errors.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(decodeSeed(f))
	f.Add([]byte(`{"items":[{"auditID":"\ud83d\ude00","annotations":{"a":"b"}}],"masking":[{"fields":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got wireBatch
		gerr := jsonUnmarshal(data, &got)
		want, werr := referenceDecode(data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decoder error %v, reference error %v", gerr, werr)
		}
		if gerr == nil {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			require.JSONEq(t, string(wj), string(gj))
		}
	})
}

// TestDecodeDepthMatchesReference checks the nesting limit at its edge: three levels (the
// batch, items and the event) plus n arrays.
func TestDecodeDepthMatchesReference(t *testing.T) {
	for _, n := range []int{9996, 9997, 9998, 10000} {
		data := `{"items":[{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}]}`
		var wb wireBatch
		gerr := jsonUnmarshal([]byte(data), &wb)
		_, rerr := referenceDecode([]byte(data))
		assert.Equal(t, rerr == nil, gerr == nil, "depth %d: %v, reference %v", n, gerr, rerr)
	}
}
