package enricher

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pipeline stages whose time the enricher accounts for.
const (
	stageRead    = "read"    // intake: read the events of a batch
	stageMask    = "mask"    // intake: mask the events and build messages
	stageSpool   = "spool"   // intake: write the batch to the spool and sync it
	stagePublish = "publish" // drainer: store spooled batches in JetStream
	stageDecode  = "decode"  // consumer: decode messages into rows
	stageInsert  = "insert"  // consumer: INSERT into ClickHouse
)

var stages = []string{stageRead, stageMask, stageSpool, stagePublish, stageDecode, stageInsert}

type metrics struct {
	requests     *prometheus.CounterVec
	events       *prometheus.CounterVec
	truncated    prometheus.Counter
	rows         *prometheus.CounterVec
	insertErrors *prometheus.CounterVec
	ingestErrors *prometheus.CounterVec
	skipped      prometheus.Counter
	deadLetters  *prometheus.CounterVec
	unverified   prometheus.Counter

	inFlightBytes    prometheus.Gauge
	spoolFull        prometheus.Counter
	spoolDuplicates  prometheus.Counter
	spoolCorrupt     prometheus.Counter
	spoolDiscarded   prometheus.Counter
	spooledPublished prometheus.Counter
	auditLogBadLines prometheus.Counter
	auditLogGaps     prometheus.Counter

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
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_enricher_dead_letters_total",
			Help: "Rows ClickHouse rejected for good, stored in the dead_letters table instead, by the table they were meant for.",
		}, []string{"table"}),
		unverified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_unverified_batches_total",
			Help: "Audit batches without a valid intake MAC (published to NATS by something else than an intake), masked by the consumer.",
		}),
		inFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_enricher_intake_inflight_bytes",
			Help: "Request bytes the intake is processing (a request of unknown length counts as --max-request-bytes).",
		}),
		spoolFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_spool_full_total",
			Help: "Audit batches refused with 503 because the spool was full (kube-apiserver retries them).",
		}),
		spoolDuplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_spool_duplicates_total",
			Help: "Audit batches received again while the first copy was still spooled; stored once.",
		}),
		spoolCorrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_spool_corrupt_total",
			Help: "Spooled batches found torn or damaged (or unpublishable) and moved aside as *.corrupt.",
		}),
		spoolDiscarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_spool_incomplete_discarded_total",
			Help: "Batches a previous run was still writing when it stopped (never acknowledged, so retried by their sender), deleted at start.",
		}),
		spooledPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_spool_published_total",
			Help: "Spooled batches published to JetStream and removed from the spool.",
		}),
		auditLogBadLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_audit_log_bad_lines_total",
			Help: "Audit log lines that were not audit events, skipped.",
		}),
		auditLogGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_enricher_audit_log_gaps_total",
			Help: "Audit log files removed or compressed by rotation before the enricher had read them.",
		}),
		stageNanos: map[string]*atomic.Int64{},
	}
	for _, s := range stages {
		m.stageNanos[s] = &atomic.Int64{}
	}
	if reg != nil {
		stageSeconds := prometheus.NewCounterFunc // one per stage
		reg.MustRegister(m.requests, m.events, m.truncated, m.rows, m.insertErrors, m.ingestErrors, m.skipped,
			m.deadLetters, m.unverified, m.inFlightBytes, m.spoolFull, m.spoolDuplicates, m.spoolCorrupt,
			m.spoolDiscarded, m.spooledPublished, m.auditLogBadLines, m.auditLogGaps)
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

// registerSpool adds the spool's gauges, read from stats at every scrape.
func registerSpool(reg prometheus.Registerer, stats func() spoolStats) {
	if reg == nil {
		return
	}
	gauge := func(name, help string, f func(spoolStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(stats()) })
	}
	reg.MustRegister(
		gauge("gatehouse_enricher_spool_bytes", "Bytes in the spool: batches accepted and not yet in JetStream, and batches being written.",
			func(s spoolStats) float64 { return float64(s.Bytes) }),
		gauge("gatehouse_enricher_spool_max_bytes", "The spool's size limit (--spool-max-bytes).",
			func(s spoolStats) float64 { return float64(s.MaxBytes) }),
		gauge("gatehouse_enricher_spool_batches", "Batches in the spool, waiting for JetStream.",
			func(s spoolStats) float64 { return float64(s.Batches) }),
		gauge("gatehouse_enricher_spool_oldest_age_seconds", "Age of the oldest batch in the spool; 0 when it is empty.",
			func(s spoolStats) float64 {
				if s.Oldest.IsZero() {
					return 0
				}
				return time.Since(s.Oldest).Seconds()
			}),
	)
}

func (m *metrics) stage(name string, d time.Duration) {
	m.stageNanos[name].Add(int64(d))
}

// Stats are cumulative figures of an Enricher, for benchmarks and diagnostics.
type Stats struct {
	// Stages is the time spent in each stage (read, mask, spool, publish, decode, insert), summed
	// over concurrent requests and workers.
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
