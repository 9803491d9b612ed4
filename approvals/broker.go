package approvals

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Bucket holds the approval requests, in parts written by different components (see the key
// prefixes PrefixRequest, PrefixDecision, PrefixUse and PrefixIndex).
const Bucket = "GATEHOUSE_APPROVALS"

// Errors. Messages are written for the person who asked or decided.
var (
	ErrNotFound     = errors.New("approval request not found")
	ErrNotAllowed   = errors.New("not allowed to decide this request")
	ErrFinal        = errors.New("the approval request is already decided")
	ErrNoGrant      = errors.New("no usable grant")
	ErrUnavailable  = errors.New("the approval broker is unavailable")
	ErrInvalidInput = errors.New("invalid approval input")
	// ErrReadOnly is returned by the writing methods of a broker without an approval key.
	ErrReadOnly = errors.New("approvals: this broker has no approval key: it reads requests but cannot change them")
)

// BucketOptions configures the approvals bucket (EnsureBucket).
type BucketOptions struct {
	// Replicas of the bucket in a NATS cluster. Default 1.
	Replicas int
	// Retention is how long a stored part of a request is kept. Default 90 days.
	Retention time.Duration
}

// BucketConfig returns the key-value bucket the broker keeps requests in.
func BucketConfig(o BucketOptions) jetstream.KeyValueConfig {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Retention == 0 {
		o.Retention = 90 * 24 * time.Hour
	}
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Gatehouse approval requests",
		History:     64,
		TTL:         o.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
}

// EnsureBucket creates the approvals bucket, or updates it to BucketConfig(o). Only the NATS
// administrator may (natsbus.Provision); components open it with New.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, o BucketOptions) error {
	if _, err := js.CreateOrUpdateKeyValue(ctx, BucketConfig(o)); err != nil {
		return fmt.Errorf("approvals: ensure bucket %s: %w", Bucket, err)
	}
	return nil
}

// Options configures a Broker.
type Options struct {
	// Key is the approval key: it authenticates what the broker stores (requests, decisions and
	// the use of grants) and is checked on everything it reads. At least MinKeyBytes; the webhook
	// and the console share it, and NATS never sees it. Without a key the broker only reads,
	// trusting what it reads, and every writing method returns ErrReadOnly: the proxy, which
	// waits for decisions and leaves it to admission to check them, has no key.
	Key []byte
	// Source names the process in trail records, e.g. "webhook/gatehouse-7d9c".
	Source string
	// Recorder receives a trail.Approval for every change. Required with a Key.
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
	js     jetstream.JetStream
	opts   Options
	clock  clock.Clock
	macKey []byte

	mu sync.Mutex
	kv jetstream.KeyValue // opened on first use
}

// New returns a broker on the approvals bucket, which the NATS administrator provisions
// (EnsureBucket). It does no I/O: the bucket is opened on first use, so a component starts while
// NATS is away and the broker answers ErrUnavailable meanwhile (Ready says why).
func New(js jetstream.JetStream, o Options) (*Broker, error) {
	if o.Key != nil {
		if len(o.Key) < MinKeyBytes {
			return nil, fmt.Errorf("approvals: the approval key must have at least %d bytes", MinKeyBytes)
		}
		if o.Recorder == nil {
			return nil, errors.New("approvals: Options.Recorder is required with a Key")
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	var macKey []byte
	if o.Key != nil {
		// A key of its own for the MACs, derived from the approval key.
		h := hmac.New(sha256.New, o.Key)
		h.Write([]byte("gatehouse.dev/approvals/mac-key/v1"))
		macKey = h.Sum(nil)
	}
	return &Broker{js: js, opts: o, clock: o.Clock, macKey: macKey}, nil
}

// Ready reports whether the approvals bucket can be read: nil, or ErrUnavailable saying why.
func (b *Broker) Ready(ctx context.Context) error {
	_, err := b.bucket(ctx)
	return err
}

// bucket returns the approvals bucket, opening it on first use.
func (b *Broker) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.js.KeyValue(ctx, Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("%w: the bucket %s does not exist; the NATS administrator creates it (gatehouse nats provision)", ErrUnavailable, Bucket)
	case err != nil:
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, Bucket, err)
	}
	b.kv = kv
	return kv, nil
}

