package policy

import (
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
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
	// DryRun reports a dry-run request.
	DryRun bool
}

// Op returns the operation rules match on: Operation when set; otherwise derived from Verb:
// create, update/patch and delete/deletecollection give CREATE, UPDATE and DELETE, get, list and
// watch give GET, LIST and WATCH, and any verb on a connect subresource (exec, attach,
// portforward, proxy) gives CONNECT. Another verb is returned upper-cased.
func (a Attributes) Op() string {
	if a.Operation != "" {
		return a.Operation
	}
	if connectSubresources[a.Subresource] && a.Verb != "list" && a.Verb != "watch" {
		return string(v1alpha1.OperationConnect)
	}
	switch a.Verb {
	case "create":
		return string(v1alpha1.OperationCreate)
	case "update", "patch":
		return string(v1alpha1.OperationUpdate)
	case "delete", "deletecollection":
		return string(v1alpha1.OperationDelete)
	}
	return strings.ToUpper(a.Verb)
}

// connectSubresources are the subresources whose requests admission sees as CONNECT.
var connectSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true, "proxy": true}

// String describes the request for messages: `CONNECT pods/exec "web-0" in namespace "shop"`.
func (a Attributes) String() string {
	var b strings.Builder
	b.WriteString(a.Op())
	b.WriteByte(' ')
	if a.Group != "" {
		b.WriteString(a.Resource + "." + a.Group)
	} else {
		b.WriteString(a.Resource)
	}
	if a.Subresource != "" {
		b.WriteString("/" + a.Subresource)
	}
	if a.Name != "" {
		fmt.Fprintf(&b, " %q", a.Name)
	}
	if a.Namespace != "" && !(a.Group == "" && a.Resource == "namespaces") {
		fmt.Fprintf(&b, " in namespace %q", a.Namespace)
	}
	return b.String()
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
}

// Approval says who may approve a request held by a requireApproval rule.
type Approval struct {
	// ApproverGroups are the groups whose members may approve.
	ApproverGroups []string
	// Approvals is the number of distinct approvers needed (N of M), at least 1.
	Approvals int
	// GrantTTL is how long an approval grant stays usable.
	GrantTTL time.Duration
}
