package webhook

import (
	"context"
	"errors"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ExtraCredentialID is the extra kube-apiserver sets to name the credential a user
// authenticated with; a direct caller's scoped grants are bound to it when it is there.
const ExtraCredentialID = "authentication.kubernetes.io/credential-id"

func (g *Gate) now() time.Time {
	if g.Clock == nil {
		return time.Now()
	}
	return g.Clock.Now()
}

// sessionKey is the session a call's scoped grants are bound to (approvals.SessionKey).
func sessionKey(a policy.Attributes) string {
	ex := identity.FromExtra(a.User.Extra)
	var cred string
	if v := a.User.Extra[ExtraCredentialID]; len(v) > 0 {
		cred = v[0]
	}
	return approvals.SessionKey(ex.ViaGateway(), ex.SessionID, a.User.Username, cred)
}

// scopeOffer is what the rule that decided d offers approvers for op, or nil when it offers
// nothing that covers op itself.
func scopeOffer(a policy.Attributes, d policy.Decision, op trail.Operation) *approvals.ScopeOffer {
	if d.Approval == nil || d.Approval.Scope == nil {
		return nil
	}
	sc := d.Approval.Scope
	o := &approvals.ScopeOffer{Verbs: slices.Clone(sc.Verbs), Namespace: op.Namespace, Session: sessionKey(a)}
	o.MaxDuration.Duration = sc.MaxDuration
	for _, r := range sc.Resources {
		o.Resources = append(o.Resources, r.String())
	}
	if len(o.Resources) == 0 {
		o.Resources = []string{approvals.ScopeResource(op)}
	}
	if !o.Covers(op) {
		return nil
	}
	return o
}

// admitScoped admits op when a scoped grant of the caller's session covers it. It reports false
// when none does; the caller then asks for an approval of the operation as usual. A scoped
// grant is never broader than the rule that decides op now: it must have been asked for by the
// same rule, whose current scope must still offer op, and it must not be older than the rule's
// current longest duration.
func (g *Gate) admitScoped(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision, op trail.Operation) (admission.Response, bool) {
	offer := scopeOffer(a, d, op)
	if offer == nil {
		return admission.Response{}, false
	}
	grants, err := g.Broker.ScopedGrants(ctx, offer.Session, op.Namespace, trail.Policy{Policy: d.Policy, Rule: d.Rule})
	if err != nil {
		return g.unavailable(err), true
	}
	now := g.now()
	for _, r := range grants {
		granted := r.Grant.Expires.Add(-r.Grant.Scope.Duration.Duration)
		if !now.Before(granted.Add(offer.MaxDuration.Duration)) {
			continue // the rule now offers shorter scopes than this one
		}
		err := g.Broker.UseScope(ctx, r, a.User.Username, offer.Session, op, string(req.UID))
		switch {
		case err == nil:
			return withApproval(admission.Allowed("within the scope approved by "+r.ID), r.ID), true
		case errors.Is(err, approvals.ErrUnavailable):
			return g.unavailable(err), true
		}
	}
	return admission.Response{}, false
}
