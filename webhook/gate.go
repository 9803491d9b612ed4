package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Masker masks what approvers are shown: the object, and the requester's reason. *masking.Masker
// implements it.
type Masker interface {
	JSON(dst, src []byte, t masking.Target) ([]byte, masking.Stats, error)
	Text(dst, src []byte) ([]byte, masking.Stats)
}

var _ Masker = (*masking.Masker)(nil)

// Gate holds operations that a rule holds for approval, at admission: it is the webhook's
// Approver, and the one place in Gatehouse that creates approval requests, for calls through the
// proxy and direct calls alike, from the final object (after defaulting and every mutating
// webhook).
//
//   - A call the proxy re-sends after approval (extra gatehouse.dev/approval-id) is allowed when
//     that grant is usable for exactly this operation, and uses it up; otherwise it is denied with
//     the reason.
//   - Any other call is allowed by an approved, unused grant for the same fingerprint (a client's
//     retry after approval), which it uses up. Otherwise the request for the operation is found
//     again, or created, and the call is denied with its ID in the Status details (group
//     gatehouse.dev, kind approvalrequests): the proxy, holding its client, waits on the broker
//     for that request and re-sends the call once approved. A direct call first waits up to Wait
//     for a decision.
type Gate struct {
	Broker *approvals.Broker
	// Masker masks the object and the reason approvers see. Required: nothing is shown unmasked.
	Masker Masker
	// Fingerprints computes the fingerprints that bind grants to operations. Required.
	Fingerprints *approvals.Fingerprinter
	// Wait is how long a direct call waits for a decision before it is denied, well under the
	// webhook's timeout. Calls through the proxy do not wait here: the proxy holds them. Default 3s.
	Wait time.Duration
	// Timeout is how long a request stays pending for approvers. Default 1 hour.
	Timeout time.Duration
	// UIURL, when set, is the approvers' web UI; denials link to <UIURL>/approvals/<id>.
	UIURL string
	// Clock tells the time scoped grants are judged by. Default: the real clock.
	Clock clock.Clock
	// Logger receives failures of the broker, never objects. Default: discard.
	Logger *slog.Logger
}

var _ Approver = (*Gate)(nil)

// Admit implements Approver.
func (g *Gate) Admit(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision) admission.Response {
	if d.Approval == nil {
		return admission.Denied(d.Message)
	}
	extras := identity.FromExtra(a.User.Extra)
	op := a.TrailOperation()
	object := a.Object
	if op.Verb == "delete" || op.Verb == trail.VerbConnect {
		// The operation is what is approved: the object a DELETE sees keeps changing (status,
		// resource version), and CONNECT options are not an object.
		object = nil
	}
	fp, err := g.Fingerprints.Fingerprint(a.User.Username, op, object)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if resp, ok := g.admitScoped(ctx, req, a, d, op); ok {
		// Within a scope an approver granted the caller's session (scope.go).
		return resp
	}
	if extras.ViaGateway() && extras.ApprovalID != "" {
		// The proxy's retry of a held call, under the grant it waited for.
		if r, err := g.Broker.Consume(ctx, extras.ApprovalID, a.User.Username, fp, string(req.UID)); err != nil {
			return g.refusal(r, err)
		}
		return withApproval(admission.Allowed("approved by "+extras.ApprovalID), extras.ApprovalID)
	}

	r, err := g.Broker.FindByFingerprint(ctx, fp)
	switch {
	case errors.Is(err, approvals.ErrNotFound):
		r = nil
	case errors.Is(err, approvals.ErrTampered):
		// It can never admit anything: ask anew.
		g.log().Error("the approval request indexed for this operation failed its integrity check; creating a new one", "err", err)
		r = nil
	case err != nil:
		return g.unavailable(err)
	}
	if r != nil && r.State == approvals.StateApproved {
		// A retry after approval.
		if used, err := g.Broker.Consume(ctx, r.ID, a.User.Username, fp, string(req.UID)); err == nil {
			return withApproval(admission.Allowed("approved by "+r.ID), r.ID)
		} else if !errors.Is(err, approvals.ErrNoGrant) {
			return g.refusal(used, err)
		}
		r = nil // used meanwhile: ask again
	}
	if r == nil || r.Final() {
		if r, err = g.create(ctx, a, d, op, object, fp); err != nil {
			return g.unavailable(err)
		}
	}
	if !extras.ViaGateway() {
		wctx, cancel := context.WithTimeout(ctx, g.wait())
		defer cancel()
		if got, err := g.Broker.Wait(wctx, r.ID); got != nil && (err == nil || errors.Is(err, context.DeadlineExceeded)) {
			r = got
		}
		switch r.State {
		case approvals.StateApproved:
			if used, err := g.Broker.Consume(ctx, r.ID, a.User.Username, fp, string(req.UID)); err != nil {
				return g.refusal(used, err)
			}
			return withApproval(admission.Allowed("approved by "+r.ID), r.ID)
		case approvals.StateDenied:
			return admission.Denied(approvals.DenialMessage(r))
		}
	}
	return withApproval(held(r, approvals.PendingMessage(r, g.UIURL)), r.ID)
}

