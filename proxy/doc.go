// Package proxy is Gatehouse's authenticating front proxy for kube-apiserver: the reverse proxy,
// its header rules, masking of responses, the policy check before forwarding, the holding of
// calls admission holds for approval, sessions and the trail records of every request.
//
// Clients (AI agents and people) send their requests to the proxy with an OIDC bearer token.
// The proxy has the token verified (package authn) and forwards the request with its own
// credentials, impersonating that identity. Every upstream attempt gets an Audit-ID of its own,
// which kube-apiserver keeps as the audit event's ID, and a session ID in the impersonation
// extras, so the audit log, the admission webhooks and Gatehouse's trail can be joined.
// Responses that can carry secrets pass through masking; every request is recorded to the trail
// (trail.Request).
//
// # Policies and approvals
//
// The proxy evaluates the AccessPolicies once per request. It refuses what a deny rule refuses
// and what needs approval where admission cannot hold it (reads, the admission configuration
// kube-apiserver never sends to webhooks, the namespaces the webhooks skip: policy.AdmissionSees).
// Everything else it forwards: admission (package webhook) is the one place that decides what
// needs approval, from the final object, and creates the approval request. A call admission
// holds comes back as a 403 Status naming the request in its details; the proxy's upstream
// transport then holds the client, waits on the broker and re-sends the call once when it is
// approved, with the extra gatehouse.dev/approval-id. A client chooses how it is held
// (Gatehouse-Hold: wait, refuse, or a duration up to Options.MaxHold), names its session
// (Gatehouse-Session) and gives a reason for approvers (Gatehouse-Reason), with headers or the
// equivalent server-URL prefix /gatehouse/client/<k>=<v>,.../ (ClientPathPrefix). A dry run is
// never held. A rule that judges an object the proxy cannot read (a patch, an apply, a CBOR body,
// the stored object) decides nothing here; admission decides.
//
// # Threat model
//
// Impersonation fails open: a request that reaches kube-apiserver without the proxy's
// Impersonate-* headers runs as the proxy itself. The proxy therefore
//
//   - refuses (403) any client request carrying an Impersonate-* header in any spelling, before
//     anything else is done with it, so nothing the client names can replace or remove the
//     proxy's own headers (hop-by-hop processing deletes headers named in Connection). With an
//     ImpersonationAuthorizer, a client's own impersonation (kubectl --as) in the canonical
//     headers is allowed when SubjectAccessReviews show its verified identity may impersonate
//     exactly that target; the request then acts as the target, the verified user kept in an
//     extra, and the target is held to the same system: rules as a token;
//   - forwards only an allow-list of client headers (content negotiation, the client's name,
//     what upgrades need), so no credential, identity assertion, Audit-ID or address a client
//     claims (X-Forwarded-For, X-Real-Ip, Forwarded, True-Client-Ip, ...) reaches kube-apiserver,
//     which would take it as the request's source IP; and strips a token from
//     Sec-WebSocket-Protocol on every request, upgrade or not;
//   - sets its own Impersonate-* headers and the Audit-ID in ReverseProxy's Rewrite hook, after
//     hop-by-hop stripping, on the outbound request only (a re-sent call is a clone of it); the
//     cluster credential is added by the client-go transport, never by a header the client can
//     see;
//   - waits only for approval requests whose requester is the caller, and lets admission, not
//     itself, decide whether a re-sent call may use a grant;
//   - refuses when it cannot evaluate its policies (reads included), with the reason; answers
//     internal failures (NATS, upstream transport) with a summary and logs the details; never
//     logs tokens or headers;
//   - closes the client connection after a failed protocol upgrade (CVE-2018-1002105);
//   - asks kube-apiserver for JSON whenever the response may carry a secret and fails closed
//     (502) when it cannot mask what comes back, and masks a client's reason before it leaves.
//
// The proxy's service account should hold nothing but the impersonate permissions listed in
// manifests/proxy: with no other rights, a request that somehow lost its impersonation is
// denied rather than run as the proxy.
package proxy
