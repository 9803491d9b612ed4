package proxy_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestFlushHandsOverEveryRecord: the records of requests are written off their path, in batches;
// once Flush returns, the record of every request served so far (answered, refused, in parallel)
// has been handed to the Recorder, once, under the Audit-ID its client got.
func TestFlushHandsOverEveryRecord(t *testing.T) {
	u := newUpstream(t)
	u.discardRequests()
	rec := &collectingRecorder{}
	srv := newStubProxy(t, u, func(o *proxy.Options) { o.Recorder = rec })
	p, ok := srv.Config.Handler.(*proxy.Proxy)
	require.True(t, ok)
	tok := token(t, "alice", nil)
	client := srv.Client()

	for round := range 3 {
		var mu sync.Mutex
		var auditIDs []string
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 25 {
					req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
					if !assert.NoError(t, err) {
						return
					}
					if (i+j)%5 != 0 { // every fifth is refused: no token
						req.Header.Set("Authorization", "Bearer "+tok)
					}
					resp, err := client.Do(req)
					if !assert.NoError(t, err) {
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					auditIDs = append(auditIDs, resp.Header.Get("Audit-Id"))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		p.Flush()
		got := rec.take()
		assert.ElementsMatch(t, auditIDs, got, "round %d: one record per request, handed over by the time Flush returns", round)
	}
}

// collectingRecorder keeps the Audit-IDs of the request records it is given.
type collectingRecorder struct {
	mu       sync.Mutex
	auditIDs []string
}

func (r *collectingRecorder) Ready() error { return nil }

func (r *collectingRecorder) Publish(_ context.Context, rec trail.Record) error {
	// A slow hand-over: Flush must still wait for it, not only for the queue to empty.
	time.Sleep(200 * time.Microsecond)
	if req, ok := rec.(*trail.Request); ok {
		r.mu.Lock()
		r.auditIDs = append(r.auditIDs, req.AuditID)
		r.mu.Unlock()
	}
	return nil
}

func (r *collectingRecorder) PublishSync(ctx context.Context, rec trail.Record) error {
	return r.Publish(ctx, rec)
}

// take returns the Audit-IDs collected so far and forgets them.
func (r *collectingRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.auditIDs
	r.auditIDs = nil
	return ids
}
