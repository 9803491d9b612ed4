package trail

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// APIVersion is the schema version every record of this package carries.
const APIVersion = "trail.gatehouse.dev/v1"

// Kind names a record type.
type Kind string

// The record kinds of APIVersion.
const (
	KindRequest  Kind = "Request"
	KindSession  Kind = "Session"
	KindDecision Kind = "Decision"
	KindApproval Kind = "Approval"
	// KindRecording is a chunk of a terminal or port-forward session's recording ([Recording]).
	// Chunks travel on a subject tree and a stream of their own (see [RecordingSubject]).
	KindRecording Kind = "Recording"
)

// ErrUnknownKind is returned by Decode for a record whose kind or version this package does not
// know. Consumers should skip such records rather than fail: they come from a newer producer.
var ErrUnknownKind = errors.New("trail: unknown record kind")

// Record is implemented by every record type of this package.
type Record interface {
	// Header returns the record's header, which Publish completes (ID, time, version, kind)
	// before the record is encoded.
	Header() *Meta
	// Session returns the session ID the record belongs to, or "" when it has none.
	Session() string
}

// Meta is the header every record carries.
type Meta struct {
	// APIVersion is always APIVersion for records of this package.
	APIVersion string `json:"apiVersion"`
	// Kind names the record type.
	Kind Kind `json:"kind"`
	// ID identifies the record. It is the JetStream message ID, so publishing a record with the
	// same ID twice within the stream's duplicate window stores it once. NewID fills it when empty.
	ID string `json:"id"`
	// Time is when the recorded action happened (UTC).
	Time time.Time `json:"time"`
	// Source names the emitting component instance, e.g. "proxy/gatehouse-7d9c".
	Source string `json:"source,omitempty"`
}

// Header returns m. Types embedding Meta satisfy the Header half of Record through it.
func (m *Meta) Header() *Meta { return m }

