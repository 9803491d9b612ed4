// Package sessionlog reads what Gatehouse recorded of a session from the enricher's ClickHouse
// database: the sessions, a session's timeline (every API call with its identity, policy
// decision, approval, outcome and a summary of what it carried, masked, and the exec, attach and
// port-forward sessions it opened with what was run in them), the recordings and their hash
// chains, and the session's writes, which Replay re-issues against a cluster (dry run by default)
// to report whether each would succeed now and how its answer differs from the recorded one.
//
// It is the data access of `gatehouse sessions` and of any other viewer of the trail (the
// approvals console): it only reads, and everything it returns was masked before it was stored.
//
// # Threat model
//
// What the store holds is masked, so what this package returns is too. A recording's chunks are
// hash-chained by the proxy that produced them (trail.VerifyChain): a chunk changed, removed or
// reordered in ClickHouse (or on the way) no longer verifies. An attacker who can rewrite every
// chunk from the changed one on, consistently, is not detected by the chain alone: keep the head
// hash Verify returns (it is also in the last chunk in JetStream) where the database's writers
// cannot change it. Replay sends masked objects: against a real cluster (not a dry run) it
// writes placeholders where secrets were.
package sessionlog
