// Package natsbus connects Gatehouse components to NATS JetStream, defines who may do what
// there, and runs an embedded NATS server.
//
// # Identities and permissions
//
// Each component connects with its own identity (a Role): the proxy, the webhook, the enricher
// and the console, plus the administrator who provisions the streams and the approvals bucket
// (Provision). An identity is an NKey: the component holds the seed (--nats-nkey-file), the
// server holds the public key and the role's permissions (Permissions), defined once here and
// used by `gatehouse nats` (the embedded engine as a standalone server, or the authorization
// block it prints for an external nats-server), `gatehouse dev`, the test bed and the chart. A
// role may publish only on the subjects Publish lists and subscribe only to its own inbox
// (Role.InboxPrefix):
//
//   - the proxy publishes its trail records (Request, Session) and the session recordings, and
//     reads and watches the approvals bucket to hold its clients; it cannot write it;
//   - the webhook publishes Decision and Approval records, creates approval requests, indexes
//     them and records the use of their grants; it cannot decide;
//   - the console publishes Approval records and writes decisions; it cannot create requests
//     or use grants;
//   - the enricher publishes audit batches (only it does) and reads the trail, the audit
//     batches and the recordings through its own durable consumers; it cannot touch approvals;
//   - only the administrator creates, changes or deletes streams and buckets; components check
//     that what they need exists (CheckStreams) and say so in their readiness.
//
// # Clusters
//
// The embedded server can be one server of a JetStream cluster (ServerOptions.Cluster), its
// routes secured with mutual TLS; the streams and the approvals bucket are then provisioned with
// three replicas to survive the loss of one server, five for two (ProvisionOptions), and
// components list every server in their URL. A component rides
// through the loss of a server: the client reconnects to another, and while JetStream elects new
// leaders its calls fail closed and are retried.
//
// # Connecting
//
// Outside development mode a component needs a URL, its credentials and TLS (Options.Validate).
// Connect does not wait for the server: a component starts while NATS is away and fails closed
// until it is back, its readiness saying why (Conn.Ready). Only with --dev and no URL does
// Connect start an embedded server without authentication, inside the process.
//
// # Threat model
//
// Permissions bound what a component's credentials can do if they leak or the component is
// taken over; they cannot stop a component from lying within its own subjects. What NATS carries
// is therefore also authenticated where it is used: approval requests, decisions and grant uses
// carry a MAC under a key NATS never sees (package approvals); audit batches carry the intake's
// MAC and are masked again when it fails (package enricher); the enricher stores a trail record
// only when its kind matches the subject it came on, which only that kind's producer may publish
// on; recordings are hash-chained. A consumer's deliver subject is not covered by subject
// permissions (anyone who may create a consumer on a stream can have it copied onto another
// subject): the copies fail those same checks where they are used.
package natsbus
