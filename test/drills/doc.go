// Package drills holds the audit path's fault drills: tests that run Gatehouse's audit pipeline
// as deployed, as processes (kube-apiserver and etcd of the test bed with the audit webhook and
// the log backend, `gatehouse enricher` with mutual TLS and a spool, NATS JetStream, ClickHouse),
// take one part away for longer than the part in front of it can wait, and count what reached
// ClickHouse against the ground truth: kube-apiserver's own audit log.
//
// Each drill prints one line:
//
//	DRILL <name>: outage=<d> events=<n> lost=<n> duplicated=<n> unrecorded=<n> ...
//
// where
//
//   - events: audit events (audit ID and stage) in kube-apiserver's log while the drill ran;
//   - lost: of those, events ClickHouse does not hold;
//   - duplicated: events ClickHouse holds more often than the log (counted as the auditors'
//     queries count, with FINAL);
//   - unrecorded: requests of the drill's own clients that kube-apiserver answered 2xx and whose
//     ResponseComplete event ClickHouse does not hold.
//
// All three must be zero. The drills:
//
//   - enricher-outage: the enricher is killed (SIGKILL) under load and stays away for longer than
//     kube-apiserver's webhook backend retries a batch, which then drops the batches it could not
//     send (the drill checks that it did); the enricher's audit log follower, the backstop, stores
//     them from the log after the restart, across the log's rotations.
//   - nats-outage: NATS is stopped under load for a minute; the intake keeps accepting batches
//     into its spool and publishes them when NATS is back.
//   - memory: the enricher's peak RSS for one and for eight concurrent maximum-size batches, and
//     for one event larger than the batch limit allows to store whole.
//
// `make drills` runs them at full length (GATEHOUSE_DRILLS=full: a three-minute enricher outage,
// maximum-size batches); `make test` runs a shorter enricher outage and smaller bodies. See
// docs/audit-pipeline.md.
package drills
