package enricher

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitEventList(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		kind, api string
		items     []string
		wantErr   bool
	}{
		{"typical", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"a":1},{"b":"]}"}]}`,
			"EventList", "audit.k8s.io/v1", []string{`{"a":1}`, `{"b":"]}"}`}, false},
		{"white space and order", " {\n\"items\" : [ {\"x\":[1,{\"y\":\"\\\"}\"}]} ] , \"kind\":\"EventList\", \"apiVersion\":\"audit.k8s.io/v1\"}\n",
			"EventList", "audit.k8s.io/v1", []string{`{"x":[1,{"y":"\"}"}]}`}, false},
		{"no items", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`, "EventList", "audit.k8s.io/v1", nil, false},
		{"null items", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":null}`, "EventList", "audit.k8s.io/v1", nil, false},
		{"empty object", `{}`, "", "", nil, false},
		{"not an object", `[{"a":1}]`, "", "", nil, true},
		{"truncated", `{"kind":"EventList","items":[{"a":1}`, "", "", nil, true},
		{"unterminated string", `{"kind":"EventList","items":[{"a":"1}]}`, "", "", nil, true},
		{"mismatched brackets", `{"items":[{"a":[1}]]}`, "", "", nil, true},
		{"item not an object", `{"items":[1]}`, "", "", nil, true},
		{"trailing data", `{"items":[]} x`, "", "", nil, true},
		{"control character", "{\"kind\":\"Event\x01List\"}", "", "", nil, true},
		{"missing colon", `{"kind" "EventList"}`, "", "", nil, true},
		{"empty", ``, "", "", nil, true},
		{"items twice", `{"items":[{"a":1}],"items":[{"b":2}]}`, "", "", nil, true},
		{"items not an array", `{"items":{"a":1}}`, "", "", nil, true},
		{"escaped kind", `{"kind":"Event\u004cist","apiVersion":"audit.k8s.io/v1","items":[]}`, "EventList", "audit.k8s.io/v1", nil, false},
		{"overlong kind", `{"kind":"` + strings.Repeat("x", 2000) + `","items":[]}`, "", "", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := splitEventList([]byte(tc.in))
			if tc.wantErr {
				require.Error(t, err)
				assert.True(t, errors.Is(err, errSyntax))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.kind, l.Kind)
			assert.Equal(t, tc.api, l.APIVersion)
			var got []string
			for _, it := range l.Items {
				got = append(got, string(it))
			}
			assert.Equal(t, tc.items, got)
		})
	}
}

func TestSplitEventListMatchesEncodingJSON(t *testing.T) {
	body := testEventList(0, 50, genOptions{id: "split"})
	l, err := splitEventList(body)
	require.NoError(t, err)
	var want struct{ Items []json.RawMessage }
	require.NoError(t, json.Unmarshal(body, &want))
	require.Len(t, l.Items, len(want.Items))
	for i := range want.Items {
		assert.JSONEq(t, string(want.Items[i]), string(l.Items[i]))
	}
}

func FuzzSplitEventList(f *testing.F) {
	f.Add([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"a":1}]}`))
	f.Add(testEventList(0, 3, genOptions{id: "fuzz"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := splitEventList(b)
		if err != nil {
			return
		}
		// Whatever it accepts as items are bracket-balanced objects within the input.
		for _, it := range l.Items {
			require.NotEmpty(t, it)
			require.Equal(t, byte('{'), it[0])
			require.Equal(t, byte('}'), it[len(it)-1])
		}
	})
}

// bigEvent returns an audit event whose request and response objects hold size bytes each, and
// whose annotations hold annotations bytes.
func bigEvent(size, annotations int) string {
	return `{"level":"RequestResponse","auditID":"big-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/configmaps","verb":"create",` +
		`"user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"a","name":"big","apiVersion":"v1"},"responseStatus":{"code":201},` +
		`"requestObject":{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"` + strings.Repeat("a", size) + `"}},` +
		`"responseObject":{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"` + strings.Repeat("b", size) + `"}},` +
		`"requestReceivedTimestamp":"2026-11-26T02:00:00.000001Z","stageTimestamp":"2026-11-26T02:00:00.000002Z",` +
		`"annotations":{"authorization.k8s.io/decision":"allow","note":"` + strings.Repeat("n", annotations) + `"}}`
}

