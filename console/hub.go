package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Broker is what the console needs of the approval broker. *approvals.Broker implements it.
type Broker interface {
	Watch(ctx context.Context, opts ...approvals.WatchOption) (approvals.Watcher, error)
	Get(ctx context.Context, id string) (*approvals.Request, error)
	Decide(ctx context.Context, id string, approver trail.Identity, v approvals.Verdict, reason string) (*approvals.Request, error)
	// DecideScoped approves granting a scope within the request's offer (nil: as Decide).
	DecideScoped(ctx context.Context, id string, approver trail.Identity, v approvals.Verdict, reason string, choice *approvals.ScopeChoice) (*approvals.Request, error)
	Expire(ctx context.Context, id string) (*approvals.Request, error)
}

var _ Broker = (*approvals.Broker)(nil)

// item is an approval request as the console shows it.
type item struct {
	approvals.Request
	// Revision is the key-value revision of this version.
	Revision uint64 `json:"-"`
}

// state is the request's state as of now: a pending request past its deadline is expired even
// before the broker records it.
func (it *item) state(now time.Time) approvals.State {
	if it.State == approvals.StatePending && !now.Before(it.Expires) {
		return approvals.StateExpired
	}
	return it.State
}

func decodeItem(c *approvals.Change) *item {
	it := &item{}
	if err := json.Unmarshal(c.Raw, it); err != nil {
		it.Request = *c.Request
	}
	it.Revision = c.Revision
	return it
}

// hub follows the approval requests in JetStream with one watch and keeps, in memory, the
// latest version of each and the recent changes in revision order. Browsers follow the hub:
// a server-sent event stream resumes from the last revision it delivered, replaying what it
// missed from the hub's log, or starting over from the current state when the log no longer
// reaches back that far. Nothing is lost, and nothing is delivered twice.
type hub struct {
	broker Broker
	clock  clock.WithTicker
	log    *slog.Logger
	// connected reports whether NATS is reachable; nil means always.
	connected func() bool
	// onChange is called, outside the lock, for every change after the initial state.
	onChange func(prev, cur *item)
	logSize  int

	mu    sync.Mutex
	items map[string]*item
	// changes are the versions stored after floor, in revision order.
	changes []*item
	floor   uint64
	last    uint64
	live    bool
	ready   bool
	// wake is closed and replaced on every change, waking the streams that wait.
	wake     chan struct{}
	expiring map[string]bool
}

func newHub(b Broker, clk clock.WithTicker, log *slog.Logger, connected func() bool, onChange func(prev, cur *item)) *hub {
	return &hub{broker: b, clock: clk, log: log, connected: connected, onChange: onChange, logSize: 4096,
		items: map[string]*item{}, wake: make(chan struct{}), expiring: map[string]bool{}}
}

// Start follows the broker until ctx ends, watching again after every interruption from the
// last revision it saw.
func (h *hub) Start(ctx context.Context) error {
	go h.expireLoop(ctx)
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 5 * time.Second}
	for ctx.Err() == nil {
		h.mu.Lock()
		if !h.ready {
			// An interrupted initial load starts over.
			h.items, h.last = map[string]*item{}, 0
		}
		last, ready := h.last, h.ready
		h.mu.Unlock()
		var opts []approvals.WatchOption
		if ready && last > 0 {
			opts = append(opts, approvals.After(last))
		}
		wctx, cancel := context.WithCancel(ctx)
		w, err := h.broker.Watch(wctx, opts...)
		if err != nil {
			cancel()
			h.setLive(false)
			h.log.Warn("cannot watch approval requests; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-h.clock.After(backoff.Step()):
			}
			continue
		}
		backoff.Duration = 200 * time.Millisecond
		if ready {
			h.setLive(true)
		}
		h.follow(wctx, w)
		_ = w.Stop()
		cancel()
	}
	return nil
}

