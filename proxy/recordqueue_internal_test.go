package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRecordQueueIsBounded: while the writer has not run (its timer armed, not fired), the
// requests that finish queue at most maxQueuedRecords records; the request that finds the queue
// full writes them itself. Flush writes the rest, and every record is accounted for.
func TestRecordQueueIsBounded(t *testing.T) {
	p := &Proxy{}
	p.queue.armed = true // a writer is due: nothing else empties the queue
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	now := time.Now()
	longest := 0
	for range 3*maxQueuedRecords + 10 {
		// A recorded request's record is not built again: only the queue is under test.
		p.queueRecord(finishedRequest{r: r, st: &requestState{recorded: true}, start: now, end: now})
		p.queue.mu.Lock()
		longest = max(longest, len(p.queue.pending))
		p.queue.mu.Unlock()
	}
	assert.Less(t, longest, maxQueuedRecords, "the queue stays under its bound")
	p.Flush()
	p.queue.mu.Lock()
	defer p.queue.mu.Unlock()
	require.Empty(t, p.queue.pending)
	assert.LessOrEqual(t, cap(p.queue.spare), maxQueuedRecords, "no array past the bound is kept")
}
