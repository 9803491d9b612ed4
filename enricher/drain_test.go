package enricher

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestDrainerPublishesPastARefusedBatch: the drainer publishes spooled batches without waiting
// for the acknowledgements of the batches before them. JetStream refuses one batch in the middle
// of the spool (larger than the stream lets a message be) and takes the batches after it. The
// refused batch must stay in the spool, and so must every batch after it: only the head of the
// spool leaves it, once JetStream acknowledged it. When JetStream takes the refused batch, the
// batches after it are published again and deduplicated: the stream holds each batch once and
// every event is stored once.
func TestDrainerPublishesPastARefusedBatch(t *testing.T) {
	h := newHarness(t, harnessOptions{tweak: func(o *Options) { o.RetryDelay = 100 * time.Millisecond }})
	ctx := t.Context()
	stream, err := h.js.Stream(ctx, trail.StreamAudit)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	cfg := info.Config
	cfg.MaxMsgSize = 32 << 10
	_, err = h.js.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	// Batches queue up in the spool while NATS is away, so that the drainer publishes them back
	// to back once it is back: 4 small batches, a large one (whose messages are above the
	// stream's limit, compressed), 4 small ones.
	h.nats.Shutdown()
	require.Eventually(t, func() bool { return h.enc.Status() != nats.CONNECTED }, 5*time.Second, 10*time.Millisecond)
	o := genOptions{id: "refused"}
	var bodies [][]byte
	events, large := 0, 4
	for i := range 9 {
		n := 5
		if i == large {
			n = 2000
		}
		bodies = append(bodies, testEventList(events, events+n, o))
		events += n
	}
	for _, body := range bodies {
		require.Equal(t, http.StatusOK, h.post(t, body))
	}
	require.Equal(t, len(bodies), h.spool.stats().Batches)
	sum := sha256.Sum256(bodies[large])
	refused := "webhook-" + hex.EncodeToString(sum[:16])

	require.NoError(t, h.nats.Start())
	require.Eventually(t, func() bool { return h.nc.Status() == nats.CONNECTED }, 10*time.Second, 10*time.Millisecond)
	// JetStream takes every small batch, also those after the refused one, which all stay in
	// the spool behind it.
	require.Eventually(t, func() bool {
		return streamMsgs(t, h.js, trail.StreamAudit) == uint64(len(bodies)-1) && h.spool.stats().Batches == len(bodies)-large
	}, 30*time.Second, 20*time.Millisecond, "log:\n%s", h.logs.tail(3000))
	head, ok, _ := h.spool.head()
	require.True(t, ok)
	assert.Equal(t, refused, head.id, "the refused batch is the head of the spool")
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "publishing the spool to JetStream failed")
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, len(bodies)-large, h.spool.stats().Batches, "nothing after the refused batch left the spool")

	cfg.MaxMsgSize = -1
	_, err = h.js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	h.settle(t)
	assert.Equal(t, uint64(len(bodies)), streamMsgs(t, h.js, trail.StreamAudit), "each batch is in the stream once")
	h.assertStoredOnce(t, uint64(events))
}