func (b *Broker) writable() error {
	if b.macKey == nil {
		return ErrReadOnly
	}
	return nil
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
	if err := b.writable(); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	kv, err := b.bucket(ctx)
	if err != nil {
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
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	value, _ := seal(b.macKey, typeRequest, key(PrefixRequest, r.ID), nil, data)
	if _, err := kv.Create(ctx, key(PrefixRequest, r.ID), value); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.State = StatePending
	if err := b.record(ctx, r, trail.ApprovalRequested, "", ""); err != nil {
		return nil, err
	}
	return r, nil
}

// Get returns a request as it stands now: a pending request past its deadline, and an unused
// grant past its TTL, are Expired (stored so by the console, Expire).
func (b *Broker) Get(ctx context.Context, id string) (*Request, error) {
	r, _, err := b.load(ctx, id)
	if err != nil {
		return nil, err
	}
	r.expire(b.clock.Now())
	return r, nil
}

// List returns the requests in the given states (all when none), newest first. Requests that
// fail their integrity check are left out, and logged.
func (b *Broker) List(ctx context.Context, states ...State) ([]*Request, error) {
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeysFiltered(ctx, PrefixRequest+".>")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var out []*Request
	for k := range lister.Keys() {
		r, err := b.Get(ctx, strings.TrimPrefix(k, PrefixRequest+"."))
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case errors.Is(err, ErrTampered):
			b.opts.Logger.Error("approval request left out: it failed its integrity check", "key", k, "err", err)
			continue
		case err != nil:
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
// longer pending; in both cases the request is returned as it stands. The approver whose decision
// made the request final may send it again (a retry after a lost answer): it succeeds without
// another decision, and the event is recorded again, stored once.
func (b *Broker) Decide(ctx context.Context, id string, approver trail.Identity, v Verdict, reason string) (*Request, error) {
	if err := b.writable(); err != nil {
		return nil, err
	}
	if v != Approve && v != Deny {
		return nil, fmt.Errorf("%w: verdict must be %s or %s", ErrInvalidInput, Approve, Deny)
	}
	if len(reason) > MaxReasonLength {
		return nil, fmt.Errorf("%w: reason longer than %d bytes", ErrInvalidInput, MaxReasonLength)
	}
	var refusal error
	var again *Decision
	r, err := b.decide(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string) {
		refusal, again = nil, nil
		if r.expire(b.clock.Now()) {
			refusal = ErrFinal
			return trail.ApprovalExpired, "", ""
		}
		if r.Final() {
			again = r.finalDecisionBy(approver.User, v)
			if again == nil {
				refusal = ErrFinal
			}
			return "", "", ""
		}
		if why := r.MayDecide(approver); why != "" {
			refusal = fmt.Errorf("%w: %s", ErrNotAllowed, why)
			return "", "", ""
		}
		now := b.clock.Now().UTC()
		r.Decisions = append(r.Decisions, Decision{Approver: approver.User, Verdict: v, Reason: reason, Time: now})
		switch {
		case v == Deny:
			r.State = StateDenied
			return trail.ApprovalDenied, approver.User, reason
		case len(r.Approvers()) >= r.Required:
			r.State = StateApproved
			r.Grant = &Grant{Expires: now.Add(r.GrantTTL)}
			return trail.ApprovalApproved, approver.User, reason
		}
		return trail.ApprovalVoted, approver.User, reason
	})
	if err != nil {
		return nil, err
	}
	if again != nil {
		// The same approver's decision again, the one that made the request final: a retry
		// whose first answer was lost (say, while NATS elected a new leader), which may have
		// stored the decision and failed to record it. It answers as the first time would have,
		// and records the event again; the record's ID makes a second copy one message.
		event := trail.ApprovalApproved
		if again.Verdict == Deny {
			event = trail.ApprovalDenied
		}
		if err := b.record(ctx, r, event, again.Approver, again.Reason); err != nil {
			return nil, err
		}
	}
	return r, refusal
}

// Expire stores that request id expired, once its deadline (or its unused grant's TTL) passed,
// and records the event; before that, and for a request already final, it changes nothing. The
// console calls it as deadlines pass.
func (b *Broker) Expire(ctx context.Context, id string) (*Request, error) {
	if err := b.writable(); err != nil {
		return nil, err
	}
	return b.decide(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string) {
		if r.expire(b.clock.Now()) {
			return trail.ApprovalExpired, "", ""
		}
		return "", "", ""
	})
}

// Consume uses the grant of request id for one operation, admitted as admissionUID: it must
// be approved, unexpired, unused, for the same requester and fingerprint, and every part of the
// request must verify under the approval key. Exactly one concurrent caller succeeds.
func (b *Broker) Consume(ctx context.Context, id, requester, fingerprint, admissionUID string) (*Request, error) {
	if err := b.writable(); err != nil {
		return nil, err
	}
	r, st, err := b.load(ctx, id)
	if err != nil {
		return nil, err
	}
	var refusal error
	switch {
	case r.expire(b.clock.Now()):
		refusal = fmt.Errorf("%w: approval %s expired", ErrNoGrant, id)
	case r.State == StateUsed:
		refusal = fmt.Errorf("%w: the grant of approval %s was already used", ErrNoGrant, id)
	case r.State != StateApproved || r.Grant == nil:
		refusal = fmt.Errorf("%w: approval %s is %s", ErrNoGrant, id, r.State)
	case r.Requester.User != requester:
		refusal = fmt.Errorf("%w: approval %s was granted to another requester", ErrNoGrant, id)
	case r.Fingerprint != fingerprint:
		refusal = fmt.Errorf("%w: the operation differs from what approval %s approved", ErrNoGrant, id)
	}
	if refusal != nil {
		return r, refusal
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	now := b.clock.Now().UTC()
	data, err := json.Marshal(useRecord{ID: id, UsedAt: now, AdmissionUID: admissionUID})
	if err != nil {
		return nil, err
	}
	value, _ := seal(b.macKey, typeUse, key(PrefixUse, id), st.req.MAC, data)
	// Written only where the key never had a value: KeyValue.Create also writes over a delete
	// marker, which anyone who may write the use record (to use a grant) can put there to use
	// the grant again.
	if _, err := kv.Update(ctx, key(PrefixUse, id), value, 0); err != nil {
		if isConflict(err) {
			return r, fmt.Errorf("%w: the grant of approval %s was already used", ErrNoGrant, id)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.State = StateUsed
	r.Grant.UsedAt, r.Grant.AdmissionUID = &now, admissionUID
	if err := b.record(ctx, r, trail.ApprovalGrantUsed, r.Requester.User, ""); err != nil {
		return nil, err
	}
	return r, nil
}

// Wait blocks until request id is no longer pending (or its deadline passed) or ctx ends, and
// returns it as it then stands.
func (b *Broker) Wait(ctx context.Context, id string) (*Request, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchFiltered(ctx, []string{key(PrefixDecision, id), key(PrefixUse, id)}, jetstream.UpdatesOnly())
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
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, key(PrefixIndex, fingerprint))
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
	if err := b.writable(); err != nil {
		return err
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key(PrefixIndex, r.Fingerprint), []byte(r.ID)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// load reads the parts of request id and assembles it, verifying them when the broker has a
// key.
func (b *Broker) load(ctx context.Context, id string) (*Request, *stored, error) {
	if !ValidID(id) {
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, nil, err
	}
	st := &stored{id: id}
	for _, p := range []string{PrefixRequest, PrefixDecision, PrefixUse} {
		e, err := kv.Get(ctx, key(p, id))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if p == PrefixRequest {
				return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if err := st.set(p, e.Value(), e.Revision()); err != nil {
			return nil, nil, fmt.Errorf("%w: %s %s: %w", ErrTampered, id, p, err)
		}
	}
	r, err := st.assemble(b.macKey)
	if err != nil {
		return nil, nil, err
	}
	return r, st, nil
}

// conflictBackoff spaces the retries of a compare-and-swap that lost to another writer.
var conflictBackoff = wait.Backoff{Duration: 5 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Steps: 20, Cap: 500 * time.Millisecond}

// decide applies change to the decision record of request id with compare-and-swap, retrying on
// conflicts. change returns the event to record, with its actor and reason, or "" when it
// changed nothing.
func (b *Broker) decide(ctx context.Context, id string, change func(*Request) (trail.ApprovalEvent, string, string)) (*Request, error) {
	var out *Request
	err := retry.OnError(conflictBackoff, isConflict, func() error {
		r, st, err := b.load(ctx, id)
		if err != nil {
			return err
		}
		event, actor, reason := change(r)
		if event == "" {
			out = r
			return nil
		}
		rec := decisionRecord{ID: id, State: r.State, Decisions: r.Decisions, Seq: 1}
		if st.decData != nil {
			rec.Seq = st.decData.Seq + 1
		}
		if r.Grant != nil {
			exp := r.Grant.Expires
			rec.GrantExpires = &exp
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		kv, err := b.bucket(ctx)
		if err != nil {
			return err
		}
		value, _ := seal(b.macKey, typeDecision, key(PrefixDecision, id), st.req.MAC, data)
		if st.dec == nil {
			// Only where the key never had a value, as the use record: a decision deleted is
			// not written again, and the request can no longer be decided (fails closed).
			_, err = kv.Update(ctx, key(PrefixDecision, id), value, 0)
		} else {
			_, err = kv.Update(ctx, key(PrefixDecision, id), value, st.decRev)
		}
		if err != nil {
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
