package masking

import (
	"bytes"
	"strconv"
)

// kindID names the object types the engine treats specially.
type kindID uint8

const (
	kUnknown         kindID = iota // nothing known: the union of all rules applies
	kOther                         // a type without built-in rules
	kSecret                        // core/v1 Secret
	kConfigMap                     // core/v1 ConfigMap
	kList                          // any list: items are objects
	kTable                         // meta.k8s.io Table: rows[].object are objects
	kTokenRequest                  // authentication.k8s.io TokenRequest: status.token
	kTokenReview                   // authentication.k8s.io TokenReview: spec.token
	kAuditEvent                    // audit.k8s.io Event: requestObject, responseObject
	kAdmissionReview               // admission.k8s.io AdmissionReview: request.object, request.oldObject
	kWatchEvent                    // a watch event: object
	kKubeconfig                    // a client configuration (kind Config, core v1): users
)

// objType is what the engine knows about the type of an object.
type objType struct {
	id    kindID
	group []byte // API group; nil when unknown ("" is the core group)
	kind  []byte // kind; nil when unknown
	// confirmed is set when the object itself named its kind; otherwise the type is a hint
	// (from the request, the enclosing list or audit event) and the object is also searched
	// for the fields of containers (items, object, rows …), since it may be one.
	confirmed bool
	// secret applies the Secret rules even when the kind is not Secret: the request or the
	// enclosing object said the object is a Secret.
	secret bool
	rules  *typeRules // the operator's field rules for the type, nil if none
}

var (
	coreGroup     = []byte{}
	kindSecret    = []byte("Secret")
	kindConfigMap = []byte("ConfigMap")
	groupAuthn    = []byte("authentication.k8s.io")
	kindTokenReq  = []byte("TokenRequest")
	kindTokenRev  = []byte("TokenReview")
)

// groupOf returns the group of an apiVersion: "apps" for "apps/v1", "" for "v1".
func groupOf(apiVersion []byte) []byte {
	if i := bytes.LastIndexByte(apiVersion, '/'); i >= 0 {
		return apiVersion[:i]
	}
	return coreGroup
}

// resolve returns the type of kind in group; a nil group means the object named no apiVersion,
// in which case built-in kinds are taken to be core ones, field rules of any group apply, and
// the type is not confirmed.
func (m *Masker) resolve(group, kind []byte) objType {
	// Without an apiVersion the kind is ambiguous (Event is core/v1 and audit.k8s.io/v1), so
	// the object stays open to the fields of every container.
	t := objType{id: kOther, group: group, kind: kind, confirmed: group != nil}
	g := group
	if g == nil {
		g = coreGroup
	}
	switch string(g) {
	case "":
		switch string(kind) {
		case "Secret":
			t.id, t.secret = kSecret, true
		case "ConfigMap":
			t.id = kConfigMap
		case "Config":
			t.id = kKubeconfig
		}
	case "meta.k8s.io":
		switch string(kind) {
		case "Table":
			t.id = kTable
		case "WatchEvent":
			t.id = kWatchEvent
		}
	case "authentication.k8s.io":
		switch string(kind) {
		case "TokenRequest":
			t.id = kTokenRequest
		case "TokenReview":
			t.id = kTokenReview
		}
	case "audit.k8s.io":
		if string(kind) == "Event" {
			t.id = kAuditEvent
		}
	case "admission.k8s.io":
		if string(kind) == "AdmissionReview" {
			t.id = kAdmissionReview
		}
	}
	if t.id == kOther && bytes.HasSuffix(kind, []byte("List")) {
		t.id = kList
	}
	if group == nil {
		t.rules = m.rulesAnyGroup[string(kind)]
	} else if byGroup := m.rulesByKind[string(kind)]; byGroup != nil {
		t.rules = byGroup[string(group)]
	}
	return t
}

// resourceType returns the type of the objects of a resource: the hint a request URL or an
// audit event's objectRef gives.
func (m *Masker) resourceType(group, resource, subresource []byte) objType {
	if len(resource) == 0 {
		return m.unknownType()
	}
	t := objType{id: kOther, group: group}
	switch {
	case len(group) == 0 && string(resource) == "secrets":
		t.id, t.kind, t.secret = kSecret, kindSecret, true
	case len(group) == 0 && string(resource) == "configmaps":
		t.id, t.kind = kConfigMap, kindConfigMap
	case len(group) == 0 && string(resource) == "serviceaccounts" && string(subresource) == "token":
		t.id, t.group, t.kind = kTokenRequest, groupAuthn, kindTokenReq
	case string(group) == "authentication.k8s.io" && string(resource) == "tokenreviews":
		t.id, t.kind = kTokenReview, kindTokenRev
	}
	if len(subresource) == 0 || t.id != kOther {
		if byRes := m.rulesByResource[string(group)]; byRes != nil {
			if r := byRes[string(resource)]; r != nil {
				t.rules, t.kind = r, r.kind
			}
		}
	}
	return t
}

// itemType returns the hint for the items of a list of type t.
func (w *walker) itemType(t objType) objType {
	if !t.confirmed || t.id != kList {
		return w.target
	}
	kind := t.kind[:len(t.kind)-len("List")]
	if len(kind) == 0 { // v1 List: items name their kinds
		return w.target
	}
	it := w.m.resolve(t.group, kind)
	it.confirmed = false
	it.secret = it.secret || t.secret
	return it
}

// unknownType is the type of an object nothing is known about.
func (m *Masker) unknownType() objType {
	return objType{id: kUnknown, rules: m.rulesUnion}
}

// typeRules are the operator's field rules for one type.
type typeRules struct {
	kind  []byte     // the kind the rules are for
	paths [][]string // field paths split at dots; "*" matches any key or index
	ids   []int      // rule ID per path
	all   uint64     // bit i set for paths[i]
	seq   uint32     // numbers the rules of a Masker from 1, for the item cache's scopes
}

// step advances the set of paths still matching (bit i for paths[i], depth segments matched so
// far) by one key or array index. It returns the new set and the ID of a rule whose path ends
// here, or -1.
func (r *typeRules) step(set uint64, depth int, seg []byte) (uint64, int) {
	hit := -1
	var out uint64
	for i, p := range r.paths {
		if set&(1<<i) == 0 || depth >= len(p) {
			continue
		}
		if p[depth] != "*" && p[depth] != string(seg) {
			continue
		}
		if depth+1 == len(p) {
			hit = r.ids[i]
			continue
		}
		out |= 1 << i
	}
	return out, hit
}

// indexSeg formats an array index as a path segment.
func indexSeg(buf *[20]byte, i int) []byte {
	return strconv.AppendInt(buf[:0], int64(i), 10)
}
