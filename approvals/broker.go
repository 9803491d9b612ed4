package approvals

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Bucket holds the approval requests ("req.<id>") and the fingerprint index
// ("fp.<fingerprint>" -> id) that lets admission find the request of an operation again.
const Bucket = "GATEHOUSE_APPROVALS"

// Errors. Messages are written for the person who asked or decided.
var (
	ErrNotFound     = errors.New("approval request not found")
	ErrNotAllowed   = errors.New("not allowed to decide this request")
	ErrFinal        = errors.New("the approval request is already decided")
	ErrNoGrant      = errors.New("no usable grant")
	ErrUnavailable  = errors.New("the approval broker is unavailable")
	ErrInvalidInput = errors.New("invalid approval input")
)

// Options configures a Broker.
type Options struct {
	// Replicas of the buckets in a NATS cluster. Default 1.
	Replicas int
	// Retention is how long requests are kept after their last change. Default 90 days.
	Retention time.Duration
	// Source names the process in trail records, e.g. "webhook/gatehouse-7d9c".
	Source string
	// Recorder receives a trail.Approval for every change. Required.
	Recorder Recorder
	// Clock tells the time of deadlines and decisions. Default: the real clock.
	Clock clock.Clock
	// Logger. Default: discard.
	Logger *slog.Logger
}

// Recorder writes trail records. *trail.Publisher implements it.
type Recorder interface {
	PublishSync(ctx context.Context, r trail.Record) error
}

// Broker creates, decides and consumes approval requests in JetStream.
type Broker struct {
	kv    jetstream.KeyValue
	opts  Options
	clock clock.Clock
}

// New opens (creating when missing) the approval buckets.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Broker, error) {
	if o.Recorder == nil {
		return nil, errors.New("approvals: Options.Recorder is required")
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Retention == 0 {
		o.Retention = 90 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Gatehouse approval requests",
		History:     64,
		TTL:         o.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, Bucket, err)
	}
	return &Broker{kv: kv, opts: o, clock: o.Clock}, nil
}

// Spec is what an approval request is created from.
type Spec struct {
	Requester trail.Identity
	// OriginalUser is the verified user behind Requester when the requester is a client's own
	// impersonation (the extra gatehouse.dev/original-user): neither may approve.
	OriginalUser string
	// Reason is why the requester says the operation is needed, masked.
	Reason    string
	SessionID string
	Operation trail.Operation
	Object    json.RawMessage // masked
	// OldObject is the live object an update or patch changes, masked.
	OldObject   json.RawMessage
	Fingerprint string
	Policy      trail.Policy
	// ApproverGroups, Required and GrantTTL come from the rule.
	ApproverGroups []string
	Required       int
	GrantTTL       time.Duration
	Path           string
	// Timeout is how long the request may wait for a decision.
	Timeout time.Duration
	// ScopeOffer, when the rule offers a scope, is what approvers may grant instead (scope.go).
	ScopeOffer *ScopeOffer
}