func TestEventReaderCutsLargeEvents(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name          string
		event         string
		wantTruncated string
		wantObjects   bool
		wantNote      bool
	}{
		{"fits", bigEvent(10<<10, 100), "", true, true},
		{"objects too large", bigEvent(40<<10, 100), "event larger than 65536 bytes", false, true},
		{"one object alone too large", bigEvent(100<<10, 100), "event larger than 65536 bytes", false, true},
		{"annotations too large", bigEvent(100, 100<<10), `event larger than 65536 bytes; dropped too large "annotations"`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + tc.event + `,{"auditID":"next"}]}`
			r := newEventListReader(strings.NewReader(list), limit)
			ev, why, err := r.next()
			require.NoError(t, err)
			assert.Equal(t, tc.wantTruncated, why)
			assert.LessOrEqual(t, len(ev), limit+1)
			var got map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(ev, &got), "the cut event is valid JSON")
			assert.JSONEq(t, `"big-1"`, string(got["auditID"]))
			assert.JSONEq(t, `{"username":"alice"}`, string(got["user"]))
			_, hasReq := got["requestObject"]
			_, hasResp := got["responseObject"]
			assert.Equal(t, tc.wantObjects, hasReq)
			assert.Equal(t, tc.wantObjects, hasResp)
			_, hasNote := got["annotations"]
			assert.Equal(t, tc.wantNote, hasNote)
			if !tc.wantObjects || !tc.wantNote {
				var full map[string]json.RawMessage
				require.NoError(t, json.Unmarshal([]byte(tc.event), &full))
				for k, v := range got {
					assert.JSONEq(t, string(full[k]), string(v), "member %s is kept as it was", k)
				}
			}
			ev, _, err = r.next()
			require.NoError(t, err)
			assert.JSONEq(t, `{"auditID":"next"}`, string(ev), "the reader continues after a cut event")
			_, _, err = r.next()
			require.ErrorIs(t, err, io.EOF)
		})
	}
}

// repeatReader yields n bytes of c.
type repeatReader struct {
	c byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n)
	for i := range p[:n] {
		p[i] = r.c
	}
	r.n -= n
	return n, nil
}

// TestEventReaderMemory reads a 50 MB event: the reader allocates about its limit, not the
// event's size.
func TestEventReaderMemory(t *testing.T) {
	const size, limit = 50 << 20, 1 << 20
	src := io.MultiReader(
		strings.NewReader(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"huge","stage":"ResponseComplete","requestObject":{"data":"`),
		&repeatReader{c: 'x', n: size},
		strings.NewReader(`"},"verb":"update"}]}`),
	)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newEventListReader(src, limit)
	ev, why, err := r.next()
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	assert.NotEmpty(t, why)
	assert.JSONEq(t, `{"auditID":"huge","stage":"ResponseComplete","verb":"update"}`, string(ev))
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading a %d MiB event allocated %d KiB", size>>20, allocated>>10)
	// append grows a large slice by a quarter at a time, so the allocations add up to a few
	// times the limit; what is live at once is about the limit.
	assert.Less(t, allocated, uint64(8*limit), "memory is bounded by the limit, not the event")
	_, _, err = r.next()
	require.ErrorIs(t, err, io.EOF)
}

func TestEventLinesReader(t *testing.T) {
	in := `{"auditID":"a","stage":"ResponseComplete"}` + "\n" +
		"\n" +
		`this is not an event` + "\n" +
		`{"auditID":"b","stage":"ResponseComplete"}  ` + "\n" +
		`{"auditID":"c",` + "\n" +
		`{"auditID":"d"} trailing` + "\n" +
		bigEvent(40<<10, 10) + "\n" +
		`{"auditID":"e","stage":"ResponseComplete"}`
	r := newEventLinesReader(strings.NewReader(in), 64<<10)
	var ids []string
	var bad, cut int
	for {
		ev, why, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			require.ErrorIs(t, err, errSyntax)
			assert.NotContains(t, err.Error(), "not an event", "errors name offsets, not content")
			bad++
			continue
		}
		if why != "" {
			cut++
		}
		var e struct{ AuditID string }
		require.NoError(t, json.Unmarshal(ev, &e))
		ids = append(ids, e.AuditID)
	}
	assert.Equal(t, []string{"a", "b", "big-1", "e"}, ids)
	assert.Equal(t, 3, bad)
	assert.Equal(t, 1, cut)
	assert.Equal(t, int64(len(in)), r.offset())
}

func FuzzEventLinesReader(f *testing.F) {
	f.Add([]byte(`{"a":1}` + "\n" + `{"b":[1,2]}` + "\n"))
	f.Add([]byte(bigEvent(100, 10) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newEventLinesReader(bytes.NewReader(b), 256)
		for range len(b) + 2 {
			ev, _, err := r.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err == nil {
				require.LessOrEqual(t, len(ev), 256+1)
				require.Equal(t, byte('{'), ev[0])
			}
		}
		t.Fatal("the reader does not advance")
	})
}

// eventList is a whole EventList read into memory: what the tests compare with.
type eventList struct {
	Kind, APIVersion string
	// Items are the raw bytes of each event (cut as the reader cuts them).
	Items [][]byte
}

// splitEventList reads a whole EventList held in memory, copying its events.
func splitEventList(b []byte) (eventList, error) {
	var l eventList
	r := newEventListReader(bytes.NewReader(b), len(b)+1)
	for {
		ev, _, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return l, err
		}
		l.Items = append(l.Items, bytes.Clone(ev))
	}
	l.Kind, l.APIVersion = r.typeMeta()
	return l, nil
}

