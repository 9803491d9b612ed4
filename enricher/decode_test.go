package enricher

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestDecodeSharedMemoryKeepsEarlierMessages decodes messages one after the other with the memory
// the consumer keeps between them, while the events of the earlier ones are still held (as rows
// hold them until their INSERT): nothing of theirs may change.
func TestDecodeSharedMemoryKeepsEarlierMessages(t *testing.T) {
	var msgs [][]byte
	m := newMasker(t)
	for batch := range 6 {
		l, err := splitEventList(testEventList(batch*300, batch*300+300, genOptions{id: "mem", session: "s-1"}))
		require.NoError(t, err)
		p := newPacker(m, OriginWebhook, 0, func(b []byte) error { msgs = append(msgs, bytes.Clone(b)); return nil })
		for _, it := range l.Items {
			require.NoError(t, p.add(it, ""))
		}
		require.NoError(t, p.flush())
	}
	// A message with escapes and many strings in one array, larger than a block.
	many := make([]string, memBlock+3)
	for i := range many {
		many[i] = fmt.Sprintf(`"g\"%d"`, i)
	}
	msgs = append(msgs, []byte(`{"apiVersion":"enricher.gatehouse.dev/v1","kind":"MaskedEventList","items":[{"user":{"groups":[`+strings.Join(many, ",")+`]},"annotations":{"a\u0062":"c\"d"}}],"masking":[{}]}`))
	var mem decoderMem
	var held []auditEvent
	for _, msg := range msgs {
		var wb wireBatch
		require.NoError(t, decodeBatch(&mem, msg, &wb))
		held = append(held, wb.Items...)
	}
	var want []auditEvent
	for _, msg := range msgs {
		wb, err := referenceDecode(msg)
		require.NoError(t, err)
		want = append(want, wb.Items...)
	}
	require.Equal(t, want, held)
	last := held[len(held)-1]
	require.Len(t, last.User.Groups, memBlock+3)
	assert.Equal(t, `g"0`, last.User.Groups[0])
	assert.Equal(t, "c\"d", last.Annotations["ab"])
	// A slice cut from a block has no room to grow into its neighbours.
	g := held[0].User.Groups
	assert.Equal(t, len(g), cap(g))
}