func (s Spec) validate() error {
	var errs []error
	if s.Requester.User == "" {
		errs = append(errs, errors.New("requester is required"))
	}
	if s.Fingerprint == "" {
		errs = append(errs, errors.New("fingerprint is required"))
	}
	if len(s.Reason) > MaxReasonLength {
		errs = append(errs, fmt.Errorf("the reason is longer than %d bytes", MaxReasonLength))
	}
	if len(s.ApproverGroups) == 0 {
		errs = append(errs, errors.New("at least one approver group is required"))
	}
	if s.Required < 1 || s.GrantTTL <= 0 || s.Timeout <= 0 {
		errs = append(errs, errors.New("required approvals, grant TTL and timeout must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return nil
}

// Create stores a new pending request and records it.
func (b *Broker) Create(ctx context.Context, s Spec) (*Request, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	now := b.clock.Now().UTC()
	r := &Request{
		ID:             newID(),
		Requester:      s.Requester,
		OriginalUser:   s.OriginalUser,
		Reason:         s.Reason,
		SessionID:      s.SessionID,
		Operation:      s.Operation,
		Object:         s.Object,
		OldObject:      s.OldObject,
		Fingerprint:    s.Fingerprint,
		Policy:         s.Policy,
		ApproverGroups: s.ApproverGroups,
		Required:       s.Required,
		GrantTTL:       s.GrantTTL,
		ScopeOffer:     s.ScopeOffer,
		Path:           s.Path,
		Created:        now,
		Expires:        now.Add(s.Timeout),
		State:          StatePending,
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if _, err := b.kv.Create(ctx, reqKey(r.ID), data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := b.record(ctx, r, trail.ApprovalRequested, "", ""); err != nil {
		return nil, err
	}
	return r, nil
}

// Get returns a request, moved to Expired when its deadline passed.
func (b *Broker) Get(ctx context.Context, id string) (*Request, error) {
	r, _, err := b.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.expire(b.clock.Now()) {
		// Store it, so the expiry is recorded once; losing the race to another writer is fine.
		if r2, err := b.update(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string, error) {
			if r.expire(b.clock.Now()) {
				return trail.ApprovalExpired, "", "", nil
			}
			return "", "", "", nil
		}); err == nil {
			return r2, nil
		}
	}
	return r, nil
}

// List returns the requests in the given states (all when none), newest first.
func (b *Broker) List(ctx context.Context, states ...State) ([]*Request, error) {
	lister, err := b.kv.ListKeysFiltered(ctx, "req.>")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var out []*Request
	for key := range lister.Keys() {
		r, err := b.Get(ctx, strings.TrimPrefix(key, "req."))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if len(states) == 0 || slices.Contains(states, r.State) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Request) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// Decide records approver's verdict. It returns ErrNotAllowed when the approver may not decide
// (own request, not in an approver group, already voted) and ErrFinal when the request is no
// longer pending; in both cases the request is returned as it stands.
func (b *Broker) Decide(ctx context.Context, id string, approver trail.Identity, v Verdict, reason string) (*Request, error) {
	if v != Approve && v != Deny {
		return nil, fmt.Errorf("%w: verdict must be %s or %s", ErrInvalidInput, Approve, Deny)
	}
	if len(reason) > MaxReasonLength {
		return nil, fmt.Errorf("%w: reason longer than %d bytes", ErrInvalidInput, MaxReasonLength)
	}
	var refusal error
	r, err := b.update(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string, error) {
		refusal = nil
		if r.expire(b.clock.Now()) {
			refusal = ErrFinal
			return trail.ApprovalExpired, "", "", nil
		}
		if r.Final() {
			refusal = ErrFinal
			return "", "", "", nil
		}
		if why := r.MayDecide(approver); why != "" {
			refusal = fmt.Errorf("%w: %s", ErrNotAllowed, why)
			return "", "", "", nil
		}
		now := b.clock.Now().UTC()
		r.Decisions = append(r.Decisions, Decision{Approver: approver.User, Verdict: v, Reason: reason, Time: now})
		switch {
		case v == Deny:
			r.State = StateDenied
			return trail.ApprovalDenied, approver.User, reason, nil
		case len(r.Approvers()) >= r.Required:
			r.State = StateApproved
			r.Grant = &Grant{Expires: now.Add(r.GrantTTL)}
			return trail.ApprovalApproved, approver.User, reason, nil
		}
		return trail.ApprovalVoted, approver.User, reason, nil
	})
	if err != nil {
		return nil, err
	}
	return r, refusal
}

// Consume uses the grant of request id for one operation, admitted as admissionUID: it must
// be approved, unexpired, unused, for the same requester and fingerprint. Exactly one concurrent
// caller succeeds.
func (b *Broker) Consume(ctx context.Context, id, requester, fingerprint, admissionUID string) (*Request, error) {
	var refusal error
	r, err := b.update(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string, error) {
		refusal = nil
		if r.expire(b.clock.Now()) {
			refusal = fmt.Errorf("%w: approval %s expired", ErrNoGrant, id)
			return trail.ApprovalExpired, "", "", nil
		}
		switch {
		case r.State == StateUsed:
			refusal = fmt.Errorf("%w: the grant of approval %s was already used", ErrNoGrant, id)
		case r.State != StateApproved:
			refusal = fmt.Errorf("%w: approval %s is %s", ErrNoGrant, id, r.State)
		case r.Requester.User != requester:
			refusal = fmt.Errorf("%w: approval %s was granted to another requester", ErrNoGrant, id)
		case r.Fingerprint != fingerprint:
			refusal = fmt.Errorf("%w: the operation differs from what approval %s approved", ErrNoGrant, id)
		}
		if refusal != nil {
			return "", "", "", nil
		}
		now := b.clock.Now().UTC()
		r.State = StateUsed
		r.Grant.UsedAt = &now
		r.Grant.AdmissionUID = admissionUID
		return trail.ApprovalGrantUsed, r.Requester.User, "", nil
	})
	if err != nil {
		return nil, err
	}
	return r, refusal
}

// Wait blocks until request id is no longer pending (or its deadline passed) or ctx ends, and
// returns it as it then stands.
func (b *Broker) Wait(ctx context.Context, id string) (*Request, error) {
	w, err := b.kv.Watch(ctx, reqKey(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { _ = w.Stop() }()
	r, err := b.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	for r.State == StatePending {
		timer := b.clock.NewTimer(r.Expires.Sub(b.clock.Now()) + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return r, ctx.Err()
		case <-w.Updates():
		case <-timer.C():
		}
		timer.Stop()
		if r, err = b.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// FindByFingerprint returns the latest admission-path request with that fingerprint.
func (b *Broker) FindByFingerprint(ctx context.Context, fingerprint string) (*Request, error) {
	e, err := b.kv.Get(ctx, "fp."+fingerprint)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return b.Get(ctx, string(e.Value()))
}

// Index makes r the request FindByFingerprint returns for its fingerprint.
func (b *Broker) Index(ctx context.Context, r *Request) error {
	if _, err := b.kv.Put(ctx, "fp."+r.Fingerprint, []byte(r.ID)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func (b *Broker) load(ctx context.Context, id string) (*Request, uint64, error) {
	if !ValidID(id) {
		return nil, 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	e, err := b.kv.Get(ctx, reqKey(id))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var r Request
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("approvals: decode %s: %w", id, err)
	}
	return &r, e.Revision(), nil
}

// conflictBackoff spaces the retries of a compare-and-swap that lost to another writer.
var conflictBackoff = wait.Backoff{Duration: 5 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Steps: 20, Cap: 500 * time.Millisecond}

// update applies change to request id with compare-and-swap, retrying on conflicts. change
// returns the event to record, with its actor and reason, or "" when it changed nothing.
func (b *Broker) update(ctx context.Context, id string, change func(*Request) (trail.ApprovalEvent, string, string, error)) (*Request, error) {
	var out *Request
	err := retry.OnError(conflictBackoff, isConflict, func() error {
		r, rev, err := b.load(ctx, id)
		if err != nil {
			return err
		}
		event, actor, reason, err := change(r)
		if err != nil {
			return err
		}
		if event == "" {
			out = r
			return nil
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := b.kv.Update(ctx, reqKey(id), data, rev); err != nil {
			if isConflict(err) {
				return err // retried
			}
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		out = r
		return b.record(ctx, r, event, actor, reason)
	})
	if isConflict(err) {
		return nil, fmt.Errorf("%w: %s kept changing: %w", ErrUnavailable, id, err)
	}
	return out, err
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// record publishes the trail record of a change. The record ID is derived from the request and
// the number of decisions, so a retried publish is stored once.
func (b *Broker) record(ctx context.Context, r *Request, event trail.ApprovalEvent, actor, reason string) error {
	expires := r.Expires
	if r.Grant != nil {
		expires = r.Grant.Expires
	}
	rec := &trail.Approval{
		Meta:            trail.Meta{ID: fmt.Sprintf("%s-%d-%s", r.ID, len(r.Decisions), event), Source: b.opts.Source},
		ApprovalID:      r.ID,
		Event:           event,
		SessionID:       r.SessionID,
		Requester:       r.Requester,
		OriginalUser:    r.OriginalUser,
		RequesterReason: r.Reason,
		Operation:       r.Operation,
		Fingerprint:     r.Fingerprint,
		Policy:          r.Policy,
		ApproverGroups:  r.ApproverGroups,
		Required:        r.Required,
		Actor:           actor,
		Reason:          reason,
		Approvers:       r.Approvers(),
		Path:            r.Path,
		Expires:         expires,
	}
	if r.Grant != nil {
		rec.AdmissionUID = r.Grant.AdmissionUID
		if r.Grant.Scope != nil {
			rec.Scope = r.Grant.Scope.String()
		}
	}
	if err := b.opts.Recorder.PublishSync(ctx, rec); err != nil {
		// The state is stored; the event is missing. Report it: approvals must be auditable.
		b.opts.Logger.Error("approval event not recorded", "approval", r.ID, "event", event, "err", err)
		return fmt.Errorf("%w: recording %s of %s: %w", ErrUnavailable, event, r.ID, err)
	}
	return nil
}

func reqKey(id string) string { return "req." + id }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns an ID short enough to type: "ap-" and 16 base32 characters (80 random bits).
func newID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "ap-" + idEncoding.EncodeToString(b)
}

// ValidID reports whether id has the form of an approval request ID.
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, "ap-")
	if !ok || len(rest) != 16 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
