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

// finishedRequest is what the record of a finished request is built from.
type finishedRequest struct {
	r          *http.Request
	st         *requestState
	start, end time.Time
}

// recordQueue holds the finished requests whose records are not written yet. A timer is armed
// while it is not empty; when it fires, a goroutine writes the records queued until then
// (writeQueued).
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
		for i := range batch {
			f := &batch[i]
			p.record(f.r, f.st, f.start, f.end)
			*f = finishedRequest{} // hold no request once its record is written
			p.records.Done()
		}
		q.mu.Lock()
		if q.spare == nil {
			q.spare = batch[:0]
		}
		q.mu.Unlock()
	}
}
