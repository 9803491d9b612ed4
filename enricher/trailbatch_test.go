package enricher

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// recordJSON returns a record's JSON as a publisher encodes it.
func recordJSON(t *testing.T, r trail.Record) []byte {
	t.Helper()
	m, err := trail.EncodeMsg(r, "test")
	require.NoError(t, err)
	return m.Data
}

func joinLines(lines ...[]byte) []byte { return bytes.Join(lines, []byte{'\n'}) }

// idList quotes ids for an IN clause.
func idList(ids []string) string {
	return "('" + strings.Join(ids, "','") + "')"
}

// TestTrailBatchesStored publishes records of every kind and of several sessions within one
// window of a publisher, which packs each subject's into one message: every record is stored
// once, nothing in ingest_errors.
func TestTrailBatchesStored(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "proxy/test", BatchDelay: time.Hour, MaxBatchRecords: trail.PackedRecords})
	require.NoError(t, err)
	ids := map[string][]string{}
	at := time.Now().UTC()
	for i := range 20 {
		for _, s := range []string{"s-1", "s-2", ""} {
			id := fmt.Sprintf("%s-%d", s, i)
			require.NoError(t, pub.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: "req-" + id, Time: at}, AuditID: "req-" + id, SessionID: s,
				Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200}))
			require.NoError(t, pub.Publish(ctx, &trail.Decision{Meta: trail.Meta{ID: "dec-" + id, Time: at}, SessionID: s, Component: "validating-webhook",
				AdmissionUID: id, Policy: trail.Policy{Action: "allow"}, Admitted: true}))
			require.NoError(t, pub.Publish(ctx, &trail.Session{Meta: trail.Meta{ID: "ses-" + id, Time: at}, SessionID: s, Event: trail.SessionActive}))
			require.NoError(t, pub.Publish(ctx, &trail.Approval{Meta: trail.Meta{ID: "apr-" + id, Time: at}, SessionID: s, ApprovalID: "ap-" + id,
				Event: trail.ApprovalRequested}))
			for _, k := range []string{"req", "dec", "ses", "apr"} {
				ids[k] = append(ids[k], k+"-"+id)
			}
		}
	}
	require.NoError(t, pub.Close(ctx))
	assert.Equal(t, uint64(4*3), streamMsgs(t, h.js, trail.StreamTrail), "one message per kind and session")

	for _, tc := range []struct{ kind, table string }{
		{"req", "gateway_requests"}, {"dec", "gateway_decisions"}, {"ses", "sessions"}, {"apr", "approvals"},
	} {
		h.waitRows(t, 60, 30*time.Second, "SELECT count() FROM {db}."+tc.table+" FINAL WHERE id IN "+idList(ids[tc.kind]))
		assert.Equal(t, uint64(60), h.count(t, "SELECT uniqExact(id) FROM {db}."+tc.table+" WHERE id IN "+idList(ids[tc.kind])), tc.table)
	}
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.ingest_errors"))
}

// TestTrailBatchStoredOnce publishes one message of several records twice under its message ID,
// as a publisher does after a lost acknowledgement (JetStream keeps one), and once more under
// another ID, as if JetStream had not seen it (a redelivery inserts it again): the rows are
// stored once.
func TestTrailBatchStoredOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	at := time.Now().UTC()
	var lines [][]byte
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("once-%d", i)
		ids = append(ids, id)
		lines = append(lines, recordJSON(t, &trail.Request{Meta: trail.Meta{ID: id, Time: at}, AuditID: id, SessionID: "s-once",
			Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200}))
	}
	data := joinLines(lines...)
	for i, msgID := range []string{"once-0+4.batch", "once-0+4.batch", "another"} {
		m := nats.NewMsg("gatehouse.trail.v1.request.s-once")
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, msgID)
		ack, err := h.js.PublishMsg(ctx, m)
		require.NoError(t, err)
		assert.Equal(t, i == 1, ack.Duplicate)
	}
	assert.Equal(t, uint64(2), streamMsgs(t, h.js, trail.StreamTrail))
	h.waitRows(t, 10, 30*time.Second, "SELECT count() FROM {db}.gateway_requests WHERE session_id = 's-once'")
	assert.Equal(t, uint64(5), h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL WHERE session_id = 's-once' AND id IN "+idList(ids)))
	assert.Equal(t, uint64(5), h.count(t, "SELECT count() FROM {db}.trail WHERE session_id = 's-once'"), "the views see each record once")
}

