package trail_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// setup starts a NATS server of the test's own, with the trail's streams, and connects to it.
// A server per test: no test sees another's streams, consumers or restarts.
func setup(t testing.TB) (*testbed.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, nc, js := start(t)
	require.NoError(t, trail.EnsureStreams(t.Context(), js, trail.StreamOptions{}))
	return srv, nc, js
}

// start is setup without the streams: the test bed's server is provisioned as deployed, and
// start deletes what the administrator made. The test connects with the test bed's unrestricted
// identity.
func start(t testing.TB) (*testbed.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := testbed.StartNATS()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	nc, err := srv.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, testbed.DeleteStreams(t.Context(), js))
	return srv, nc, js
}

func streamMsgs(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), trail.StreamTrail)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// storedRecords returns the records of every message in the trail stream, in order, and fails
// the test on a message or record that does not decode.
func storedRecords(t testing.TB, js jetstream.JetStream) []trail.Record {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, trail.StreamTrail)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var recs []trail.Record
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		for r, err := range trail.DecodeAll(m.Data) {
			require.NoError(t, err, "message %d", seq)
			require.Equal(t, m.Subject, must(trail.Subject(r)), "record %s is on its subject", r.Header().ID)
			recs = append(recs, r)
		}
	}
	return recs
}

// storedIDs returns how many times each record ID is in the trail stream.
func storedIDs(t testing.TB, js jetstream.JetStream) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range storedRecords(t, js) {
		ids[r.Header().ID]++
	}
	return ids
}

// assertStoredOnce checks that the trail stream holds each of the IDs once, and no other.
func assertStoredOnce(t testing.TB, js jetstream.JetStream, ids []string, msgAndArgs ...any) {
	t.Helper()
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 1
	}
	assert.Equal(t, want, storedIDs(t, js), msgAndArgs...)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPublishRetriedIDStoredOnceByDefault: by default every record is a message under its own
// ID, so a record its caller publishes again under the same ID in a later window (a retried
// admission review's decision, derived from the review's UID) is stored once, as JetStream
// deduplicates it.
func TestPublishRetriedIDStoredOnceByDefault(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test"})
	require.NoError(t, err)
	publish := func(ids ...string) {
		for _, id := range ids {
			require.NoError(t, p.Publish(ctx, &trail.Decision{Meta: trail.Meta{ID: id}, Component: "validating", AdmissionUID: id}))
		}
		require.NoError(t, p.Flush(ctx))
	}
	publish("admission-u1-validating", "admission-u2-validating")
	publish("admission-u1-validating", "admission-u3-validating")
	assertStoredOnce(t, js, []string{"admission-u1-validating", "admission-u2-validating", "admission-u3-validating"})
	assert.Equal(t, uint64(3), streamMsgs(t, js), "one record per message")
	require.NoError(t, p.Close(ctx))
}

func TestPublishStoresOncePerID(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", MaxBatchRecords: trail.PackedRecords})
	require.NoError(t, err)
	var ids []string
	at := time.Now()
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("r%d", i))
		for range 2 { // every record twice, identical, as a retry would
			require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("r%d", i), Time: at}, AuditID: fmt.Sprintf("r%d", i)}))
		}
		assert.Equal(t, i+1, p.Pending(), "a record held again is pending once")
	}
	require.NoError(t, p.Flush(ctx))
	assertStoredOnce(t, js, ids)
	assert.Equal(t, uint64(1), streamMsgs(t, js), "the records of one subject and one window are one message")
	assert.Equal(t, 0, p.Pending())

	// Published again in a window of its own, a record is a message under its own ID, which
	// JetStream has seen: as PublishSync's.
	require.NoError(t, p.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: "single"}}))
	require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: "single"}}))
	require.NoError(t, p.Flush(ctx))
	assertStoredOnce(t, js, append(ids, "single"))

	// PublishSync stores before returning.
	require.NoError(t, p.PublishSync(ctx, &trail.Session{Meta: trail.Meta{ID: "s-1"}, SessionID: "s", Event: trail.SessionStarted}))
	assertStoredOnce(t, js, append(ids, "single", "s-1"))
	require.NoError(t, p.Close(ctx))
	assert.ErrorIs(t, p.Publish(ctx, &trail.Request{}), trail.ErrClosed)
}

