package enricher

import (
	"encoding/json"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the enricher stores. Fields it does not
// know are ignored, so newer API servers work unchanged.
type auditEvent struct {
	Level                    string            `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    string            `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     userInfo          `json:"user"`
	ImpersonatedUser         *userInfo         `json:"impersonatedUser,omitempty"`
	SourceIPs                []string          `json:"sourceIPs,omitempty"`
	UserAgent                string            `json:"userAgent,omitempty"`
	ObjectRef                *objectRef        `json:"objectRef,omitempty"`
	ResponseStatus           *responseStatus   `json:"responseStatus,omitempty"`
	RequestObject            json.RawMessage   `json:"requestObject,omitempty"`
	ResponseObject           json.RawMessage   `json:"responseObject,omitempty"`
	RequestReceivedTimestamp time.Time         `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time         `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations,omitempty"`
}

type userInfo struct {
	Username string              `json:"username,omitempty"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

type objectRef struct {
	Resource        string `json:"resource,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             string `json:"uid,omitempty"`
	APIGroup        string `json:"apiGroup,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Subresource     string `json:"subresource,omitempty"`
}

type responseStatus struct {
	Code    int32  `json:"code,omitempty"`
	Status  string `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// eventKey fingerprints the request an event belongs to. Together with the auditID and stage
// it identifies an event: a retry of the same event has the same key, while two requests that
// share an auditID (a client may send any Audit-ID, even a reused one) differ in their receive
// time, URI, user or source and are kept apart, so that reusing an Audit-ID cannot hide a
// request behind another.
func eventKey(ev *auditEvent) uint64 {
	// FNV-1a, 64 bits (hash/fnv's New64a), over the two timestamps (little-endian nanoseconds)
	// and the strings, each followed by a zero byte; written out so that nothing is copied.
	h := uint64(fnvOffset64)
	for _, t := range []time.Time{ev.RequestReceivedTimestamp, ev.StageTimestamp} {
		n := uint64(t.UnixNano())
		for range 8 {
			h = (h ^ n&0xff) * fnvPrime64
			n >>= 8
		}
	}
	write := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * fnvPrime64
		}
		h *= fnvPrime64 // the zero byte: h ^ 0 == h
	}
	write(ev.Verb)
	write(ev.RequestURI)
	write(ev.User.Username)
	if ev.ImpersonatedUser != nil {
		write(ev.ImpersonatedUser.Username)
	}
	for _, ip := range ev.SourceIPs {
		write(ip)
	}
	write(ev.UserAgent)
	return h
}

// The parameters of 64-bit FNV-1a.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// eventStats is what the intake masked in one event. It travels beside the event in the
// message, since the event itself must not change beyond masking.
type eventStats struct {
	// Fields is the number of values masked; Detectors counts them by detector or rule.
	Fields    int            `json:"fields,omitempty"`
	Detectors map[string]int `json:"detectors,omitempty"`
	// Truncated is set when the request and response objects were dropped, because the event
	// was too large for one message or could not be masked whole.
	Truncated bool `json:"truncated,omitempty"`
}

// gatewayExtras returns the gateway's attributes of an event: the impersonation extras, when
// the event was impersonated by a trusted gateway user (any user when trusted is empty).
func gatewayExtras(ev *auditEvent, trusted map[string]bool) identity.Extras {
	if ev.ImpersonatedUser == nil || ev.ImpersonatedUser.Username == "" {
		return identity.Extras{}
	}
	if len(trusted) > 0 && !trusted[ev.User.Username] {
		return identity.Extras{}
	}
	return identity.FromExtra(ev.ImpersonatedUser.Extra)
}
