package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Errors of the publisher and its writers, matched with errors.Is.
var (
	// ErrUnavailable means JetStream cannot take recordings now: the session must not start.
	ErrUnavailable = errors.New("recording: NATS is unavailable")
	// ErrFailed means a chunk could not be stored within PublisherOptions.RetryTimeout: the
	// recording is broken from that chunk on, and the session should end.
	ErrFailed = errors.New("recording: a chunk could not be stored")
)

// Info describes a recording; every chunk carries it.
type Info struct {
	// RecordingID names the recording: the record ID of the request.
	RecordingID string
	SessionID   string
	// AuditID is the Audit-ID of the upstream attempt (SetAuditID changes it).
	AuditID string
	// Format is trail.FormatAsciicast or trail.FormatPortForward.
	Format      string
	Subresource string
	Namespace   string
	Pod         string
	Container   string
	// Command is what ran, masked.
	Command []string
	User    string
}

// PublisherOptions configures a Publisher. The zero value is usable.
type PublisherOptions struct {
	// Source names this proxy instance in the chunks' headers.
	Source string
	// ChunkBytes is the size at which a chunk is sent. Default 256 KiB; at most
	// trail.MaxRecordingChunkBytes.
	ChunkBytes int
	// FlushInterval is the longest a chunk is filled before it is sent, which is also the most a
	// stopped proxy loses of a session. Default 1s.
	FlushInterval time.Duration
	// Window is how many chunks of a recording may wait to be stored; a session that produces
	// faster than JetStream stores waits (its streams are not read meanwhile). Default 4.
	Window int
	// AckTimeout is how long one attempt to store a chunk may take. Default 5s.
	AckTimeout time.Duration
	// RetryTimeout is how long a chunk is retried before the recording fails with ErrFailed.
	// Default 30s.
	RetryTimeout time.Duration
	// Clock times chunks and flushes. Default the real clock.
	Clock clock.WithDelayedExecution
	// Logger reports failed chunks by recording ID and sequence number. Default: discard.
	Logger *slog.Logger
}

func (o *PublisherOptions) setDefaults() {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 256 << 10
	}
	o.ChunkBytes = min(o.ChunkBytes, trail.MaxRecordingChunkBytes/2)
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Window <= 0 {
		o.Window = 4
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Publisher publishes recordings to JetStream (trail.StreamRecordings), chunk by chunk, as the
// sessions go on. It is safe for concurrent use.
type Publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts PublisherOptions
}

// NewPublisher returns a Publisher on nc. The streams must exist (trail.EnsureStreams).
func NewPublisher(nc *nats.Conn, opts PublisherOptions) (*Publisher, error) {
	opts.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	return &Publisher{nc: nc, js: js, opts: opts}, nil
}

// Ready reports whether a recording could start now.
func (p *Publisher) Ready() error {
	if st := p.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: connection is %s", ErrUnavailable, st)
	}
	return nil
}

// Open starts a recording: it stores its first chunk, holding first (the recording's header),
// before it returns, so that a session that cannot be recorded does not start.
func (p *Publisher) Open(ctx context.Context, info Info, first []byte) (*Writer, error) {
	if err := p.Ready(); err != nil {
		return nil, err
	}
	w := &Writer{
		p:     p,
		info:  info,
		queue: make(chan *trail.Recording, p.opts.Window),
		done:  make(chan struct{}),
	}
	c := w.chunk(first, p.opts.Clock.Now(), false)
	if err := p.store(ctx, c); err != nil {
		return nil, err
	}
	w.prev, w.seq = c.Hash, 1
	go w.run()
	return w, nil
}

