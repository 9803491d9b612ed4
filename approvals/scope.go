package approvals

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Scoped approvals. By default an approval grants exactly the operation that was held, once.
// A rule can offer more (policy.ApprovalScope): its approvers may then grant a scope, the
// requester's session may do these verbs on these resources in this namespace for this long,
// so that a tool that writes several objects for one task (Helm writing its release records,
// an operator's install) needs one approval. A scope is never broader than the rule that
// offered it: it is bound to the requester, their session and the held operation's namespace,
// it admits only operations the same rule holds (and still offers), it covers the held
// operation itself, and it expires by itself. Every operation it admits is recorded in the
// trail as a use of its grant.
//
// Admission finds the scoped grants of a session through index keys written when a request
// with an offer is created: "scope.<hash of session, namespace, policy and rule>" holds the IDs
// of the latest such requests.

// ScopeOffer is what the rule that held an operation lets approvers grant instead of that one
// operation. Namespace and Session bound every scope granted from it.
type ScopeOffer struct {
	// Verbs and Resources (resource[.group][/subresource]) approvers may include.
	Verbs     []string `json:"verbs"`
	Resources []string `json:"resources"`
	// MaxDuration is the longest approvers may grant.
	MaxDuration metav1.Duration `json:"maxDuration"`
	// Namespace is the held operation's ("" for cluster-scoped resources).
	Namespace string `json:"namespace,omitempty"`
	// Session is the requester's session: SessionKey of the held call.
	Session string `json:"session"`
}

// ScopeChoice is what an approver grants within an offer. Empty fields take the whole offer.
type ScopeChoice struct {
	Verbs     []string        `json:"verbs,omitempty"`
	Resources []string        `json:"resources,omitempty"`
	Duration  metav1.Duration `json:"duration,omitempty"`
}

// Scope is what a scoped grant admits until it expires.
type Scope struct {
	Verbs     []string        `json:"verbs"`
	Resources []string        `json:"resources"`
	Namespace string          `json:"namespace,omitempty"`
	Session   string          `json:"session"`
	Duration  metav1.Duration `json:"duration"`
}

// String describes the scope for people and the trail.
func (s *Scope) String() string {
	where := "cluster-scoped"
	if s.Namespace != "" {
		where = "in namespace " + s.Namespace
	}
	return fmt.Sprintf("%s on %s %s for %s, in the requester's session", strings.Join(s.Verbs, ", "),
		strings.Join(s.Resources, ", "), where, s.Duration.Duration)
}

// SessionKey names the session a scoped grant is bound to: the Gatehouse session of a call
// through the gateway; for a direct call the user and, when kube-apiserver names it
// (authentication.kubernetes.io/credential-id), the credential.
func SessionKey(viaGateway bool, gatewaySession, user, credentialID string) string {
	if viaGateway && gatewaySession != "" {
		return "gateway:" + gatewaySession
	}
	if credentialID != "" {
		return "direct:" + user + "/" + credentialID
	}
	return "direct:" + user
}

// ScopeResource spells an operation's resource as scopes name it: resource[.group][/subresource].
func ScopeResource(op trail.Operation) string {
	s := op.Resource
	if op.APIGroup != "" {
		s += "." + op.APIGroup
	}
	if op.Subresource != "" {
		s += "/" + op.Subresource
	}
	return s
}

// Covers reports whether an offer (or a scope with the same fields) allows op.
func (o *ScopeOffer) Covers(op trail.Operation) bool {
	return o != nil && slices.Contains(o.Verbs, op.Verb) && slices.Contains(o.Resources, ScopeResource(op)) && o.Namespace == op.Namespace
}

// Allows reports whether the scope admits op for session.
func (s *Scope) Allows(op trail.Operation, session string) bool {
	return s != nil && s.Session == session && s.Namespace == op.Namespace &&
		slices.Contains(s.Verbs, op.Verb) && slices.Contains(s.Resources, ScopeResource(op))
}

