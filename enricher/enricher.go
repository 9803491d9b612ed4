package enricher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ErrNotReady is returned (and answered with 503) while the enricher has not yet ensured its
// JetStream streams.
var ErrNotReady = errors.New("enricher: not ready")

// Enricher receives kube-apiserver audit events, stores them durably in JetStream, and writes
// them, masked and joinable with the gateway's trail, into ClickHouse. It is an http.Handler
// for the audit webhook backend and a Runnable: Start runs the consumers.
type Enricher struct {
	opts    Options
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	ch      driver.Conn
	db      string
	trusted map[string]bool
	metrics *metrics

	ready    atomic.Bool   // streams ensured
	migrated atomic.Bool   // schema applied
	inFlight chan struct{} // intake request slots

	// Test seams.
	observe     func(body []byte, code int) // sees every intake request body and its answer
	afterInsert func(table string) error    // runs after every successful INSERT; an error fails the batch
}

// New returns an Enricher for opts. It does no I/O; Start does.
func New(opts Options) (*Enricher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	js, err := jetstream.New(opts.NATS, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	so := opts.Schema
	if so.Database == "" {
		so.Database = schema.DefaultDatabase
	}
	e := &Enricher{
		opts:     opts,
		log:      opts.Logger,
		nc:       opts.NATS,
		js:       js,
		ch:       opts.ClickHouse,
		db:       so.Database,
		trusted:  map[string]bool{},
		metrics:  newMetrics(opts.Registerer),
		inFlight: make(chan struct{}, opts.MaxInFlight),
	}
	for _, u := range opts.GatewayUsers {
		e.trusted[u] = true
	}
	return e, nil
}

// Ready reports whether the intake accepts batches: the streams exist and NATS is connected.
// ClickHouse is not needed to accept batches; they wait in JetStream.
func (e *Enricher) Ready(context.Context) error {
	if !e.ready.Load() {
		return ErrNotReady
	}
	if st := e.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection is %s", trail.ErrUnavailable, st)
	}
	return nil
}

// Start ensures the JetStream streams, migrates the ClickHouse schema and runs the consumers
// until ctx ends. While ClickHouse is unreachable it keeps retrying; the intake accepts batches
// all the while. It returns nil when ctx ends.
func (e *Enricher) Start(ctx context.Context) error {
	if err := retry(ctx, e.opts.RetryDelay, func() error {
		return trail.EnsureStreams(ctx, e.js, e.opts.Streams)
	}, e.log, "ensuring the JetStream streams failed, retrying"); err != nil {
		return nil // ctx ended
	}
	e.ready.Store(true)
	e.log.Info("intake ready", "maxMessageBytes", e.opts.MaxMessageBytes)

	if err := retry(ctx, e.opts.RetryDelay, func() error {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return schema.Migrate(mctx, e.ch, e.opts.Schema)
	}, e.log, "migrating the ClickHouse schema failed, retrying"); err != nil {
		return nil
	}
	e.migrated.Store(true)
	e.log.Info("ClickHouse schema up to date", "database", e.db)

	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("component stopped", "component", name, "err", err)
			}
		})
	}
	for i := range e.opts.Workers {
		run(fmt.Sprintf("audit-consumer-%d", i), e.consumeAudit)
	}
	run("trail-consumer", e.consumeTrail)
	run("recordings-consumer", e.consumeRecordings)
	if e.opts.AuditLogPath != "" {
		run("audit-log-tailer", e.tailAuditLog)
	}
	wg.Wait()
	return nil
}