// TestPublishKeepsAnotherRecordUnderHeldID: a packing publisher stores an identical record
// published again while it is held once, but another record under the same ID (an admission
// review kube-apiserver sent again and the webhook decided again, perhaps otherwise) is kept,
// as it would be in a later message: dropping it could lose the attempt kube-apiserver acted on.
func TestPublishKeepsAnotherRecordUnderHeldID(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", MaxBatchRecords: trail.PackedRecords, BatchDelay: time.Hour})
	require.NoError(t, err)
	at := time.Now()
	attempt := func(d time.Duration, action string) *trail.Decision {
		return &trail.Decision{Meta: trail.Meta{ID: "admission-u1-validating", Time: at.Add(d)}, Component: "validating",
			AdmissionUID: "u1", SessionID: "s-1", Policy: trail.Policy{Action: action}}
	}
	require.NoError(t, p.Publish(ctx, attempt(0, "requireApproval")))
	require.NoError(t, p.Publish(ctx, attempt(0, "requireApproval")))
	assert.Equal(t, 1, p.Pending(), "an identical record held again is pending once")
	require.NoError(t, p.Publish(ctx, attempt(time.Second, "allow")))
	assert.Equal(t, 2, p.Pending(), "another attempt under the held ID is kept")
	require.NoError(t, p.Flush(ctx))
	assert.Equal(t, map[string]int{"admission-u1-validating": 2}, storedIDs(t, js), "both attempts stored, the identical copy once")
	assert.Equal(t, uint64(1), streamMsgs(t, js), "one message")
	require.NoError(t, p.Close(ctx))
}

// TestPublishBatches checks that records held for BatchDelay count as pending and are not sent
// before it, that Close (Flush) sends them at once and waits for them, and that a negative
// BatchDelay hands each record over at once.
func TestPublishBatches(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"held", time.Hour}, {"at once", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			_, nc, js := setup(t)
			ctx := t.Context()
			p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", BatchDelay: tc.delay})
			require.NoError(t, err)
			before := streamMsgs(t, js)
			var ids []string
			for i := range 30 {
				ids = append(ids, fmt.Sprintf("%s-%d", t.Name(), i))
				require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: ids[i]}}))
			}
			if tc.delay > 0 {
				assert.Equal(t, 30, p.Pending(), "held records are pending")
				assert.Equal(t, before, streamMsgs(t, js), "nothing is sent before the delay")
			}
			require.NoError(t, p.Close(ctx))
			assertStoredOnce(t, js, ids, "Close sends the held records and waits for them")
			if tc.delay < 0 {
				assert.Equal(t, before+30, streamMsgs(t, js), "without a delay every record is a message of its own")
			}
			assert.Equal(t, 0, p.Pending())
		})
	}
}

// TestPublishSendsAfterDelay checks that a record held for the default BatchDelay is sent
// without a Flush, with the records published meanwhile, and that records published after the
// hand-over start a batch of their own.
func TestPublishSendsAfterDelay(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	var ids []string
	for round := range 2 {
		for i := range 5 {
			ids = append(ids, fmt.Sprintf("delay-%d-%d", round, i))
			require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: ids[len(ids)-1]}}))
		}
		require.Eventually(t, func() bool { return len(storedRecords(t, js)) == len(ids) && p.Pending() == 0 }, 10*time.Second, 5*time.Millisecond,
			"round %d: held records are sent after the delay, without Flush", round)
		assertStoredOnce(t, js, ids)
	}
}

