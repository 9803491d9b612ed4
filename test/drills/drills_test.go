package drills

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
)

// outage returns how long a drill keeps a part away: full in `make drills`, short in `make test`.
func outage(full, short time.Duration) time.Duration {
	if bed.full {
		return full
	}
	return short
}

// TestDrillEnricherOutage kills the enricher under load and keeps it away far longer than
// kube-apiserver's webhook backend retries a batch (five attempts, 1 s initial backoff, factor
// 1.5: about 8 s here; about 80 s with the defaults), so the webhook drops batches. The
// enricher's audit log follower stores them from kube-apiserver's log after the restart, across
// the log's rotations (every megabyte), and ClickHouse holds each event once.
func TestDrillEnricherOutage(t *testing.T) {
	down := outage(3*time.Minute, 30*time.Second)
	b := newDrillBed(t, "enricher-outage", true)
	l := startLoad(t, b.kube, 4, 80*time.Millisecond)
	l.waitAnswered(t, 500) // stored as usual before the outage
	require.NoError(t, b.enricher.Kill())
	killedAt := time.Now()
	// The outage lasts until kube-apiserver gave up on batches and rotated its log, and at least
	// down.
	var dropped, rotated int
	require.NoError(t, wait.PollUntilContextTimeout(t.Context(), time.Second, down+5*time.Minute, true, func(context.Context) (bool, error) {
		dropped, rotated = webhookDropped(t, b.kube), countRotated(t, b.logPath)
		return dropped > 0 && rotated > 0 && time.Since(killedAt) >= down, nil
	}), "away for %s: the webhook gave up on %d events, the log rotated %d times", time.Since(killedAt).Round(time.Second), dropped, rotated)
	b.startEnricher(t)
	away := time.Since(killedAt).Round(time.Second)
	l.waitAnswered(t, len(l.answered())+750) // and stored as usual after it
	l.end()

	v := settle(t, b, l, 3*time.Minute)
	dropped, rotated = webhookDropped(t, b.kube), countRotated(t, b.logPath)
	report("enricher-outage: outage=%s events=%d lost=%d duplicated=%d unrecorded=%d (requests answered 2xx: %d; the webhook gave up on %d events, stored from the log; log rotated %d times)",
		away, v.events, v.lost, v.duplicated, v.unrecorded, len(l.answered()), dropped, rotated)
	assert.Positive(t, dropped, "the outage outlasted the webhook's retries: kube-apiserver dropped batches")
	assert.Positive(t, rotated, "the log rotated during the drill")
	assert.True(t, v.zero(), "lost %d, duplicated %d, unrecorded %d: %v", v.lost, v.duplicated, v.unrecorded, v.examples)
	assert.Positive(t, v.events)
}

// TestDrillNATSOutage stops NATS under load for a minute. The intake goes on answering 200:
// every batch waits in its spool and is published when NATS is back, so kube-apiserver never
// drops one, and ClickHouse holds each event once. The backstop is off: the spool alone does it.
func TestDrillNATSOutage(t *testing.T) {
	const down = time.Minute
	b := newDrillBed(t, "nats-outage", false)
	l := startLoad(t, b.kube, 4, 80*time.Millisecond)
	l.waitAnswered(t, 500) // stored as usual before the outage
	b.nats.Shutdown()
	stoppedAt := time.Now()
	// For down, the spool's size is sampled every second.
	var spooled float64
	end, sample := time.NewTimer(down), time.NewTicker(time.Second)
	for away := true; away; {
		select {
		case <-end.C:
			away = false
		case <-sample.C:
			spooled = max(spooled, metric(t, b, "gatehouse_enricher_spool_batches"))
		}
	}
	sample.Stop()
	require.NoError(t, b.nats.Start())
	t.Logf("NATS away for %s", time.Since(stoppedAt).Round(time.Second))
	l.waitAnswered(t, len(l.answered())+750) // and stored as usual after it
	l.end()

	v := settle(t, b, l, 3*time.Minute)
	dropped := webhookDropped(t, b.kube)
	refused := metric(t, b, "gatehouse_enricher_spool_full_total")
	report("nats-outage: outage=%s events=%d lost=%d duplicated=%d unrecorded=%d (requests answered 2xx: %d; batches spooled at most %.0f; the webhook gave up on %d events)",
		down, v.events, v.lost, v.duplicated, v.unrecorded, len(l.answered()), spooled, dropped)
	assert.Positive(t, spooled, "batches waited in the spool while NATS was away")
	assert.Zero(t, dropped, "the intake accepted every batch while NATS was away")
	assert.Zero(t, refused, "the spool was never full")
	assert.True(t, v.zero(), "lost %d, duplicated %d, unrecorded %d: %v", v.lost, v.duplicated, v.unrecorded, v.examples)
	assert.Positive(t, v.events)
}
