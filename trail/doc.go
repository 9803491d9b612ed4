// Package trail holds Gatehouse's audit trail records and moves them over NATS JetStream.
//
// Every component that observes an action writes it to the trail: the front proxy writes a
// [Request] for each API call (with its own policy decision, and every upstream attempt of a
// call admission held for approval) and a [Session] when an agent run starts or stays active,
// the admission webhooks write a [Decision] for each policy evaluation, and the approval broker
// writes an [Approval] for every change of an approval request. The enricher consumes all of
// them and joins them with kube-apiserver audit events by Audit-ID. Every record spells verbs
// the one way kube-apiserver's audit events do (see [Operation]).
//
// # Records
//
// A record is a JSON object with a Kubernetes-style header:
//
//	{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","id":"…","time":"…", …}
//
// The header ([Meta]) names the schema version and the kind; [Decode] turns bytes back into the
// typed record. Within v1, changes are additive only: new optional fields, new kinds. Consumers
// ignore fields they do not know. A change that removes or redefines a field is a new version with
// its own subjects, published side by side until consumers have moved.
//
// Records never carry secret values: tokens, passwords and Secret data are masked or left out by
// the producer before a record is built.
//
// A long request (a watch, followed logs, exec, attach, port-forward) has two Request records:
// the open one (Phase PhaseOpen, ID OpenID of the request's record ID), stored before the proxy
// forwards it, and the finished one. The recordings of exec, attach and port-forward sessions
// travel as [Recording] chunks, hash-chained ([VerifyChain]), on gatehouse.recording.v1.<session>.
// <recording> in the stream StreamRecordings.
//
// # Subjects and streams
//
// Records are published on gatehouse.trail.v1.<kind>.<session>, where <kind> is the lower-case
// kind and <session> the session ID (or "_" when there is none), so a tool that replays one
// session subscribes to gatehouse.trail.v1.*.<session>. Raw kube-apiserver audit batches are
// published on gatehouse.audit.v1.batch. [Streams] returns the JetStream streams that capture both
// subject trees and [EnsureStreams] creates or updates them; [EnricherConsumer] is the durable
// pull consumer the enricher reads with.
//
// # Messages
//
// A message on a trail subject carries the records of that subject only (one kind, one
// session), so NATS permissions on subjects and the consumer's check of every record's subject
// ([Subject]) mean the same for every record of a message. A message of one record is that
// record's JSON, under the record ID as JetStream message ID. A message of several is their
// JSON documents separated by a newline ('\n'; encoded JSON holds no raw newline), under a
// message ID derived from every record's ID (the first ID, "+", the number of the others, ".",
// and a hash of them all), so a message published again is stored once:
//
//	{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","id":"a",…}\n{"apiVersion":…,"id":"b",…}
//
// [DecodeAll] decodes either, deciding every record on its own. A consumer that knows only
// [Decode] reads messages of one record; a message of several is malformed to it, so consumers
// are upgraded before producers pack records. Recording chunks are always one per message.
//
// JetStream deduplicates messages, not records: a record published again under its ID in
// another message is stored again. A [Publisher] therefore packs records only when told to
// (PublisherOptions.MaxBatchRecords), which suits records whose IDs are new for every record
// published (the proxy's), and records whose reader tells copies apart itself: the webhook
// derives a decision's ID from the review's UID, so that a review kube-apiserver retries is one
// decision; each attempt, whatever message it came in, is a row in the enricher's ClickHouse
// tables, and its views show one decision per ID and session (the trail: the attempt
// kube-apiserver acted on), with the number of attempts. Within a subject, records go in the
// order published; records of different subjects handed over together may be stored in another
// order.
//
// # Publishing and consuming
//
// A [Publisher] publishes asynchronously and, when told to, packs the records of one subject
// published within a short delay into as few messages as its bounds allow; a message is retried
// whole under its message ID, so a retry never stores a record twice. It holds a bounded number
// of unacknowledged records, republishes
// those whose acknowledgement failed, and refuses new records with [ErrUnavailable] when NATS
// cannot take them, so callers can fail closed. A [Consumer] reads batches from a durable pull
// consumer and acknowledges a batch only after its handler succeeded.
package trail
