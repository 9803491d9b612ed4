package trail_test

import (
	"context"
	"fmt"
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

func TestPublishStoresOncePerID(t *testing.T) {
	_, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "test"})
	require.NoError(t, err)
	for i := range 50 {
		for range 2 { // every record twice, as a retry would
			require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("r%d", i)}, AuditID: fmt.Sprintf("r%d", i)}))
		}
	}
	require.NoError(t, p.Flush(ctx))
	assert.Equal(t, uint64(50), streamMsgs(t, js))
	assert.Equal(t, 0, p.Pending())

	// PublishSync stores before returning.
	require.NoError(t, p.PublishSync(ctx, &trail.Session{SessionID: "s", Event: trail.SessionStarted}))
	assert.Equal(t, uint64(51), streamMsgs(t, js))
	require.NoError(t, p.Close(ctx))
	assert.ErrorIs(t, p.Publish(ctx, &trail.Request{}), trail.ErrClosed)
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
			for i := range 30 {
				require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("%s-%d", t.Name(), i)}}))
			}
			if tc.delay > 0 {
				assert.Equal(t, 30, p.Pending(), "held records are pending")
				assert.Equal(t, before, streamMsgs(t, js), "nothing is sent before the delay")
			}
			require.NoError(t, p.Close(ctx))
			assert.Equal(t, before+30, streamMsgs(t, js), "Close sends the held records and waits for them")
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
	before := streamMsgs(t, js)
	for round := range 2 {
		for i := range 5 {
			require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("delay-%d-%d", round, i)}}))
		}
		want := before + uint64(5*(round+1))
		require.Eventually(t, func() bool { return streamMsgs(t, js) == want && p.Pending() == 0 }, 10*time.Second, 5*time.Millisecond,
			"round %d: held records are sent after the delay, without Flush", round)
	}
}

func TestPublishFailsClosedWhileNATSIsDown(t *testing.T) {
	natsServer, nc, js := setup(t)
	ctx := t.Context()
	p, err := trail.NewPublisher(nc, trail.PublisherOptions{AckTimeout: 500 * time.Millisecond})
	require.NoError(t, err)

	// Records accepted before the outage are not lost: they are republished after it.
	for i := range 20 {
		require.NoError(t, p.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: fmt.Sprintf("before-%d", i)}}))
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
	assert.Equal(t, uint64(21), streamMsgs(t, js), "every accepted record is stored exactly once")
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
	assert.Equal(t, uint64(1), streamMsgs(t, js))
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
			r, err := trail.Decode(m.Data())
			require.NoError(t, err)
			stored[r.Header().ID] = true
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
