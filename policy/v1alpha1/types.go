package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessPolicy is a cluster-scoped, ordered list of rules that allow, deny or hold for approval
// requests to the cluster. Gatehouse's front proxy evaluates every AccessPolicy before it
// forwards a request, and its admission webhooks evaluate the same policies for every write that
// reaches kube-apiserver by any path.
//
// Policies are evaluated in ascending spec.priority, then by name; the rules of a policy in the
// order listed. The first rule that matches decides. A request no rule matches is allowed.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=gatehouse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Rules",type=integer,JSONPath=`.status.rules`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AccessPolicySpec `json:"spec"`
	// +optional
	Status AccessPolicyStatus `json:"status,omitempty"`
}

// AccessPolicySpec is the ordered rule list of an AccessPolicy.
type AccessPolicySpec struct {
	// Priority orders policies: lower values are evaluated first; policies of equal priority are
	// evaluated in name order. Default 0.
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// Rules are evaluated in order; the first rule that matches a request decides it.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	Rules []Rule `json:"rules"`
}

// Action is what a matching rule decides.
// +kubebuilder:validation:Enum=allow;deny;requireApproval
type Action string

// Actions.
const (
	// ActionAllow lets the request through. An allow rule placed before deny rules is an
	// exception to them.
	ActionAllow Action = "allow"
	// ActionDeny refuses the request with the rule's message.
	ActionDeny Action = "deny"
	// ActionRequireApproval refuses the request unless an approval grant for exactly this
	// operation exists (see Approval).
	ActionRequireApproval Action = "requireApproval"
)

// Rule selects requests and decides them.
//
// +kubebuilder:validation:XValidation:rule="self.action != 'requireApproval' || has(self.approval)",message="a requireApproval rule needs an approval block"
// +kubebuilder:validation:XValidation:rule="self.action == 'requireApproval' || !has(self.approval)",message="approval is only valid with action requireApproval"
type Rule struct {
	// Name identifies the rule within its policy. Decisions, denial messages and the audit
	// trail name the policy and the rule that decided.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Match selects the requests the rule applies to. Every field that is set must match; an
	// empty match selects every request.
	// +optional
	Match Match `json:"match,omitempty"`

	// Exclude removes requests from Match: a request that Exclude matches is not matched by the
	// rule. Every field that is set must match for a request to be excluded.
	// +optional
	Exclude *Match `json:"exclude,omitempty"`

	// Condition is an optional CEL expression that must evaluate to true for the rule to match,
	// after Match and Exclude. It sees the variables object, oldObject, request, userInfo, pod
	// and namespaceObject (see the policy package documentation). If it cannot be evaluated
	// (a missing field, the cost limit), a deny or requireApproval rule matches and an allow rule
	// does not: the error never opens a gap.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Condition string `json:"condition,omitempty"`

	// Action is allow, deny or requireApproval.
	Action Action `json:"action"`

	// Message tells the person or agent whose request was decided what happened and what to do
	// instead. It is returned with denials and recorded in the audit trail.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// Approval configures who may approve a request held by a requireApproval rule.
	// +optional
	Approval *Approval `json:"approval,omitempty"`
}

// Operation is an admission operation or a read verb.
// +kubebuilder:validation:Enum=CREATE;UPDATE;DELETE;CONNECT;GET;LIST;WATCH;"*"
type Operation string

// Operations. CREATE, UPDATE, DELETE and CONNECT are admission operations, seen by the webhooks
// and the proxy; GET, LIST and WATCH are reads, seen by the proxy only.
const (
	OperationCreate  Operation = "CREATE"
	OperationUpdate  Operation = "UPDATE"
	OperationDelete  Operation = "DELETE"
	OperationConnect Operation = "CONNECT"
	OperationGet     Operation = "GET"
	OperationList    Operation = "LIST"
	OperationWatch   Operation = "WATCH"
	OperationAll     Operation = "*"
)

