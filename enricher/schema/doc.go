// Package schema holds the enricher's ClickHouse schema as versioned migrations embedded in the
// binary, and applies them idempotently at start.
//
// # Tables and views
//
// One table per record type, each a ReplacingMergeTree whose sorting key identifies a record, so
// a record stored twice is one row in every query that reads with FINAL:
//
//   - audit_events: kube-apiserver audit events, masked, with the gateway's impersonation extras
//     (session, issuer, subject, client, approval) in their own columns. Key: user, time,
//     auditID, stage and a fingerprint of the request (event_key).
//   - gateway_requests, gateway_decisions, sessions: the gateway's trail records (Request,
//     Decision, Session), keyed by record ID.
//   - approvals: approval records (requested, approved, denied, ...), keyed by record ID.
//   - ingest_errors: messages that could not be decoded, by stream sequence.
//   - dead_letters: rows ClickHouse rejected for good, as JSON with the error, keyed by the
//     table they were meant for and their record.
//
// The views join them at query time: trail (one row per audit event with its gateway record,
// admission decision and approval, plus one row per gateway record without audit event, each
// labelled with its route, attempt, outcome and actor kind), trail_for (the same, parameterized
// by a start time, a session and an Audit-ID, reading only what can join its rows: the canned
// queries use it), decision_summary, approval_summary, session_summary, open_streams,
// recording_summary, ingest_error_log and dead_letter_log. Because the join happens when the view
// is read, a record that arrives late still joins. Admission decisions join on the decision ID
// the validating webhook writes into the request's audit annotations and on the request's
// session, never on an AdmissionReview UID. A review kube-apiserver sent again is one decision
// ID decided once per attempt, each attempt a row of gateway_decisions (its key holds the time):
// decision_summary shows one decision per ID and session, its first attempt, and counts the
// attempts; the trail joins an audit event with the first attempt of its session and of the
// action its audit annotations name, the one kube-apiserver acted on. First is in the order
// JetStream stored the attempts in (gateway_decisions.stream_sequence, then record_index, both
// in the table's key so that no merge replaces one attempt with another), which no publisher
// chooses, whatever time a record claims; except for rows without a sequence (stored by an
// enricher older than migration 7: by the time they claim) and after the stream is re-created
// without a first sequence above the old one's (views.sql, decision_summary). The views run with their definer's
// rights (SQL SECURITY DEFINER): the auditors' role needs SELECT on them only (AuditorGrants).
//
// # Canned queries
//
// queries/NN_name.sql are the auditors' queries of docs/auditing.md, which shows the same text
// (a test compares them); gatehouse sql runs them by name (Queries, LookupQuery).
//
// # Migrations
//
// migrations/NNNN_name.sql are applied in order, once: schema_migrations records each applied
// version. Every statement is idempotent (IF NOT EXISTS), so two enrichers starting at the same
// time converge, and none drops a row. A change to an applied migration is a new migration.
// Retention (TTL, per table), the views and the auditors' role follow the options and are
// re-applied at every start.
package schema
