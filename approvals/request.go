package approvals

import (
	"encoding/json"
	"slices"
	"time"

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

// Paths by which a request reaches the broker.
const (
	// PathProxy: the front proxy holds the client's call until a decision.
	PathProxy = "proxy"
	// PathAdmission: the admission webhook denied a direct call and the client retries after
	// approval.
	PathAdmission = "admission"
)

// Request is an approval request, as stored and as served by the approvals API.
type Request struct {
	ID        string          `json:"id"`
	Requester trail.Identity  `json:"requester"`
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
	Path     string        `json:"path"`
	Created  time.Time     `json:"created"`
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
}

// Grant is the permission an approval issues: the fingerprinted operation may run once before
// Expires.
type Grant struct {
	Expires time.Time `json:"expires"`
	// UsedAt and AdmissionUID are set when admission let the operation through.
	UsedAt       *time.Time `json:"usedAt,omitempty"`
	AdmissionUID string     `json:"admissionUID,omitempty"`
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

// mayDecide reports why approver cannot decide r, or "" when they can.
func (r *Request) mayDecide(approver trail.Identity) string {
	if approver.User == r.Requester.User {
		return "approvers cannot decide their own requests"
	}
	if !slices.ContainsFunc(approver.Groups, func(g string) bool { return slices.Contains(r.ApproverGroups, g) }) {
		return "only members of " + joinQuoted(r.ApproverGroups) + " may decide this request"
	}
	for _, d := range r.Decisions {
		if d.Approver == approver.User {
			return "already decided by " + approver.User
		}
	}
	return ""
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
