package enricher

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// HeaderMAC carries the intake's proof that it masked a message: an HMAC-SHA256 of the
// message's data under the envelope key (Options.EnvelopeKey), base64. NATS never sees the key,
// so a batch published straight to NATS cannot carry a valid MAC, and the consumer masks it.
const HeaderMAC = "Gatehouse-Envelope-Mac"

// envelopeKeyLabel separates the envelope key from every other use of the masking key.
const envelopeKeyLabel = "gatehouse.dev/enricher/envelope-mac/v1"

// EnvelopeKey derives the envelope key from the masking key: every enricher of a deployment
// shares the masking key, and so verifies the others' messages.
func EnvelopeKey(maskingKey []byte) []byte {
	m := hmac.New(sha256.New, maskingKey)
	m.Write([]byte(envelopeKeyLabel))
	return m.Sum(nil)
}

func (e *Enricher) mac(data []byte) string {
	m := hmac.New(sha256.New, e.opts.EnvelopeKey)
	m.Write(data)
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// verified reports whether a message's MAC header proves that an intake masked it.
func (e *Enricher) verified(data []byte, header string) bool {
	got, err := base64.RawStdEncoding.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, e.opts.EnvelopeKey)
	m.Write(data)
	return hmac.Equal(got, m.Sum(nil))
}

// errUnpublishable marks a spooled batch JetStream can never take (a message larger than the
// server's max_payload, lowered after it was spooled).
var errUnpublishable = errors.New("batch cannot be published")

// drainWindow bounds the message data published and not yet acknowledged, across batches.
const drainWindow = 8 << 20

// drainSpool publishes the spool to JetStream, oldest batch first, deleting each batch once
// JetStream acknowledged all its messages. Batches are published one after the other without
// waiting for the acknowledgements of the batches before them (up to drainWindow bytes not yet
// acknowledged), so that a drainer is not held up by the round trip to JetStream; a batch is
// deleted only once it and every batch before it were acknowledged, so the spool stays a queue
// whose head is the oldest batch JetStream may not have. After a failure it starts again from
// the head: a batch JetStream took but whose deletion waited on an earlier one is published
// again under the same message IDs, and JetStream stores it once.
//
// While NATS is away it waits. When ctx ends it goes on while NATS takes batches, for up to
// ShutdownDrain, so that a planned restart leaves little behind (what remains is published after
// the next start).
func (e *Enricher) drainSpool(ctx context.Context) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-dctx.Done():
			return
		}
		t := time.NewTimer(e.opts.ShutdownDrain)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-dctx.Done():
		}
	}()
	d := &drainer{e: e}
	stopping := func() {
		st := e.spool.stats()
		e.log.Warn("stopping with batches in the spool; they are published after the next start", "batches", st.Batches, "bytes", st.Bytes)
	}
	failing := false
	for {
		var err error
		var wake <-chan struct{}
		next, ok := spoolEntry{}, false
		if d.bytes < drainWindow {
			next, ok, wake = e.spool.after(d.last())
		}
		switch {
		case ok:
			if ctx.Err() != nil && e.nc.Status() != nats.CONNECTED {
				stopping()
				return
			}
			err = d.publish(dctx, next)
			if errors.Is(err, errSpoolCorrupt) || errors.Is(err, errUnpublishable) {
				// Settle the batches before it, so that it is not moved aside while they
				// may still fail, then move it aside.
				if serr := d.settle(dctx, next.seq); serr != nil {
					err = serr
				} else {
					qerr := e.spool.quarantine(next)
					e.metrics.spoolCorrupt.Inc()
					e.log.Error("spooled batch cannot be published; moved aside", "batch", next.id, "file", next.name()+spoolBadSuffix, "err", err, "moveErr", qerr)
					continue
				}
			}
		case len(d.inflight) > 0:
			// Wait for the oldest acknowledgement, or for a new batch while the window has
			// room.
			err = d.waitOldest(dctx, wake)
		default:
			if failing {
				failing = false
				e.log.Info("spool drained: every batch is in JetStream")
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
			}
			continue
		}
		if err == nil {
			continue
		}
		// Start again from the head of the spool after a pause: nothing in flight is deleted
		// from the spool any more.
		d.reset()
		if dctx.Err() != nil {
			stopping()
			return
		}
		if !failing {
			failing = true
			st := e.spool.stats()
			e.log.Warn("publishing the spool to JetStream failed; batches are kept on disk and the intake goes on accepting", "batches", st.Batches, "bytes", st.Bytes, "err", err)
		}
		waitTimer(dctx, e.opts.RetryDelay, nil)
	}
}

// drainer holds the spooled batches published to JetStream and not yet deleted from the spool,
// oldest first.
type drainer struct {
	e        *Enricher
	inflight []*inflightBatch
	bytes    int // message data published and not acknowledged
}

// inflightBatch is a spooled batch being published: its messages' acknowledgements, awaited in
// order.
type inflightBatch struct {
	entry    spoolEntry
	pending  []pendingMsg
	acked    int  // pending[:acked] are acknowledged
	complete bool // every message of the batch is published
	deadline time.Time
}

type pendingMsg struct {
	f    jetstream.PubAckFuture
	size int
}

// last returns the sequence of the newest batch in flight, 0 when none is.
func (d *drainer) last() uint64 {
	if len(d.inflight) == 0 {
		return 0
	}
	return d.inflight[len(d.inflight)-1].entry.seq
}