// NewID returns a new record ID: a time-ordered UUID (version 7), which also serves as an
// Audit-ID since kube-apiserver accepts any client-supplied value there.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Identity is the verified identity an action was performed as.
type Identity struct {
	// User is the Kubernetes user name the request was impersonated as.
	User string `json:"user"`
	// UID is the user's UID, when the identity provider gives one.
	UID string `json:"uid,omitempty"`
	// Groups are the Kubernetes groups the request was impersonated with.
	Groups []string `json:"groups,omitempty"`
	// Extra holds additional user attributes forwarded as impersonation extras.
	Extra map[string][]string `json:"extra,omitempty"`
	// Issuer and Subject identify the token the identity was derived from (the iss and sub claims).
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Operation describes the Kubernetes API call an action concerns.
type Operation struct {
	// Verb is the lower-case Kubernetes verb, spelled as kube-apiserver's RequestInfo and audit
	// events spell it: get, list, watch, create, update, patch, delete, deletecollection (and
	// proxy for the proxy subresources). Records made at admission derive it from the admission
	// operation: create, update (patch when the request was a patch), delete, and connect for
	// CONNECT. Every record kind uses this one vocabulary, so records join on it.
	Verb        string `json:"verb"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	// Path is the request path without its query, for calls that are not resource requests
	// (discovery, /version, /healthz).
	Path string `json:"path,omitempty"`
}

// VerbConnect is the verb of records made at admission for a CONNECT (exec, attach,
// port-forward, the proxy subresources). The proxy's own records of such calls carry the verb
// kube-apiserver's RequestInfo gives them (create for a POST, get for a WebSocket GET).
const VerbConnect = "connect"

// connectSubresources are the subresources whose requests admission sees as CONNECT.
var connectSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true, "proxy": true}

// AdmissionOperation returns the admission operation of a call with that verb on that
// subresource: CREATE, UPDATE (update and patch), DELETE (delete and deletecollection), CONNECT
// (connect, and any verb but list and watch on exec, attach, portforward and proxy), or the verb
// upper-cased for verbs admission never sees (GET, LIST, WATCH).
func AdmissionOperation(verb, subresource string) string {
	if verb == VerbConnect || connectSubresources[subresource] && verb != "list" && verb != "watch" {
		return "CONNECT"
	}
	switch verb {
	case "create":
		return "CREATE"
	case "update", "patch":
		return "UPDATE"
	case "delete", "deletecollection":
		return "DELETE"
	}
	return strings.ToUpper(verb)
}

// Policy identifies the policy rule that decided an action and what it decided.
type Policy struct {
	// Policy is the name of the AccessPolicy, Rule the name of the rule within it.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Action is allow, deny or requireApproval.
	Action string `json:"action"`
	// Message is the human-readable reason given to the client.
	Message string `json:"message,omitempty"`
}

// Masking summarises what was masked in a response: never the values, only that and where.
type Masking struct {
	// Fields is the number of values replaced.
	Fields int `json:"fields"`
	// Detectors counts replacements per rule or detector name.
	Detectors map[string]int `json:"detectors,omitempty"`
}

// Request records one API call that passed through the front proxy, refused or forwarded.
type Request struct {
	Meta
	// AuditID is the Audit-ID of the last attempt sent to kube-apiserver, which is also returned
	// to the client: the key that joins this record with the API server's audit events. Each
	// upstream attempt has an Audit-ID of its own.
	AuditID string `json:"auditID"`
	// HeldAuditID is set when admission held the call for approval and the proxy re-sent it: the
	// Audit-ID of the first attempt, which kube-apiserver's audit log shows as denied (403, with
	// the approval ID in its gatehouse.dev annotations). That event is the hold, not a refusal:
	// the client saw only the answer to the attempt under AuditID, sent with ApprovalID after
	// approval. When the call was held and not re-sent (refused at once, denied, expired, or
	// still pending at the hold limit), HeldAuditID equals AuditID.
	HeldAuditID string `json:"heldAuditID,omitempty"`
	// SessionID groups the calls of one agent run.
	SessionID string `json:"sessionID,omitempty"`
	// Identity is the verified identity; empty when authentication failed.
	Identity Identity `json:"identity"`
	// Client names the client (from the User-Agent or the client's own declaration).
	Client string `json:"client,omitempty"`
	// SourceIP is the address the connection came from.
	SourceIP  string    `json:"sourceIP,omitempty"`
	Operation Operation `json:"operation"`
	// Code is the HTTP status returned to the client; 101 for upgraded streams.
	Code int `json:"code"`
	// DryRun is set when the call was a dry run (dryRun in its query or DeleteOptions): whatever
	// its Code, it changed nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// Latency is the time until the response headers were sent, in nanoseconds.
	Latency time.Duration `json:"latencyNs"`
	// Duration is the time until the response body was complete, in nanoseconds; for watches and
	// streams it is the lifetime of the stream.
	Duration time.Duration `json:"durationNs"`
	BytesIn  int64         `json:"bytesIn"`
	BytesOut int64         `json:"bytesOut"`
	// Masking is set when the response was masked.
	Masking *Masking `json:"masking,omitempty"`
	// Decision is set when a policy decided the call.
	Decision *Policy `json:"decision,omitempty"`
	// ApprovalID names the approval request of a held call: the one the call was re-sent
	// under when it was approved, or the one it waited for otherwise.
	ApprovalID string `json:"approvalID,omitempty"`
	// Error is the reason the proxy refused or failed the call, in words safe to store.
	Error string `json:"error,omitempty"`
	// Phase is PhaseOpen for the record the proxy writes, and JetStream stores, before it forwards
	// a long request (a watch, followed logs, exec, attach, port-forward): its ID is OpenID of the
	// request's record ID, and it has no outcome yet. The record of the finished request has the
	// request's own ID and no phase. A request with an open record and no finished one is still
	// streaming, or the proxy stopped while it was.
	Phase RequestPhase `json:"phase,omitempty"`
	// RecordingID names the recording of an exec, attach or port-forward session (its chunks'
	// RecordingID): the request's record ID.
	RecordingID string `json:"recordingID,omitempty"`
}

// RequestPhase tells the record of a long request that started from the record of its end.
type RequestPhase string

// PhaseOpen marks the record of a long request that was forwarded and has not ended.
const PhaseOpen RequestPhase = "Open"

// OpenID returns the ID of the open record of the request whose record ID is id.
func OpenID(id string) string { return id + "/open" }

// Session returns the request's session ID.
func (r *Request) Session() string { return r.SessionID }

// SessionEvent says what happened to a session.
type SessionEvent string

// Session events.
const (
	SessionStarted SessionEvent = "Started"
	SessionActive  SessionEvent = "Active"
	SessionEnded   SessionEvent = "Ended"
)

// Session records the start of a session and, periodically, that it is still active.
type Session struct {
	Meta
	SessionID string `json:"sessionID"`
	// Label is the name the client gave the session (Gatehouse-Session header), if any. The
	// session ID is derived from it and the identity, so two identities never share a session.
	Label    string       `json:"label,omitempty"`
	Event    SessionEvent `json:"event"`
	Identity Identity     `json:"identity"`
	Client   string       `json:"client,omitempty"`
	SourceIP string       `json:"sourceIP,omitempty"`
	// Started is when the session's first request arrived; LastActivity its latest.
	Started      time.Time `json:"started"`
	LastActivity time.Time `json:"lastActivity"`
	// Requests counts the session's requests up to LastActivity.
	Requests int64 `json:"requests"`
}

// Session returns the session's ID.
func (s *Session) Session() string { return s.SessionID }

// Decision records one policy evaluation, by the proxy before forwarding or by an admission
// webhook.
type Decision struct {
	Meta
	// Component is "proxy", "validating-webhook" or "mutating-webhook".
	Component string `json:"component"`
	// AuditID is the Audit-ID of the call the decision concerns, when the deciding component
	// knows it. Admission does not: an AdmissionReview carries no Audit-ID. AdmissionUID is the
	// AdmissionReview's UID, which kube-apiserver generates for each webhook call (two webhooks
	// deciding one request see two UIDs) and which appears nowhere in the audit event. A decision
	// made in admission is tied to its request's audit event by the audit annotations the
	// validating webhook returns (its decision-id names this record's ID).
	AuditID      string    `json:"auditID,omitempty"`
	AdmissionUID string    `json:"admissionUID,omitempty"`
	SessionID    string    `json:"sessionID,omitempty"`
	Identity     Identity  `json:"identity"`
	Operation    Operation `json:"operation"`
	// ViaGateway reports whether the call came through the front proxy.
	ViaGateway bool   `json:"viaGateway"`
	DryRun     bool   `json:"dryRun,omitempty"`
	Policy     Policy `json:"policy"`
	// Admitted is the outcome: whether the request was let through. A requireApproval decision
	// is admitted when a grant (ApprovalID) was used.
	Admitted   bool   `json:"admitted"`
	ApprovalID string `json:"approvalID,omitempty"`
}

// Session returns the decision's session ID.
func (d *Decision) Session() string { return d.SessionID }

// ApprovalEvent says what happened to an approval request.
type ApprovalEvent string

// Approval events, in the order they can happen.
const (
	// ApprovalRequested: an operation a policy holds for approval was requested.
	ApprovalRequested ApprovalEvent = "Requested"
	// ApprovalVoted: an approver approved, and more approvals are needed.
	ApprovalVoted ApprovalEvent = "Voted"
	// ApprovalApproved: the last needed approval arrived; a single-use grant was issued.
	ApprovalApproved ApprovalEvent = "Approved"
	// ApprovalDenied: an approver denied. One denial is final.
	ApprovalDenied ApprovalEvent = "Denied"
	// ApprovalExpired: no decision in time, or the grant was not used in time.
	ApprovalExpired ApprovalEvent = "Expired"
	// ApprovalGrantUsed: admission let the approved operation through (AdmissionUID).
	ApprovalGrantUsed ApprovalEvent = "GrantUsed"
)

// Approval records a change of an approval request: its creation, each decision, its expiry and
// the use of its grant. The approval broker publishes one per change, so these records are also
// the event stream approval UIs follow (gatehouse.trail.v1.approval.*).
type Approval struct {
	Meta
	ApprovalID string        `json:"approvalID"`
	Event      ApprovalEvent `json:"event"`
	SessionID  string        `json:"sessionID,omitempty"`
	// Requester is who asked for the operation.
	Requester Identity `json:"requester"`
	// OriginalUser is the verified user behind Requester when the requester was a client's own
	// impersonation (kubectl --as): neither may approve the request.
	OriginalUser string `json:"originalUser,omitempty"`
	// RequesterReason is why the requester says the operation is needed (Gatehouse-Reason),
	// masked.
	RequesterReason string    `json:"requesterReason,omitempty"`
	Operation       Operation `json:"operation"`
	// Fingerprint binds the grant to the operation and the object's content.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Policy is the rule that asked for approval.
	Policy Policy `json:"policy"`
	// ApproverGroups may approve; Required approvals are needed.
	ApproverGroups []string `json:"approverGroups,omitempty"`
	Required       int      `json:"required"`
	// Actor is who caused this event (an approver for Voted, Approved and Denied), and Reason
	// what they said.
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Approvers are everyone who approved so far.
	Approvers []string `json:"approvers,omitempty"`
	// Path is "proxy" when the request was held at the front proxy, "admission" when a direct
	// call was stopped by the webhook.
	Path string `json:"path,omitempty"`
	// Expires is when the pending request or, once approved, the grant expires.
	Expires time.Time `json:"expires"`
	// AdmissionUID is the AdmissionReview UID of the webhook call that used the grant
	// (GrantUsed): kube-apiserver's ID of that one webhook call, not the request's Audit-ID. The
	// validating webhook writes the approval ID into that request's audit event annotations,
	// which is how the trail finds the call.
	AdmissionUID string `json:"admissionUID,omitempty"`
	// Scope describes a scoped grant (verbs, resources, namespace, duration), on the approval
	// that granted it and on each use. A scoped grant is not used up: it has a GrantUsed event,
	// with the operation it admitted, for every use.
	Scope string `json:"scope,omitempty"`
}

// Session returns the approval's session ID.
func (a *Approval) Session() string { return a.SessionID }

var (
	_ Record = (*Request)(nil)
	_ Record = (*Session)(nil)
	_ Record = (*Decision)(nil)
	_ Record = (*Approval)(nil)
)

// Decode parses a record published by this package. It returns ErrUnknownKind for a record of
// another version or kind.
func Decode(data []byte) (Record, error) {
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("trail: decode record header: %w", valueFree(err))
	}
	if m.APIVersion != APIVersion {
		return nil, fmt.Errorf("%w: apiVersion %q", ErrUnknownKind, ShortID(m.APIVersion))
	}
	var r Record
	switch m.Kind {
	case KindRequest:
		r = &Request{}
	case KindSession:
		r = &Session{}
	case KindDecision:
		r = &Decision{}
	case KindApproval:
		r = &Approval{}
	case KindRecording:
		r = &Recording{}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, ShortID(string(m.Kind)))
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("trail: decode %s record %s: %w", m.Kind, ShortID(m.ID), valueFree(err))
	}
	return r, nil
}

// valueFree returns a decoding error that names where a record is malformed without the value
// found there: decoding errors are logged and stored (ingest_errors), and a value can be
// anything a producer put in a record. encoding/json's type errors quote numbers and
// time.ParseError the whole string.
func valueFree(err error) error {
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &typeErr):
		what, _, _ := strings.Cut(typeErr.Value, " ") // "number 123": the kind only
		return fmt.Errorf("field %s: a JSON %s, not %s", typeErr.Field, what, typeErr.Type)
	case errors.As(err, &timeErr):
		return errors.New("a time that is not RFC 3339")
	}
	return err
}

// maxShortID is the most bytes of a record ID ShortID keeps.
const maxShortID = 128

// ShortID returns a record ID (or another string a record brings, its kind or version) as errors
// and logs name it: cut to at most 128 bytes, at a character boundary, so a forged record's ID
// cannot make an error row as large as itself.
func ShortID(id string) string {
	if len(id) <= maxShortID {
		return id
	}
	n := maxShortID
	for n > 0 && !utf8.RuneStart(id[n]) {
		n--
	}
	return id[:n]
}

// kindOf returns the kind of a record of this package.
func kindOf(r Record) (Kind, error) {
	switch r.(type) {
	case *Request:
		return KindRequest, nil
	case *Session:
		return KindSession, nil
	case *Decision:
		return KindDecision, nil
	case *Approval:
		return KindApproval, nil
	case *Recording:
		return KindRecording, nil
	}
	return "", fmt.Errorf("%w: %T", ErrUnknownKind, r)
}

// Subject returns the NATS subject a record is published on.
func Subject(r Record) (string, error) {
	k, err := kindOf(r)
	if err != nil {
		return "", err
	}
	if c, ok := r.(*Recording); ok {
		return RecordingSubject(c.SessionID, c.RecordingID), nil
	}
	return subject(k, r.Session()), nil
}

func subject(k Kind, session string) string {
	return subjectTrail + "." + strings.ToLower(string(k)) + "." + sessionToken(session)
}

// sessionToken makes a session ID usable as one subject token. Session IDs are validated by the
// proxy; anything else (wildcards, separators, whitespace) is replaced so a record can never be
// published outside its subject tree.
func sessionToken(s string) string {
	if s == "" {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !isTokenByte(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':'
}

// complete fills the header fields a producer may leave empty.
func complete(r Record) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	m := r.Header()
	m.APIVersion = APIVersion
	m.Kind = k
	if m.ID == "" {
		m.ID = NewID()
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = m.Time.UTC()
	return nil
}
