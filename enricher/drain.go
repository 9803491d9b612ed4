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

// drainWindow bounds the message data published and not yet acknowledged.
const drainWindow = 8 << 20

// drainSpool publishes the spool to JetStream, oldest batch first, deleting each batch once
// JetStream acknowledged all its messages. While NATS is away it waits. When ctx ends it goes on
// while NATS takes batches, for up to ShutdownDrain, so that a planned restart leaves little
// behind (what remains is published after the next start).
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
	failing := false
	for {
		entry, ok, wake := e.spool.head()
		if !ok {
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
		if ctx.Err() != nil && e.nc.Status() != nats.CONNECTED {
			st := e.spool.stats()
			e.log.Warn("stopping with batches in the spool; they are published after the next start", "batches", st.Batches, "bytes", st.Bytes)
			return
		}
		err := e.publishSpooled(dctx, entry)
		switch {
		case err == nil:
			if err := e.spool.remove(entry); err != nil {
				e.log.Error("removing a published batch from the spool failed; it will be published again", "batch", entry.id, "err", err)
			}
			e.metrics.spooledPublished.Inc()
			continue
		case errors.Is(err, errSpoolCorrupt), errors.Is(err, errUnpublishable):
			qerr := e.spool.quarantine(entry)
			e.metrics.spoolCorrupt.Inc()
			e.log.Error("spooled batch cannot be published; moved aside", "batch", entry.id, "file", entry.name()+spoolBadSuffix, "err", err, "moveErr", qerr)
			continue
		}
		if dctx.Err() != nil {
			st := e.spool.stats()
			e.log.Warn("stopping with batches in the spool; they are published after the next start", "batches", st.Batches, "bytes", st.Bytes)
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

// publishSpooled publishes one spooled batch and waits until JetStream stored all of it. The
// file is checked whole first, so a torn or damaged batch is never published in part.
func (e *Enricher) publishSpooled(ctx context.Context, entry spoolEntry) error {
	if st := e.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection is %s", trail.ErrUnavailable, st)
	}
	count, err := e.checkSpooled(entry)
	if err != nil {
		return err
	}
	start := time.Now()
	defer func() { e.metrics.stage(stagePublish, time.Since(start)) }()
	r, err := e.spool.open(entry)
	if err != nil {
		return err
	}
	defer r.close()
	ctx, cancel := context.WithTimeout(ctx, e.opts.PublishTimeout)
	defer cancel()
	type pending struct {
		f    jetstream.PubAckFuture
		size int
	}
	var window []pending
	inWindow := 0
	wait := func(p pending) error {
		select {
		case <-p.f.Ok():
			inWindow -= p.size
			return nil
		case err := <-p.f.Err():
			return fmt.Errorf("%w: JetStream did not store spooled batch %s: %w", trail.ErrUnavailable, entry.id, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: JetStream did not acknowledge spooled batch %s: %w", trail.ErrUnavailable, entry.id, ctx.Err())
		}
	}
	for i := 0; ; i++ {
		data, err := r.next(entry.id)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
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
		window = append(window, pending{f, len(m.Data)})
		inWindow += len(m.Data)
		for inWindow > drainWindow {
			if err := wait(window[0]); err != nil {
				return err
			}
			window = window[1:]
		}
	}
	for _, p := range window {
		if err := wait(p); err != nil {
			return err
		}
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
