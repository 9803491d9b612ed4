package enricher

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestRecordingsAndOpenStreams: recording chunks reach session_recordings once each, joinable by
// session, recording and Audit-ID; a long request with an open record and no finished one shows
// in open_streams, and the trail view shows a finished request once.
func TestRecordingsAndOpenStreams(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "proxy/test"})
	require.NoError(t, err)
	at := time.Now().UTC()
	id := trail.Identity{User: "alice"}
	watch := trail.Operation{Verb: "watch", Resource: "secrets", Namespace: "prod"}
	exec := trail.Operation{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "prod", Name: "web-0"}
	// A watch cut off by its proxy: only its open record.
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: trail.OpenID("w-1"), Time: at}, AuditID: "w-1", SessionID: "s-rec",
		Identity: id, Operation: watch, Phase: trail.PhaseOpen}))
	// An exec that finished, with its recording.
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: trail.OpenID("e-1"), Time: at}, AuditID: "e-1", SessionID: "s-rec",
		Identity: id, Operation: exec, Phase: trail.PhaseOpen, RecordingID: "e-1"}))
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: "e-1", Time: at}, AuditID: "e-1", SessionID: "s-rec",
		Identity: id, Operation: exec, Code: 101, Duration: time.Second, RecordingID: "e-1"}))

	recs, err := recording.NewPublisher(h.nc, recording.PublisherOptions{Source: "proxy/test", ChunkBytes: 128})
	require.NoError(t, err)
	w, err := recs.Open(ctx, recording.Info{RecordingID: "e-1", SessionID: "s-rec", AuditID: "e-1", Format: trail.FormatAsciicast,
		Subresource: "exec", Namespace: "prod", Pod: "web-0", Container: "main", Command: []string{"sh"}, User: "alice"},
		recording.HeaderLine(recording.Header{Term: recording.Term{Cols: 80, Rows: 24}}))
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, w.Append(time.Now(), fmt.Appendf(nil, "[0.1, \"o\", \"line %d of the session\\n\"]\n", i)))
	}
	require.NoError(t, w.Close(ctx))
	// A chunk delivered twice is stored once; a message that is no chunk is an ingest error.
	_, err = h.js.Publish(ctx, trail.RecordingSubject("s-rec", "e-1"), []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Recording","seq":"x"}`))
	require.NoError(t, err)

	h.waitRows(t, 1, 30*time.Second, "SELECT count() FROM {db}.ingest_errors FINAL WHERE stream = 'GATEHOUSE_RECORDINGS'")
	h.waitRows(t, 1, 30*time.Second, "SELECT count() FROM {db}.recording_summary WHERE complete AND chunks = last_seq + 1")
	assert.Equal(t, [][]string{{"e-1", "s-rec", "exec", "web-0", "alice", "true"}},
		queryRows(t, h.ch, "SELECT recording_id, session_id, subresource, pod, user, toString(complete) FROM "+h.db+".recording_summary"))
	assert.Greater(t, h.count(t, "SELECT count() FROM {db}.session_recordings FINAL"), uint64(2), "the recording came in several chunks")
	h.waitRows(t, 3, 30*time.Second, "SELECT count() FROM {db}.gateway_requests FINAL")
	assert.Equal(t, [][]string{{"w-1", "watch", "secrets"}},
		queryRows(t, h.ch, "SELECT record_id, verb, resource FROM "+h.db+".open_streams"), "the watch without an end is open; the exec is not")
	assert.Equal(t, [][]string{{"e-1", "101", "", "e-1"}, {"w-1", "0", "Open", ""}},
		queryRows(t, h.ch, "SELECT audit_id, toString(code), gateway_phase, recording_id FROM "+h.db+".trail ORDER BY audit_id"),
		"a finished request is one row of the trail; a cut-off one shows as open")
}