// reset forgets the batches in flight: they stay in the spool and are published again.
// Acknowledgements still to come are dropped (they time out in the client).
func (d *drainer) reset() {
	clear(d.inflight)
	d.inflight, d.bytes = d.inflight[:0], 0
}

// publish publishes one spooled batch without waiting for its acknowledgements (except for room
// in the window). The file is checked whole first, so a torn or damaged batch is never published
// in part.
func (d *drainer) publish(ctx context.Context, entry spoolEntry) error {
	e := d.e
	if st := e.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection is %s", trail.ErrUnavailable, st)
	}
	count, err := e.checkSpooled(entry)
	if err != nil {
		return err
	}
	start := time.Now()
	var waited time.Duration // in waitOldest, which accounts for it
	defer func() { e.metrics.stage(stagePublish, time.Since(start)-waited) }()
	r, err := e.spool.open(entry)
	if err != nil {
		return err
	}
	defer r.close()
	b := &inflightBatch{entry: entry, deadline: start.Add(e.opts.PublishTimeout)}
	d.inflight = append(d.inflight, b)
	for i := 0; ; i++ {
		data, err := r.next(entry.id)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for d.bytes > drainWindow {
			t := time.Now()
			err := d.waitOldest(ctx, nil)
			waited += time.Since(t)
			if err != nil {
				return err
			}
		}
		m := nats.NewMsg(trail.SubjectAuditBatch)
		m.Data = append([]byte(nil), data...)
		mid := entry.id
		if count > 1 {
			mid += "/" + strconv.Itoa(i)
		}
		m.Header.Set(jetstream.MsgIDHeader, mid)
		m.Header.Set(HeaderEncoding, encodingS2)
		m.Header.Set(HeaderMAC, e.mac(m.Data))
		f, err := e.js.PublishMsgAsync(m)
		if errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("%w: message %d of %s: %w", errUnpublishable, i, entry.id, err)
		}
		if err != nil {
			return fmt.Errorf("%w: publish spooled batch %s: %w", trail.ErrUnavailable, entry.id, err)
		}
		b.pending = append(b.pending, pendingMsg{f, len(m.Data)})
		d.bytes += len(m.Data)
	}
	b.complete = true
	return d.reap()
}

// waitOldest waits for the acknowledgement of the oldest message in flight, or until wake is
// closed, and deletes the batches acknowledged whole from the spool.
func (d *drainer) waitOldest(ctx context.Context, wake <-chan struct{}) error {
	b := d.inflight[0]
	if b.acked == len(b.pending) {
		// Only a batch being published can have nothing to wait for; publish reaps it.
		return nil
	}
	start := time.Now()
	p := b.pending[b.acked]
	t := time.NewTimer(time.Until(b.deadline))
	defer t.Stop()
	var err error
	select {
	case <-wake:
		return nil // waiting for a new batch is not publishing
	case <-p.f.Ok():
		b.acked++
		d.bytes -= p.size
		err = d.reap()
	case perr := <-p.f.Err():
		err = fmt.Errorf("%w: JetStream did not store spooled batch %s: %w", trail.ErrUnavailable, b.entry.id, perr)
	case <-ctx.Done():
		err = fmt.Errorf("%w: JetStream did not acknowledge spooled batch %s: %w", trail.ErrUnavailable, b.entry.id, ctx.Err())
	case <-t.C:
		err = fmt.Errorf("%w: JetStream did not acknowledge spooled batch %s within %s", trail.ErrUnavailable, b.entry.id, d.e.opts.PublishTimeout)
	}
	d.e.metrics.stage(stagePublish, time.Since(start))
	return err
}

// reap deletes the oldest batches from the spool while JetStream acknowledged all of them.
func (d *drainer) reap() error {
	for len(d.inflight) > 0 {
		b := d.inflight[0]
		if !b.complete || b.acked < len(b.pending) {
			return nil
		}
		if err := d.e.spool.remove(b.entry); err != nil {
			d.e.log.Error("removing a published batch from the spool failed; it will be published again", "batch", b.entry.id, "err", err)
		}
		d.e.metrics.spooledPublished.Inc()
		d.inflight[0] = nil
		d.inflight = d.inflight[1:]
	}
	return nil
}

// settle waits until every batch in flight older than seq is acknowledged and deleted from the
// spool, and forgets the batch seq itself.
func (d *drainer) settle(ctx context.Context, seq uint64) error {
	for len(d.inflight) > 0 && d.inflight[0].entry.seq < seq {
		if err := d.waitOldest(ctx, nil); err != nil {
			return err
		}
	}
	if len(d.inflight) > 0 && d.inflight[0].entry.seq == seq {
		for _, p := range d.inflight[0].pending[d.inflight[0].acked:] {
			d.bytes -= p.size
		}
		d.inflight[0] = nil
		d.inflight = d.inflight[1:]
	}
	return nil
}

// checkSpooled reads a spooled batch whole, checking every record, and returns its number of
// messages.
func (e *Enricher) checkSpooled(entry spoolEntry) (int, error) {
	r, err := e.spool.open(entry)
	if err != nil {
		return 0, err
	}
	defer r.close()
	for {
		if _, err := r.next(entry.id); errors.Is(err, io.EOF) {
			return r.messages, nil
		} else if err != nil {
			return 0, err
		}
	}
}
