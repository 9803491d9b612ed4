// Package webhook enforces Gatehouse's AccessPolicies on every write that reaches
// kube-apiserver, whatever path it took, through a validating and a mutating admission webhook
// served by controller-runtime's webhook server.
//
// The validating webhook (Validator, at PathValidate) describes each AdmissionReview as
// policy.Attributes, evaluates the same policy.Engine the front proxy uses and answers allow,
// deny (with the rule's message, which tells a person or an agent what to do instead) or, for
// requireApproval, whatever the Approver says; with no Approver such requests are denied with a
// message saying so. A dry run is never held: what needs approval is allowed with a warning
// saying so, while deny rules apply. For a CONNECT to pods/exec, pods/attach or pods/portforward
// the engine looks the target pod up (through a cached client, falling back to a live read) to
// judge its privilege. Every decision is published to the trail as a trail.Decision naming the
// policy and rule, with ID "admission-<request UID>-validating" so that a retried review is one
// decision: the enricher stores each attempt and its views show the decision once per ID and
// session (the trail: the attempt whose action the audit annotations name), so the decisions may
// share NATS messages (trail.PublisherOptions.MaxBatchRecords). The answer names that record in
// its audit annotations (decision-id, policy, rule, action, and approval-id when the gate held
// the call or admitted it under a grant it checked): kube-apiserver writes them into the
// request's audit event, prefixed with the webhook's name, which is how the enricher ties the
// decision to the request. The AdmissionReview UID is kube-apiserver's ID of one webhook call,
// not the request's Audit-ID.
//
// The Gate is the Approver, and the one place in Gatehouse that creates approval requests: for
// the final object (after defaulting and every mutating webhook), it uses an approved grant for
// exactly that operation, or finds or creates the approval request and denies the call with the
// request's ID in the Status details (group gatehouse.dev, kind approvalrequests), which
// kube-apiserver passes on to the client. The front proxy recognises that denial, holds its
// client and re-sends the call once approved, with the extra gatehouse.dev/approval-id; a direct
// client retries after approval.
//
// The mutating webhook (Mutator, at PathMutate) owns the annotations in Gatehouse's namespace on
// every create and update it sees, subresources included: it stamps objects created or changed
// through the gateway with the session ID and, when approved, the approval ID
// (identity.AnnotationSessionID, identity.AnnotationApprovalID, from the impersonation extras),
// and undoes any other value a client gives a gatehouse.dev/ annotation, through the gateway or
// directly. It changes nothing else.
//
// NewHandler serves both with controller-runtime's admission.Webhook: a review it cannot decode,
// or a request without a UID, a resource or a known operation, gets an error response and a log
// line, never a decision.
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
// proxy may impersonate them (identity). It trusts no gatehouse.dev/ annotation a client wrote:
// the mutating webhook owns them (a second, failurePolicy Ignore webhook guards direct writes that
// carry one). A grant is used only by the operation it was issued for: the requester and the
// fingerprint of the final object must match (package approvals). It never logs objects, tokens
// or extras' values beyond the request UID and resource; the approval broker's errors go to the
// log, the client gets a summary.
package webhook