func TestPublishFailsClosedWhileNATSIsDown(t *testing.T) {
	natsServer, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{AckTimeout: 500 * time.Millisecond})
	require.NoError(t, err)

	// Records accepted before the outage are not lost: they are republished after it.
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("before-%d", i))
		require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: ids[i]}}))
	}
	natsServer.Shutdown()
	require.Eventually(t, func() bool { return nc.Status() != nats.CONNECTED }, 5*time.Second, 10*time.Millisecond)

	err = p.Publish(ctx, &trail.Request{})
	require.ErrorIs(t, err, trail.ErrUnavailable, "a record NATS cannot take is refused, so the caller can fail closed")
	syncCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, p.PublishSync(syncCtx, &trail.Request{}), trail.ErrUnavailable)

	require.NoError(t, natsServer.Start())
	require.Eventually(t, func() bool { return nc.Status() == nats.CONNECTED }, 10*time.Second, 10*time.Millisecond)
	flushCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, p.Flush(flushCtx))
	require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: "after"}}))
	require.NoError(t, p.Flush(flushCtx))
	assertStoredOnce(t, js, append(ids, "after"), "every accepted record is stored exactly once")
}

// TestPublishBacklogIsBounded holds a record unacknowledged (its stream does not exist yet, so
// JetStream refuses it and the publisher retries it) and checks that a one-record budget then
// refuses the next record, and that the held one is stored once its stream exists.
func TestPublishBacklogIsBounded(t *testing.T) {
	_, nc, js := start(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{MaxPending: 1, MaxRetryDelay: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: "held"}}))
	require.ErrorIs(t, p.Publish(ctx, &trail.Request{}), trail.ErrBacklog)
	require.ErrorIs(t, p.Ready(), trail.ErrBacklog, "and Ready says so")
	assert.Equal(t, 1, p.Pending())

	require.NoError(t, trail.EnsureStreams(ctx, js, trail.StreamOptions{}))
	require.NoError(t, p.Close(ctx), "the record is stored once NATS takes it")
	assertStoredOnce(t, js, []string{"held"})
}

func TestConsumerRedeliversFailedBatches(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{})
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("c%d", i)}}))
	}
	require.NoError(t, p.Flush(ctx))

	cfg := trail.EnricherConsumer(trail.StreamTrail)
	cfg.Durable = "test-redelivery"
	c, err := trail.NewConsumer(ctx, js, trail.StreamTrail, cfg, trail.ConsumerOptions{BatchSize: 10, MaxWait: 100 * time.Millisecond, RetryDelay: 50 * time.Millisecond})
	require.NoError(t, err)

	runCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	attempts, stored := 0, map[string]bool{}
	require.NoError(t, c.Run(runCtx, func(_ context.Context, batch []jetstream.Msg) error {
		attempts++
		if attempts == 1 {
			return fmt.Errorf("storage down")
		}
		for _, m := range batch {
			for r, err := range trail.DecodeAll(m.Data()) {
				require.NoError(t, err)
				stored[r.Header().ID] = true
			}
		}
		if len(stored) == 10 {
			cancel()
		}
		return nil
	}))
	assert.Len(t, stored, 10, "a failed batch is delivered again")
	assert.GreaterOrEqual(t, attempts, 2)

	// Everything was acknowledged: nothing is delivered again.
	cons, err := js.Consumer(ctx, trail.StreamTrail, cfg.Durable)
	require.NoError(t, err)
	var last string
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("ack pending %d, pending %d, redelivered %d", info.NumAckPending, info.NumPending, info.NumRedelivered)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, 15*time.Second, 50*time.Millisecond, "consumer state: %s", stringer(func() string { return last }))
}

// stringer formats as what its function returns when a failure message is printed.
type stringer func() string

func (s stringer) String() string { return s() }