// retry runs f until it succeeds or ctx ends, logging failures.
func retry(ctx context.Context, delay time.Duration, f func() error, log *slog.Logger, msg string) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(msg, "retryIn", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// consumerConfig returns the durable consumer the enricher reads stream with.
func (e *Enricher) consumerConfig(stream string) jetstream.ConsumerConfig {
	cfg := trail.EnricherConsumer(stream)
	cfg.AckWait = e.opts.AckWait
	return cfg
}

// consumerOptions returns the options of a trail.Consumer reading for this enricher.
func (e *Enricher) consumerOptions(batch int) trail.ConsumerOptions {
	return trail.ConsumerOptions{
		BatchSize:  batch,
		MaxWait:    e.opts.BatchMaxWait,
		RetryDelay: e.opts.RetryDelay,
		Logger:     e.log,
	}
}

// consumeAudit reads audit batches and stores them until ctx ends.
func (e *Enricher) consumeAudit(ctx context.Context) error {
	var c *trail.Consumer
	if err := retry(ctx, e.opts.RetryDelay, func() error {
		var err error
		c, err = trail.NewConsumer(ctx, e.js, trail.StreamAudit, e.consumerConfig(trail.StreamAudit), e.consumerOptions(e.opts.BatchMessages))
		return err
	}, e.log, "creating the audit batch consumer failed, retrying"); err != nil {
		return nil
	}
	rows := newEventRows()
	errs := newErrorRows()
	var buf []byte // decompressed messages
	return c.Run(ctx, func(ctx context.Context, msgs []jetstream.Msg) error {
		return e.storeAudit(ctx, msgs, rows, errs, &buf)
	})
}

// storeAudit decodes a batch of audit messages and inserts their events. It returns an error,
// and nothing is acknowledged, unless every event was inserted.
func (e *Enricher) storeAudit(ctx context.Context, msgs []jetstream.Msg, rows *eventRows, errs *errorRows, buf *[]byte) error {
	rows.reset()
	errs.reset()
	at := now()
	var wb wireBatch
	inserted := 0
	for _, m := range msgs {
		start := time.Now()
		data := m.Data()
		switch enc := m.Headers().Get(HeaderEncoding); enc {
		case "":
		case encodingS2:
			n, err := s2.DecodedLen(data)
			if err == nil && n > maxDecodedBytes {
				err = fmt.Errorf("decoded size %d exceeds %d bytes", n, maxDecodedBytes)
			}
			if err == nil {
				*buf = slices.Grow((*buf)[:0], n)
				data, err = s2.Decode((*buf)[:n], data)
			}
			if err != nil {
				e.ingestError(m, errs, fmt.Errorf("%w: %w", ErrMalformed, err), at)
				continue
			}
			*buf = data // reused for the next message: rows copy what they keep
		default:
			e.ingestError(m, errs, fmt.Errorf("%w: unknown encoding %q", ErrMalformed, enc), at)
			continue
		}
		if len(data) < len(messageHead) || string(data[:len(messageHead)]) != messageHead {
			// A plain EventList from another producer: mask it here.
			masked, _, err := maskRawList(e.opts.Masker, data, OriginWebhook)
			e.metrics.stage(stageMask, time.Since(start))
			if err != nil {
				e.ingestError(m, errs, err, at)
				continue
			}
			data = masked
			start = time.Now()
		}
		// Reuse the slices, zeroed, so that nothing of an earlier message's events remains.
		clear(wb.Items[:cap(wb.Items)])
		clear(wb.Masking[:cap(wb.Masking)])
		wb = wireBatch{Items: wb.Items[:0], Masking: wb.Masking[:0]}
		err := decodeBatch(data, &wb)
		e.metrics.stage(stageDecode, time.Since(start))
		if err != nil {
			e.ingestError(m, errs, err, at)
			continue
		}
		for i := range wb.Items {
			var st eventStats
			if i < len(wb.Masking) {
				st = wb.Masking[i]
			}
			rows.add(&wb.Items[i], st, wb.Origin, e.trusted, at)
		}
		if rows.rows >= e.opts.InsertRows {
			if inserted > 0 {
				inProgress(msgs)
			}
			if err := e.insert(ctx, &rows.columns); err != nil {
				return err
			}
			inserted += rows.rows
			rows.reset()
		}
	}
	if rows.rows > 0 {
		if inserted > 0 {
			inProgress(msgs)
		}
		if err := e.insert(ctx, &rows.columns); err != nil {
			return err
		}
	}
	if errs.rows > 0 {
		if err := e.insert(ctx, &errs.columns); err != nil {
			return err
		}
	}
	return nil
}

// maxDecodedBytes bounds a decompressed message, against compression bombs: far above any
// batch the intake accepts.
const maxDecodedBytes = 256 << 20

// inProgress resets the acknowledgement timer of messages still being worked on.
func inProgress(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// decodeBatch decodes a message in the enricher's envelope.
func decodeBatch(data []byte, wb *wireBatch) error {
	if err := jsonUnmarshal(data, wb); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if wb.APIVersion != messageAPIVersion || wb.Kind != messageKind {
		return fmt.Errorf("%w: unknown message %s %s", ErrMalformed, wb.APIVersion, wb.Kind)
	}
	if len(wb.Masking) != len(wb.Items) {
		return fmt.Errorf("%w: %d events but %d masking entries", ErrMalformed, len(wb.Items), len(wb.Masking))
	}
	return nil
}

// ingestError records a message that can never be stored. It is acknowledged with its batch
// and stays in its stream until MaxAge; ingest_errors says where.
func (e *Enricher) ingestError(m jetstream.Msg, errs *errorRows, err error, at time.Time) {
	var seq uint64
	stream, ts := "", at
	if md, mdErr := m.Metadata(); mdErr == nil {
		seq, stream, ts = md.Sequence.Stream, md.Stream, md.Timestamp
	}
	e.metrics.ingestErrors.WithLabelValues(stream).Inc()
	e.log.Error("message cannot be stored; recorded in ingest_errors", "stream", stream, "sequence", seq, "bytes", len(m.Data()), "err", err)
	errs.add(ts, stream, seq, m.Subject(), len(m.Data()), err, at)
}

// insert writes the rows of one table in one INSERT.
func (e *Enricher) insert(ctx context.Context, c *columns) error {
	start := time.Now()
	err := e.send(ctx, c)
	e.metrics.stage(stageInsert, time.Since(start))
	if err != nil {
		e.metrics.insertErrors.WithLabelValues(c.table).Inc()
		return fmt.Errorf("enricher: insert %d rows into %s.%s: %w", c.rows, e.db, c.table, err)
	}
	e.metrics.rows.WithLabelValues(c.table).Add(float64(c.rows))
	if e.afterInsert != nil {
		return e.afterInsert(c.table)
	}
	return nil
}

func (e *Enricher) send(ctx context.Context, c *columns) error {
	// An insert under way at shutdown completes (within InsertTimeout), so that its batch is
	// acknowledged rather than delivered again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.InsertTimeout)
	defer cancel()
	// optimize_on_insert=0: ReplacingMergeTree would otherwise deduplicate every inserted block
	// on its own, which doubles ClickHouse's insert cost; duplicates collapse in merges and in
	// every query with FINAL anyway.
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"optimize_on_insert": 0}))
	batch, err := e.ch.PrepareBatch(ctx, c.insertQuery(e.db), driver.WithReleaseConnection())
	if err != nil {
		return err
	}
	defer func() { _ = batch.Close() }()
	if err := c.appendTo(batch); err != nil {
		return err
	}
	return batch.Send()
}