// follow applies the watch's changes until it ends or NATS is unreachable; then the caller
// watches again, resuming after the last revision.
func (h *hub) follow(ctx context.Context, w approvals.Watcher) {
	tick := h.clock.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			if h.connected != nil && !h.connected() {
				h.setLive(false)
				// Wait for the connection and then watch anew: the server may have lost the
				// watch's consumer.
				for !h.connected() {
					select {
					case <-ctx.Done():
						return
					case <-tick.C():
					}
				}
				return
			}
		case c, ok := <-w.Changes():
			if !ok {
				h.setLive(false)
				return
			}
			if c == nil {
				h.mu.Lock()
				h.ready = true
				h.floor = h.last
				h.mu.Unlock()
				h.setLive(true)
				continue
			}
			if c.Err != nil {
				h.remove(c.ID, c.Revision)
				continue
			}
			h.apply(decodeItem(c))
		}
	}
}

func (h *hub) apply(it *item) {
	h.mu.Lock()
	if it.Revision <= h.last {
		h.mu.Unlock()
		return // a resumed watch may deliver the last revision again
	}
	prev := h.items[it.ID]
	h.items[it.ID] = it
	h.last = it.Revision
	ready := h.ready
	if ready {
		h.changes = append(h.changes, it)
		if len(h.changes) > h.logSize {
			drop := len(h.changes) - h.logSize
			h.floor = h.changes[drop-1].Revision
			h.changes = slices.Clone(h.changes[drop:])
		}
	}
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
	if ready && h.onChange != nil {
		h.onChange(prev, it)
	}
}

// remove drops a request that failed its integrity check at revision rev: the console no
// longer shows it. Event streams behind rev start over from the snapshot, which leaves it out.
func (h *hub) remove(id string, rev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.last {
		return
	}
	delete(h.items, id)
	h.last = rev
	if h.ready {
		h.changes, h.floor = nil, rev
	}
	close(h.wake)
	h.wake = make(chan struct{})
}

func (h *hub) setLive(live bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live == live {
		return
	}
	h.live = live
	close(h.wake)
	h.wake = make(chan struct{})
}

// snapshot returns every request (newest first), the revision they are current at, and
// whether the hub is following NATS.
func (h *hub) snapshot() ([]*item, uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*item, 0, len(h.items))
	for _, it := range h.items {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b *item) int { return b.Created.Compare(a.Created) })
	return out, h.last, h.live
}

func (h *hub) get(id string) (*item, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.items[id], h.last
}

// since returns the changes after revision rev, or reset when the log does not reach back to
// rev (or rev is from another history): then the stream starts over from a snapshot. It also
// returns the channel closed at the next change and whether the hub is live.
func (h *hub) since(rev uint64) (changes []*item, reset bool, last uint64, wake <-chan struct{}, live bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.ready:
	case rev < h.floor || rev > h.last:
		reset = true
	default:
		i, _ := slices.BinarySearchFunc(h.changes, rev+1, func(it *item, r uint64) int {
			switch {
			case it.Revision < r:
				return -1
			case it.Revision > r:
				return 1
			}
			return 0
		})
		changes = slices.Clone(h.changes[i:])
	}
	return changes, reset, h.last, h.wake, h.live
}

// expireLoop records the expiry of pending requests whose deadline passed (approvals.Broker's
// Expire), so every console (and the trail) sees them expire even when nobody asks for them.
func (h *hub) expireLoop(ctx context.Context) {
	tick := h.clock.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		now := h.clock.Now()
		var due []string
		h.mu.Lock()
		for id, it := range h.items {
			if it.State == approvals.StatePending && !now.Before(it.Expires) && !h.expiring[id] {
				h.expiring[id] = true
				due = append(due, id)
			}
		}
		h.mu.Unlock()
		for _, id := range due {
			if _, err := h.broker.Expire(ctx, id); err != nil {
				h.log.Warn("could not record the expiry of an approval request", "approval", id, "err", err)
				h.mu.Lock()
				delete(h.expiring, id)
				h.mu.Unlock()
			}
		}
	}
}
