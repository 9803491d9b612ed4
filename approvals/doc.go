// Package approvals is Gatehouse's just-in-time approval broker: an operation that a policy
// holds for approval waits for people in the approver groups to approve it, and once approved,
// exactly that operation may run, once.
//
// Admission (package webhook) is the one place that creates approval requests, for every path
// into the cluster: it fingerprints the final object, finds or creates the request and denies
// the call with the request's ID in its Status details (StatusDetails, IDFromStatus). The front
// proxy, holding its client, waits on the broker for that request and re-sends the call once it
// is approved; a direct client retries after approval. This package also serves the approvals
// API (API) and its client (Client).
//
// # State and events
//
// Every approval request lives in the JetStream key-value bucket GATEHOUSE_APPROVALS (key
// "req.<id>", history kept), so nothing is lost when a Gatehouse process or the NATS server
// restarts. Changes are made with compare-and-swap on the key's revision, which makes decisions
// idempotent and a grant usable exactly once even with many webhook and proxy replicas. Every
// change is also published as a trail.Approval record on gatehouse.trail.v1.approval.<session>:
// the event stream UIs, tools and the enricher follow.
//
// # Rules
//
//   - An approver must belong to one of the request's approver groups and can never approve
//     their own request: neither the requester nor the verified user behind a client's
//     impersonation (the original user, kept on the request) may decide it, and an approver who
//     impersonates is judged as the user behind it too.
//   - A request is shown (API) only to its requester, its original user and the members of its
//     approver groups.
//   - Required approvals (N of the approver groups' members) turn the request Approved and issue a
//     single-use grant valid for the rule's grant TTL. One denial is final. Decisions after the
//     final state change nothing and say so.
//   - A pending request expires at its deadline; an unused grant at the end of its TTL.
//   - The grant is bound to a fingerprint of the operation: an HMAC-SHA256, under the masking
//     key, of the requester, operation, resource, namespace, name, subresource and the object as
//     admission will store it, without only what the API server or Gatehouse sets by itself
//     (volatile metadata, the status outside the status subresource, the two annotations the
//     mutating webhook stamps). Approving "bind alice to view" cannot admit "bind agent to
//     cluster-admin", one approved status update cannot admit another, and since the
//     fingerprint is keyed, seeing it reveals nothing about the secret values in the object.
//   - The requester's reason is stored masked (the masking engine's text detectors).
//
// # Threat model
//
// The broker trusts the identities it is given: the front proxy and kube-apiserver verify them. An
// approver's vote is only as strong as the authentication of the approvals API (the same OIDC
// verification as the proxy). A NATS outage makes every approval-gated operation fail closed:
// no request can be created, decided or consumed.
package approvals
