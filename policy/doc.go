// Package policy decides whether a request to the cluster is allowed, denied or held for
// approval, by evaluating AccessPolicies (gatehouse.dev/v1alpha1, package v1alpha1).
//
// The same Engine runs in the front proxy, once before it forwards a request, and in the
// admission webhooks (package webhook), which see every write that reaches kube-apiserver by any
// path. Both describe a request as Attributes and get back a Decision naming the policy and rule
// that decided and a message for the person or agent that made the request. The proxy has no
// object for a patch, an apply or a body it cannot decode, and never the stored object: it marks
// them unknown (Attributes.ObjectUnknown, OldObjectUnknown), and a rule that judges them returns
// a Decision with Unknown set instead of a decision, which admission then makes. AdmissionSees
// says which requests admission sees at all; Attributes.TrailOperation is the one conversion to
// the operation trail records name, with lower-case verbs.
//
// # Loading policies
//
// Engine.SetPolicies compiles a set of AccessPolicies into a new generation and swaps it in
// atomically. Controller does so from the cluster (watched with controller-runtime) and writes
// each policy's Ready condition: reason Compiled, or CompileError with the rule and the CEL
// error. FileWatcher does so from a file in dev mode (LoadFile reads the same YAML as
// manifests/policies). A policy that does not compile is not in force, except that its previous
// version, if one compiled, stays in force until the error is fixed.
//
// # Evaluation order
//
// Policies are evaluated in ascending spec.priority, then by name; the rules of a policy in the
// order they are listed. The first rule that matches decides. A request that no rule matches is
// allowed, with an empty Decision.Policy and Rule. An allow rule is therefore an exception to
// the deny and requireApproval rules after it.
//
// A rule matches when its match selects the request, its exclude (if set) does not, and its
// condition (if set) evaluates to true. Within a match every field that is set must match, and
// the entries of a list are alternatives; users, groups and serviceAccounts together form one
// set of alternatives. Resources follow admission webhook rules ("pods", "pods/exec", "pods/*",
// "*", "*/scale", "*/*"). Names, namespaces, users and groups accept a trailing "*" as a prefix
// match and a leading "*" as a suffix match. Operations are the admission operations CREATE,
// UPDATE, DELETE and CONNECT and, for the proxy, the reads GET, LIST and WATCH; Attributes.Op
// maps a verb to them.
//
// # Conditions
//
// A condition is a CEL expression returning bool, compiled once per policy generation in the
// environment Kubernetes uses for ValidatingAdmissionPolicy (k8s.io/apiserver/pkg/cel/environment:
// its libraries, such as quantity, regex, lists, ip and cidr, its optional-field syntax
// `a.?b.orValue(c)`, and its per-call cost limit). It sees these variables:
//
//	object           the object of a CREATE or UPDATE, as in the request; null otherwise;
//	                 unknown at the proxy for a patch, an apply or a body it cannot decode
//	oldObject        the existing object of an UPDATE or DELETE; null otherwise; unknown at
//	                 the proxy
//	request          operation, verb, resource{group,version,resource}, subResource, namespace,
//	                 name, dryRun, viaGateway, sessionID, approvalID, userInfo
//	userInfo         username, uid, groups, extra (map of string lists)
//	pod              the target pod of a CONNECT to a pod subresource (exec, attach, portforward,
//	                 proxy), fetched through the Lookup; null for other requests or when the pod
//	                 does not exist
//	namespaceObject  the request's Namespace (for a Namespace object, the object itself); null for
//	                 other cluster-scoped requests or when it does not exist
//
// Variables are computed on first use only: a request no condition looks at is never decoded
// and no pod is fetched for it. A condition that needs nothing newer than Kubernetes 1.33's
// libraries runs in that version of the environment, whose per-evaluation cost tracking is
// several times cheaper; one that uses the newest list functions runs in the full one. The cost
// limit is also enforced before evaluating: a condition whose static cost estimate, for values
// as large as the request's object and strings, is within the limit runs without tracking, and
// every other request is tracked (see cost.go). Objects are validated once per request and
// decoded into CEL values as far as the conditions read them (see jsonlazy.go), into buffers an
// engine reuses from one evaluation to the next once it has dropped every reference into the
// request; a namespaceSelector reads the namespace's labels, and the namespace becomes a CEL
// value only for a condition that reads namespaceObject.
//
// A condition that fails at run time (a missing field, the cost limit) makes a deny or
// requireApproval rule match, with a message saying so, and an allow rule not match.
//
// # Threat model
//
// Policies guard what agents and people may do to a cluster, so an evaluation that cannot be
// completed must never read as "allowed". Evaluate returns an error instead of a decision when
// it has no policies yet (ErrNotReady), when a pod or namespace a rule needs cannot be fetched
// (ErrLookup) or when the request's object is not JSON (ErrBadRequest); the proxy refuses every
// request then, the webhook privileged ones (Privileged). A runtime condition error applies
// restricting rules and skips exceptions. An unknown object never reads as null: a rule that
// judges it is left undecided. A policy whose new version does not compile keeps its old
// version in force.
// The engine never logs request contents, only policy and rule names and errors. It trusts
// Attributes: the proxy fills them from a verified identity, the webhook from kube-apiserver.
package policy
