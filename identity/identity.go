// Package identity names the impersonation extras through which the front proxy tells
// kube-apiserver, the admission webhooks and the audit log who really acted: the session, the
// token's issuer and subject, the client, the verified user behind a client's own impersonation,
// the client's reason and, for an approved operation, the approval grant; and the annotations the
// mutating webhook stamps on objects.
//
// # Trust
//
// Extras are set with Impersonate-Extra-* headers. kube-apiserver accepts them only from a
// client allowed to impersonate exactly those userextras (manifests/rbac), which is the proxy's
// service account alone; the proxy refuses every Impersonate-* header its own clients send. A
// request that carries ExtraSessionID therefore came through the gateway.
//
// Keys are lower case: kube-apiserver lowercases extra keys (they travel percent-encoded in
// header names, which are case-insensitive).
package identity

// Impersonation extra keys set by the proxy.
const (
	// ExtraSessionID groups the requests of one client run.
	ExtraSessionID = "gatehouse.dev/session-id"
	// ExtraIssuer and ExtraSubject are the verified token's iss and sub claims.
	ExtraIssuer  = "gatehouse.dev/issuer"
	ExtraSubject = "gatehouse.dev/subject"
	// ExtraClient names the client software, from its User-Agent.
	ExtraClient = "gatehouse.dev/client"
	// ExtraApprovalID names the approval grant an operation is forwarded under: the proxy sets it
	// when it re-sends a call that admission held, once the request was approved.
	ExtraApprovalID = "gatehouse.dev/approval-id"
	// ExtraReason is the reason the client gave for its request (Gatehouse-Reason), masked by the
	// proxy; admission stores it on the approval request it creates.
	ExtraReason = "gatehouse.dev/reason"
	// ExtraOriginalUser is the verified user when a client's own impersonation (kubectl --as)
	// was allowed: the request then runs as the target and keeps the original here.
	ExtraOriginalUser = "gatehouse.dev/original-user"
	// ExtraHold says that the proxy's own evaluation holds a write for approval (its value names
	// the rule, "policy/rule") or cannot decide it without the final object ("undecided"). A
	// fail-closed webhook selects such writes, and admission treats them as privileged: they
	// never pass unapproved because the webhook is down or cannot evaluate its policies.
	ExtraHold = "gatehouse.dev/hold"
)

// Annotation keys the mutating webhook stamps on objects created or changed through the gateway.
// Every annotation key with the AnnotationPrefix is Gatehouse's: the mutating webhook removes or
// restores any other value a client writes.
const (
	AnnotationPrefix     = "gatehouse.dev/"
	AnnotationSessionID  = "gatehouse.dev/session-id"
	AnnotationApprovalID = "gatehouse.dev/approval-id"
)

// Extras are the gateway's attributes of a request, read back from impersonation extras.
type Extras struct {
	SessionID, Issuer, Subject, Client, ApprovalID, Reason, OriginalUser, Hold string
}

// ViaGateway reports whether the request came through the front proxy.
func (e Extras) ViaGateway() bool { return e.SessionID != "" }

// FromExtra reads the gateway's attributes from a user's extras (as in an AdmissionReview's
// userInfo or an audit event's impersonatedUser).
func FromExtra[V ~[]string](extra map[string]V) Extras {
	first := func(k string) string {
		if v := extra[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return Extras{
		SessionID:    first(ExtraSessionID),
		Issuer:       first(ExtraIssuer),
		Subject:      first(ExtraSubject),
		Client:       first(ExtraClient),
		ApprovalID:   first(ExtraApprovalID),
		Reason:       first(ExtraReason),
		OriginalUser: first(ExtraOriginalUser),
		Hold:         first(ExtraHold),
	}
}
