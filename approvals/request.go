package approvals

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// State is where an approval request stands.
type State string

// States. Pending is the only one that changes by decision; Approved turns Used or Expired.
const (
	StatePending  State = "Pending"
	StateApproved State = "Approved"
	StateDenied   State = "Denied"
	StateExpired  State = "Expired"
	StateUsed     State = "Used"
)

// Verdict is an approver's decision.
type Verdict string

// Verdicts.
const (
	Approve Verdict = "Approve"
	Deny    Verdict = "Deny"
)

// PathAdmission is the path of every request: admission is the one place that creates approval
// requests, for calls through the proxy (which may hold its client and re-send) and direct calls
// alike. Older requests may say "proxy".
const PathAdmission = "admission"

// MaxReasonLength bounds a requester's or an approver's reason, in bytes.
const MaxReasonLength = 1024

// How a denial at admission names the approval request it is waiting for, in the Details of
// its metav1.Status: group StatusGroup, kind StatusKind, name the request's ID. The proxy
// recognises a held call by it, and so can any client.
const (
	StatusGroup = "gatehouse.dev"
	StatusKind  = "approvalrequests"
)

// StatusDetails returns the Status details that name approval request id.
func StatusDetails(id string) *metav1.StatusDetails {
	return &metav1.StatusDetails{Group: StatusGroup, Kind: StatusKind, Name: id}
}

// IDFromStatus returns the approval request a Status names in its details, if it names one.
func IDFromStatus(st *metav1.Status) (string, bool) {
	if st == nil || st.Details == nil || st.Details.Group != StatusGroup || st.Details.Kind != StatusKind || !ValidID(st.Details.Name) {
		return "", false
	}
	return st.Details.Name, true
}

// Request is an approval request, as stored and as served by the approvals API.
type Request struct {
	ID        string         `json:"id"`
	Requester trail.Identity `json:"requester"`
	// OriginalUser is the verified user when Requester is a client's own impersonation
	// (kubectl --as): neither the requester nor the original user may approve.
	OriginalUser string `json:"originalUser,omitempty"`
	// Reason is why the requester says the operation is needed (Gatehouse-Reason), masked.
	Reason    string          `json:"reason,omitempty"`
	SessionID string          `json:"sessionID,omitempty"`
	Operation trail.Operation `json:"operation"`
	// Object is the object as admission sees it, masked: what approvers review.
	Object json.RawMessage `json:"object,omitempty"`
	// OldObject is, for updates and patches, the live object admission compared against,
	// masked: approvers review the change as a diff.
	OldObject   json.RawMessage `json:"oldObject,omitempty"`
	Fingerprint string          `json:"fingerprint"`
	Policy      trail.Policy    `json:"policy"`
	// ApproverGroups may decide; Required approvals are needed.
	ApproverGroups []string `json:"approverGroups"`
	Required       int      `json:"required"`
	// GrantTTL is how long the grant is valid once approved.
	GrantTTL time.Duration `json:"grantTTL"`
	// ScopeOffer is what approvers may grant instead of the one operation, when the rule offers
	// a scope (scope.go).
	ScopeOffer *ScopeOffer `json:"scopeOffer,omitempty"`
	Path       string      `json:"path"`
	Created    time.Time   `json:"created"`
	// Expires is the deadline of the pending request.
	Expires   time.Time  `json:"expires"`
	State     State      `json:"state"`
	Decisions []Decision `json:"decisions,omitempty"`
	// Grant is set once the request is approved.
	Grant *Grant `json:"grant,omitempty"`
}