// TestEventReaderWholeEvents checks that an event the reader finds whole in its buffer (one
// scan) is the event reading it member by member gives (a source that yields one byte at a
// time never has an event buffered whole), and that what the one scan lets through without
// checking the grammar between its tokens is refused all the same: the packer masks every
// event before anything of it is kept, and the masker refuses invalid JSON.
func TestEventReaderWholeEvents(t *testing.T) {
	read := func(t *testing.T, src io.Reader, maxEvent int) ([][]byte, error) {
		t.Helper()
		r := newEventListReader(src, maxEvent)
		var out [][]byte
		for {
			ev, _, err := r.next()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, bytes.Clone(ev))
		}
	}
	t.Run("same events", func(t *testing.T) {
		for _, body := range [][]byte{
			testEventList(0, 40, genOptions{id: "whole", session: "s-1"}),
			[]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"a":"}]{["},{},{"b":[{"c":"\"}"}]}]}`),
		} {
			whole, err := read(t, bytes.NewReader(body), DefaultMaxEventBytes)
			require.NoError(t, err)
			members, err := read(t, iotest.OneByteReader(bytes.NewReader(body)), DefaultMaxEventBytes)
			require.NoError(t, err)
			require.Equal(t, members, whole)
		}
	})
	t.Run("white space inside an event", func(t *testing.T) {
		body := []byte("{\"items\":[{ \"a\" :\t[ 1 , 2 ] ,\n\"b\" : \"x y\" }]}")
		whole, err := read(t, bytes.NewReader(body), DefaultMaxEventBytes)
		require.NoError(t, err)
		members, err := read(t, iotest.OneByteReader(bytes.NewReader(body)), DefaultMaxEventBytes)
		require.NoError(t, err)
		require.Len(t, whole, 1)
		require.Len(t, members, 1)
		assert.JSONEq(t, string(members[0]), string(whole[0]))
	})
	t.Run("larger than the limit: cut as before", func(t *testing.T) {
		body := []byte(`{"items":[` + bigEvent(3000, 10) + `]}`)
		r := newEventListReader(bytes.NewReader(body), 4096)
		ev, why, err := r.next()
		require.NoError(t, err)
		assert.NotEmpty(t, why)
		assert.NotContains(t, string(ev), "requestObject")
	})
	t.Run("grammar errors are refused", func(t *testing.T) {
		m := newMasker(t)
		for _, item := range []string{
			`{"auditID" "x"}`, `{"auditID":"x",}`, `{"auditID":"x" "stage":"y"}`, `{,"auditID":"x"}`,
			`{"auditID":}`, `{"a":[1,]}`, `{"a":{"b" 1}}`, `{"auditID":"x","requestObject":{"kind":"Secret","data":{"p":"aHVudGVyMg=="},}}`,
			`{1:"x"}`, `{"auditID":tru}`,
		} {
			body := []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + item + `]}`)
			r := newEventListReader(bytes.NewReader(body), DefaultMaxEventBytes)
			p := newPacker(m, OriginWebhook, 0, func([]byte) error { return nil })
			var err error
			for err == nil {
				var ev []byte
				var cut string
				if ev, cut, err = r.next(); err == nil {
					err = p.add(ev, cut)
				}
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("item %s was accepted", item)
				continue
			}
			assert.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, errSyntax), "item %s: %v", item, err)
		}
	})
}