// consumeTrail reads the gateway's trail records and stores them until ctx ends.
func (e *Enricher) consumeTrail(ctx context.Context) error {
	var c *trail.Consumer
	if err := retry(ctx, e.opts.RetryDelay, func() error {
		var err error
		c, err = trail.NewConsumer(ctx, e.js, trail.StreamTrail, e.consumerConfig(trail.StreamTrail), e.consumerOptions(5000))
		return err
	}, e.log, "creating the trail consumer failed, retrying"); err != nil {
		return nil
	}
	t := newTrailRows()
	return c.Run(ctx, func(ctx context.Context, msgs []jetstream.Msg) error {
		return e.storeTrail(ctx, msgs, t)
	})
}

// trailRows holds the rows of every table trail records go to.
type trailRows struct {
	requests  *requestRows
	decisions *decisionRows
	sessions  *sessionRows
	approvals *approvalRows
	errs      *errorRows
}

func newTrailRows() *trailRows {
	return &trailRows{newRequestRows(), newDecisionRows(), newSessionRows(), newApprovalRows(), newErrorRows()}
}

func (t *trailRows) tables() []*columns {
	return []*columns{&t.requests.columns, &t.decisions.columns, &t.sessions.columns, &t.approvals.columns, &t.errs.columns}
}

// storeTrail decodes trail records and inserts them, one INSERT per table.
func (e *Enricher) storeTrail(ctx context.Context, msgs []jetstream.Msg, t *trailRows) error {
	for _, c := range t.tables() {
		c.reset()
	}
	at := now()
	for _, m := range msgs {
		rec, err := trail.Decode(m.Data())
		switch {
		case errors.Is(err, trail.ErrUnknownKind):
			// A newer producer's record: skip it, it stays in the stream for a newer enricher.
			e.metrics.skipped.Inc()
			e.log.Debug("skipping a trail record of unknown kind", "subject", m.Subject(), "err", err)
			continue
		case err != nil:
			e.ingestError(m, t.errs, err, at)
			continue
		}
		switch r := rec.(type) {
		case *trail.Request:
			t.requests.add(r, at)
		case *trail.Decision:
			t.decisions.add(r, at)
		case *trail.Session:
			t.sessions.add(r, at)
		case *trail.Approval:
			t.approvals.add(r, at)
		// A new record kind: add its rows type (rows.go), table (a schema migration) and case.
		default:
			e.metrics.skipped.Inc()
		}
	}
	for _, c := range t.tables() {
		if c.rows == 0 {
			continue
		}
		if err := e.insert(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