// choose checks an approver's choice against the request's offer and returns it with the
// offer's defaults filled in.
func (r *Request) choose(c ScopeChoice) (ScopeChoice, error) {
	o := r.ScopeOffer
	if o == nil {
		return c, fmt.Errorf("%w: the rule that held this operation offers no scope; approve the operation alone", ErrInvalidInput)
	}
	if len(c.Verbs) == 0 {
		c.Verbs = slices.Clone(o.Verbs)
	}
	if len(c.Resources) == 0 {
		c.Resources = slices.Clone(o.Resources)
	}
	if c.Duration.Duration == 0 {
		c.Duration = o.MaxDuration
	}
	var errs []error
	for _, v := range c.Verbs {
		if !slices.Contains(o.Verbs, v) {
			errs = append(errs, fmt.Errorf("verb %q is not offered (%s)", v, strings.Join(o.Verbs, ", ")))
		}
	}
	for _, res := range c.Resources {
		if !slices.Contains(o.Resources, res) {
			errs = append(errs, fmt.Errorf("resource %q is not offered (%s)", res, strings.Join(o.Resources, ", ")))
		}
	}
	if c.Duration.Duration < 0 || c.Duration.Duration > o.MaxDuration.Duration {
		errs = append(errs, fmt.Errorf("the duration must be positive and at most %s", o.MaxDuration.Duration))
	}
	if !slices.Contains(c.Verbs, r.Operation.Verb) || !slices.Contains(c.Resources, ScopeResource(r.Operation)) {
		errs = append(errs, fmt.Errorf("the scope must cover the held operation (%s %s)", r.Operation.Verb, ScopeResource(r.Operation)))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return c, nil
}

// grantScope is the scope the approvals of r grant: what every approver chose (the
// intersection), or nil when one of them approved the operation alone.
func (r *Request) grantScope() *Scope {
	if r.ScopeOffer == nil {
		return nil // nothing to grant beyond the one operation, whatever a decision says
	}
	var s *Scope
	for _, d := range r.Decisions {
		if d.Verdict != Approve {
			continue
		}
		if d.Scope == nil {
			return nil
		}
		if s == nil {
			s = &Scope{Verbs: slices.Clone(d.Scope.Verbs), Resources: slices.Clone(d.Scope.Resources), Duration: d.Scope.Duration,
				Namespace: r.ScopeOffer.Namespace, Session: r.ScopeOffer.Session}
			continue
		}
		s.Verbs = slices.DeleteFunc(s.Verbs, func(v string) bool { return !slices.Contains(d.Scope.Verbs, v) })
		s.Resources = slices.DeleteFunc(s.Resources, func(v string) bool { return !slices.Contains(d.Scope.Resources, v) })
		s.Duration.Duration = min(s.Duration.Duration, d.Scope.Duration.Duration)
	}
	return s
}

// DecideScoped records approver's verdict like Decide; with a choice, an approval grants that
// scope (within the request's offer) instead of the one operation. The grant is scoped when
// every approver chose a scope: the scopes they chose, intersected; it is valid for the chosen
// duration. A denial takes no choice.
func (b *Broker) DecideScoped(ctx context.Context, id string, approver trail.Identity, v Verdict, reason string, choice *ScopeChoice) (*Request, error) {
	if choice == nil {
		return b.Decide(ctx, id, approver, v, reason)
	}
	if err := b.writable(); err != nil {
		return nil, err
	}
	if v != Approve {
		return nil, fmt.Errorf("%w: a scope is granted by approving, not denying", ErrInvalidInput)
	}
	if len(reason) > MaxReasonLength {
		return nil, fmt.Errorf("%w: reason longer than %d bytes", ErrInvalidInput, MaxReasonLength)
	}
	var refusal error
	r, err := b.decide(ctx, id, func(r *Request) (trail.ApprovalEvent, string, string) {
		refusal = nil
		if r.expire(b.clock.Now()) {
			refusal = ErrFinal
			return trail.ApprovalExpired, "", ""
		}
		if r.Final() {
			refusal = ErrFinal
			return "", "", ""
		}
		if why := r.MayDecide(approver); why != "" {
			refusal = fmt.Errorf("%w: %s", ErrNotAllowed, why)
			return "", "", ""
		}
		c, err := r.choose(*choice)
		if err != nil {
			refusal = err
			return "", "", ""
		}
		now := b.clock.Now().UTC()
		r.Decisions = append(r.Decisions, Decision{Approver: approver.User, Verdict: Approve, Reason: reason, Time: now, Scope: &c})
		if len(r.Approvers()) < r.Required {
			return trail.ApprovalVoted, approver.User, reason
		}
		r.State = StateApproved
		r.Grant = &Grant{Expires: now.Add(r.GrantTTL)}
		if s := r.grantScope(); s != nil {
			r.Grant.Scope = s
			r.Grant.Expires = now.Add(s.Duration.Duration)
		}
		return trail.ApprovalApproved, approver.User, reason
	})
	if err != nil {
		return nil, err
	}
	return r, refusal
}

// scopeIndexKey is the index key of the scoped requests of a session, namespace and rule.
func scopeIndexKey(session, namespace string, p trail.Policy) string {
	h := sha256.Sum256([]byte(strings.Join([]string{session, namespace, p.Policy, p.Rule}, "\x00")))
	return key(PrefixScope, hex.EncodeToString(h[:16]))
}

// maxScopeIndex bounds the request IDs an index key keeps.
const maxScopeIndex = 16

// IndexScope makes r, a request with a scope offer, one that ScopedGrants finds.
func (b *Broker) IndexScope(ctx context.Context, r *Request) error {
	if r.ScopeOffer == nil {
		return nil
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return err
	}
	key := scopeIndexKey(r.ScopeOffer.Session, r.ScopeOffer.Namespace, r.Policy)
	return retry.OnError(conflictBackoff, isConflict, func() error {
		var ids []string
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		default:
			rev = e.Revision()
			_ = json.Unmarshal(e.Value(), &ids)
		}
		ids = append(ids, r.ID)
		if len(ids) > maxScopeIndex {
			ids = ids[len(ids)-maxScopeIndex:]
		}
		data, _ := json.Marshal(ids)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err != nil && !isConflict(err) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	})
}

