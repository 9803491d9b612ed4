// Package approvals is Gatehouse's just-in-time approval broker: an operation that a policy
// holds for approval waits for people in the approver groups to approve it, and once approved,
// exactly that operation may run, once.
//
// Admission (package webhook) is the one place that creates approval requests, for every path
// into the cluster: it fingerprints the final object, finds or creates the request and denies
// the call with the request's ID in its Status details (StatusDetails, IDFromStatus). The front
// proxy, holding its client, waits on the broker for that request and re-sends the call once it
// is approved; a direct client retries after approval. This package also serves the approvals
// API (API, served by `gatehouse console`) and its client (Client).
//
// # State and events
//
// Every approval request lives in the JetStream key-value bucket GATEHOUSE_APPROVALS (history
// kept), so nothing is lost when a Gatehouse process or the NATS server restarts. A request is
// stored in parts, each written by one component, which NATS permissions enforce (package
// natsbus): the request as admission created it ("req.<id>", the webhook), the decisions and
// the grant ("dec.<id>", the console), the use of the grant ("use.<id>", the webhook, created
// once, so a grant is usable exactly once even with many webhook replicas) and the fingerprint
// index ("fp.<fingerprint>", the webhook). Decisions are made with compare-and-swap on the
// key's revision. Expiry follows from the times stored; the console records it (Expire). Every
// change is also published as a trail.Approval record on gatehouse.trail.v1.approval.<session>:
// the event stream UIs, tools and the enricher follow.
//
// # Integrity
//
// The webhook and the console hold the approval key (Options.Key; not the masking key, and never
// sent to NATS). Every part they write carries an HMAC under it, bound to the part's key (so the
// request's ID), to the request it belongs to (its fingerprint, requester, object and approver
// groups), and to its own contents (verdicts, state, grant): a MAC cannot be moved to another
// request or replayed with another state. What the broker reads is checked: a part that fails,
// or parts that contradict each other, make the request fail with ErrTampered, and the webhook
// then refuses its grant and the console refuses to show it or decide it. The proxy has no key:
// it only waits for a decision and re-sends the call, which admission then checks.
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
// verification as the proxy). Anyone who can write the bucket without the key (a leaked
// credential, an administrator restoring a stream) can only make requests fail their check: a
// denial of service, never an approval. A holder of the key and of the console's credentials can
// put back an earlier version of a request's decisions (reopen a denied request; it still needs
// approvers), which is accepted: the console is the deciding authority. A NATS outage makes every
// approval-gated operation fail closed: no request can be created, decided or consumed.
package approvals
