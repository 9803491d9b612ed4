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
// # Streams and records
//
// A long request — a watch, followed logs, exec, attach, port-forward — gets an open
// trail.Request record (PhaseOpen), stored before it is forwarded, and its usual record when it
// ends: a proxy that stops mid-stream leaves an open record, never none. The record of a write
// is stored (trail.Publisher.PublishSync) before its answer goes to the client; a NATS blip is
// waited out, up to Options.WriteRecordTimeout, and after that the client is told that the write
// took effect but was not recorded (500), unless unrecorded requests are allowed.
//
// Watches and followed logs are masked as they pass, over HTTP and over WebSocket: the frames
// kube-apiserver sends are read, their messages masked (a watch event by event, a log line by
// line across messages) and sent as new frames (websocket.go). Compressed frames are never
// negotiated. An upgrade that would carry API data the proxy cannot mask (the proxy
// subresources, SPDY for anything but exec, attach and port-forward) is refused.
//
// Exec, attach (and kubectl debug's attach) and port-forward are served by the proxy itself
// (terminal.go, portforward.go): it answers the client with the kubelet's server-side streaming
// code (k8s.io/cri-streaming for SPDY and the kubelet's WebSocket protocols, the channel
// protocols of k8s.io/streaming for v5 WebSocket, and kube-apiserver's tunnelling handler for
// SPDY over WebSocket), and opens its own stream to kube-apiserver with client-go's executors
// and dialers (WebSocket first, SPDY as fallback) through a transport that impersonates the
// client with setIdentityHeaders, sets the attempt's Audit-ID and holds the session for
// approval with holdTransport, like every other request. The client's upgrade is answered only
// once kube-apiserver upgraded, so a refusal (no such pod, forbidden, held for approval) reaches
// the client as kube-apiserver's own Status. Between the two, a command's output is masked
// (recording.LiveMasker: the text detectors and the values of the Secrets the session read,
// collected while their responses were masked) and the session is recorded
// (recording.Terminal, asciicast v3) and published in hash-chained chunks as it happens
// (Options.Recordings); its first chunk is stored before anything is forwarded, so a session
// that cannot be recorded is refused, and one whose recording breaks is ended (unless
// unrecorded requests are allowed). Port-forward is recorded as connections and byte counts.
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
//     cluster credential too when it is a bearer token (bearerAuth's, which follows a token
//     file as client-go does), except on upgrades, where the upstream transport adds it (a
//     bearer token by bearerAuth on a copy of the outbound request, any other credential by
//     client-go), never by a header the client can see;
//   - waits only for approval requests whose requester is the caller, and lets admission, not
//     itself, decide whether a re-sent call may use a grant;
//   - refuses when it cannot evaluate its policies (reads included), with the reason; answers
//     internal failures (NATS, upstream transport) with a summary and logs the details; never
//     logs tokens or headers;
//   - closes the client connection after a failed protocol upgrade (CVE-2018-1002105), and
//     answers an exec, attach or port-forward only once its own upstream stream is upgraded;
//   - masks exec and attach output and never passes an upgraded connection that carries API
//     data it cannot mask; a user who may exec can still print a secret in a form no detector
//     knows (encoded, a byte at a time), so exec remains a privilege the policies guard;
//   - asks kube-apiserver for JSON whenever the response may carry a secret and fails closed
//     (502) when it cannot mask what comes back, and masks a client's reason before it leaves.
//
// The proxy's service account should hold nothing but the impersonate permissions listed in
// manifests/proxy: with no other rights, a request that somehow lost its impersonation is
// denied rather than run as the proxy.
package proxy