// Match selects requests. Every field that is set must match (they are ANDed); the values of a
// list field are alternatives (ORed). The subject fields users, groups and serviceAccounts are
// one alternative set: a request matches when any of them does.
type Match struct {
	// Operations the rule applies to: CREATE, UPDATE (includes patch), DELETE (includes
	// deletecollection), CONNECT (exec, attach, port-forward, proxy), GET, LIST, WATCH or "*".
	// +optional
	// +listType=set
	Operations []Operation `json:"operations,omitempty"`

	// APIGroups the resource belongs to; "" is the core group, "*" every group.
	// +optional
	// +listType=set
	APIGroups []string `json:"apiGroups,omitempty"`

	// Resources as in admission webhook rules: "pods" the resource alone, "pods/exec" one
	// subresource, "pods/*" every subresource of pods, "*" every resource, "*/scale" the scale
	// subresource of every resource, "*/*" everything.
	// +optional
	// +listType=set
	Resources []string `json:"resources,omitempty"`

	// Namespaces the request's namespace must be one of. A trailing "*" matches a prefix, a
	// leading "*" a suffix.
	// Requests for cluster-scoped resources have no namespace and never match a non-empty list,
	// except that a request for a Namespace object carries its own name as namespace.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects by the labels of the request's namespace (for a Namespace
	// object, its own labels). Requests for other cluster-scoped resources never match it.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Names the object's name must be one of. A trailing "*" matches a prefix, a leading "*" a
	// suffix.
	// +optional
	// +listType=set
	Names []string `json:"names,omitempty"`

	// Users whose requests match, by Kubernetes user name. A trailing "*" matches a prefix, a
	// leading "*" a suffix.
	// +optional
	// +listType=set
	Users []string `json:"users,omitempty"`

	// Groups whose members' requests match. A trailing "*" matches a prefix, a leading "*" a
	// suffix.
	// +optional
	// +listType=set
	Groups []string `json:"groups,omitempty"`

	// ServiceAccounts whose requests match, as "namespace/name"; "namespace/*" matches every
	// service account of a namespace.
	// +optional
	// +listType=set
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`

	// ViaGateway, when set, matches only requests that did (true) or did not (false) come
	// through Gatehouse's front proxy.
	// +optional
	ViaGateway *bool `json:"viaGateway,omitempty"`
}

// Approval configures a requireApproval rule.
type Approval struct {
	// ApproverGroups are the groups whose members may approve. The requester never approves
	// their own request.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	ApproverGroups []string `json:"approverGroups"`

	// Approvals is how many distinct approvers must approve (N of M). Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Approvals int32 `json:"approvals,omitempty"`

	// GrantTTL is how long an approval grant stays usable once given. Default 15m.
	// +optional
	GrantTTL *metav1.Duration `json:"grantTTL,omitempty"`

	// Scope, when set, lets approvers grant more than the one operation that was held: the
	// requester's session may then do the chosen verbs on the chosen resources in the held
	// operation's namespace, for the chosen time, as long as this rule is what holds them. An
	// approver chooses within what Scope offers, or grants the one operation (the default, and
	// the only choice without Scope). Tools that write several objects for one task (Helm's
	// release records, an operator's install) then need one approval.
	// +optional
	Scope *ApprovalScope `json:"scope,omitempty"`
}

// ApprovalScope is what a requireApproval rule lets approvers grant beyond the one operation.
// A scoped grant is bound to the requester, their session (through the gateway: the Gatehouse
// session; directly: the user and, when kube-apiserver names it, the credential) and the held
// operation's namespace; it admits only operations this rule holds, expires by itself and is
// recorded in the trail with every operation it admits.
type ApprovalScope struct {
	// Verbs approvers may include: create, update, patch, delete, deletecollection. A scope is
	// offered only for a held operation it would cover (its verb and resource are offered), and
	// always covers it.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Enum=create;update;patch;delete;deletecollection
	// +listType=set
	Verbs []string `json:"verbs"`

	// Resources approvers may include, as resource, resource.group or resource/subresource
	// (secrets, deployments.apps, deployments.apps/scale). Default: the held operation's
	// resource only.
	// +optional
	// +listType=set
	Resources []string `json:"resources,omitempty"`

	// MaxDuration is the longest an approver may grant, at most 24h.
	MaxDuration metav1.Duration `json:"maxDuration"`
}

// AccessPolicyStatus reports whether the policy's rules are in force.
type AccessPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Rules is the number of rules in force.
	// +optional
	Rules int32 `json:"rules,omitempty"`

	// Conditions: Ready is True (reason Compiled) when every rule compiled and the policy is in
	// force, False (reason CompileError) when a rule did not compile; its message names the rule
	// and the error, and says whether a previous generation stays in force.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types and reasons of AccessPolicyStatus.
const (
	ConditionReady     = "Ready"
	ReasonCompiled     = "Compiled"
	ReasonCompileError = "CompileError"
)

// AccessPolicyList is a list of AccessPolicies.
//
// +kubebuilder:object:root=true
type AccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessPolicy `json:"items"`
}
