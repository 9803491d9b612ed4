// Package enricher stores kube-apiserver's audit events, masked and joined with the gateway's
// trail, in ClickHouse, so that auditors answer "who did what, through which session, approved
// by whom, and what bypassed the gateway" with SQL.
//
// # Pipeline
//
//	kube-apiserver --(audit webhook, HTTPS, mTLS)--> intake: read, mask, pack --> spool (disk)
//	kube-apiserver --(audit log file)--> log follower: read, mask, pack --> spool
//	spool --(drainer, in order)--> JetStream GATEHOUSE_AUDIT --(durable consumer)--> decode
//	    --> INSERT audit_events --> ack
//	gateway --(trail records)--> JetStream GATEHOUSE_TRAIL --(durable consumer)--> INSERT
//	    gateway_requests, gateway_decisions, sessions, approvals --> ack
//	proxy --(recording chunks)--> JetStream GATEHOUSE_RECORDINGS --(durable consumer)--> INSERT
//	    session_recordings --> ack
//
// The intake ([Enricher.ServeHTTP]) reads a batch event by event, never holding the body,
// masks each event and packs the events into S2-compressed messages, which it writes to the
// spool; it answers 200 only after the spool file is synced and committed. The spool survives
// NATS being away and the enricher's own restart, detects batches torn by a crash, and is
// bounded (503 when full); a drainer publishes it to JetStream under message IDs derived from
// the request body, so a batch kube-apiserver sends twice is stored once. An event larger than
// Options.MaxEventBytes loses its request and response objects while it is read (annotated
// audit.k8s.io/truncated, as kube-apiserver's own truncating backend does).
//
// The log follower (Options.AuditLogPath) is the webhook's backstop: it reads kube-apiserver's
// audit log from a position kept in the spool directory, across rotations, so that events the
// webhook gave up on are stored from the log. Both paths store an event under the same key.
//
// Consumers ([Enricher.Start]) read batches of messages (bounded in number, bytes and waiting
// time), insert their rows in one INSERT per table (bounded in rows and bytes), and acknowledge
// only after ClickHouse accepted it. While ClickHouse is down, batches wait in JetStream and
// are delivered again. A row ClickHouse rejects for good is stored in dead_letters instead of
// blocking its stream. Tables are ReplacingMergeTrees whose sorting key identifies a record
// (for audit events: auditID, stage and a fingerprint of the request), so a batch inserted
// twice, after a crash between insert and acknowledgement or through both paths, is one row per
// event in every query that reads with FINAL. See the schema package for the tables and the
// joined trail view, and docs/audit-pipeline.md for what each outage costs.
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
// therefore reach neither the spool, nor JetStream, nor ClickHouse; an event the masker cannot
// process whole is reduced to its metadata and masked again. Logs and errors name events by
// auditID, offsets and sizes, never by content.
//
// Anyone who can publish to NATS could publish an audit batch that claims to be masked. The
// intake's messages carry an HMAC-SHA256 under a key derived from the masking key, which NATS
// never sees ([HeaderMAC], [EnvelopeKey]); the consumer masks every message whose MAC does not
// verify, whatever it claims to be, and stores its events with origin "unverified".
//
// Anyone who can post to the intake could add events to the trail: the intake requires a
// client certificate its CA signed (kube-apiserver's, in the webhook kubeconfig's users entry;
// see manifests/audit) and re-checks in the handler that the server verified one
// (Options.Authenticate).
//
// The gateway's attributes (session, issuer, subject, client, approval) come from impersonation
// extras, which only the gateway's service account may set (manifests/proxy/rbac.yaml). An
// event joins its gateway record only when both its Audit-ID and its session match, so a direct
// client that replays a gateway request's Audit-ID does not pass for gateway traffic, and a
// reused Audit-ID does not hide an event (the request fingerprint keeps them apart).
package enricher
