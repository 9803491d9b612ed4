package enricher

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pipeline stages whose time the enricher accounts for.
const (
	stageSplit   = "split"   // intake: find the events of a batch
	stageMask    = "mask"    // intake: mask the events and build messages
	stagePublish = "publish" // intake: store in JetStream
	stageDecode  = "decode"  // consumer: decode messages into rows
	stageInsert  = "insert"  // consumer: INSERT into ClickHouse
)

var stages = []string{stageSplit, stageMask, stagePublish, stageDecode, stageInsert}

type metrics struct {
	requests     *prometheus.CounterVec
	events       *prometheus.CounterVec
	truncated    prometheus.Counter
	rows         *prometheus.CounterVec
	insertErrors *prometheus.CounterVec
	ingestErrors *prometheus.CounterVec
	skipped      prometheus.Counter

	stageNanos map[string]*atomic.Int64
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_intake_requests_total",
			Help: "Audit webhook requests, by HTTP status answered.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_intake_events_total",
			Help: "Audit events accepted and stored in JetStream, by origin (webhook, file).",
		}, []string{"origin"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_truncated_events_total",
			Help: "Audit events stored without their request and response objects.",
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_inserted_rows_total",
			Help: "Rows inserted into ClickHouse, by table (duplicates collapse later).",
		}, []string{"table"}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_insert_errors_total",
			Help: "Failed INSERTs, by table. The batch is delivered again.",
		}, []string{"table"}),
		ingestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_ingest_errors_total",
			Help: "Messages that could not be decoded, recorded in ingest_errors, by stream.",
		}, []string{"stream"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_skipped_trail_records_total",
			Help: "Trail records of a kind this enricher does not know, left for a newer one.",
		}),
		stageNanos: map[string]*atomic.Int64{},
	}
	for _, s := range stages {
		m.stageNanos[s] = &atomic.Int64{}
	}
	if reg != nil {
		stageSeconds := prometheus.NewCounterFunc // one per stage
		reg.MustRegister(m.requests, m.events, m.truncated, m.rows, m.insertErrors, m.ingestErrors, m.skipped)
		for _, s := range stages {
			n := m.stageNanos[s]
			reg.MustRegister(stageSeconds(prometheus.CounterOpts{
				Name:        "gatehouse_enricher_stage_seconds_total",
				Help:        "Time spent in each pipeline stage, summed over concurrent workers.",
				ConstLabels: prometheus.Labels{"stage": s},
			}, func() float64 { return time.Duration(n.Load()).Seconds() }))
		}
	}
	return m
}

func (m *metrics) stage(name string, d time.Duration) {
	m.stageNanos[name].Add(int64(d))
}

// Stats are cumulative figures of an Enricher, for benchmarks and diagnostics.
type Stats struct {
	// Stages is the time spent in each stage (split, mask, publish, decode, insert), summed over
	// concurrent requests and workers.
	Stages map[string]time.Duration
}

// Stats returns the enricher's cumulative figures.
func (e *Enricher) Stats() Stats {
	s := Stats{Stages: map[string]time.Duration{}}
	for name, n := range e.metrics.stageNanos {
		s.Stages[name] = time.Duration(n.Load())
	}
	return s
}