// Decision is one approver's vote.
type Decision struct {
	Approver string    `json:"approver"`
	Verdict  Verdict   `json:"verdict"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
	// Scope is what the approver granted instead of the one operation, if they chose a scope.
	Scope *ScopeChoice `json:"scope,omitempty"`
}

// Grant is the permission an approval issues: the fingerprinted operation may run once before
// Expires.
type Grant struct {
	Expires time.Time `json:"expires"`
	// UsedAt and AdmissionUID are set when admission let the operation through.
	UsedAt       *time.Time `json:"usedAt,omitempty"`
	AdmissionUID string     `json:"admissionUID,omitempty"`
	// Scope, when set, makes the grant a scoped one: it admits what the scope allows until
	// Expires, and is not used up.
	Scope *Scope `json:"scope,omitempty"`
}

// Approvers returns who approved so far.
func (r *Request) Approvers() []string {
	var out []string
	for _, d := range r.Decisions {
		if d.Verdict == Approve {
			out = append(out, d.Approver)
		}
	}
	return out
}

// DeniedBy returns the denying decision, if any.
func (r *Request) DeniedBy() *Decision {
	for i := range r.Decisions {
		if r.Decisions[i].Verdict == Deny {
			return &r.Decisions[i]
		}
	}
	return nil
}

// Final reports whether the request can no longer change by decision.
func (r *Request) Final() bool { return r.State != StatePending }

// finalDecisionBy returns the decision that made r final when approver made it with verdict v,
// and r is still approved (or its grant used) or denied by it; nil otherwise.
func (r *Request) finalDecisionBy(approver string, v Verdict) *Decision {
	if len(r.Decisions) == 0 {
		return nil
	}
	d := &r.Decisions[len(r.Decisions)-1]
	if d.Approver != approver || d.Verdict != v {
		return nil
	}
	switch {
	case v == Deny && r.State == StateDenied, v == Approve && (r.State == StateApproved || r.State == StateUsed):
		return d
	}
	return nil
}

// expire moves a request past its deadline to Expired and reports whether it did.
func (r *Request) expire(now time.Time) bool {
	switch {
	case r.State == StatePending && !now.Before(r.Expires):
		r.State = StateExpired
		return true
	case r.State == StateApproved && r.Grant != nil && !now.Before(r.Grant.Expires):
		r.State = StateExpired
		return true
	}
	return false
}

// MayDecide reports why approver cannot decide r, or "" when they can. Neither the requester nor
// the verified user behind either side's client impersonation may decide: Alice cannot approve
// what she sent as bob, nor approve as carol what she sent herself.
func (r *Request) MayDecide(approver trail.Identity) string {
	for _, who := range people(approver) {
		if who == r.Requester.User || who == r.OriginalUser {
			return "approvers cannot decide their own requests"
		}
	}
	if !r.approver(approver) {
		return "only members of " + joinQuoted(r.ApproverGroups) + " may decide this request"
	}
	for _, d := range r.Decisions {
		if d.Approver == approver.User {
			return "already decided by " + approver.User
		}
	}
	return ""
}

// VisibleTo reports whether who may see r: its requester (or the verified user behind the
// requester's impersonation) and the members of its approver groups.
func (r *Request) VisibleTo(who trail.Identity) bool {
	for _, p := range people(who) {
		if p == r.Requester.User || p == r.OriginalUser {
			return true
		}
	}
	return r.approver(who)
}

func (r *Request) approver(who trail.Identity) bool {
	return slices.ContainsFunc(who.Groups, func(g string) bool { return slices.Contains(r.ApproverGroups, g) })
}

// people returns the user names behind an identity: itself and, when it is a client's own
// impersonation, the verified original user.
func people(id trail.Identity) []string {
	out := []string{id.User}
	if o := id.Extra[identity.ExtraOriginalUser]; len(o) > 0 && o[0] != "" {
		out = append(out, o[0])
	}
	return out
}

func joinQuoted(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += "\"" + v + "\""
	}
	return out
}

// PendingMessage tells a person or an agent whose call waits for approval request r what to do
// next: the rule's message (which names the policy, the rule and the approvers), the request's
// ID and deadline, the requester's reason, the command that approves it and how to retry. uiURL,
// when set, is the approvers' web UI.
func PendingMessage(r *Request, uiURL string) string {
	var b strings.Builder
	b.WriteString(r.Policy.Message)
	fmt.Fprintf(&b, " Approval request %s is waiting for %d approval(s) from %s until %s",
		r.ID, r.Required, strings.Join(r.ApproverGroups, ", "), r.Expires.Format(time.RFC3339))
	if r.Reason != "" {
		fmt.Fprintf(&b, "; reason given: %q", r.Reason)
	}
	fmt.Fprintf(&b, ". To approve: an approver runs `gatehouse approvals approve %s`", r.ID)
	if uiURL != "" {
		fmt.Fprintf(&b, " or approves it at %s/approvals/%s", strings.TrimSuffix(uiURL, "/"), r.ID)
	}
	fmt.Fprintf(&b, ". To retry: once it is approved, send the same request again within %s; it is admitted once.", r.GrantTTL)
	return b.String()
}

// DenialMessage says why approval request r does not let its operation run: who denied it and
// why, or that it expired or its grant was used; and, in every case, the rule that asked for
// approval (its policy, rule, message and approvers) and the requester's reason.
func DenialMessage(r *Request) string {
	var b strings.Builder
	if d := r.DeniedBy(); d != nil {
		fmt.Fprintf(&b, "Approval request %s was denied by %s", r.ID, d.Approver)
		if d.Reason != "" {
			fmt.Fprintf(&b, ": %s", d.Reason)
		}
	} else {
		fmt.Fprintf(&b, "Approval request %s is %s", r.ID, r.State)
		switch r.State {
		case StateExpired:
			b.WriteString(": nobody decided it in time, or its grant was not used in time")
		case StateUsed:
			b.WriteString(": its grant was used")
		}
	}
	b.WriteString(". ")
	b.WriteString(r.Policy.Message)
	if r.Reason != "" {
		fmt.Fprintf(&b, " The requester's reason: %q.", r.Reason)
	}
	return b.String()
}