// TestTrailBatchForgeries publishes messages on a request subject of session s-a, as anyone with
// the proxy's credentials could, that carry among well-placed requests records that do not
// belong there: a decision, an approval, a request of another session, a request of a kind this
// enricher does not know, a malformed line. Only the well-placed records are stored; the
// message's ingest_errors row names each refused one, wherever it stands.
func TestTrailBatchForgeries(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	at := time.Now().UTC()
	const subj = "gatehouse.trail.v1.request.s-a"
	req := func(id, session string) []byte {
		return recordJSON(t, &trail.Request{Meta: trail.Meta{ID: id, Time: at}, AuditID: id, SessionID: session,
			Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200})
	}
	decision := recordJSON(t, &trail.Decision{Meta: trail.Meta{ID: "forged-decision", Time: at}, SessionID: "s-a", Component: "validating-webhook",
		AdmissionUID: "forged-uid", Policy: trail.Policy{Action: "allow"}, Admitted: true})
	approval := recordJSON(t, &trail.Approval{Meta: trail.Meta{ID: "forged-approval", Time: at}, SessionID: "s-a", ApprovalID: "ap-forged",
		Event: trail.ApprovalApproved, Actor: "nobody", Approvers: []string{"nobody"}})
	large := make([][]byte, 1500)
	for i := range large {
		large[i] = req(fmt.Sprintf("large-%d", i), "s-a")
	}
	tests := []struct {
		name    string
		data    []byte
		stored  []string // request IDs stored
		refused []string // what the message's ingest_errors row says, in order; none: no row
	}{
		{"a decision second", joinLines(req("a1", "s-a"), decision, req("a2", "s-a")), []string{"a1", "a2"},
			[]string{"record 2 (forged-decision): " + ErrMisplaced.Error() + ": a Decision record on subject " + subj}},
		{"an approval second", joinLines(req("b1", "s-a"), approval), []string{"b1"},
			[]string{"record 2 (forged-approval): " + ErrMisplaced.Error() + ": a Approval record on subject " + subj}},
		{"another session's request second", joinLines(req("c1", "s-a"), req("forged-c2", "s-b"), req("c3", "s-a")), []string{"c1", "c3"},
			[]string{"record 2 (forged-c2): " + ErrMisplaced.Error() + ": a Request record on subject " + subj}},
		{"everything at once", joinLines(req("d1", "s-a"), decision, []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","id":"x","code":"x"}`),
			[]byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Gossip","id":"g"}`), req("forged-d5", "s-b"), approval, req("d7", "s-a")),
			[]string{"d1", "d7"}, []string{"record 2 (forged-decision)", "record 3: trail: decode Request record x", "record 5 (forged-d5)", "record 6 (forged-approval)"}},
		{"a malformed second line", joinLines(req("e1", "s-a"), []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Req`), req("e3", "s-a")),
			[]string{"e1", "e3"}, []string{"record 2: trail: decode record header: unexpected end of JSON input"}},
		{"empty lines and a trailing newline", joinLines(nil, req("f1", "s-a"), nil, req("f2", "s-a"), nil), []string{"f1", "f2"}, nil},
		{"only newlines", []byte("\n\n"), nil, []string{trail.ErrNoRecord.Error()}},
		{"a message larger than a publisher makes", joinLines(large...), []string{"large-0", "large-1499"}, nil},
		{"one record, as published so far", req("g1", "s-a"), []string{"g1"}, nil},
		{"many malformed lines, named up to a bound", joinLines(append(slices.Repeat([][]byte{[]byte("x")}, 1000), req("j1001", "s-a"))...), []string{"j1001"},
			append(slices.Repeat([]string{"record "}, 16), "984 more records refused")},
		{"a long forged ID, cut", joinLines(req("i1", "s-a"), req(strings.Repeat("z", 5000), "s-b")), []string{"i1"},
			[]string{"record 2 (" + strings.Repeat("z", 128) + "): " + ErrMisplaced.Error()}},
		{"one misplaced record, as published so far", req("forged-h1", "s-b"), nil,
			[]string{ErrMisplaced.Error() + ": a Request record on subject " + subj}},
	}
	seqs := map[string]uint64{}
	for _, tc := range tests {
		ack, err := h.js.Publish(ctx, subj, tc.data)
		require.NoError(t, err, tc.name)
		seqs[tc.name] = ack.Sequence
	}
	h.waitRows(t, 1500, 60*time.Second, "SELECT count() FROM {db}.gateway_requests FINAL WHERE id LIKE 'large-%'")
	h.waitRows(t, 9, 30*time.Second, "SELECT count() FROM {db}.ingest_errors FINAL")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range tc.stored {
				assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL WHERE id = '"+id+"' AND session_id = 's-a'"), id)
			}
			rows := queryRows(t, h.ch, fmt.Sprintf("SELECT error, subject FROM %s.ingest_errors FINAL WHERE stream = '%s' AND stream_sequence = %d", h.db, trail.StreamTrail, seqs[tc.name]))
			if tc.refused == nil {
				assert.Empty(t, rows)
				return
			}
			require.Len(t, rows, 1)
			assert.Equal(t, subj, rows[0][1])
			parts := strings.Split(rows[0][0], "; ")
			require.Len(t, parts, len(tc.refused), rows[0][0])
			for i, want := range tc.refused {
				assert.True(t, strings.HasPrefix(parts[i], want), "%q does not start with %q", parts[i], want)
			}
		})
	}
	// Nothing forged is anywhere but in ingest_errors.
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL WHERE id LIKE 'forged-%' OR session_id != 's-a'"))
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.gateway_decisions FINAL"))
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.approvals FINAL"))
	assert.Equal(t, uint64(1500+14), h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL"))
}