// TestPublishGroupsBySubject publishes records of every kind and of several sessions within
// one window, interleaved: the messages carry the records of one subject each (storedRecords
// checks every record's subject), in the order published, every record once; recording chunks
// stay one per message.
func TestPublishGroupsBySubject(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", BatchDelay: time.Hour, MaxBatchRecords: trail.PackedRecords})
	require.NoError(t, err)
	var ids []string
	bySubject := map[string][]string{}
	add := func(r trail.Record) {
		require.NoError(t, p.Publish(ctx, r))
		ids = append(ids, r.Header().ID)
		subj := must(trail.Subject(r))
		bySubject[subj] = append(bySubject[subj], r.Header().ID)
	}
	for i := range 5 {
		for _, s := range []string{"s-a", "s-b", ""} {
			id := fmt.Sprintf("%s-%d", s, i)
			add(&trail.Request{Meta: trail.Meta{ID: "req-" + id}, SessionID: s, Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200})
			add(&trail.Decision{Meta: trail.Meta{ID: "dec-" + id}, SessionID: s, Component: "validating-webhook", Policy: trail.Policy{Action: "allow"}})
			add(&trail.Session{Meta: trail.Meta{ID: "ses-" + id}, SessionID: s, Event: trail.SessionActive})
			add(&trail.Approval{Meta: trail.Meta{ID: "apr-" + id}, SessionID: s, ApprovalID: "ap", Event: trail.ApprovalRequested})
		}
	}
	var chunks []*trail.Recording
	for i := range 3 {
		c := &trail.Recording{RecordingID: "rec-1", SessionID: "s-a", Seq: uint32(i), Format: trail.FormatAsciicast, Subresource: "exec", Data: "x"}
		chunks = append(chunks, c)
		require.NoError(t, p.Publish(ctx, c))
	}
	require.NoError(t, p.Flush(ctx))

	assertStoredOnce(t, js, ids)
	assert.Equal(t, uint64(len(bySubject)), streamMsgs(t, js), "one message per subject")
	got := map[string][]string{}
	for _, r := range storedRecords(t, js) {
		subj := must(trail.Subject(r))
		got[subj] = append(got[subj], r.Header().ID)
	}
	assert.Equal(t, bySubject, got, "each subject's records in the order published")

	s, err := js.Stream(ctx, trail.StreamRecordings)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(len(chunks)), info.State.Msgs, "a recording chunk is a message of its own")
	for i, c := range chunks {
		m, err := s.GetMsg(ctx, info.State.FirstSeq+uint64(i))
		require.NoError(t, err)
		assert.Equal(t, c.ID, m.Header.Get(jetstream.MsgIDHeader))
		r, err := trail.Decode(m.Data)
		require.NoError(t, err)
		assert.Equal(t, c.ID, r.Header().ID)
	}
}

