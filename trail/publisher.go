package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned by Publisher. Callers that must not act without a record (the proxy's
// "no unrecorded action" mode, privileged admission) test for them with errors.Is and refuse.
var (
	// ErrUnavailable means NATS cannot take the record now: the connection is down or the
	// server refused it.
	ErrUnavailable = errors.New("trail: NATS is unavailable")
	// ErrBacklog means the publisher already holds PublisherOptions.MaxPending records that NATS
	// has not acknowledged.
	ErrBacklog = errors.New("trail: too many unacknowledged records")
	// ErrClosed means the publisher was closed.
	ErrClosed = errors.New("trail: publisher closed")
)

// PublisherOptions configures a Publisher. The zero value is usable.
type PublisherOptions struct {
	// Source is stamped into records whose Meta.Source is empty.
	Source string
	// MaxPending bounds the records published but not yet acknowledged by JetStream, retries
	// included. Publish returns ErrBacklog beyond it. Default 8192.
	MaxPending int
	// AckTimeout is how long an acknowledgement may take before the record is published again
	// (under the same message ID, so it is stored once). Default 5s.
	AckTimeout time.Duration
	// MaxRetryDelay caps the exponential delay between republishing attempts, which starts at
	// 100ms. Default 5s.
	MaxRetryDelay time.Duration
	// BatchDelay is how long Publish holds a record so that the records published meanwhile go
	// to NATS together: one write, and one wake-up of the server and of the acknowledgement
	// handling, for all of them, instead of one per record on the publisher's request path.
	// Those wake-ups, not the records' bytes, are most of what a record costs the publisher and
	// the server: a proxy serving small GETs one after another (about 4,000 a second) spent 11%
	// less CPU per request, and its NATS server half, with 10ms than with 1ms. A held record counts
	// against MaxPending and is retried like any other once handed over; it is lost only if the
	// process dies before it is handed over, as a handed-over record not yet stored is.
	// PublishSync never waits for it. Default 10ms; negative: every record is handed to
	// JetStream at once, in a message of its own.
	//
	// The records of one subject (one kind, one session) handed over together travel in as
	// few messages as MaxBatchRecords and MaxBatchBytes allow (see DecodeAll): JetStream stores
	// and acknowledges a message, not a record, so that is most of what a record costs the
	// server. A message is acknowledged, retried and lost whole.
	BatchDelay time.Duration
	// MaxBatchRecords bounds the records of one message. Default 1: every record is a message
	// of its own, under its ID as JetStream message ID, so that a record published again under
	// the same ID in a later message (a caller's retry, from this process or another, within
	// the stream's duplicate window) is stored once. JetStream deduplicates messages, not
	// records: set it above 1 (PackedRecords) only for records whose IDs are new for every
	// record published, as the proxy's are, or whose reader tells copies apart itself, as the
	// enricher's views do for decisions (one per ID and session), and once
	// every enricher reads messages of several records (DecodeAll).
	MaxBatchRecords int
	// MaxBatchBytes bounds the data of a message of several records, well under the NATS
	// server's max_payload (which bounds it too); a record larger than that is a message of its
	// own. Default 64 KiB.
	MaxBatchBytes int
	// Logger receives retry and loss reports, which name record IDs only. Default: discard.
	Logger *slog.Logger
}

// Defaults of PublisherOptions.
const (
	DefaultBatchDelay    = 10 * time.Millisecond
	DefaultMaxBatchBytes = 64 << 10
)

// PackedRecords is PublisherOptions.MaxBatchRecords for a publisher whose records may share a
// message (the proxy's): up to 256 records per message.
const PackedRecords = 256

func (o *PublisherOptions) setDefaults() {
	if o.MaxPending == 0 {
		o.MaxPending = 8192
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.MaxRetryDelay == 0 {
		o.MaxRetryDelay = 5 * time.Second
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	if o.MaxBatchRecords == 0 {
		o.MaxBatchRecords = 1
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *PublisherOptions) Validate() error {
	if o.MaxPending < 0 {
		return fmt.Errorf("trail: MaxPending must not be negative, got %d", o.MaxPending)
	}
	if o.AckTimeout < 0 || o.MaxRetryDelay < 0 {
		return errors.New("trail: AckTimeout and MaxRetryDelay must not be negative")
	}
	if o.MaxBatchRecords < 0 || o.MaxBatchBytes < 0 {
		return errors.New("trail: MaxBatchRecords and MaxBatchBytes must not be negative")
	}
	return nil
}

// Publisher publishes records to JetStream asynchronously and republishes every record whose
// acknowledgement fails until it is stored or the publisher is closed. It is safe for concurrent
// use.
type Publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts PublisherOptions

	mu       sync.Mutex
	pending  int               // records accepted and not yet acknowledged
	attempts map[*nats.Msg]int // failed attempts of messages being retried
	// records counts the records of the messages carrying more than one, until they are
	// acknowledged or lost; a message not in it carries one.
	records map[*nats.Msg]int
	idle    chan struct{} // closed when pending drops to zero; nil while zero
	closed  bool          // Publish refuses new records
	stopped bool          // Close gave up waiting: retries end
	// batch holds the records accepted and not yet handed to JetStream (BatchDelay); a timer
	// is armed while it is not empty. batchIDs holds their subjects, IDs and encoded records when
	// records are packed (MaxBatchRecords > 1): a record published again, identical, while held
	// is stored once, as JetStream would have stored it alone; another record under the same ID
	// (an admission review decided again) is kept, as it is in a later message.
	batch    []encodedRecord
	batchIDs map[string]struct{}
	// sending serializes the hand-over of batches, so that records go in the order accepted.
	sending sync.Mutex
	// bySubject is sendBatch's grouping of a batch by subject (under sending).
	bySubject map[string][]encodedRecord
}

// encodedRecord is a record encoded for a message: its subject, ID and JSON.
type encodedRecord struct {
	subject, id string
	data        []byte
}

// NewPublisher returns a Publisher on nc. The streams must exist (EnsureStreams).
func NewPublisher(nc *nats.Conn, opts PublisherOptions) (*Publisher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	p := &Publisher{nc: nc, opts: opts, attempts: map[*nats.Msg]int{}, records: map[*nats.Msg]int{},
		batchIDs: map[string]struct{}{}, bySubject: map[string][]encodedRecord{}}
	js, err := jetstream.New(nc,
		// JetStream's own bound is only a backstop: Publish enforces MaxPending first, and
		// retries must never stall on it.
		jetstream.WithPublishAsyncMaxPending(2*opts.MaxPending),
		jetstream.WithPublishAsyncTimeout(opts.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(p.acked),
		jetstream.WithPublishAsyncErrHandler(p.failed),
	)
	if err != nil {
		return nil, fmt.Errorf("trail: %w", err)
	}
	p.js = js
	return p, nil
}

// Publish completes the record's header, encodes it and hands it to JetStream, with the other
// records of the next BatchDelay, without waiting for the acknowledgement. It returns
// ErrUnavailable when NATS is disconnected and ErrBacklog when MaxPending records are
// unacknowledged; once it returns nil the publisher keeps republishing the record until
// JetStream stores it.
func (p *Publisher) Publish(ctx context.Context, r Record) error {
	if p.opts.BatchDelay < 0 {
		return p.publishNow(ctx, r)
	}
	rec, err := encodeRecord(r, p.opts.Source)
	if err != nil {
		return err
	}
	if err := p.usable(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	packs := p.opts.MaxBatchRecords > 1
	var heldID string
	if packs {
		// A message of several records is stored under an ID of its own: JetStream would not
		// recognise the record in it again.
		heldID = rec.subject + "\x00" + rec.id + "\x00" + string(rec.data)
		if _, held := p.batchIDs[heldID]; held && !p.closed {
			return nil // held already, identical: stored once
		}
	}
	if err := p.acceptLocked(); err != nil {
		return err
	}
	if packs {
		p.batchIDs[heldID] = struct{}{}
	}
	p.batch = append(p.batch, rec)
	if len(p.batch) == 1 {
		time.AfterFunc(p.opts.BatchDelay, p.sendBatch)
	}
	return nil
}

// publishNow is Publish without BatchDelay: the record is a message of its own.
func (p *Publisher) publishNow(ctx context.Context, r Record) error {
	msg, err := p.encode(r)
	if err != nil {
		return err
	}
	if err := p.usable(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	err = p.acceptLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := p.js.PublishMsgAsync(msg); err != nil {
		p.done(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// usable reports why a record cannot be published now: ctx ended, or NATS is disconnected
// (ErrUnavailable).
func (p *Publisher) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.connected()
}

// connected returns ErrUnavailable, naming the connection's state, unless NATS is connected.
func (p *Publisher) connected() error {
	if st := p.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: connection is %s", ErrUnavailable, st)
	}
	return nil
}

// refusalLocked returns why Publish refuses a record now: ErrClosed, or ErrBacklog at
// MaxPending; nil when it accepts one. p.mu is held.
func (p *Publisher) refusalLocked() error {
	switch {
	case p.closed:
		return ErrClosed
	case p.pending >= p.opts.MaxPending:
		return fmt.Errorf("%w (%d)", ErrBacklog, p.opts.MaxPending)
	}
	return nil
}

// acceptLocked counts a record as pending, or refuses it (refusalLocked). p.mu is held.
func (p *Publisher) acceptLocked() error {
	if err := p.refusalLocked(); err != nil {
		return err
	}
	p.pending++
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	return nil
}

// sendBatch hands the records Publish accepted meanwhile to JetStream, those of one subject
// together in as few messages as the bounds allow. A message JetStream does not take now (the
// connection went down since) is republished like one whose acknowledgement failed: its records
// were accepted, so they are not dropped.
func (p *Publisher) sendBatch() {
	p.sending.Lock()
	defer p.sending.Unlock()
	p.mu.Lock()
	batch := p.batch
	p.batch = nil
	clear(p.batchIDs)
	p.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if p.opts.MaxBatchRecords == 1 {
		// Every record a message of its own, in the order accepted.
		for _, r := range batch {
			msg := buildMsg(r.subject, []encodedRecord{r}, len(r.data))
			if _, err := p.js.PublishMsgAsync(msg); err != nil {
				p.failed(p.js, msg, err)
			}
		}
		return
	}
	// Group by subject, each group in the order accepted; the subjects in the order of their
	// first record.
	var subjects []string
	for _, r := range batch {
		g, ok := p.bySubject[r.subject]
		if !ok {
			subjects = append(subjects, r.subject)
		}
		p.bySubject[r.subject] = append(g, r)
	}
	maxBytes := p.opts.MaxBatchBytes
	if mp := int(p.nc.MaxPayload()); mp > 0 {
		// Room for the headers, whose size the server counts with the data.
		maxBytes = min(maxBytes, mp-4<<10)
	}
	for _, subj := range subjects {
		group := p.bySubject[subj]
		delete(p.bySubject, subj)
		for len(group) > 0 {
			n, size := packed(group, p.opts.MaxBatchRecords, maxBytes)
			msg := buildMsg(subj, group[:n], size)
			if n > 1 {
				p.mu.Lock()
				p.records[msg] = n
				p.mu.Unlock()
			}
			if _, err := p.js.PublishMsgAsync(msg); err != nil {
				p.failed(p.js, msg, err)
			}
			group = group[n:]
		}
	}
}

// packed returns how many of the records (at least one) go in the next message, and its size:
// at most maxRecords, and at most maxBytes unless the first record alone is larger. A record
// with a raw newline (none that this package encodes) or of a recording goes alone.
func packed(recs []encodedRecord, maxRecords, maxBytes int) (n, size int) {
	size = len(recs[0].data)
	if alone(recs[0]) {
		return 1, size
	}
	n = 1
	for n < len(recs) && n < maxRecords {
		r := recs[n]
		if size+1+len(r.data) > maxBytes || alone(r) {
			break
		}
		size += 1 + len(r.data)
		n++
	}
	return n, size
}

func alone(r encodedRecord) bool {
	return strings.HasPrefix(r.subject, subjectRecording+".") || bytes.IndexByte(r.data, '\n') >= 0
}

// buildMsg returns the message carrying recs (see DecodeAll): one record is its JSON, under its
// ID, exactly as PublishSync publishes it; several are their JSON documents a line each, under
// batchMsgID.
func buildMsg(subject string, recs []encodedRecord, size int) *nats.Msg {
	msg := nats.NewMsg(subject)
	if len(recs) == 1 {
		msg.Data = recs[0].data
		msg.Header.Set(jetstream.MsgIDHeader, recs[0].id)
		return msg
	}
	data := make([]byte, 0, size)
	ids := make([]string, len(recs))
	for i, r := range recs {
		if i > 0 {
			data = append(data, '\n')
		}
		data = append(data, r.data...)
		ids[i] = r.id
	}
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, batchMsgID(ids))
	return msg
}

// PublishSync publishes the record and waits until JetStream has stored it. Use it where the
// caller must not go on without a stored record; Publish is the fast path. An error means the
// record may or may not be stored (an acknowledgement can be lost): publishing it again under
// the same ID is safe.
func (p *Publisher) PublishSync(ctx context.Context, r Record) error {
	msg, err := p.encode(r)
	if err != nil {
		return err
	}
	if err := p.connected(); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Ready reports whether Publish would accept a record now: nil, or ErrUnavailable, ErrBacklog or
// ErrClosed. Callers that must not act unrecorded check it before they act and publish after.
func (p *Publisher) Ready() error {
	if err := p.connected(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refusalLocked()
}

// Pending returns the number of records accepted by Publish and not yet acknowledged.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// Flush hands over the records held for BatchDelay at once and waits until every record
// accepted so far is acknowledged, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	p.sendBatch()
	p.mu.Lock()
	idle := p.idle
	n := p.pending
	p.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("trail: %d records unacknowledged: %w", n, ctx.Err())
	}
}

// Close refuses new records and waits, until ctx ends, for the accepted ones to be
// acknowledged. Records still unacknowledged then are reported by ID in the error and the log.
// It does not close the NATS connection.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	if err != nil {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
	}
	return err
}

func (p *Publisher) encode(r Record) (*nats.Msg, error) {
	return EncodeMsg(r, p.opts.Source)
}

// encodeRecord completes a record's header, with source when it names none, and encodes it.
func encodeRecord(r Record, source string) (encodedRecord, error) {
	if err := complete(r); err != nil {
		return encodedRecord{}, err
	}
	h := r.Header()
	if h.Source == "" {
		h.Source = source
	}
	subj, err := Subject(r)
	if err != nil {
		return encodedRecord{}, err
	}
	data, err := marshal(r)
	if err != nil {
		return encodedRecord{}, fmt.Errorf("trail: encode %s record: %w", h.Kind, err)
	}
	return encodedRecord{subject: subj, id: h.ID, data: data}, nil
}

// acked runs on nats.go's acknowledgement goroutine and must not block.
func (p *Publisher) acked(_ jetstream.JetStream, msg *nats.Msg, _ *jetstream.PubAck) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.attempts, msg)
	p.doneLocked(p.takeRecordsLocked(msg))
}

// takeRecordsLocked returns the number of records msg carries and forgets it.
func (p *Publisher) takeRecordsLocked(msg *nats.Msg) int {
	n, ok := p.records[msg]
	if !ok {
		return 1
	}
	delete(p.records, msg)
	return n
}

// failed schedules the message for republishing, whole and under the same message ID, with
// exponential delay.
func (p *Publisher) failed(_ jetstream.JetStream, msg *nats.Msg, err error) {
	p.mu.Lock()
	p.attempts[msg]++
	n := p.attempts[msg]
	records := p.records[msg]
	p.mu.Unlock()
	delay := 100 * time.Millisecond << min(n-1, 10)
	delay = min(delay, p.opts.MaxRetryDelay)
	if records > 1 {
		p.opts.Logger.Warn("trail records not acknowledged, retrying",
			"id", msg.Header.Get(jetstream.MsgIDHeader), "records", records, "attempt", n, "retryIn", delay, "err", err)
	} else {
		p.opts.Logger.Warn("trail record not acknowledged, retrying",
			"id", msg.Header.Get(jetstream.MsgIDHeader), "attempt", n, "retryIn", delay, "err", err)
	}
	time.AfterFunc(delay, func() { p.republish(msg) })
}

func (p *Publisher) republish(msg *nats.Msg) {
	// A fresh message: nats.go keeps per-message state for pending acknowledgements.
	out := nats.NewMsg(msg.Subject)
	out.Data = msg.Data
	out.Header = msg.Header
	p.mu.Lock()
	stopped := p.stopped
	p.attempts[out] = p.attempts[msg]
	delete(p.attempts, msg)
	records, several := p.records[msg]
	delete(p.records, msg)
	if several {
		p.records[out] = records
	}
	if stopped {
		delete(p.attempts, out)
		delete(p.records, out)
	}
	p.mu.Unlock()
	if stopped {
		id := msg.Header.Get(jetstream.MsgIDHeader)
		if several {
			for _, rid := range recordIDs(msg.Data) {
				p.opts.Logger.Error("trail record lost: publisher closed before NATS acknowledged it",
					"id", rid, "message", id)
			}
			p.done(records)
		} else {
			p.opts.Logger.Error("trail record lost: publisher closed before NATS acknowledged it", "id", id)
			p.done(1)
		}
		return
	}
	if _, err := p.js.PublishMsgAsync(out); err != nil {
		p.failed(p.js, out, err)
	}
}

func (p *Publisher) done(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneLocked(n)
}

func (p *Publisher) doneLocked(n int) {
	p.pending -= n
	if p.pending == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// withDefaultTimeout bounds ctx by d when it has no deadline of its own.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
