// Package webhook enforces Gatehouse's AccessPolicies on every write that reaches
// kube-apiserver, whatever path it took, through a validating and a mutating admission webhook
// served by controller-runtime's webhook server.
//
// The validating webhook (Validator, at PathValidate) describes each AdmissionReview as
// policy.Attributes, evaluates the same policy.Engine the front proxy uses and answers allow,
// deny (with the rule's message, which tells a person or an agent what to do instead) or, for
// requireApproval, whatever the Approver says; with no Approver such requests are denied with a
// message saying so. For a CONNECT to pods/exec, pods/attach or pods/portforward the engine
// looks the target pod up (through a cached client, falling back to a live read) to judge its
// privilege. Every decision is published to the trail as a trail.Decision naming the policy and
// rule, with ID "admission-<request UID>-validating" so that a retried review is stored once.
//
// The mutating webhook (Mutator, at PathMutate) stamps objects created or changed through the
// gateway with the session ID and, when approved, the approval ID, taken from the impersonated
// user's extras (identity.ExtraSessionID, identity.ExtraApprovalID), as the annotations
// identity.AnnotationSessionID and identity.AnnotationApprovalID. It changes nothing else.
//
// NewHandler wraps both in a strict HTTP endpoint: anything but a well-formed
// admission.k8s.io/v1 AdmissionReview gets HTTP 400 with a plain-text reason.
//
// # Threat model
//
// The webhooks are the backstop for clients that bypass the proxy: people and agents with their
// own credentials. They must neither let a privileged operation through because something
// failed, nor lock the cluster out.
//
// Failing closed: a request is privileged when policy.Privileged says so (every CONNECT; Secret,
// CRD, admission configuration and gatehouse.dev writes; role and role binding creation and updates;
// namespace deletion). When the policies cannot be evaluated (not loaded yet, a failed lookup,
// a panic) or the decision cannot be recorded in the trail (NATS down, backlog full), a
// privileged request is denied with a message saying why and what to do, and any other request
// is allowed with a warning: kube-apiserver's audit log remains the system of record for those.
// The webhook configurations in manifests/webhook mirror the split: failurePolicy Fail for the
// privileged rules, Ignore for the rest.
//
// Never deadlocking: the configurations skip kube-system and the gatehouse namespace
// (namespaceSelector) and system components (matchConditions on system:node:*, system:kube-*,
// system:apiserver and the service accounts of kube-system and gatehouse), and time out after
// 5 seconds. The exec/attach/port-forward webhook has no namespace exclusion: no component needs
// those to start, and exec into kube-system is what it must catch. kube-apiserver never sends
// webhook configurations themselves to webhooks; the proxy enforces the rules about those.
//
// Trust: the webhook trusts the AdmissionReview, which kube-apiserver sends over TLS to the
// service named in the configuration; it trusts the gatehouse.dev/* extras because only the
// proxy may impersonate them (identity). It never logs objects, tokens or extras' values beyond
// the request UID and resource.
package webhook
