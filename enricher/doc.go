// Package enricher stores kube-apiserver's audit events, masked and joined with the gateway's
// trail, in ClickHouse, so that auditors answer "who did what, through which session, approved
// by whom, and what bypassed the gateway" with SQL.
//
// # Pipeline
//
//	kube-apiserver --(audit webhook, HTTPS)--> intake: split, mask, publish --> JetStream
//	    GATEHOUSE_AUDIT --(durable consumer)--> decode --> INSERT audit_events --> ack
//	gateway --(trail records)--> JetStream GATEHOUSE_TRAIL --(durable consumer)--> INSERT
//	    gateway_requests, gateway_decisions, sessions --> ack
//	proxy --(recording chunks)--> JetStream GATEHOUSE_RECORDINGS --(durable consumer)--> INSERT
//	    session_recordings --> ack
//
// The intake ([Enricher.ServeHTTP]) answers 200 only after JetStream stored the whole batch,
// under a message ID derived from the request body: kube-apiserver retries a batch that failed,
// and a retry is stored once. Messages are S2-compressed (header Content-Encoding: s2); a batch
// that does not fit a NATS message is split, and an event that does not fit one on its own
// loses its request and response objects (annotated audit.k8s.io/truncated, as kube-apiserver's
// own truncating backend does). Optionally the enricher follows an audit log file instead
// (Options.AuditLogPath).
//
// Consumers ([Enricher.Start]) read batches of messages (bounded in number and waiting time),
// insert their rows in one INSERT per table, and acknowledge only after ClickHouse accepted it.
// While ClickHouse is down, batches wait in JetStream and are delivered again. Tables are
// ReplacingMergeTrees whose sorting key identifies a record (for audit events: auditID, stage
// and a fingerprint of the request), so a batch inserted twice, after a crash between insert
// and acknowledgement, is one row per event in every query that reads with FINAL. See the
// schema package for the tables and the joined trail view.
//
// # Threat model
//
// Recording chunks are stored as the proxy published them: it masked them, and their hash chain
// covers their data, so that `gatehouse sessions verify` checks what is stored.
//
// Audit events carry secrets: a Secret read at RequestResponse level has its data in the
// response object, a token request its token, a command line its password. The enricher masks
// every event in the intake, before anything is written anywhere, with the same structural
// masker the gateway uses on responses (requestObject and responseObject typed by the event's
// objectRef, the query of requestURI, and every other string by the detectors). Secrets
// therefore reach neither JetStream nor ClickHouse; an event the masker cannot process whole is
// reduced to its metadata and masked again. Consumers mask any batch that did not come through
// an intake. Logs and errors name events by auditID, offsets and sizes, never by content.
//
// Anyone who can post to the intake can add events to the trail. Serve it with TLS and require
// kube-apiserver's client certificate (the webhook kubeconfig's users entry); see
// manifests/audit.
//
// The gateway's attributes (session, issuer, subject, client, approval) come from impersonation
// extras, which only the gateway's service account may set (manifests/proxy/rbac.yaml). An
// event joins its gateway record only when both its Audit-ID and its session match, so a direct
// client that replays a gateway request's Audit-ID does not pass for gateway traffic, and a
// reused Audit-ID does not hide an event (the request fingerprint keeps them apart).
package enricher
