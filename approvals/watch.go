package approvals

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Change is one stored version of an approval request.
type Change struct {
	// Revision is the key-value revision (the stream sequence) of this version: it grows with
	// every change of any request, so it orders changes and names a point to resume from.
	Revision uint64
	// Request is the version as stored; Raw its JSON, for readers that know newer fields.
	Request *Request
	Raw     json.RawMessage
}

// Watcher delivers the changes of approval requests in the order they were stored.
type Watcher interface {
	// Changes delivers changes; a nil Change marks the end of the initial versions. The channel
	// is closed when the watch ends (Stop, or its context).
	Changes() <-chan *Change
	Stop() error
}

// WatchOption configures Watch.
type WatchOption func(*watchOptions)

type watchOptions struct{ after uint64 }

// After resumes a watch after revision rev: every change stored after it is delivered, in order,
// and no initial versions.
func After(rev uint64) WatchOption { return func(o *watchOptions) { o.after = rev } }

// Watch follows the approval requests: first the latest version of each (then a nil Change),
// then every change as it is stored. With After, it delivers every change after that revision
// instead.
func (b *Broker) Watch(ctx context.Context, opts ...WatchOption) (Watcher, error) {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	wopts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if o.after > 0 {
		wopts = append(wopts, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(o.after+1))
	}
	kw, err := b.kv.Watch(ctx, "req.>", wopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	w := &watcher{kw: kw, out: make(chan *Change, 64)}
	go w.run(ctx, o.after > 0)
	return w, nil
}

type watcher struct {
	kw  jetstream.KeyWatcher
	out chan *Change
}

func (w *watcher) Changes() <-chan *Change { return w.out }
func (w *watcher) Stop() error             { return w.kw.Stop() }

func (w *watcher) run(ctx context.Context, resumed bool) {
	defer close(w.out)
	markerSent := false
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.kw.Updates():
			if !ok {
				return
			}
		}
		var c *Change
		if e == nil {
			// A resumed watch has no initial versions to mark the end of.
			if resumed || markerSent {
				continue
			}
			markerSent = true
		} else {
			var r Request
			if !strings.HasPrefix(e.Key(), "req.") || json.Unmarshal(e.Value(), &r) != nil {
				continue
			}
			c = &Change{Revision: e.Revision(), Request: &r, Raw: append(json.RawMessage(nil), e.Value()...)}
		}
		select {
		case w.out <- c:
		case <-ctx.Done():
			return
		}
	}
}
