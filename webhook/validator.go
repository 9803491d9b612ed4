package webhook

import (
	"context"
	"fmt"
	"maps"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Messages of decisions the validator makes itself. They say what happened and what to do,
// and never carry internal errors, which go to the log.
const (
	msgNoApprover = " The approval flow is not configured on this cluster, so this operation cannot be " +
		"approved and is denied; ask a cluster administrator to perform it or to set up Gatehouse approvals."
	msgTrailDown = "Gatehouse cannot record this operation in its audit trail right now, so it refuses " +
		"privileged operations until the trail is reachable again. Retry in a minute; if this persists, " +
		"tell a Gatehouse administrator that NATS is unavailable."
)

// Validator is the validating admission webhook: it evaluates the AccessPolicies for each
// request, answers with the decision (consulting the Approver for requireApproval) and records
// every decision in the trail.
//
// It fails closed for privileged requests (Options.Privileged) and open, with a warning, for
// the others, when the policies cannot be evaluated (no policies loaded yet, a failed lookup, a
// panic) or the decision cannot be recorded. Dry-run requests need no record.
type Validator struct {
	opts Options
}

var _ admission.Handler = (*Validator)(nil)

// NewValidator returns a Validator.
func NewValidator(opts Options) (*Validator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	return &Validator{opts: opts}, nil
}

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	ex := identity.FromExtra(req.UserInfo.Extra)
	a := attributes(req, ex)
	// A write the proxy marked held (its own evaluation holds it for approval, or cannot decide
	// it) fails closed like a privileged one: it never passes unapproved because the policies
	// cannot be evaluated or the decision recorded here.
	privileged := v.opts.Privileged(a) || (a.ViaGateway && ex.Hold != "")
	var d policy.Decision
	defer func() {
		if r := recover(); r != nil {
			v.opts.Logger.Error("panic while deciding an admission request", "uid", req.UID,
				"operation", a.Op(), "resource", a.Resource, "subresource", a.Subresource, "panic", fmt.Sprint(r))
			d, resp = v.failed(a, privileged, "an internal error occurred")
			resp = v.record(ctx, req, ex, a, privileged, d, resp)
		}
	}()

	if privileged && !a.DryRun {
		if r, ok := v.opts.Publisher.(readier); ok {
			if err := r.Ready(); err != nil {
				v.opts.Logger.Error("refusing a privileged operation: the trail cannot take its record",
					"uid", req.UID, "operation", a.Op(), "resource", a.Resource, "err", err)
				return admission.Denied(msgTrailDown)
			}
		}
	}

	d, err := v.opts.Engine.Evaluate(ctx, a)
	if err != nil {
		v.opts.Logger.Error("access policies could not be evaluated", "uid", req.UID,
			"operation", a.Op(), "resource", a.Resource, "subresource", a.Subresource, "privileged", privileged, "err", err)
		d, resp = v.failed(a, privileged, policy.ErrorReason(err))
		return v.record(ctx, req, ex, a, privileged, d, resp)
	}
	switch d.Action {
	case policy.ActionAllow:
		resp = admission.Allowed("")
	case policy.ActionRequireApproval:
		switch {
		case a.DryRun:
			// A dry run changes nothing: never held, it creates no request and uses no grant.
			resp = admission.Allowed("dry run")
			resp.Warnings = []string{d.DryRunWarning()}
		case v.opts.Approver == nil:
			resp = admission.Denied(d.Message + msgNoApprover)
		default:
			resp = v.opts.Approver.Admit(ctx, req, a, d)
		}
	default:
		resp = admission.Denied(d.Message)
	}
	return v.record(ctx, req, ex, a, privileged, d, resp)
}

// failed decides a request whose policies could not be evaluated.
func (v *Validator) failed(a policy.Attributes, privileged bool, why string) (policy.Decision, admission.Response) {
	if privileged {
		msg := fmt.Sprintf("Gatehouse could not evaluate its access policies for %s (%s), so it refuses this privileged "+
			"operation. Retry in a moment; if this persists, tell a Gatehouse administrator.", a, why)
		return policy.Decision{Action: policy.ActionDeny, Message: msg}, admission.Denied(msg)
	}
	msg := fmt.Sprintf("Gatehouse could not evaluate its access policies for %s (%s); allowed because the operation is not privileged.", a, why)
	resp := admission.Allowed("")
	resp.Warnings = []string{msg}
	return policy.Decision{Action: policy.ActionAllow, Message: msg}, resp
}