// TestPublishBatchBounds checks that a message holds at most MaxBatchRecords records and
// MaxBatchBytes bytes, that a record larger than MaxBatchBytes is a message of its own, and that
// a message of one record is what PublishSync publishes: its JSON under its ID.
func TestPublishBatchBounds(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("p", n) }
	tests := []struct {
		name       string
		maxRecords int
		maxBytes   int
		paths      []int // the length of each record's operation path
		want       []int // records per message
	}{
		{"records", 4, 1 << 20, []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, []int{4, 4, 2}},
		{"bytes", 100, 1500, []int{400, 400, 400, 400, 400}, []int{2, 2, 1}},
		{"a large record alone", 100, 1500, []int{400, 3000, 400, 400, 400}, []int{1, 1, 2, 1}},
		{"a large first record", 100, 1500, []int{3000, 400}, []int{1, 1}},
		{"one record a message", 1, 1 << 20, []int{10, 10, 10}, []int{1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, nc, js := setup(t)
			ctx := t.Context()
			p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", BatchDelay: time.Hour,
				MaxBatchRecords: tc.maxRecords, MaxBatchBytes: tc.maxBytes})
			require.NoError(t, err)
			var ids []string
			for i, n := range tc.paths {
				ids = append(ids, fmt.Sprintf("%s-%d", tc.name, i))
				require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: ids[i]}, SessionID: "s", Operation: trail.Operation{Verb: "get", Path: "/" + pad(n)}}))
			}
			require.NoError(t, p.Close(ctx))
			assertStoredOnce(t, js, ids)

			s, err := js.Stream(ctx, trail.StreamTrail)
			require.NoError(t, err)
			info, err := s.Info(ctx)
			require.NoError(t, err)
			var got []int
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := s.GetMsg(ctx, seq)
				require.NoError(t, err)
				n := 0
				var first trail.Record
				for r := range trail.DecodeAll(m.Data) {
					if first == nil {
						first = r
					}
					n++
				}
				got = append(got, n)
				assert.LessOrEqual(t, n, tc.maxRecords)
				if n > 1 {
					assert.LessOrEqual(t, len(m.Data), tc.maxBytes, "message %d", seq)
					assert.NotEqual(t, first.Header().ID, m.Header.Get(jetstream.MsgIDHeader))
					continue
				}
				// One record: its ID, its JSON alone, as PublishSync's.
				assert.Equal(t, first.Header().ID, m.Header.Get(jetstream.MsgIDHeader))
				single, err := trail.EncodeMsg(first, "")
				require.NoError(t, err)
				assert.Equal(t, string(single.Data), string(m.Data))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestPublishRetriesBatchWhole holds the acknowledgements of a message of several records (a
// subscriber that never answers stands where the stream should be): the publisher republishes
// the identical message under the same message ID until the stream exists, which stores it
// once. Published once more, as after a lost acknowledgement, JetStream takes it for the
// duplicate it is.
func TestPublishRetriesBatchWhole(t *testing.T) {
	_, nc, js := start(t)
	ctx := t.Context()
	seen := make(chan *nats.Msg, 64)
	sub, err := nc.Subscribe("gatehouse.trail.v1.>", func(m *nats.Msg) {
		select {
		case seen <- m:
		default:
		}
	})
	require.NoError(t, err)
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test", AckTimeout: 200 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond, MaxBatchRecords: trail.PackedRecords})
	require.NoError(t, err)
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("retry-%d", i))
		require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: ids[i]}, SessionID: "s"}))
	}
	first := receive(t, seen)
	again := receive(t, seen)
	assert.Equal(t, first.Header.Get(jetstream.MsgIDHeader), again.Header.Get(jetstream.MsgIDHeader))
	assert.Equal(t, first.Data, again.Data)
	assert.Equal(t, first.Subject, again.Subject)
	n := 0
	for range trail.DecodeAll(first.Data) {
		n++
	}
	assert.Equal(t, 5, n, "one message carries the window's records")
	assert.Equal(t, 5, p.Pending())

	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, trail.EnsureStreams(ctx, js, trail.StreamOptions{}))
	flushCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, p.Flush(flushCtx))
	assertStoredOnce(t, js, ids)
	assert.Equal(t, uint64(1), streamMsgs(t, js))

	// A lost acknowledgement: the identical message again.
	msg := nats.NewMsg(first.Subject)
	msg.Header = first.Header
	msg.Data = first.Data
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	assert.True(t, ack.Duplicate)
	assertStoredOnce(t, js, ids)
}

func receive(t *testing.T, ch <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message published")
		return nil
	}
}

// TestCloseNamesEveryLostRecord closes a publisher whose message of several records NATS never
// acknowledges: the loss report names every record of it.
func TestCloseNamesEveryLostRecord(t *testing.T) {
	_, nc, _ := start(t)
	ctx := t.Context()
	sub, err := nc.Subscribe("gatehouse.trail.v1.>", func(*nats.Msg) {}) // takes the messages, never answers
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	logs := &syncBuffer{}
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{AckTimeout: 100 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	require.NoError(t, err)
	var ids []string
	for i := range 4 {
		ids = append(ids, fmt.Sprintf("lost-%d", i))
		require.NoError(t, p.Publish(ctx, &trail.Decision{Meta: trail.Meta{ID: ids[i]}, Component: "validating-webhook", Policy: trail.Policy{Action: "allow"}}))
	}
	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.Error(t, p.Close(closeCtx))
	require.Eventually(t, func() bool { return p.Pending() == 0 }, 10*time.Second, 10*time.Millisecond, "lost records are no longer pending")
	for _, id := range ids {
		assert.Contains(t, logs.String(), `"msg":"trail record lost: publisher closed before NATS acknowledged it","id":"`+id+`"`)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