// store publishes a chunk and waits for JetStream to store it, retrying until RetryTimeout.
func (p *Publisher) store(ctx context.Context, c *trail.Recording) error {
	msg, err := trail.EncodeMsg(c, p.opts.Source)
	if err != nil {
		return err
	}
	var last error
	backoff := wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 2 * time.Second}
	rctx, cancel := context.WithTimeout(ctx, p.opts.RetryTimeout)
	defer cancel()
	err = wait.ExponentialBackoffWithContext(rctx, backoff, func(ctx context.Context) (bool, error) {
		actx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
		defer cancel()
		if st := p.nc.Status(); st != nats.CONNECTED {
			last = fmt.Errorf("%w: connection is %s", ErrUnavailable, st)
			return false, nil
		}
		if _, err := p.js.PublishMsg(actx, msg); err != nil {
			last = err
			p.opts.Logger.Warn("recording chunk not stored, retrying", "recording", c.RecordingID, "seq", c.Seq, "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		if last == nil {
			last = err
		}
		return fmt.Errorf("%w: chunk %d of recording %s: %w", ErrFailed, c.Seq, c.RecordingID, last)
	}
	return nil
}

// Writer appends to one recording. Appended data is sent in chunks of PublisherOptions.ChunkBytes
// or every FlushInterval, in order; a chunk is built only when the chunks before it are stored or
// at most Window of them wait, so memory is bounded and Append blocks while JetStream is slow.
// It is safe for concurrent use.
type Writer struct {
	p    *Publisher
	info Info

	mu       sync.Mutex
	buf      []byte
	bufStart time.Time
	seq      uint32
	prev     string
	timer    clock.Timer
	closed   bool

	queue chan *trail.Recording
	done  chan struct{}

	errMu sync.Mutex
	err   error
}

// Info returns what the recording describes.
func (w *Writer) Info() Info {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.info
}

// SetAuditID sets the Audit-ID later chunks carry.
func (w *Writer) SetAuditID(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.info.AuditID = id
}

// Err returns ErrFailed once a chunk could not be stored.
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// Append adds data, whole lines of the recording's format, at time t. It returns the
// recording's error once it failed.
func (w *Writer) Append(t time.Time, data []byte) error {
	if err := w.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	if len(w.buf) > 0 && len(w.buf)+len(data) > trail.MaxRecordingChunkBytes {
		w.send(false)
	}
	if len(w.buf) == 0 {
		w.bufStart = t
		if w.timer == nil {
			w.timer = w.p.opts.Clock.AfterFunc(w.p.opts.FlushInterval, w.timed)
		}
	}
	w.buf = append(w.buf, data...)
	if len(w.buf) >= w.p.opts.ChunkBytes {
		w.send(false)
	}
	return nil
}

// timed sends a chunk that has waited FlushInterval.
func (w *Writer) timed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed && len(w.buf) > 0 {
		w.send(false)
	}
}

// send queues the buffer as the next chunk; it blocks while Window chunks wait. w.mu is held.
func (w *Writer) send(final bool) {
	c := w.chunk(w.buf, w.bufStart, final)
	w.buf = w.buf[:0]
	w.queue <- c
}

// chunk builds and seals the next chunk. w.mu is held (or w is not shared yet).
func (w *Writer) chunk(data []byte, start time.Time, final bool) *trail.Recording {
	i := w.info
	c := &trail.Recording{
		Meta:        trail.Meta{ID: trail.ChunkID(i.RecordingID, w.seq), Time: w.p.opts.Clock.Now()},
		RecordingID: i.RecordingID, SessionID: i.SessionID, AuditID: i.AuditID,
		Seq: w.seq, Final: final, Format: i.Format, Subresource: i.Subresource,
		Namespace: i.Namespace, Pod: i.Pod, Container: i.Container, Command: i.Command, User: i.User,
		Start: start.UTC(), Data: string(data),
	}
	c.Seal(w.prev)
	w.prev = c.Hash
	w.seq++
	return c
}

// run stores the queued chunks in order.
func (w *Writer) run() {
	defer close(w.done)
	for c := range w.queue {
		if w.Err() != nil {
			continue // broken: what follows cannot be linked to what is stored
		}
		if err := w.p.store(context.Background(), c); err != nil {
			w.p.opts.Logger.Error("recording broken: a chunk could not be stored", "recording", c.RecordingID, "seq", c.Seq, "err", err)
			w.fail(err)
		}
	}
}

// Close sends what is left as the final chunk and waits, until ctx ends, for every chunk to be
// stored. It returns the recording's error.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
		if len(w.buf) == 0 {
			w.bufStart = w.p.opts.Clock.Now()
		}
		c := w.chunk(w.buf, w.bufStart, true)
		w.buf = w.buf[:0]
		select {
		case w.queue <- c:
		case <-ctx.Done():
			w.fail(fmt.Errorf("%w: the final chunk of recording %s was not queued: %w", ErrFailed, w.info.RecordingID, ctx.Err()))
		}
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return w.Err()
	case <-ctx.Done():
		return fmt.Errorf("recording %s: waiting for the last chunks: %w", w.info.RecordingID, ctx.Err())
	}
}
