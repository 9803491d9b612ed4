// Package proxy is Gatehouse's authenticating front proxy for kube-apiserver.
//
// Clients (AI agents and people) send their requests to the proxy with an OIDC bearer token.
// The proxy has the token verified (package authn) and forwards the request with its own
// credentials, impersonating that identity. Every request gets a fresh Audit-ID, which
// kube-apiserver keeps as the audit event's ID, and a session ID in the impersonation extras, so
// the audit log, the admission webhooks and Gatehouse's trail can be joined. Responses that can
// carry secrets pass through masking; every request is recorded to the trail.
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
//   - sets its own Impersonate-* headers and the Audit-ID in ReverseProxy's Rewrite hook, after
//     hop-by-hop stripping, on the outbound request only, and deletes the client's
//     Authorization, Audit-ID, X-Remote-* and X-Forwarded-* headers there; the cluster
//     credential is added by the client-go transport, never by a header the client can see;
//   - never logs tokens or headers;
//   - closes the client connection after a failed protocol upgrade (CVE-2018-1002105);
//   - asks kube-apiserver for JSON whenever the response may carry a secret and fails closed
//     (502) when it cannot mask what comes back.
//
// The proxy's service account should hold nothing but the impersonate permissions listed in
// manifests/proxy: with no other rights, a request that somehow lost its impersonation is
// denied rather than run as the proxy.
package proxy
