package proxy

import (
	"net/http"
	"sync"
	"time"
)

// recordDelay is how long the record of a finished request may wait before it is built and
// handed to the Recorder, so that the records of the requests finished meanwhile are written
// together, by one goroutine. A goroutine started for every request's record cost the request
// its creation and, mostly, the wake-up of an idle processor to run it, before the handler could
// return and the client have its answer. The trail publisher holds records for longer than this
// anyway (trail.PublisherOptions.BatchDelay).
const recordDelay = time.Millisecond

// maxQueuedRecords bounds the finished requests waiting for their records: the request that
// finds this many queued writes them itself (queueRecord).
const maxQueuedRecords = 4096

// finishedRequest is what the record of a finished request is built from.
type finishedRequest struct {
	r          *http.Request
	st         *requestState
	start, end time.Time
}

// recordQueue holds the finished requests whose records are not written yet. A timer is armed
// while it is not empty; when it fires, a goroutine writes the records queued until then
// (writeQueued). Flush, and a request finding the queue full, write what is queued too, beside
// it: records were never written in order.
type recordQueue struct {
	mu      sync.Mutex
	pending []finishedRequest
	// spare is the array of the last batch written, kept for the next one.
	spare []finishedRequest
	armed bool
}

// queueRecord queues the record of a finished request. Flush waits for it.
func (p *Proxy) queueRecord(f finishedRequest) {
	p.records.Add(1)
	q := &p.queue
	q.mu.Lock()
	q.pending = append(q.pending, f)
	if len(q.pending) >= maxQueuedRecords {
		// More requests finish than the writer keeps up with: this one writes the batch
		// itself, so that the queue (holding each request and its state) stays bounded and
		// the requests, not the memory, wait.
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		p.writeBatch(batch)
		return
	}
	arm := !q.armed
	q.armed = true
	q.mu.Unlock()
	if arm {
		time.AfterFunc(recordDelay, p.writeQueued)
	}
}

// writeQueued writes the records queued, and those queued while it does, until none is left.
func (p *Proxy) writeQueued() {
	q := &p.queue
	for {
		q.mu.Lock()
		batch := q.pending
		if len(batch) == 0 {
			q.armed = false
			q.mu.Unlock()
			return
		}
		q.pending, q.spare = q.spare, nil
		q.mu.Unlock()
		p.writeBatch(batch)
	}
}

// writeBatch writes the records of batch and keeps its array for a later batch, unless it grew
// past maxQueuedRecords.
func (p *Proxy) writeBatch(batch []finishedRequest) {
	for i := range batch {
		f := &batch[i]
		p.record(f.r, f.st, f.start, f.end)
		*f = finishedRequest{} // hold no request once its record is written
		p.records.Done()
	}
	if cap(batch) > maxQueuedRecords {
		return
	}
	q := &p.queue
	q.mu.Lock()
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}
