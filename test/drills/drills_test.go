package drills

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	time.Sleep(10 * time.Second)
	require.NoError(t, b.enricher.Kill())
	killedAt := time.Now()
	time.Sleep(down)
	b.startEnricher(t)
	t.Logf("enricher away for %s", time.Since(killedAt).Round(time.Second))
	time.Sleep(15 * time.Second)
	l.end()

	v := settle(t, b, l, 3*time.Minute)
	dropped := webhookDropped(t, b.kube)
	rotated := countRotated(t, b.logPath)
	report("enricher-outage: outage=%s events=%d lost=%d duplicated=%d unrecorded=%d (requests answered 2xx: %d; the webhook gave up on %d events, stored from the log; log rotated %d times)",
		down, v.events, v.lost, v.duplicated, v.unrecorded, len(l.answered()), dropped, rotated)
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
	time.Sleep(10 * time.Second)
	b.nats.Shutdown()
	stoppedAt := time.Now()
	var spooled float64
	for time.Since(stoppedAt) < down {
		spooled = max(spooled, metric(t, b, "gatehouse_enricher_spool_batches"))
		time.Sleep(time.Second)
	}
	require.NoError(t, b.nats.Start())
	t.Logf("NATS away for %s", time.Since(stoppedAt).Round(time.Second))
	time.Sleep(15 * time.Second)
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
