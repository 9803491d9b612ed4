package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Change is one stored version of an approval request.
type Change struct {
	// Revision is the key-value revision (the stream sequence) of this version: it grows with
	// every change of any request, so it orders changes and names a point to resume from.
	Revision uint64
	// Request is the version as stored (expiry by time not applied); Raw its JSON, for readers
	// that know newer fields.
	Request *Request
	Raw     json.RawMessage
	// ID and Err are set instead when the request failed its integrity check at this revision
	// (errors.Is(Err, ErrTampered)): it must no longer be shown.
	ID  string
	Err error
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
// instead. A request whose parts fail their integrity check is never delivered (and is logged).
func (b *Broker) Watch(ctx context.Context, opts ...WatchOption) (Watcher, error) {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	wopts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if o.after > 0 {
		wopts = append(wopts, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(o.after+1))
	}
	kw, err := kv.WatchFiltered(ctx, []string{PrefixRequest + ".>", PrefixDecision + ".>", PrefixUse + ".>"}, wopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	w := &watcher{b: b, kv: kv, kw: kw, out: make(chan *Change, 64), parts: map[string]*stored{}}
	go w.run(ctx, o.after > 0)
	return w, nil
}

type watcher struct {
	b   *Broker
	kv  jetstream.KeyValue
	kw  jetstream.KeyWatcher
	out chan *Change
	// parts are the latest parts seen of each request.
	parts map[string]*stored
}

func (w *watcher) Changes() <-chan *Change { return w.out }
func (w *watcher) Stop() error             { return w.kw.Stop() }

func (w *watcher) run(ctx context.Context, resumed bool) {
	defer close(w.out)
	initial := !resumed
	// During the initial versions, the requests they touch, delivered together at their end.
	touched := map[string]bool{}
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
		if e == nil {
			if !initial {
				continue
			}
			initial = false
			if !w.sendInitial(ctx, touched) {
				return
			}
			continue
		}
		id, ok := w.apply(ctx, e)
		if !ok {
			continue
		}
		if initial {
			touched[id] = true
			continue
		}
		if c := w.change(id, e.Revision()); c != nil && !w.send(ctx, c) {
			return
		}
	}
}

// apply records entry e as the latest part of its request, reading the request itself when the
// watch has not seen it (a resumed watch starts after it). It returns the request's ID.
func (w *watcher) apply(ctx context.Context, e jetstream.KeyValueEntry) (string, bool) {
	prefix, id, ok := keyID(e.Key())
	if !ok || !ValidID(id) || (prefix != PrefixRequest && prefix != PrefixDecision && prefix != PrefixUse) {
		return "", false
	}
	st := w.parts[id]
	if st == nil {
		st = &stored{id: id}
		w.parts[id] = st
	}
	if err := st.set(prefix, e.Value(), e.Revision()); err != nil {
		w.b.opts.Logger.Error("approval request part is not an envelope; the request is not shown", "key", e.Key(), "err", err)
	}
	if st.req.Data == nil && st.bad[PrefixRequest] == nil && prefix != PrefixRequest {
		re, err := w.kv.Get(ctx, key(PrefixRequest, id))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyNotFound) {
				w.b.opts.Logger.Warn("cannot read an approval request", "id", id, "err", err)
			}
			return "", false
		}
		_ = st.set(PrefixRequest, re.Value(), re.Revision()) // a bad request fails assemble

	}
	return id, true
}

// change assembles request id at revision rev; when it fails its integrity check, the Change
// says so instead.
func (w *watcher) change(id string, rev uint64) *Change {
	st := w.parts[id]
	if st == nil || (st.req.Data == nil && st.bad[PrefixRequest] == nil) {
		return nil
	}
	r, err := st.assemble(w.b.macKey)
	if err != nil {
		w.b.opts.Logger.Error("approval request not shown: it failed its integrity check", "id", id, "err", err)
		return &Change{Revision: rev, ID: id, Err: err}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return &Change{Revision: rev, Request: r, Raw: raw}
}

// sendInitial delivers the latest version of every request the initial versions touched, in
// revision order, then the marker.
func (w *watcher) sendInitial(ctx context.Context, touched map[string]bool) bool {
	var changes []*Change
	for id := range touched {
		if c := w.change(id, w.parts[id].maxRev); c != nil {
			changes = append(changes, c)
		}
	}
	slices.SortFunc(changes, func(a, b *Change) int { return compareRev(a.Revision, b.Revision) })
	for _, c := range changes {
		if !w.send(ctx, c) {
			return false
		}
	}
	return w.send(ctx, nil)
}

func compareRev(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *watcher) send(ctx context.Context, c *Change) bool {
	select {
	case w.out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}
