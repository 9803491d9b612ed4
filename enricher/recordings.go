package enricher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// This file stores session recordings (trail.Recording chunks, from the stream
// trail.StreamRecordings) in session_recordings, and the phase of the gateway's records of long
// requests. Chunks are stored as the proxy published them, already masked: their hash chain
// covers their data, and `gatehouse sessions verify` checks it against what is stored.

// recordingBatch is the most chunks inserted at once: chunks are up to
// trail.MaxRecordingChunkBytes, so batches are kept small.
const recordingBatch = 128

// consumeRecordings reads recording chunks and stores them until ctx ends.
func (e *Enricher) consumeRecordings(ctx context.Context) error {
	var c *trail.Consumer
	if err := retry(ctx, e.opts.RetryDelay, func() error {
		cfg := trail.RecordingsConsumer()
		cfg.AckWait = e.opts.AckWait
		var err error
		c, err = trail.NewConsumer(ctx, e.js, trail.StreamRecordings, cfg, e.consumerOptions(recordingBatch))
		return err
	}, e.log, "creating the recordings consumer failed, retrying"); err != nil {
		return nil
	}
	rows := newRecordingRows()
	errs := newErrorRows()
	return c.Run(ctx, func(ctx context.Context, msgs []jetstream.Msg) error {
		return e.storeRecordings(ctx, msgs, rows, errs)
	})
}

// storeRecordings decodes chunks and inserts them in one INSERT.
func (e *Enricher) storeRecordings(ctx context.Context, msgs []jetstream.Msg, rows *recordingRows, errs *errorRows) error {
	rows.reset()
	errs.reset()
	at := now()
	for _, m := range msgs {
		rec, err := trail.Decode(m.Data())
		if errors.Is(err, trail.ErrUnknownKind) {
			e.metrics.skipped.Inc()
			continue
		}
		c, ok := rec.(*trail.Recording)
		switch {
		case err != nil:
			e.ingestError(m, errs, err, at)
			continue
		case !ok:
			e.ingestError(m, errs, fmt.Errorf("%w: a %T on the recordings stream", ErrMalformed, rec), at)
			continue
		}
		if subj, err := trail.Subject(c); err != nil || subj != m.Subject() {
			e.ingestError(m, errs, fmt.Errorf("%w: recording %s on subject %s", ErrMisplaced, c.RecordingID, m.Subject()), at)
			continue
		}
		rows.add(c, at)
	}
	for _, cols := range []*columns{&rows.columns, &errs.columns} {
		if cols.rows == 0 {
			continue
		}
		if err := e.insert(ctx, cols); err != nil {
			return err
		}
	}
	return nil
}

// recordingRows are rows of session_recordings.
type recordingRows struct {
	columns
	recordingID                         []string
	seq                                 []uint32
	sessionID, auditID                  []string
	start, time                         []time.Time
	source                              []string
	final                               []bool
	format, subresource, namespace, pod []string
	container                           []string
	command                             [][]string
	user, data, prevHash, hash          []string
	ingestedAt                          []time.Time
}

func newRecordingRows() *recordingRows {
	r := &recordingRows{}
	c := &r.columns
	c.table = schema.TableRecordings
	addColumn(c, "recording_id", &r.recordingID)
	addColumn(c, "seq", &r.seq)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "audit_id", &r.auditID)
	addColumn(c, "start", &r.start)
	addColumn(c, "time", &r.time)
	addColumn(c, "source", &r.source)
	addColumn(c, "final", &r.final)
	addColumn(c, "format", &r.format)
	addColumn(c, "subresource", &r.subresource)
	addColumn(c, "namespace", &r.namespace)
	addColumn(c, "pod", &r.pod)
	addColumn(c, "container", &r.container)
	addColumn(c, "command", &r.command)
	addColumn(c, "user", &r.user)
	addColumn(c, "data", &r.data)
	addColumn(c, "prev_hash", &r.prevHash)
	addColumn(c, "hash", &r.hash)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

func (r *recordingRows) add(c *trail.Recording, now time.Time) {
	r.rows++
	r.recordingID = append(r.recordingID, c.RecordingID)
	r.seq = append(r.seq, c.Seq)
	r.sessionID = append(r.sessionID, c.SessionID)
	r.auditID = append(r.auditID, c.AuditID)
	r.start = append(r.start, c.Start)
	r.time = append(r.time, c.Time)
	r.source = append(r.source, c.Source)
	r.final = append(r.final, c.Final)
	r.format = append(r.format, c.Format)
	r.subresource = append(r.subresource, c.Subresource)
	r.namespace = append(r.namespace, c.Namespace)
	r.pod = append(r.pod, c.Pod)
	r.container = append(r.container, c.Container)
	r.command = append(r.command, nonNil(c.Command))
	r.user = append(r.user, c.User)
	r.data = append(r.data, c.Data)
	r.prevHash = append(r.prevHash, c.Prev)
	r.hash = append(r.hash, c.Hash)
	r.ingestedAt = append(r.ingestedAt, now)
}

// streamColumns are the columns of gateway_requests about long requests: the phase of the
// record and the recording of a session.
type streamColumns struct {
	phase, recordingID []string
}

func (s *streamColumns) register(c *columns) {
	addColumn(c, "phase", &s.phase)
	addColumn(c, "recording_id", &s.recordingID)
}

func (s *streamColumns) add(rec *trail.Request) {
	s.phase = append(s.phase, string(rec.Phase))
	s.recordingID = append(s.recordingID, rec.RecordingID)
}