// ScopedGrants returns the approved, unexpired scoped grants of a session in a namespace that
// rule p asked for.
func (b *Broker) ScopedGrants(ctx context.Context, session, namespace string, p trail.Policy) ([]*Request, error) {
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, scopeIndexKey(session, namespace, p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var ids []string
	if err := json.Unmarshal(e.Value(), &ids); err != nil {
		return nil, nil
	}
	var out []*Request
	for _, id := range slices.Backward(ids) {
		r, err := b.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		if r.State == StateApproved && r.Grant != nil && r.Grant.Scope != nil && b.clock.Now().Before(r.Grant.Expires) &&
			r.Policy.Policy == p.Policy && r.Policy.Rule == p.Rule {
			out = append(out, r)
		}
	}
	return out, nil
}

// UseScope admits op, by requester in session, under the scoped grant of r: the grant must be
// approved, unexpired, the requester's, and its scope must allow op. Unlike an exact grant it is
// not used up; each use is recorded in the trail (a GrantUsed event naming the operation and
// admissionUID).
func (b *Broker) UseScope(ctx context.Context, r *Request, requester, session string, op trail.Operation, admissionUID string) error {
	now := b.clock.Now()
	switch {
	case r.State != StateApproved || r.Grant == nil || r.Grant.Scope == nil:
		return fmt.Errorf("%w: approval %s grants no scope", ErrNoGrant, r.ID)
	case !now.Before(r.Grant.Expires):
		return fmt.Errorf("%w: the scope of approval %s expired", ErrNoGrant, r.ID)
	case r.Requester.User != requester:
		return fmt.Errorf("%w: approval %s was granted to another requester", ErrNoGrant, r.ID)
	case !r.Grant.Scope.Allows(op, session):
		return fmt.Errorf("%w: the operation is outside the scope of approval %s", ErrNoGrant, r.ID)
	}
	rec := &trail.Approval{
		Meta:            trail.Meta{ID: r.ID + "-use-" + admissionUID, Time: now.UTC(), Source: b.opts.Source},
		ApprovalID:      r.ID,
		Event:           trail.ApprovalGrantUsed,
		SessionID:       r.SessionID,
		Requester:       r.Requester,
		OriginalUser:    r.OriginalUser,
		RequesterReason: r.Reason,
		Operation:       op,
		Policy:          r.Policy,
		ApproverGroups:  r.ApproverGroups,
		Required:        r.Required,
		Actor:           requester,
		Approvers:       r.Approvers(),
		Path:            r.Path,
		Expires:         r.Grant.Expires,
		AdmissionUID:    admissionUID,
		Scope:           r.Grant.Scope.String(),
	}
	if err := b.opts.Recorder.PublishSync(ctx, rec); err != nil {
		b.opts.Logger.Error("use of a scoped grant not recorded", "approval", r.ID, "err", err)
		return fmt.Errorf("%w: recording a use of %s: %w", ErrUnavailable, r.ID, err)
	}
	return nil
}

// DecideScoped approves request id granting a scope within its offer (choice), or decides it
// like Decide when choice is nil.
func (c *Client) DecideScoped(ctx context.Context, id string, v Verdict, reason string, choice *ScopeChoice) (*Request, error) {
	if choice == nil {
		return c.Decide(ctx, id, v, reason)
	}
	var out Request
	return &out, c.do(ctx, http.MethodPost, APIPrefix+"/"+url.PathEscape(id)+"/approve", DecisionBody{Reason: reason, Scope: choice}, &out)
}
