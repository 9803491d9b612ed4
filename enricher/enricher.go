package enricher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ErrNotReady is returned (and answered with 503) while the enricher has not yet opened its
// spool.
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
	attr    *attribution
	metrics *metrics

	spool         *spool
	ready         atomic.Bool   // spool open: the intake accepts batches
	streamsReady  chan struct{} // closed once the JetStream streams are known to exist
	migrated      atomic.Bool   // schema applied
	inFlight      chan struct{} // intake request slots
	inFlightBytes *semaphore.Weighted
	packers       packerPool // the intake's packer buffers, kept between batches

	// Test seams.
	observe     func(events [][]byte, code int) // sees every intake request's events and its answer
	afterInsert func(table string) error        // runs after every successful INSERT; an error fails the batch
	afterPoll   func()                          // runs after every poll of the audit log
}

// New returns an Enricher for opts. It does no I/O; Start does.
func New(opts Options) (*Enricher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	so := opts.Schema
	if so.Database == "" {
		so.Database = schema.DefaultDatabase
	}
	e := &Enricher{
		opts:          opts,
		log:           opts.Logger,
		ch:            opts.ClickHouse,
		db:            so.Database,
		attr:          newAttribution(&opts),
		metrics:       newMetrics(opts.Registerer),
		streamsReady:  make(chan struct{}),
		inFlight:      make(chan struct{}, opts.MaxInFlight),
		inFlightBytes: semaphore.NewWeighted(opts.MaxInFlightBytes),
	}
	registerSpool(opts.Registerer, func() spoolStats {
		if !e.ready.Load() {
			return spoolStats{MaxBytes: opts.SpoolMaxBytes}
		}
		return e.spool.stats()
	})
	return e, nil
}

// Ready reports whether the intake accepts batches: the spool is open. Neither NATS nor
// ClickHouse is needed to accept batches; they wait in the spool and in JetStream.
func (e *Enricher) Ready(context.Context) error {
	if !e.ready.Load() {
		return ErrNotReady
	}
	return nil
}

// Start opens the spool (from then on the intake accepts batches), follows the audit log when
// configured, publishes the spool to JetStream, migrates the ClickHouse schema and runs the
// consumers, until ctx ends. While NATS or ClickHouse is unreachable it keeps retrying. It
// returns an error only when the spool cannot be opened, and nil when ctx ends.
func (e *Enricher) Start(ctx context.Context) error {
	sp, rep, err := openSpool(e.opts.SpoolDir, e.opts.SpoolMaxBytes)
	if err != nil {
		return err
	}
	defer sp.close()
	e.spool = sp
	e.metrics.spoolDiscarded.Add(float64(rep.Discarded))
	if rep.Discarded > 0 {
		e.log.Warn("deleted batches a previous run was still writing; their senders were not answered and send them again", "batches", rep.Discarded)
	}
	e.ready.Store(true)
	e.log.Info("intake ready", "spool", e.opts.SpoolDir, "spooledBatches", rep.Batches, "spooledBytes", rep.Bytes,
		"spoolMaxBytes", e.opts.SpoolMaxBytes, "maxMessageBytes", e.opts.MaxMessageBytes)

	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("component stopped", "component", name, "err", err)
			}
		})
	}
	if e.opts.AuditLogPath != "" {
		wg.Go(func() { e.tailAuditLog(ctx) })
	}
	wg.Go(func() {
		if err := e.connect(ctx); err != nil {
			return // ctx ended
		}
		if err := retry(ctx, e.opts.RetryDelay, func() error {
			return trail.CheckStreams(ctx, e.js, trail.StreamTrail, trail.StreamAudit, trail.StreamRecordings)
		}, e.log, "the JetStream streams are not there yet, retrying; the intake spools batches meanwhile"); err != nil {
			return // ctx ended
		}
		close(e.streamsReady)
		e.drainSpool(ctx)
	})
	wg.Go(func() {
		select {
		case <-e.streamsReady:
		case <-ctx.Done():
			return
		}
		if err := retry(ctx, e.opts.RetryDelay, func() error {
			mctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			err := schema.Migrate(mctx, e.ch, e.opts.Schema)
			if errors.Is(err, schema.ErrGrant) {
				// Not a passing fault: nothing reaches ClickHouse until an administrator acts
				// (the records wait in JetStream, up to its MaxAge).
				e.log.Error("the enricher's ClickHouse account may not migrate the schema: nothing is stored until it is granted what `gatehouse sql --print-grants` prints", "err", err)
			}
			return err
		}, e.log, "migrating the ClickHouse schema failed, retrying"); err != nil {
			return
		}
		e.migrated.Store(true)
		e.log.Info("ClickHouse schema up to date", "database", e.db)
		for i := range e.opts.Workers {
			run(fmt.Sprintf("audit-consumer-%d", i), e.consumeAudit)
		}
		run("trail-consumer", e.consumeTrail)
		run("recordings-consumer", e.consumeRecordings)
	})
	wg.Wait()
	return nil
}