// record publishes the decision and returns the response to send: resp, or a denial when the
// record of an admitted privileged operation cannot be published.
func (v *Validator) record(ctx context.Context, req admission.Request, ex identity.Extras, a policy.Attributes, privileged bool, d policy.Decision, resp admission.Response) admission.Response {
	rec := decisionRecord(req, ex, a, d)
	rec.Admitted = resp.Allowed
	if id := resp.AuditAnnotations[AuditAnnotationApprovalID]; id != "" {
		rec.ApprovalID = id
	}
	err := v.opts.Publisher.Publish(ctx, rec)
	if err != nil {
		v.opts.Logger.Error("decision not recorded in the trail", "id", recordID(req), "action", d.Action,
			"policy", d.Policy, "rule", d.Rule, "allowed", resp.Allowed, "err", err)
		if resp.Allowed && privileged && !a.DryRun {
			resp = admission.Denied(msgTrailDown)
		}
	}
	return withDecision(resp, rec)
}

// Audit annotation keys of the validating webhook. kube-apiserver writes a webhook's audit
// annotations into the audit event of the request it decided, each key prefixed with the
// webhook's name (e.g. privileged.validate.gatehouse.dev/decision-id), whether the webhook
// allowed or denied the request, and for dry runs too. The enricher joins decisions to audit
// events on them: the AdmissionReview's UID is kube-apiserver's ID of one webhook call, not the
// request's Audit-ID, and appears nowhere in the audit event.
const (
	// AuditAnnotationDecisionID is the ID of the decision's trail record (trail.Decision.ID).
	AuditAnnotationDecisionID = "decision-id"
	// AuditAnnotationPolicy, AuditAnnotationRule and AuditAnnotationAction say what decided.
	AuditAnnotationPolicy = "policy"
	AuditAnnotationRule   = "rule"
	AuditAnnotationAction = "action"
	// AuditAnnotationApprovalID names the approval request the call was held for, or the grant
	// it was admitted under.
	AuditAnnotationApprovalID = "approval-id"
)

// withDecision names the decision, and what decided, in the request's audit event, beside the
// approval the gate named. The record ID is stamped even when the record could not be published:
// the event then names a decision the trail lacks, which an auditor can see.
func withDecision(resp admission.Response, rec *trail.Decision) admission.Response {
	ann := make(map[string]string, len(resp.AuditAnnotations)+4)
	maps.Copy(ann, resp.AuditAnnotations)
	ann[AuditAnnotationDecisionID] = rec.ID
	ann[AuditAnnotationAction] = rec.Policy.Action
	if rec.Policy.Policy != "" {
		ann[AuditAnnotationPolicy] = rec.Policy.Policy
	}
	if rec.Policy.Rule != "" {
		ann[AuditAnnotationRule] = rec.Policy.Rule
	}
	// The approval ID is the one the gate put there: a grant it checked, or the request it
	// holds the call for. An approval extra of the request itself is not echoed: only the
	// gateway's own extras are trustworthy, and admission cannot tell who set them.
	resp.AuditAnnotations = ann
	return resp
}

// recordID is the trail record ID of a validation: deterministic, so that a review kube-apiserver
// sends again is one decision. Each attempt is stored (a row of the enricher's gateway_decisions);
// the enricher's views show the decision once per ID and session.
func recordID(req admission.Request) string {
	return "admission-" + string(req.UID) + "-validating"
}

// decisionRecord is the trail record of a decision on req, whose Gatehouse extras are ex.
func decisionRecord(req admission.Request, ex identity.Extras, a policy.Attributes, d policy.Decision) *trail.Decision {
	var extra map[string][]string
	if len(req.UserInfo.Extra) > 0 {
		extra = make(map[string][]string, len(req.UserInfo.Extra))
		for k, vs := range req.UserInfo.Extra {
			extra[k] = vs
		}
	}
	return &trail.Decision{
		Meta:         trail.Meta{ID: recordID(req), Time: time.Now()},
		Component:    ComponentValidating,
		AdmissionUID: string(req.UID),
		SessionID:    ex.SessionID,
		Identity: trail.Identity{
			User:    req.UserInfo.Username,
			UID:     req.UserInfo.UID,
			Groups:  req.UserInfo.Groups,
			Extra:   extra,
			Issuer:  ex.Issuer,
			Subject: ex.Subject,
		},
		Operation:  a.TrailOperation(),
		ViaGateway: a.ViaGateway,
		DryRun:     a.DryRun,
		Policy:     trail.Policy{Policy: d.Policy, Rule: d.Rule, Action: string(d.Action), Message: d.Message},
		ApprovalID: ex.ApprovalID,
	}
}
