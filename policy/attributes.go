package policy

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Attributes describe one request to evaluate, from admission or from the proxy.
type Attributes struct {
	// Operation is the admission operation: CREATE, UPDATE, DELETE, CONNECT; "" for reads (get,
	// list, watch) seen by the proxy.
	Operation string
	// Verb is the Kubernetes verb (get, list, watch, create, update, patch, delete,
	// deletecollection). The proxy always sets it; the webhook derives it when it can.
	Verb string
	// Group, Version, Resource and Subresource name the resource; Namespace and Name the object.
	Group, Version, Resource, Subresource, Namespace, Name string
	// User is the (impersonated) user: name, uid, groups, extra.
	User authenticationv1.UserInfo
	// ViaGateway reports that the request came through the proxy
	// (identity.FromExtra(User.Extra).ViaGateway()).
	ViaGateway bool
	// Object and OldObject are the raw JSON objects, nil when absent (reads, DELETE without
	// body, CONNECT).
	Object, OldObject []byte
	// ObjectUnknown and OldObjectUnknown report that the request has such an object but the
	// caller cannot know it: the proxy has no object for a patch, an apply or a body it cannot
	// decode (CBOR), and never has the stored object. A rule that judges an unknown value (its
	// condition reads it, or it matches names of a create whose name is in the unknown object)
	// is not decided: Evaluate stops there and returns a Decision with Unknown set, so the caller
	// can leave the decision to admission, which sees the final objects.
	ObjectUnknown, OldObjectUnknown bool
	// DryRun reports a dry-run request.
	DryRun bool
}

// Op returns the operation rules match on: Operation when set; otherwise derived from Verb by
// trail.AdmissionOperation: create, update/patch and delete/deletecollection give CREATE, UPDATE
// and DELETE, get, list and watch give GET, LIST and WATCH, and connect or any verb on a connect
// subresource (exec, attach, portforward, proxy) gives CONNECT. Another verb is returned
// upper-cased.
func (a Attributes) Op() string {
	if a.Operation != "" {
		return a.Operation
	}
	return trail.AdmissionOperation(a.Verb, a.Subresource)
}

// TrailOperation is the operation as every trail record and approval request names it: the
// lower-case verb (see trail.Operation), group, version, resource, subresource, namespace and
// name. It is the one conversion from Attributes to a record.
func (a Attributes) TrailOperation() trail.Operation {
	verb := a.Verb
	if verb == "" {
		verb = strings.ToLower(a.Op())
		if verb == "connect" {
			verb = trail.VerbConnect
		}
	}
	return trail.Operation{Verb: verb, APIGroup: a.Group, APIVersion: a.Version, Resource: a.Resource,
		Subresource: a.Subresource, Namespace: a.Namespace, Name: a.Name}
}

// String describes the request for messages: `CONNECT pods/exec "web-0" in namespace "shop"`.
func (a Attributes) String() string {
	return string(a.appendString(make([]byte, 0, 64+len(a.Resource)+len(a.Group)+len(a.Subresource)+len(a.Name)+len(a.Namespace))))
}

// appendString appends what String returns to b.
func (a Attributes) appendString(b []byte) []byte {
	b = append(b, a.Op()...)
	b = append(b, ' ')
	b = append(b, a.Resource...)
	if a.Group != "" {
		b = append(append(b, '.'), a.Group...)
	}
	if a.Subresource != "" {
		b = append(append(b, '/'), a.Subresource...)
	}
	if a.Name != "" {
		b = appendQuoted(append(b, ' '), a.Name)
	}
	if a.Namespace != "" && !(a.Group == "" && a.Resource == "namespaces") {
		b = appendQuoted(append(b, " in namespace "...), a.Namespace)
	}
	return b
}

