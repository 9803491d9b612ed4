package trail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler processes one batch of messages. Returning nil acknowledges every message of the
// batch; returning an error acknowledges none of them, and they are delivered again after a delay.
// A handler that wants to drop a message it cannot ever process (a record of unknown kind) must
// do so itself and return nil.
type Handler func(ctx context.Context, batch []jetstream.Msg) error

// ConsumerOptions configures a Consumer. The zero value is usable.
type ConsumerOptions struct {
	// BatchSize is the most messages handed to the handler at once. Default 5000.
	BatchSize int
	// MaxBytes, when set, bounds the data of the messages handed to the handler at once; it
	// must be at least the largest message (the server's max_payload), or a larger one stalls
	// the consumer. Default: no bound but BatchSize.
	MaxBytes int
	// MaxWait is the longest a batch waits to fill up before it is handled as it is. Default 1s.
	MaxWait time.Duration
	// RetryDelay is how long a failed batch waits before it is delivered again. Default 2s.
	RetryDelay time.Duration
	// Logger reports failed batches. Default: discard.
	Logger *slog.Logger
}

func (o *ConsumerOptions) setDefaults() {
	if o.BatchSize == 0 {
		o.BatchSize = 5000
	}
	if o.MaxWait == 0 {
		o.MaxWait = time.Second
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Consumer reads batches from a durable pull consumer and acknowledges each batch only after its
// handler succeeded: at-least-once delivery, which producers' message IDs and the consumer's own
// idempotent writes turn into exactly-once storage.
type Consumer struct {
	c    jetstream.Consumer
	opts ConsumerOptions
}

// NewConsumer creates or updates the durable consumer cfg on stream and returns a Consumer for it.
func NewConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, opts ConsumerOptions) (*Consumer, error) {
	opts.setDefaults()
	c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("trail: ensure consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return &Consumer{c: c, opts: opts}, nil
}

// Run hands batches to h until ctx ends, then returns nil. Errors fetching from NATS are logged
// and retried; they do not end Run.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	for ctx.Err() == nil {
		batch, err := c.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.opts.Logger.Warn("fetching from NATS failed, retrying", "err", err)
			sleep(ctx, c.opts.RetryDelay)
			continue
		}
		if len(batch) == 0 {
			continue
		}
		if err := h(ctx, batch); err != nil {
			c.opts.Logger.Error("batch not processed, it will be delivered again",
				"messages", len(batch), "retryIn", c.opts.RetryDelay, "err", err)
			for _, m := range batch {
				_ = m.NakWithDelay(c.opts.RetryDelay)
			}
			continue
		}
		c.ack(ctx, batch)
	}
	return nil
}

// ack acknowledges a handled batch, even when ctx ended meanwhile: the work is done and must
// not be repeated. Only the last acknowledgement waits for the server's confirmation; the server
// processes one connection's acknowledgements in order.
func (c *Consumer) ack(ctx context.Context, batch []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	last := len(batch) - 1
	for _, m := range batch[:last] {
		if err := m.Ack(); err != nil {
			c.opts.Logger.Warn("acknowledgement failed; the batch will be delivered again", "err", err)
			return
		}
	}
	if err := batch[last].DoubleAck(ctx); err != nil {
		c.opts.Logger.Warn("acknowledgement failed; the batch will be delivered again", "err", err)
	}
}

func (c *Consumer) fetch(ctx context.Context) ([]jetstream.Msg, error) {
	opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(c.opts.MaxWait)}
	if c.opts.MaxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(c.opts.MaxBytes))
	}
	res, err := c.c.Fetch(c.opts.BatchSize, opts...)
	if err != nil {
		return nil, err
	}
	var batch []jetstream.Msg
	for m := range res.Messages() {
		batch = append(batch, m)
	}
	if err := res.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		// Hand over what arrived; the error is reported on the next fetch if it persists.
		if len(batch) == 0 {
			return nil, err
		}
	}
	return batch, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
