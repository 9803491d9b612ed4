package trail

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decoded is what DecodeAll yields for one record: its ID, or the error.
type decoded struct {
	ID  string
	Err string
}

func decodeAll(data []byte) []decoded {
	var out []decoded
	for r, err := range DecodeAll(data) {
		switch {
		case err != nil:
			out = append(out, decoded{Err: err.Error()})
		default:
			out = append(out, decoded{ID: r.Header().ID})
		}
	}
	return out
}

func encoded(t *testing.T, r Record) []byte {
	t.Helper()
	require.NoError(t, complete(r))
	data, err := marshal(r)
	require.NoError(t, err)
	return data
}

// TestDecodeAll decodes messages of one record (as every publisher so far has published them,
// whatever their content) and of several, malformed ones included: every record is decided on
// its own, in order.
func TestDecodeAll(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	req := func(id string) []byte {
		return encoded(t, &Request{Meta: Meta{ID: id, Time: at}, AuditID: id, SessionID: "s1", Operation: Operation{Verb: "get", Resource: "pods"}, Code: 200})
	}
	lines := func(ls ...[]byte) []byte { return []byte(strings.Join(strs(ls), "\n")) }
	indented, err := json.MarshalIndent(&Request{Meta: Meta{APIVersion: APIVersion, Kind: KindRequest, ID: "indented", Time: at}}, "", "  ")
	require.NoError(t, err)
	gossip := []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Gossip","id":"g"}`)
	tests := []struct {
		name string
		data []byte
		want []decoded
	}{
		{"one record, as published so far", req("a"), []decoded{{ID: "a"}}},
		{"one record, indented over lines", indented, []decoded{{ID: "indented"}}},
		{"several", lines(req("a"), req("b"), req("c")), []decoded{{ID: "a"}, {ID: "b"}, {ID: "c"}}},
		{"trailing newline", lines(req("a"), req("b"), nil), []decoded{{ID: "a"}, {ID: "b"}}},
		{"one record and a newline", lines(req("a"), nil), []decoded{{ID: "a"}}},
		{"empty lines", lines(nil, req("a"), []byte(" \r"), nil, req("b")), []decoded{{ID: "a"}, {ID: "b"}}},
		{"malformed second", lines(req("a"), []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","id":"x","code":"x"}`), req("c")),
			[]decoded{{ID: "a"}, {Err: `record 2: trail: decode Request record x: field code: a JSON string, not int`}, {ID: "c"}}},
		{"truncated second", lines(req("a"), req("b")[:40], req("c")),
			[]decoded{{ID: "a"}, {Err: "record 2: trail: decode record header: unexpected end of JSON input"}, {ID: "c"}}},
		{"malformed first", lines([]byte("{"), req("b")),
			[]decoded{{Err: "record 1: trail: decode record header: unexpected end of JSON input"}, {ID: "b"}}},
		{"two documents on a line", lines(req("a"), append(req("b"), req("c")...)),
			[]decoded{{ID: "a"}, {Err: "record 2: trail: decode record header: invalid character '{' after top-level value"}}},
		{"unknown kind between", lines(req("a"), gossip, req("c")),
			[]decoded{{ID: "a"}, {Err: `record 2: trail: unknown record kind: "Gossip"`}, {ID: "c"}}},
		{"empty", nil, []decoded{{Err: "trail: decode record header: unexpected end of JSON input"}}},
		{"blank lines only", []byte("\n \n"), []decoded{{Err: ErrNoRecord.Error()}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, decodeAll(tc.data))
		})
	}
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestDecodeAllOneRecordAsDecode checks that a message of one record decodes exactly as
// Decode decodes it, errors included: the format of every message published so far.
func TestDecodeAllOneRecordAsDecode(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, data := range [][]byte{
		encoded(t, &Decision{Meta: Meta{ID: "d", Time: at}, Component: "validating-webhook", Policy: Policy{Action: "allow"}}),
		encoded(t, &Session{Meta: Meta{ID: "s", Time: at}, SessionID: "s1", Event: SessionStarted}),
		[]byte(`{"apiVersion":"trail.gatehouse.dev/v2","kind":"Request"}`),
		[]byte(`not json`),
		[]byte(`{}`),
	} {
		want, wantErr := Decode(data)
		n := 0
		for got, err := range DecodeAll(data) {
			n++
			assert.Equal(t, want, got)
			assert.Equal(t, wantErr, err)
		}
		assert.Equal(t, 1, n)
	}
}

// TestDecodeAllErrors checks that the errors of a message of several records still match the
// sentinels consumers test for.
func TestDecodeAllErrors(t *testing.T) {
	data := []byte("{\"apiVersion\":\"x/v9\",\"kind\":\"Request\"}\n{\"apiVersion\":\"trail.gatehouse.dev/v1\",\"kind\":\"Request\",\"id\":\"a\"}")
	var errs []error
	for _, err := range DecodeAll(data) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 2)
	assert.ErrorIs(t, errs[0], ErrUnknownKind)
	assert.NoError(t, errs[1])
}

// TestDecodeAllStops checks that DecodeAll stops when its consumer does.
func TestDecodeAllStops(t *testing.T) {
	n := 0
	for range DecodeAll([]byte("{}\n{}\n{}")) {
		n++
		break
	}
	assert.Equal(t, 1, n)
}

// TestBatchMsgID checks that a message's ID depends on every record's ID and their order, and
// on nothing else, so that a message published again is stored once and no other is taken
// for it.
func TestBatchMsgID(t *testing.T) {
	ids := []string{"0190a1b2-0000-7000-8000-000000000001", "0190a1b2-0000-7000-8000-000000000002", "x"}
	id := batchMsgID(ids)
	assert.Equal(t, id, batchMsgID(append([]string(nil), ids...)), "deterministic")
	assert.True(t, strings.HasPrefix(id, ids[0]+"+2."), id)
	assert.Len(t, id, len(ids[0])+3+32)
	seen := map[string][]string{}
	for _, other := range [][]string{
		ids,
		{ids[1], ids[0], ids[2]},
		{ids[0], ids[1]},
		{ids[0], ids[1], "y"},
		{ids[0], ids[1] + "x"},
		{ids[0] + ids[1], "x"},
		{ids[0], ids[1], "x", ""},
	} {
		id := batchMsgID(other)
		assert.NotContains(t, seen, id, "%v and %v", seen[id], other)
		seen[id] = other
		for _, rid := range other {
			assert.NotEqual(t, rid, id)
		}
	}
}

// TestRecordIDs checks the IDs a loss report names.
func TestRecordIDs(t *testing.T) {
	assert.Equal(t, []string{"a", "#2", "c"}, recordIDs([]byte("{\"id\":\"a\"}\n{\n\n{\"id\":\"c\"}\n")))
}

// TestShortID: an ID is cut to 128 bytes at a character boundary, and a malformed record's
// decoding error names it so cut.
func TestShortID(t *testing.T) {
	long := strings.Repeat("x", 127) + "é" + strings.Repeat("Q", 5000)
	tests := []struct{ id, want string }{
		{"", ""},
		{"admission-u1-validating", "admission-u1-validating"},
		{strings.Repeat("a", 128), strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), strings.Repeat("a", 128)},
		{long, strings.Repeat("x", 127)},
	}
	for _, tc := range tests {
		got := ShortID(tc.id)
		assert.Equal(t, tc.want, got)
		assert.True(t, utf8.ValidString(got))
	}
	_, err := Decode([]byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","id":"` + long + `","code":"not a number"}`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Q")
	assert.Contains(t, err.Error(), strings.Repeat("x", 127))
}
