package enricher

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
)

// benchEvents is the number of events one benchmark operation ingests: enough for the
// pipeline to run at its sustained rate for a few seconds.
const benchEvents = 200_000

// benchBatch is the size of kube-apiserver's audit webhook batches (its default).
const benchBatch = 400

// benchBodies returns the EventLists of one operation, with audit IDs unique to run.
func benchBodies(run int) [][]byte {
	var out [][]byte
	o := genOptions{id: fmt.Sprintf("bench-%d", run), session: "bench-session"}
	for i := 0; i < benchEvents; i += benchBatch {
		out = append(out, testEventList(i, i+benchBatch, o))
	}
	return out
}

// BenchmarkIngest measures audit events per second from the HTTPS intake to rows committed in
// ClickHouse (the shared test server, native protocol), with masking, against decoding the same
// batches alone: what any consumer of the audit webhook pays. One operation is benchEvents
// events; custom metrics give the rate and the share of the pipeline's time spent in each stage
// (read and mask in the intake, write and sync the spool, publish to JetStream, decode in the
// consumer, insert).
func BenchmarkIngest(b *testing.B) {
	b.Run("baseline=decode-only", func(b *testing.B) {
		bodies := benchBodies(0)
		var bytes int64
		for _, body := range bodies {
			bytes += int64(len(body))
		}
		b.SetBytes(bytes)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			for _, body := range bodies {
				var l struct{ Items []auditEvent }
				if err := jsonUnmarshal(body, &l); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(benchEvents*b.N)/time.Since(start).Seconds(), "events/s")
	})
	// The pipeline with one audit batch consumer, and with two (the default): the scaling of one
	// enricher with its workers.
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("end-to-end/workers=%d", workers), func(b *testing.B) { benchEndToEnd(b, workers) })
	}
}

// benchEndToEnd posts the benchmark's events to the intake of an enricher with that many
// workers and waits until ClickHouse holds them all.
func benchEndToEnd(b *testing.B, workers int) {
	h := newHarness(b, harnessOptions{tweak: func(o *Options) {
		o.BatchMaxWait = 250 * time.Millisecond
		o.Workers = workers
	}})
	before := h.Stats()
	var elapsed, posting time.Duration
	for run := range b.N {
		b.StopTimer()
		bodies := benchBodies(run + 1)
		b.StartTimer()
		start := time.Now()
		postConcurrently(b, h, bodies, 8)
		posting += time.Since(start)
		want := uint64(benchEvents * (run + 1))
		if err := wait.PollUntilContextTimeout(b.Context(), 20*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
			return h.count(b, "SELECT count() FROM {db}.audit_events") >= want, nil
		}); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(benchEvents*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(benchEvents*b.N)/posting.Seconds(), "intake-events/s")
	after := h.Stats()
	var total time.Duration
	d := map[string]time.Duration{}
	for _, s := range stages {
		d[s] = after.Stages[s] - before.Stages[s]
		total += d[s]
	}
	b.ReportMetric(float64(d[stageDecode])/float64(total), "decode-share")
	b.ReportMetric(float64(d[stageRead]+d[stageMask])/float64(total), "mask-share")
	b.ReportMetric(float64(d[stageSpool])/float64(total), "spool-share")
	b.ReportMetric(float64(d[stagePublish])/float64(total), "publish-share")
	b.ReportMetric(float64(d[stageInsert])/float64(total), "insert-share")
	b.ReportMetric(float64(total)/float64(benchEvents*b.N), "stage-ns/event")
}

// postConcurrently posts bodies to the intake from n clients, as kube-apiserver's batching
// backend sends batches in parallel.
func postConcurrently(b *testing.B, h *harness, bodies [][]byte, n int) {
	work := make(chan []byte)
	var wg sync.WaitGroup
	var failed sync.Once
	for range n {
		wg.Go(func() {
			for body := range work {
				if code := h.post(b, body); code != http.StatusOK {
					failed.Do(func() { b.Errorf("intake answered %d", code) })
				}
			}
		})
	}
	for _, body := range bodies {
		work <- body
	}
	close(work)
	wg.Wait()
	require.False(b, b.Failed())
}

// BenchmarkDecodeBatch decodes one consumer message of 400 masked events with the enricher's
// own decoder (decode.go) against encoding/json with Kubernetes' semantics (sigs.k8s.io/json,
// what FuzzDecodeBatch compares it with): what the hand-written decoder earns.
func BenchmarkDecodeBatch(b *testing.B) {
	m := newMasker(b)
	l, err := splitEventList(testEventList(0, benchBatch, genOptions{id: "bench-decode", session: "s-1"}))
	require.NoError(b, err)
	var msg []byte
	p := newPacker(m, OriginWebhook, 0, func(data []byte) error { msg = append([]byte(nil), data...); return nil })
	for _, it := range l.Items {
		require.NoError(b, p.add(it, ""))
	}
	require.NoError(b, p.flush())
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"baseline=encoding-json", func(data []byte) error { _, err := referenceDecode(data); return err }},
		{"decoder", func(data []byte) error { var wb wireBatch; return jsonUnmarshal(data, &wb) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := tc.decode(msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBatch*b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