// create stores the approval request of an operation and indexes it by its fingerprint.
func (g *Gate) create(ctx context.Context, a policy.Attributes, d policy.Decision, op trail.Operation, object []byte, fp string) (*approvals.Request, error) {
	extras := identity.FromExtra(a.User.Extra)
	var reason string
	if extras.Reason != "" {
		masked, _ := g.Masker.Text(nil, []byte(extras.Reason))
		reason = truncate(string(masked), approvals.MaxReasonLength)
	}
	r, err := g.Broker.Create(ctx, approvals.Spec{
		Requester: trail.Identity{User: a.User.Username, UID: a.User.UID, Groups: a.User.Groups, Issuer: extras.Issuer, Subject: extras.Subject,
			Extra: clientExtra(extras)},
		OriginalUser:   extras.OriginalUser,
		Reason:         reason,
		SessionID:      extras.SessionID,
		Operation:      op,
		Object:         g.mask(object, op),
		OldObject:      g.mask(a.OldObject, op),
		Fingerprint:    fp,
		Policy:         trail.Policy{Policy: d.Policy, Rule: d.Rule, Action: string(d.Action), Message: d.Message},
		ApproverGroups: d.Approval.ApproverGroups,
		Required:       d.Approval.Approvals,
		GrantTTL:       d.Approval.GrantTTL,
		ScopeOffer:     scopeOffer(a, d, op),
		Path:           approvals.PathAdmission,
		Timeout:        g.timeout(),
	})
	if err != nil {
		return nil, err
	}
	if err := g.Broker.Index(ctx, r); err != nil {
		return nil, err
	}
	return r, g.Broker.IndexScope(ctx, r)
}

// held denies a call with the approval request it waits for named in the Status details.
func held(r *approvals.Request, msg string) admission.Response {
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Code:    http.StatusForbidden,
			Reason:  metav1.StatusReasonForbidden,
			Message: msg,
			Details: approvals.StatusDetails(r.ID),
		},
	}}
}

// refusal denies a call whose grant cannot be used, naming the rule and the approvers of its
// request when it has one.
func (g *Gate) refusal(r *approvals.Request, err error) admission.Response {
	if errors.Is(err, approvals.ErrTampered) {
		g.log().Error("refusing a grant that failed its integrity check", "err", err)
		return admission.Denied(tamperedMessage)
	}
	if errors.Is(err, approvals.ErrNoGrant) || errors.Is(err, approvals.ErrNotFound) {
		msg := err.Error() + "."
		if r != nil {
			msg += " " + r.Policy.Message
		}
		return admission.Denied(msg)
	}
	return g.unavailable(err)
}

// tamperedMessage is the denial of a call whose approval request failed its integrity check.
const tamperedMessage = "The approval request of this operation failed its integrity check (it was changed outside Gatehouse), so it admits nothing. Ask for approval again; tell a Gatehouse administrator."

// unavailable fails closed: without the broker nothing held for approval passes. The broker's
// error goes to the log only.
func (g *Gate) unavailable(err error) admission.Response {
	g.log().Error("approval broker unavailable", "err", err)
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Code:    http.StatusServiceUnavailable,
			Reason:  metav1.StatusReasonServiceUnavailable,
			Message: "Gatehouse cannot reach its approval broker (NATS), so operations that need approval are refused. Retry in a minute; if this persists, tell a Gatehouse administrator.",
		},
	}}
}

func (g *Gate) mask(object []byte, op trail.Operation) []byte {
	if len(object) == 0 {
		return nil
	}
	out, _, err := g.Masker.JSON(nil, object, masking.Target{Group: op.APIGroup, Version: op.APIVersion,
		Resource: op.Resource, Subresource: op.Subresource, Namespace: op.Namespace, Name: op.Name})
	if err != nil {
		return nil // approvers then see the operation without the object; never unmasked
	}
	return out
}

func (g *Gate) wait() time.Duration {
	if g.Wait > 0 {
		return g.Wait
	}
	return 3 * time.Second
}

func (g *Gate) timeout() time.Duration {
	if g.Timeout > 0 {
		return g.Timeout
	}
	return time.Hour
}

func (g *Gate) log() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}

// withApproval names the approval request in the call's audit event.
func withApproval(r admission.Response, approvalID string) admission.Response {
	r.AuditAnnotations = map[string]string{AuditAnnotationApprovalID: approvalID}
	return r
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// clientExtra keeps the requester's client (e.g. kubectl/v1.36.3), which approvers are shown.
func clientExtra(e identity.Extras) map[string][]string {
	if e.Client == "" {
		return nil
	}
	return map[string][]string{identity.ExtraClient: {e.Client}}
}