// appendQuoted appends s quoted as strconv.AppendQuote does, without its rune-by-rune work for
// the names requests carry: printable ASCII other than a quote or a backslash stands for itself.
func appendQuoted(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// Privileged reports whether a request is one Gatehouse treats as privileged: when it cannot
// evaluate its policies or record the decision, it refuses a privileged request and lets any
// other pass (the webhook configurations in manifests/webhook mirror this split with
// failurePolicy Fail and Ignore). Privileged are:
//
//   - every CONNECT (exec, attach, port-forward, and the pod, service and node proxies);
//   - creating, updating or deleting Secrets, CustomResourceDefinitions, admission
//     configuration (admissionregistration.k8s.io) and Gatehouse's own objects (gatehouse.dev);
//   - creating or updating Roles, ClusterRoles, RoleBindings and ClusterRoleBindings;
//   - adding ephemeral (debug) containers to a pod;
//   - deleting a Namespace.
//
// Reads are never privileged here; the proxy masks what they return.
func Privileged(a Attributes) bool {
	op := a.Op()
	if op == string(v1alpha1.OperationConnect) {
		return true
	}
	write := op == string(v1alpha1.OperationCreate) || op == string(v1alpha1.OperationUpdate) || op == string(v1alpha1.OperationDelete)
	if !write {
		return false
	}
	switch a.Group {
	case "":
		return a.Resource == "secrets" || (a.Resource == "namespaces" && a.Subresource == "" && op == string(v1alpha1.OperationDelete)) ||
			(a.Resource == "pods" && a.Subresource == "ephemeralcontainers")
	case "rbac.authorization.k8s.io":
		// Roles and bindings are judged by what they grant; deleting one grants nothing.
		return (a.Resource == "rolebindings" || a.Resource == "clusterrolebindings" ||
			a.Resource == "roles" || a.Resource == "clusterroles") && op != string(v1alpha1.OperationDelete)
	case "apiextensions.k8s.io":
		return a.Resource == "customresourcedefinitions"
	case "admissionregistration.k8s.io", v1alpha1.GroupVersion.Group:
		return true
	}
	return false
}

// admissionExempt are the resources kube-apiserver never sends to admission webhooks
// (k8s.io/apiserver's rules.IsExemptAdmissionConfigurationResource): the webhook configurations
// and admission policies themselves, so that they can always be repaired.
var admissionExempt = map[string]bool{
	"validatingwebhookconfigurations": true, "mutatingwebhookconfigurations": true,
	"validatingadmissionpolicies": true, "validatingadmissionpolicybindings": true,
	"mutatingadmissionpolicies": true, "mutatingadmissionpolicybindings": true,
}

// AdmissionSkipsNamespaces are the namespaces the shipped webhook configurations leave out
// (namespaceSelector) for everything but CONNECT, so that the webhooks can never lock the cluster
// out: the cluster's own and Gatehouse's. They are the chart's defaults (webhook.excludedNamespaces
// and the release namespace gatehouse); a release configured otherwise gives the proxy its own
// list (AdmissionSeesSkipping).
var AdmissionSkipsNamespaces = []string{"kube-system", "gatehouse"}

// AdmissionSees reports whether Gatehouse's validating webhook, as manifests/webhook configures
// it, is called for a request, and so can hold it for approval. It is not for reads (GET, LIST,
// WATCH), for the admission configuration resources kube-apiserver never sends to webhooks, for
// subresources other than scale, ephemeralcontainers and the CONNECT ones, nor for writes in
// AdmissionSkipsNamespaces (but for Gatehouse's own objects and namespace deletion, which it
// sees everywhere). The proxy refuses what a rule holds for approval but admission
// cannot see: nobody could approve it. It must agree with the rules of the webhook
// configurations (webhook's manifests test checks it).
func AdmissionSees(a Attributes) bool {
	return admissionSees(a, AdmissionSkipsNamespaces)
}

// AdmissionSeesSkipping is AdmissionSees for webhook configurations whose namespaceSelector
// leaves out the namespaces skipped instead of AdmissionSkipsNamespaces.
func AdmissionSeesSkipping(skipped []string) func(Attributes) bool {
	skipped = slices.Clone(skipped)
	return func(a Attributes) bool { return admissionSees(a, skipped) }
}

func admissionSees(a Attributes, skipped []string) bool {
	op := a.Op()
	switch op {
	case string(v1alpha1.OperationConnect):
		return connectResources[a.Resource+"/"+a.Subresource]
	case string(v1alpha1.OperationCreate), string(v1alpha1.OperationUpdate), string(v1alpha1.OperationDelete):
	default:
		return false
	}
	if a.Group == "admissionregistration.k8s.io" && admissionExempt[a.Resource] {
		return false
	}
	switch a.Subresource {
	case "", "scale":
	case "ephemeralcontainers":
		if a.Group != "" || a.Resource != "pods" || op != string(v1alpha1.OperationUpdate) {
			return false
		}
	default:
		return false
	}
	switch {
	case a.Group == v1alpha1.GroupVersion.Group:
		return true // Gatehouse's own objects, in any namespace
	case a.Group == "" && a.Resource == "namespaces":
		// A Namespace is judged by its own name, except its deletion, which the webhook for
		// cluster-wide operations sees for every namespace.
		return op == string(v1alpha1.OperationDelete) || !slices.Contains(skipped, a.Name)
	}
	return !slices.Contains(skipped, a.Namespace)
}

// connectResources are the CONNECT subresources the connect webhook is called for.
var connectResources = map[string]bool{
	"pods/exec": true, "pods/attach": true, "pods/portforward": true, "pods/proxy": true,
	"services/proxy": true, "nodes/proxy": true,
}

// ErrorReason names the kind of an evaluation failure of Evaluate for the requester, without
// internal detail (which belongs in the log).
func ErrorReason(err error) string {
	switch {
	case errors.Is(err, ErrNotReady):
		return "its policies are not loaded yet"
	case errors.Is(err, ErrLookup):
		return "an object a rule needs could not be fetched"
	case errors.Is(err, ErrBadRequest):
		return "the request's object could not be read"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the evaluation timed out"
	}
	return "an internal error occurred"
}

// Action is what a decision says: allow, deny or requireApproval.
type Action string

// Actions, the same values as v1alpha1.Action.
const (
	ActionAllow           = Action(v1alpha1.ActionAllow)
	ActionDeny            = Action(v1alpha1.ActionDeny)
	ActionRequireApproval = Action(v1alpha1.ActionRequireApproval)
)

// Decision is the outcome of evaluating a request.
type Decision struct {
	// Action is what the deciding rule says; allow when no rule matched.
	Action Action
	// Policy and Rule name the AccessPolicy and the rule that decided; both are empty when no
	// rule matched (default allow).
	Policy, Rule string
	// Message is for humans and agents: what was decided, by which rule, and what to do next.
	Message string
	// Approval is set when Action is requireApproval.
	Approval *Approval
	// Unknown reports that the rule named by Policy and Rule judges a value the caller marked
	// unknown (Attributes.ObjectUnknown, OldObjectUnknown): it may or may not match, so no
	// decision is made; Action is empty. Admission, which knows the objects, decides.
	Unknown bool
}

// DryRunWarning is the warning a dry run of an operation that needs approval gets: a dry run
// changes nothing, so it is allowed, neither held nor given an approval request. The proxy and
// the webhook give the same text, so a client shows it once.
func (d Decision) DryRunWarning() string {
	return d.Message + " This was a dry run, so it changed nothing and created no approval request; the operation itself will be held for approval."
}

// Approval says who may approve a request held by a requireApproval rule.
type Approval struct {
	// ApproverGroups are the groups whose members may approve.
	ApproverGroups []string
	// Approvals is the number of distinct approvers needed (N of M), at least 1.
	Approvals int
	// GrantTTL is how long an approval grant stays usable.
	GrantTTL time.Duration
	// Scope is what approvers may grant beyond the one operation; nil when they may grant only
	// that.
	Scope *ApprovalScope
}
