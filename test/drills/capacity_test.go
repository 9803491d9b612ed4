package drills

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestDrillCapacity measures what one enricher process costs per audit event, end to end
// (intake, masking, spool, JetStream, consumers, INSERTs), with its default batch sizes and with
// the INSERT sizes a production ClickHouse is fed over the native protocol (100,000 rows), and
// what ClickHouse spends on the same events. Batches of 400 events (kube-apiserver's default
// batch size) arrive from 8 clients at once. The figures are CPU time, not wall time, so that
// they hold on a machine others share; the drill asserts only that every event is stored.
func TestDrillCapacity(t *testing.T) {
	const batch, clients = 400, 8
	events := 40_000
	if bed.full {
		events = 400_000
	}
	// A ClickHouse server of its own: the CPU it reports is this drill's alone, and the
	// merges of its large parts do not weigh on the drills after it.
	ch, err := testbed.StartClickHouse()
	require.NoError(t, err)
	t.Cleanup(ch.Close)
	b := newMemoryBedOn(t, ch)
	defaults := b.args
	production := append(append([]string(nil), defaults...),
		"--insert-max-rows", "100000", "--insert-max-bytes", fmt.Sprint(256<<20),
		"--batch-max-messages", "256", "--batch-max-wait", "1s")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", defaults},
		{"production-inserts", production},
	} {
		b.args = tc.args
		b.restartEnricher(t)
		enricher0, err := b.enricher.CPUTime()
		require.NoError(t, err)
		ch0, err := ch.CPUTime()
		require.NoError(t, err)
		start := time.Now()
		work := make(chan int)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for i := range work {
					prefix := fmt.Sprintf("capacity-%s-%d", tc.name, i)
					length := lengthOf(prefix, batch)
					assert.Equal(t, http.StatusOK, post(t, b, b.intakeURL(), &batchReader{prefix: prefix, n: batch}, length))
				}
			})
		}
		for i := range events / batch {
			work <- i
		}
		close(work)
		wg.Wait()
		waitCount(t, b, uint64(events), "SELECT count() FROM "+b.db+".audit_events WHERE startsWith(audit_id, 'capacity-"+tc.name+"-')")
		wall := time.Since(start)
		enricher1, err := b.enricher.CPUTime()
		require.NoError(t, err)
		ch1, err := ch.CPUTime()
		require.NoError(t, err)
		perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(events) }
		e, c := perEvent(enricher1-enricher0), perEvent(ch1-ch0)
		report("capacity %s: events=%d wall=%s (%.0f events/s on this machine) enricher=%.1f CPU-us/event (%.0f events/s per core) clickhouse=%.1f CPU-us/event (%.0f events/s per core)",
			tc.name, events, wall.Round(time.Millisecond), float64(events)/wall.Seconds(), e, 1e6/e, c, 1e6/c)
	}
}

// lengthOf returns the length of the batch of n events batchReader generates for prefix.
func lengthOf(prefix string, n int) int64 {
	length := int64(len(listHead) + len(listTail))
	for i := range n {
		if i > 0 {
			length++ // comma
		}
		length += int64(len(event(prefix, i)))
	}
	return length
}
