package approvals

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Masker masks objects shown to approvers. *masking.Masker implements it.
type Masker interface {
	JSON(dst, src []byte, t masking.Target) ([]byte, masking.Stats, error)
}

// Gate decides operations that a rule holds for approval, at admission. It is the webhook's
// Approver: the backstop that holds for every path into the cluster.
//
//   - A dry run the proxy sends as a probe (extra gatehouse.dev/approval-probe) stores the
//     fingerprint of the object as admission sees it and is allowed: the proxy then creates the
//     approval request and holds its client.
//   - A call from the proxy with a grant (extra gatehouse.dev/approval-id) is allowed when the
//     grant is usable for exactly this operation, and uses it up.
//   - Any other call (the direct path) is allowed only by an approved, unused grant for the same
//     fingerprint; otherwise an approval request is created (or the pending one found again),
//     the call waits up to Wait for a decision and is denied with the request's ID and how to
//     approve it. After approval, the same call retried within the grant TTL is admitted once.
type Gate struct {
	Broker *Broker
	Masker Masker
	// Fingerprints computes the fingerprints of operations. Required: the same key as the
	// proxy's.
	Fingerprints *Fingerprinter
	// Wait is how long a direct call waits for a decision before it is denied, well under the
	// webhook's timeout. Default 3s.
	Wait time.Duration
	// Timeout is how long a direct-path request stays pending for approvers. Default 1 hour.
	Timeout time.Duration
	// UIURL, when set, is the approvers' web UI; denials link to <UIURL>/approvals/<id>.
	UIURL string
}

// Admit implements the webhook's Approver.
func (g *Gate) Admit(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision) admission.Response {
	if d.Approval == nil {
		return admission.Denied(d.Message)
	}
	extras := identity.FromExtra(a.User.Extra)
	op := trail.Operation{Verb: a.Op(), APIGroup: a.Group, APIVersion: a.Version, Resource: a.Resource,
		Subresource: a.Subresource, Namespace: a.Namespace, Name: a.Name}
	object := a.Object
	if op.Verb == "DELETE" || op.Verb == "CONNECT" {
		// The operation is what is approved: the object a DELETE sees keeps changing (status,
		// resource version), and CONNECT options are not an object.
		object = nil
	}
	fp, err := g.Fingerprints.Fingerprint(a.User.Username, op, object)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}

	switch {
	case a.DryRun && extras.ViaGateway() && extras.ApprovalProbe != "":
		if err := g.Broker.PutProbe(ctx, extras.ApprovalProbe, Probe{Fingerprint: fp, Object: g.mask(object, op)}); err != nil {
			return unavailable(err)
		}
		return admission.Allowed("fingerprint recorded for approval probe " + extras.ApprovalProbe)
	case a.DryRun:
		return admission.Denied(d.Message + " A dry run does not create an approval request; send the request itself.")
	case extras.ViaGateway() && extras.ApprovalID != "":
		if _, err := g.Broker.Consume(ctx, extras.ApprovalID, a.User.Username, fp, string(req.UID)); err != nil {
			return g.refusal(err)
		}
		return withAudit(admission.Allowed("approved by "+extras.ApprovalID), extras.ApprovalID)
	}

	// The direct path.
	r, err := g.Broker.FindByFingerprint(ctx, fp)
	switch {
	case errors.Is(err, ErrNotFound):
		r = nil
	case err != nil:
		return unavailable(err)
	}
	if r != nil && r.State == StateApproved {
		if _, err := g.Broker.Consume(ctx, r.ID, a.User.Username, fp, string(req.UID)); err == nil {
			return withAudit(admission.Allowed("approved by "+r.ID), r.ID)
		} else if !errors.Is(err, ErrNoGrant) {
			return g.refusal(err)
		}
		r = nil // used meanwhile: ask again
	}
	if r == nil || r.Final() {
		r, err = g.Broker.Create(ctx, Spec{
			Requester:      trail.Identity{User: a.User.Username, UID: a.User.UID, Groups: a.User.Groups, Extra: clientExtra(extras)},
			SessionID:      extras.SessionID,
			Operation:      op,
			Object:         g.mask(object, op),
			OldObject:      g.mask(a.OldObject, op),
			Fingerprint:    fp,
			Policy:         trail.Policy{Policy: d.Policy, Rule: d.Rule, Action: string(d.Action), Message: d.Message},
			ApproverGroups: d.Approval.ApproverGroups,
			Required:       d.Approval.Approvals,
			GrantTTL:       d.Approval.GrantTTL,
			Path:           PathAdmission,
			Timeout:        g.timeout(),
		})
		if err != nil {
			return unavailable(err)
		}
		if err := g.Broker.Index(ctx, r); err != nil {
			return unavailable(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait())
	defer cancel()
	if got, err := g.Broker.Wait(wctx, r.ID); err == nil || errors.Is(err, context.DeadlineExceeded) {
		r = got
	}
	switch r.State {
	case StateApproved:
		if _, err := g.Broker.Consume(ctx, r.ID, a.User.Username, fp, string(req.UID)); err != nil {
			return g.refusal(err)
		}
		return withAudit(admission.Allowed("approved by "+r.ID), r.ID)
	case StateDenied:
		return admission.Denied(DenialMessage(r))
	}
	return admission.Denied(g.pendingMessage(r, d))
}

// pendingMessage tells a human or an agent what to do next.
func (g *Gate) pendingMessage(r *Request, d policy.Decision) string {
	how := fmt.Sprintf("an approver runs `gatehouse approvals approve %s`", r.ID)
	if g.UIURL != "" {
		how += " or approves it at " + strings.TrimSuffix(g.UIURL, "/") + "/approvals/" + r.ID
	}
	return fmt.Sprintf("%s This needs %d approval(s) from %s: approval request %s is waiting (until %s). "+
		"Once %s, send the same request again within %s; it is admitted once.",
		d.Message, r.Required, strings.Join(r.ApproverGroups, ", "), r.ID, r.Expires.Format(time.RFC3339), how, r.GrantTTL)
}

// DenialMessage says who denied a request and why.
func DenialMessage(r *Request) string {
	if d := r.DeniedBy(); d != nil {
		msg := fmt.Sprintf("approval request %s was denied by %s", r.ID, d.Approver)
		if d.Reason != "" {
			msg += ": " + d.Reason
		}
		return msg
	}
	return fmt.Sprintf("approval request %s is %s", r.ID, r.State)
}

func (g *Gate) refusal(err error) admission.Response {
	if errors.Is(err, ErrNoGrant) || errors.Is(err, ErrNotFound) {
		return admission.Denied(err.Error())
	}
	return unavailable(err)
}

func (g *Gate) mask(object []byte, op trail.Operation) []byte {
	if len(object) == 0 || g.Masker == nil {
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

// unavailable fails closed: without the broker nothing held for approval passes.
func unavailable(err error) admission.Response {
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Code:    http.StatusServiceUnavailable,
			Reason:  metav1.StatusReasonServiceUnavailable,
			Message: "Gatehouse cannot reach its approval broker (NATS), so operations that need approval are refused: " + err.Error(),
		},
	}}
}

// withAudit adds the approval ID to the call's audit event.
func withAudit(r admission.Response, approvalID string) admission.Response {
	r.AuditAnnotations = map[string]string{"approval-id": approvalID}
	return r
}

// clientExtra keeps the requester's client (e.g. kubectl/v1.36.3), which approvers are shown.
func clientExtra(e identity.Extras) map[string][]string {
	if e.Client == "" {
		return nil
	}
	return map[string][]string{identity.ExtraClient: {e.Client}}
}