// connect sets up the NATS connection (Options.NATS, or Options.ConnectNATS, retried until it
// succeeds) and the JetStream API on it. The intake does not wait for it: batches wait in the
// spool.
func (e *Enricher) connect(ctx context.Context) error {
	nc := e.opts.NATS
	if nc == nil {
		if err := retry(ctx, e.opts.RetryDelay, func() error {
			var err error
			nc, err = e.opts.ConnectNATS(ctx)
			return err
		}, e.log, "connecting to NATS failed, retrying; the intake spools batches meanwhile"); err != nil {
			return err
		}
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(e.opts.PublishTimeout))
	if err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	if payload := int(nc.MaxPayload()); payload > 0 && e.opts.MaxMessageBytes > payload-4<<10 {
		e.log.Error("the NATS server's max_payload is smaller than the messages the intake builds; raise it, or lower MaxMessageBytes: larger spooled messages cannot be published",
			"maxPayload", payload, "maxMessageBytes", e.opts.MaxMessageBytes)
	}
	e.nc, e.js = nc, js
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
		BatchSize: batch,
		// At least one message of the largest size NATS allows, or the consumer would stall.
		MaxBytes:   max(e.opts.FetchBytes, int(e.nc.MaxPayload())+64<<10),
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
// and nothing is acknowledged, unless every event was inserted (or dead-lettered).
//
// A message whose MAC verifies was masked by an intake of this deployment. Any other (an
// EventList or an envelope published straight to NATS, whatever it claims) is masked here,
// event by event, before anything of it is stored.
func (e *Enricher) storeAudit(ctx context.Context, msgs []jetstream.Msg, rows *eventRows, errs *errorRows, buf *[]byte) error {
	rows.reset()
	errs.reset()
	at := now()
	var wb wireBatch
	var mem decoderMem
	inserted := 0
	for _, m := range msgs {
		start := time.Now()
		data := m.Data()
		switch enc := m.Headers().Get(HeaderEncoding); enc {
		case "":
		case encodingS2:
			n, err := s2.DecodedLen(data)
			if err == nil && n > e.maxDecodedBytes() {
				err = fmt.Errorf("decoded size %d exceeds %d bytes", n, e.maxDecodedBytes())
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
		if !e.verified(m.Data(), m.Headers().Get(HeaderMAC)) {
			// Not from an intake: mask it here, whatever it claims to be.
			masked, _, err := maskList(e.opts.Masker, data, OriginUnverified, e.opts.MaxEventBytes)
			e.metrics.stage(stageMask, time.Since(start))
			if err != nil {
				e.ingestError(m, errs, err, at)
				continue
			}
			e.metrics.unverified.Inc()
			e.log.Warn("audit batch without a valid intake MAC: masked by the consumer, stored with origin "+OriginUnverified, "subject", m.Subject(), "bytes", len(m.Data()))
			data = masked
			start = time.Now()
		}
		// Reuse the slices, zeroed, so that nothing of an earlier message's events remains.
		clear(wb.Items[:cap(wb.Items)])
		clear(wb.Masking[:cap(wb.Masking)])
		wb = wireBatch{Items: wb.Items[:0], Masking: wb.Masking[:0]}
		err := decodeBatch(&mem, data, &wb)
		e.metrics.stage(stageDecode, time.Since(start))
		if err != nil {
			e.ingestError(m, errs, err, at)
			continue
		}
		src := sourceOf(m)
		for i := range wb.Items {
			var st eventStats
			if i < len(wb.Masking) {
				st = wb.Masking[i]
			}
			ev := &wb.Items[i]
			rows.add(ev, st, wb.Origin, e.attr, at)
			rows.bytes += eventSize(ev)
			rows.source(src)
			if rows.rows >= e.opts.InsertRows || rows.bytes >= e.opts.InsertBytes {
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

// OriginUnverified is the origin of events from a batch without a valid intake MAC: published
// to NATS by something else than an intake, and masked by the consumer.
const OriginUnverified = "unverified"

// maxDecodedBytes bounds a decompressed message, against compression bombs: above any message
// an intake builds (a message closes at messageTarget, and one event is at most MaxEventBytes).
func (e *Enricher) maxDecodedBytes() int {
	return messageTarget + 2*e.opts.MaxEventBytes + 1<<20
}

// eventSize is about the memory an event's row takes: its strings, and the headers of its
// columns' strings, slices and maps (about 1 KiB).
func eventSize(ev *auditEvent) int {
	n := 1024 + len(ev.AuditID) + len(ev.RequestURI) + len(ev.UserAgent) + len(ev.RequestObject) + len(ev.ResponseObject)
	if ev.ResponseStatus != nil {
		n += len(ev.ResponseStatus.Message)
	}
	for k, v := range ev.Annotations {
		n += len(k) + len(v) + 64
	}
	for _, u := range []*userInfo{&ev.User, ev.ImpersonatedUser} {
		if u == nil {
			continue
		}
		for k, vs := range u.Extra {
			n += len(k) + 64
			for _, v := range vs {
				n += len(v) + 16
			}
		}
	}
	return n
}

// sourceOf returns where a message comes from, for dead letters.
func sourceOf(m jetstream.Msg) rowSource {
	src := rowSource{subject: m.Subject()}
	if md, err := m.Metadata(); err == nil {
		src.stream, src.sequence = md.Stream, md.Sequence.Stream
	}
	return src
}

// decisionSequence returns the stream sequence a decision from src is stored with. When the
// message's metadata cannot be read (src has no stream) it is the greatest sequence, so that
// the views take the decision for stored after every other attempt under its ID, not, as
// sequence 0 would (the rows stored before migration 7), before them.
func decisionSequence(src rowSource) uint64 {
	if src.stream == "" {
		return math.MaxUint64
	}
	return src.sequence
}

// inProgress resets the acknowledgement timer of messages still being worked on.
func inProgress(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// decodeBatch decodes a message in the enricher's envelope, with the memory mem keeps between
// the messages of a batch.
func decodeBatch(mem *decoderMem, data []byte, wb *wireBatch) error {
	if err := decodeWith(mem, data, wb); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if wb.APIVersion != messageAPIVersion || wb.Kind != messageKind {
		return fmt.Errorf("%w: unknown message %q %q", ErrMalformed, trail.ShortID(wb.APIVersion), trail.ShortID(wb.Kind))
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

// storeTrail decodes trail records and inserts them, one INSERT per table. A message may carry
// several records of its subject (trail.DecodeAll); each is decided on its own: stored, skipped
// (a kind this enricher does not know) or refused (malformed, or not of the message's subject).
// A message with refused records has one ingest_errors row, which names each of them.
func (e *Enricher) storeTrail(ctx context.Context, msgs []jetstream.Msg, t *trailRows) error {
	for _, c := range t.tables() {
		c.reset()
	}
	at := now()
	var refused []error
	for _, m := range msgs {
		refused = refused[:0]
		more := 0                                       // refused records not named
		several := bytes.IndexByte(m.Data(), '\n') >= 0 // errors name the record
		src := sourceOf(m)
		i := 0 // the record's ordinal among the message's non-blank lines, from 1
		for rec, err := range trail.DecodeAll(m.Data()) {
			i++
			switch {
			case errors.Is(err, trail.ErrUnknownKind):
				// A newer producer's record: skip it, it stays in the stream for a newer enricher.
				e.metrics.skipped.Inc()
				e.log.Debug("skipping a trail record of unknown kind", "subject", m.Subject(), "err", err)
				continue
			case err != nil:
				refused, more = appendRefused(refused, more, err)
				continue
			}
			if subj, err := trail.Subject(rec); err != nil || subj != m.Subject() {
				// Each kind has its own subjects, and NATS lets only its producer publish on them
				// (natsbus.Permissions): a record on another kind's subject is a forgery, or a copy
				// a consumer's deliver subject made, wherever it stands in its message. Not
				// stored; ingest_errors says where it is.
				err := fmt.Errorf("%w: a %s record on subject %s", ErrMisplaced, rec.Header().Kind, m.Subject())
				if several {
					err = fmt.Errorf("record %d (%s): %w", i, trail.ShortID(rec.Header().ID), err)
				}
				refused, more = appendRefused(refused, more, err)
				continue
			}
			switch r := rec.(type) {
			case *trail.Request:
				t.requests.add(r, e.attr, at)
			case *trail.Decision:
				// Where JetStream stored it: a copy delivered again is stored where the first was.
				t.decisions.add(r, at, decisionSequence(src), uint32(i))
			case *trail.Session:
				t.sessions.add(r, at)
			case *trail.Approval:
				t.approvals.add(r, at)
			// A new record kind: add its rows type (rows.go), table (a schema migration) and case.
			default:
				e.metrics.skipped.Inc()
			}
		}
		if len(refused) > 0 {
			// One row per message: ingest_errors is keyed by stream sequence.
			if more > 0 {
				refused = append(refused, fmt.Errorf("%d more records refused", more))
			}
			e.ingestError(m, t.errs, joinErrors(refused), at)
		}
		for _, c := range t.tables() {
			c.source(src)
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

// maxRefusedNamed bounds the refused records an ingest_errors row names one by one: a message
// of a million malformed lines is one short row.
const maxRefusedNamed = 16

// appendRefused adds err to the refused records of a message, or counts it in more once
// maxRefusedNamed are named.
func appendRefused(refused []error, more int, err error) ([]error, int) {
	if len(refused) < maxRefusedNamed {
		return append(refused, err), more
	}
	return refused, more + 1
}

// joinErrors returns the one error of errs, or an error naming each of them, separated by
// "; ", which errors.Is matches against any of them.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return recordErrors(slices.Clone(errs))
}

// recordErrors are the errors of the records of one message.
type recordErrors []error

func (es recordErrors) Error() string {
	var b strings.Builder
	for i, err := range es {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (es recordErrors) Unwrap() []error { return es }
