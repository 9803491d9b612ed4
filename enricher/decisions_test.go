package enricher

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestRetriedDecisionShownOnce: the validating webhook derives a decision's ID from the
// AdmissionReview's UID, so that a review kube-apiserver sends again is the same decision. With
// decisions packed several to a message, JetStream no longer tells the attempts apart: an attempt
// decided again by the same replica goes in a later message, one decided by another replica in
// that replica's message. Each attempt is a row of gateway_decisions, which keeps where JetStream
// stored it (the message's stream sequence and the record's line in it); decision_summary shows
// the decision once (attempts = 2, the columns and time of the attempt JetStream stored first,
// last_attempt_time), and trail and trail_for join the request's audit event once, with the first
// stored attempt of the action kube-apiserver acted on (the action of its audit annotations),
// whatever order the attempts arrive in.
//
// A record under an existing decision ID in another session (forged with the webhook's
// credentials, or replayed from another session) is another decision: it replaces nothing, and
// the request's audit event keeps its own session's decision. A record forged under an existing
// decision's ID in the same session is an extra attempt, stored after the real one whatever time
// it claims: it changes neither the trail (whether or not its action is the one kube-apiserver
// acted on) nor the decision's columns and time, so a query for a window of time still finds the
// decision. A copy of an attempt (a redelivery, or one JetStream stored again in a later message)
// is not an attempt. The views show the same rows after ClickHouse merged the parts. An audit
// event without a session (a user the enricher does not take for a gateway impersonated with the
// session extra) shows the decision of the one session that holds its ID, and none when two
// sessions hold it at any time, or a record without a session does: trail and trail_for agree
// even when the other session's record lies outside the window.
func TestRetriedDecisionShownOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	// Parts stay unmerged, as they are until ClickHouse gets to them: a copy of an attempt is a row
	// of its own until the views leave it out.
	require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf("SYSTEM STOP MERGES %s.gateway_decisions", h.db)))
	t.Cleanup(func() {
		_ = h.ch.Exec(context.Background(), fmt.Sprintf("SYSTEM START MERGES %s.gateway_decisions", h.db))
	})
	published := 0
	replica := func(name string) *trail.Publisher {
		pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "validating-webhook/" + name, MaxBatchRecords: trail.PackedRecords})
		require.NoError(t, err)
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
		return pub
	}
	a, b, mallory := replica("replica-a"), replica("replica-b"), replica("mallory")
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	decision := func(id, session string, d time.Duration, action, message string) *trail.Decision {
		return &trail.Decision{Meta: trail.Meta{ID: id, Time: at.Add(d)}, Component: "validating-webhook", AdmissionUID: strings.TrimPrefix(id, "admission-"),
			SessionID: session, Identity: trail.Identity{User: "oidc:agent"}, ViaGateway: true,
			Operation: trail.Operation{Verb: "create", Resource: "configmaps", Namespace: "shop", Name: "cfg"},
			Policy:    trail.Policy{Policy: "guard", Rule: "configmaps", Action: action, Message: message}}
	}
	// window publishes one attempt with another decision of its session, which the publisher packs
	// into one message, and waits until JetStream stored it: the next window's is another message.
	window := func(pub *trail.Publisher, rec *trail.Decision) {
		t.Helper()
		before := streamMsgs(t, h.js, trail.StreamTrail)
		require.NoError(t, pub.Publish(ctx, rec))
		require.NoError(t, pub.Publish(ctx, decision(fmt.Sprintf("admission-other-%d", published), rec.SessionID, 0, "allow", "another review")))
		published += 2
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return streamMsgs(t, h.js, trail.StreamTrail) == before+1, nil
		}), "one message of two records")
	}
	const (
		later        = "admission-uid-later-validating"
		replicas     = "admission-uid-replicas-validating"
		reordered    = "admission-uid-reordered-validating"
		forgedSame   = "admission-uid-forged-validating"
		forgedLate   = "admission-uid-forged-late-validating"
		forgedEarly  = "admission-uid-forged-early-validating"
		forgedAction = "admission-uid-forged-action-validating"
		outside      = "admission-uid-outside-validating"
		impersonated = "admission-uid-impersonated-validating"
		otherAction  = "admission-uid-other-action-validating"
		sessionless  = "admission-uid-sessionless-validating"
	)
	// The same replica decides the review again, in a later window: the first attempt held the
	// call for approval, the second admitted it under the grant.
	laterFirst := decision(later, "s-1", 0, "requireApproval", "attempt 1")
	window(a, laterFirst)
	window(a, decision(later, "s-1", 2*time.Second, "allow", "attempt 2"))
	// Another replica decides it again.
	window(a, decision(replicas, "s-1", 0, "requireApproval", "attempt 1"))
	window(b, decision(replicas, "s-1", 2*time.Second, "allow", "attempt 2"))
	// The later attempt's record arrives first.
	window(b, decision(reordered, "s-1", 2*time.Second, "allow", "attempt 2"))
	window(a, decision(reordered, "s-1", 0, "requireApproval", "attempt 1"))
	// A record under the ID of s-1's decision, in another session, decided after it.
	window(mallory, decision(later, "s-mallory", 10*time.Second, "allow", "forged"))
	// Records under the ID of s-1's decision, in s-1, decided after it: 10 s later, and two days.
	window(a, decision(forgedSame, "s-1", 0, "deny", "attempt 1"))
	window(mallory, decision(forgedSame, "s-1", 10*time.Second, "allow", "forged"))
	window(a, decision(forgedLate, "s-1", 0, "deny", "attempt 1"))
	window(mallory, decision(forgedLate, "s-1", 48*time.Hour, "allow", "forged"))
	// Published after it, dated two days before it.
	window(a, decision(forgedEarly, "s-1", 0, "deny", "attempt 1"))
	window(mallory, decision(forgedEarly, "s-1", -48*time.Hour, "allow", "forged"))
	// Decided after it, with the action kube-apiserver acted on.
	window(a, decision(forgedAction, "s-1", 0, "deny", "attempt 1"))
	window(mallory, decision(forgedAction, "s-1", 10*time.Second, "deny", "forged"))
	// A decision only s-1 holds.
	window(a, decision(impersonated, "s-1", 0, "allow", "impersonated"))
	// A decision two sessions hold, with different actions.
	window(a, decision(otherAction, "s-1", 0, "allow", "s-1's"))
	window(mallory, decision(otherAction, "s-mallory", time.Second, "deny", "forged"))
	// A decision two sessions hold, the other session's record two days before the window.
	window(a, decision(outside, "s-1", 0, "allow", "s-1's"))
	window(mallory, decision(outside, "s-mallory", -48*time.Hour, "allow", "forged"))
	// A decision of s-1, and a record forged under its ID without a session.
	window(a, decision(sessionless, "s-1", 0, "allow", "s-1's"))
	window(mallory, decision(sessionless, "", time.Second, "allow", "forged sessionless"))
	// The first attempt of later, delivered again in a later message: the same record.
	window(a, laterFirst)
	distinct := published - 1

	// The audit events of the requests, as kube-apiserver wrote them with the webhook's
	// annotations: the action of the attempt whose answer it used.
	events := []struct{ auditID, session, id, action string }{
		{"audit-0", "s-1", later, "allow"},
		{"audit-1", "s-1", replicas, "allow"},
		{"audit-2", "s-1", reordered, "allow"},
		{"audit-3", "s-1", forgedSame, "deny"},
		{"audit-4", "s-1", forgedAction, "deny"},
		// Without a session: the enricher did not keep the session extra of a user it does not
		// take for a gateway.
		{"direct-0", "", impersonated, "allow"},
		{"direct-1", "", later, "allow"},
		{"direct-2", "", otherAction, "allow"},
		{"direct-3", "", outside, "allow"},
		{"direct-4", "", sessionless, "allow"},
	}
	for _, e := range events {
		code := 201
		if e.action == "deny" {
			code = 403
		}
		require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.audit_events (audit_id, stage, request_received_at, stage_at, verb, resource,
			namespace, name, user, session_id, impersonated, code, admission_decision_id, admission_policy, admission_rule, admission_action)
			VALUES ('%s', 'ResponseComplete', '%s', '%s', 'create', 'configmaps', 'shop', 'cfg', 'oidc:agent', '%s', true, %d, '%s', 'guard', 'configmaps', '%s')`,
			h.db, e.auditID, at.Format("2006-01-02 15:04:05.000000"), at.Add(3*time.Second).Format("2006-01-02 15:04:05.000000"), e.session, code, e.id, e.action)))
	}
	// The copy of later's first attempt JetStream stored in another message is a row of its own.
	h.waitRows(t, uint64(distinct), 30*time.Second, "SELECT uniqExact(session_id, time, id) FROM {db}.gateway_decisions FINAL")
	assert.Less(t, streamMsgs(t, h.js, trail.StreamTrail), uint64(published), "decisions were packed several to a message")
	// An attempt inserted twice: a part of its own holds the copy.
	require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf("INSERT INTO %[1]s.gateway_decisions SELECT * FROM %[1]s.gateway_decisions WHERE id = '%[2]s' AND message = 'attempt 2' LIMIT 1", h.db, replicas)))
	require.GreaterOrEqual(t, h.count(t, "SELECT count() FROM {db}.gateway_decisions"), uint64(distinct+1), "the copy is stored")

	since := at.Add(-time.Hour).Format(time.DateTime)
	rows := func(q string) [][]string {
		t.Helper()
		return queryRows(t, h.ch, strings.ReplaceAll(strings.ReplaceAll(q, "{db}", h.db), "{since}", since))
	}
	first := at.Format("2006-01-02 15:04:05.000000")
	second := at.Add(2 * time.Second).Format("2006-01-02 15:04:05.000000")
	views := func(t *testing.T, merged bool) {
		for _, tc := range []struct {
			id    string
			first []string // decision_summary's action, message and time: the attempt stored first
		}{
			{later, []string{"requireApproval", "attempt 1", first}},
			{replicas, []string{"requireApproval", "attempt 1", first}},
			// Stored first, though decided after the other: JetStream's order is the one no
			// publisher can choose.
			{reordered, []string{"allow", "attempt 2", second}},
		} {
			id := tc.id
			t.Run(id, func(t *testing.T) {
				assert.Equal(t, [][]string{append(append([]string{"s-1"}, tc.first...), "2", second)},
					rows("SELECT session_id, action, message, toString(time), toString(attempts), toString(last_attempt_time) FROM {db}.decision_summary WHERE decision_id = '"+id+"' AND session_id = 's-1'"),
					"decision_summary: one row, the first stored attempt's; a copy of an attempt is not another")
				assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
					rows("SELECT session_id, decision_action, decision_message FROM {db}.trail WHERE decision_id = '"+id+"' AND session_id = 's-1'"), "trail: the audit event once")
				assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
					rows("SELECT session_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE decision_id = '"+id+"'"),
					"trail_for: the audit event once")
				assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
					rows("SELECT session_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE decision_id = '"+id+"' AND session_id = 's-1'"),
					"trail_for of any session: the audit event once")
			})
		}
		t.Run("a copy of an attempt", func(t *testing.T) {
			for _, id := range []string{later, replicas} {
				assert.Equal(t, [][]string{{"2"}}, rows("SELECT toString(attempts) FROM {db}.decision_summary WHERE decision_id = '"+id+"' AND session_id = 's-1'"),
					"one row, and the copy is not an attempt: %s", id)
				assert.Equal(t, [][]string{{"2"}}, rows("SELECT toString(uniqExact(session_id, time, id)) FROM {db}.gateway_decisions FINAL WHERE id = '"+id+"' AND session_id = 's-1'"), id)
			}
			assert.Equal(t, [][]string{{"3"}}, rows("SELECT toString(count()) FROM {db}.gateway_decisions FINAL WHERE id = '"+later+"' AND session_id = 's-1'"),
				"a copy JetStream stored again, in another message, is a row of its own, merged or not")
			if !merged {
				assert.Equal(t, [][]string{{"3"}}, rows("SELECT toString(count()) FROM {db}.gateway_decisions WHERE id = '"+replicas+"' AND session_id = 's-1'"),
					"the copy is a row of its own until ClickHouse merges it")
			}
		})
		t.Run("a record under the decision's ID in another session", func(t *testing.T) {
			assert.Equal(t, [][]string{{"s-1", "attempt 2"}, {"s-1", "attempt 1"}, {"s-mallory", "forged"}},
				rows("SELECT session_id, message FROM {db}.gateway_decisions FINAL WHERE id = '"+later+"' ORDER BY session_id, time DESC LIMIT 1 BY session_id, time, id"),
				"every record is a row")
			assert.Equal(t, [][]string{{"s-1", "attempt 1", "2"}, {"s-mallory", "forged", "1"}},
				rows("SELECT session_id, message, toString(attempts) FROM {db}.decision_summary WHERE decision_id = '"+later+"' ORDER BY session_id"),
				"another decision: s-1's is not replaced, and auditors see both")
			for _, q := range []string{
				"SELECT audit_id, session_id, decision_message FROM {db}.trail WHERE decision_id = '" + later + "' AND session_id != ''",
				"SELECT audit_id, session_id, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE decision_id = '" + later + "' AND session_id != ''",
				"SELECT audit_id, session_id, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = 'audit-0')",
			} {
				assert.Equal(t, [][]string{{"audit-0", "s-1", "attempt 2"}}, rows(q), "the request's audit event keeps its session's decision, once: %s", q)
			}
		})
		t.Run("a record forged under the decision's ID in its session", func(t *testing.T) {
			assert.Equal(t, [][]string{{"forged"}, {"attempt 1"}},
				rows("SELECT message FROM {db}.gateway_decisions FINAL WHERE id = '"+forgedSame+"' ORDER BY time DESC"), "the real decision is not erased")
			assert.Equal(t, [][]string{{"s-1", "deny", "attempt 1", "2"}},
				rows("SELECT session_id, action, message, toString(attempts) FROM {db}.decision_summary WHERE decision_id = '"+forgedSame+"'"),
				"the first attempt, and the count of attempts shows there was another")
			for _, q := range []string{
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail WHERE decision_id = '" + forgedSame + "'",
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE decision_id = '" + forgedSame + "'",
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = 'audit-3')",
			} {
				assert.Equal(t, [][]string{{"audit-3", "deny", "attempt 1"}}, rows(q), "the attempt kube-apiserver acted on, once, not the later one: %s", q)
			}
		})
		t.Run("a record forged two days after the decision", func(t *testing.T) {
			lo, hi := at.Add(-time.Hour).Format(time.DateTime), at.Add(time.Hour).Format(time.DateTime)
			assert.Equal(t, [][]string{{"deny", "attempt 1", "2", first, at.Add(48 * time.Hour).Format("2006-01-02 15:04:05.000000")}},
				rows("SELECT action, message, toString(attempts), toString(time), toString(last_attempt_time) FROM {db}.decision_summary WHERE time BETWEEN '"+lo+"' AND '"+hi+"' AND decision_id = '"+forgedLate+"'"),
				"a query for the window of the decision still finds it")
			assert.Equal(t, [][]string{{"deny", "attempt 1", "2"}},
				rows("SELECT action, message, toString(attempts) FROM {db}.decision_summary WHERE time BETWEEN '"+lo+"' AND '"+hi+"' AND session_id = 's-1' AND decision_id = '"+forgedLate+"'"),
				"with the session too")
		})
		t.Run("a record published after the decision in its session, dated two days before it", func(t *testing.T) {
			assert.Equal(t, [][]string{{"forged", "allow"}, {"attempt 1", "deny"}},
				rows("SELECT message, action FROM {db}.gateway_decisions FINAL WHERE id = '"+forgedEarly+"' ORDER BY time"), "both are stored")
			lo, hi := at.Add(-time.Hour).Format(time.DateTime), at.Add(time.Hour).Format(time.DateTime)
			for _, q := range []string{
				"SELECT action, message, toString(attempts), toString(time), toString(last_attempt_time) FROM {db}.decision_summary WHERE decision_id = '" + forgedEarly + "'",
				"SELECT action, message, toString(attempts), toString(time), toString(last_attempt_time) FROM {db}.decision_summary WHERE time BETWEEN '" + lo + "' AND '" + hi + "' AND decision_id = '" + forgedEarly + "'",
				"SELECT action, message, toString(attempts), toString(time), toString(last_attempt_time) FROM {db}.decision_summary WHERE time BETWEEN '" + lo + "' AND '" + hi + "' AND session_id = 's-1' AND decision_id = '" + forgedEarly + "'",
			} {
				assert.Equal(t, [][]string{{"deny", "attempt 1", "2", first, first}}, rows(q),
					"the attempt stored first keeps the row, and a query for its window of time finds it: %s", q)
			}
		})
		t.Run("a record forged after the decision with the action kube-apiserver acted on", func(t *testing.T) {
			for _, q := range []string{
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail WHERE decision_id = '" + forgedAction + "'",
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE decision_id = '" + forgedAction + "'",
				"SELECT audit_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = 'audit-4')",
			} {
				assert.Equal(t, [][]string{{"audit-4", "deny", "attempt 1"}}, rows(q), "the first stored attempt of that action, not the later record: %s", q)
			}
		})
		t.Run("where JetStream stored each record", func(t *testing.T) {
			// Each window's message holds the attempt, then the other decision.
			assert.Equal(t, [][]string{{"1", "1", "1"}}, rows("SELECT toString(min(record_index)), toString(max(record_index)), toString(min(stream_sequence) > 0) FROM {db}.gateway_decisions WHERE id LIKE 'admission-uid-%'"))
			assert.Equal(t, [][]string{{"2", "2", "1"}}, rows("SELECT toString(min(record_index)), toString(max(record_index)), toString(min(stream_sequence) > 0) FROM {db}.gateway_decisions WHERE id LIKE 'admission-other-%'"))
			assert.Equal(t, [][]string{{"1"}}, rows("SELECT toString(uniqExact(stream_sequence)) FROM {db}.gateway_decisions WHERE id = '"+replicas+"' AND message = 'attempt 2'"),
				"a copy of a record keeps where it was stored")
		})
		t.Run("an audit event without a session", func(t *testing.T) {
			for _, q := range []string{
				"SELECT audit_id, decision_component, decision_action, decision_message FROM {db}.trail WHERE audit_id LIKE 'direct-%' ORDER BY audit_id",
				"SELECT audit_id, decision_component, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE audit_id LIKE 'direct-%' ORDER BY audit_id",
			} {
				assert.Equal(t, [][]string{{"direct-0", "validating-webhook", "allow", "impersonated"}, {"direct-1", "", "allow", ""}, {"direct-2", "", "allow", ""},
					{"direct-3", "", "allow", ""}, {"direct-4", "", "allow", ""}}, rows(q),
					"the decision of the one session holding its ID; none when two sessions hold it, whenever they do, and a record without a session is one: %s", q)
			}
			for _, id := range []string{"direct-0", "direct-1", "direct-2", "direct-3", "direct-4"} {
				assert.Equal(t, rows("SELECT audit_id, decision_component, decision_message FROM {db}.trail WHERE audit_id = '"+id+"'"),
					rows("SELECT audit_id, decision_component, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '"+id+"')"), "trail and trail_for of one Audit-ID agree")
			}
		})
		for _, q := range []string{
			"SELECT toString(count()) FROM {db}.trail WHERE audit_id LIKE 'audit-%' OR audit_id LIKE 'direct-%'",
			"SELECT toString(count()) FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE audit_id LIKE 'audit-%' OR audit_id LIKE 'direct-%'",
		} {
			assert.Equal(t, [][]string{{fmt.Sprint(len(events))}}, rows(q), "no audit event is joined twice: %s", q)
		}
		assert.Equal(t, [][]string{{"5"}},
			rows("SELECT toString(count()) FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE audit_id LIKE 'audit-%'"), "no audit event is joined twice")
	}
	views(t, false)
	// ClickHouse merges the parts: the views show the same rows. Before migration 7 extended the
	// table's key with where JetStream stored each record, a merge kept the copy of later's first
	// attempt stored last, and a record forged with an attempt's session, time and ID replaced it.
	require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf("SYSTEM START MERGES %s.gateway_decisions", h.db)))
	require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.gateway_decisions FINAL", h.db)))
	t.Run("after a merge", func(t *testing.T) { views(t, true) })
}

// TestDecisionSequence: a decision whose message's place in the stream cannot be read is stored
// as the last stored attempt under its ID, never as the first (sequence 0 orders before every
// other row in the views).
func TestDecisionSequence(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  rowSource
		want uint64
	}{
		{"the message's stream sequence", rowSource{stream: trail.StreamTrail, sequence: 42}, 42},
		{"no metadata: stored last", rowSource{subject: "gatehouse.trail.decision"}, math.MaxUint64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, decisionSequence(tc.src))
		})
	}
}
