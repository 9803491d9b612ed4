package enricher

import (
	"context"
	"fmt"
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
// that replica's message. Each attempt is a row of gateway_decisions; decision_summary shows the
// decision once (attempts = 2, the latest attempt's columns), and trail and trail_for join the
// request's audit event once, with the latest attempt, whatever order the attempts arrive in.
//
// A record under an existing decision ID in another session (forged with the webhook's
// credentials, or replayed from another session) is another decision: it replaces nothing, and
// the request's audit event keeps its own session's decision. A record forged under an existing
// decision's ID in the same session cannot be told from a retry: it shows as the decision's latest
// attempt, and decision_summary says there were two attempts (both rows stay in
// gateway_decisions, so the real one is never erased).
func TestRetriedDecisionShownOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
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
		later      = "admission-uid-later-validating"
		replicas   = "admission-uid-replicas-validating"
		reordered  = "admission-uid-reordered-validating"
		forgedSame = "admission-uid-forged-validating"
	)
	// The same replica decides the review again, in a later window: the first attempt held the
	// call for approval, the second admitted it under the grant.
	window(a, decision(later, "s-1", 0, "requireApproval", "attempt 1"))
	window(a, decision(later, "s-1", 2*time.Second, "allow", "attempt 2"))
	// Another replica decides it again.
	window(a, decision(replicas, "s-1", 0, "requireApproval", "attempt 1"))
	window(b, decision(replicas, "s-1", 2*time.Second, "allow", "attempt 2"))
	// The later attempt's record arrives first.
	window(b, decision(reordered, "s-1", 2*time.Second, "allow", "attempt 2"))
	window(a, decision(reordered, "s-1", 0, "requireApproval", "attempt 1"))
	// A record under the ID of s-1's decision, in another session, decided after it.
	window(mallory, decision(later, "s-mallory", 10*time.Second, "allow", "forged"))
	// A record under the ID of s-1's decision, in s-1, decided after it.
	window(a, decision(forgedSame, "s-1", 0, "deny", "attempt 1"))
	window(mallory, decision(forgedSame, "s-1", 10*time.Second, "allow", "forged"))

	// The audit events of the requests, as kube-apiserver wrote them with the webhook's annotations.
	ids := []string{later, replicas, reordered, forgedSame}
	for i, id := range ids {
		require.NoError(t, h.ch.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.audit_events (audit_id, stage, request_received_at, stage_at, verb, resource,
			namespace, name, user, session_id, impersonated, code, admission_decision_id, admission_policy, admission_rule, admission_action)
			VALUES ('audit-%d', 'ResponseComplete', '%s', '%s', 'create', 'configmaps', 'shop', 'cfg', 'oidc:agent', 's-1', true, 201, '%s', 'guard', 'configmaps', 'allow')`,
			h.db, i, at.Format("2006-01-02 15:04:05.000000"), at.Add(3*time.Second).Format("2006-01-02 15:04:05.000000"), id)))
	}
	h.waitRows(t, uint64(published), 30*time.Second, "SELECT count() FROM {db}.gateway_decisions FINAL")
	assert.Less(t, streamMsgs(t, h.js, trail.StreamTrail), uint64(published), "decisions were packed several to a message")

	since := at.Add(-time.Hour).Format(time.DateTime)
	rows := func(q string) [][]string {
		t.Helper()
		return queryRows(t, h.ch, strings.ReplaceAll(strings.ReplaceAll(q, "{db}", h.db), "{since}", since))
	}
	first := at.Format("2006-01-02 15:04:05.000000")
	for _, id := range []string{later, replicas, reordered} {
		t.Run(id, func(t *testing.T) {
			assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2", "2", first, at.Add(2 * time.Second).Format("2006-01-02 15:04:05.000000")}},
				rows("SELECT session_id, action, message, toString(attempts), toString(first_attempt_time), toString(time) FROM {db}.decision_summary WHERE decision_id = '"+id+"' AND session_id = 's-1'"),
				"decision_summary: one row, the latest attempt's")
			assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
				rows("SELECT session_id, decision_action, decision_message FROM {db}.trail WHERE decision_id = '"+id+"'"), "trail: the audit event once")
			assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
				rows("SELECT session_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE decision_id = '"+id+"'"),
				"trail_for: the audit event once")
			assert.Equal(t, [][]string{{"s-1", "allow", "attempt 2"}},
				rows("SELECT session_id, decision_action, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE decision_id = '"+id+"'"),
				"trail_for of any session: the audit event once")
		})
	}
	t.Run("a record under the decision's ID in another session", func(t *testing.T) {
		assert.Equal(t, [][]string{{"s-1", "attempt 2"}, {"s-1", "attempt 1"}, {"s-mallory", "forged"}},
			rows("SELECT session_id, message FROM {db}.gateway_decisions FINAL WHERE id = '"+later+"' ORDER BY session_id, time DESC"), "every record is a row")
		assert.Equal(t, [][]string{{"s-1", "attempt 2", "2"}, {"s-mallory", "forged", "1"}},
			rows("SELECT session_id, message, toString(attempts) FROM {db}.decision_summary WHERE decision_id = '"+later+"' ORDER BY session_id"),
			"another decision: s-1's is not replaced, and auditors see both")
		for _, q := range []string{
			"SELECT audit_id, session_id, decision_message FROM {db}.trail WHERE decision_id = '" + later + "'",
			"SELECT audit_id, session_id, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = '') WHERE decision_id = '" + later + "'",
			"SELECT audit_id, session_id, decision_message FROM {db}.trail_for(since = '{since}', session_id = '', audit_id = 'audit-0')",
		} {
			assert.Equal(t, [][]string{{"audit-0", "s-1", "attempt 2"}}, rows(q), "the request's audit event keeps its session's decision, once: %s", q)
		}
	})
	t.Run("a record forged under the decision's ID in its session", func(t *testing.T) {
		assert.Equal(t, [][]string{{"forged"}, {"attempt 1"}},
			rows("SELECT message FROM {db}.gateway_decisions FINAL WHERE id = '"+forgedSame+"' ORDER BY time DESC"), "the real decision is not erased")
		// It cannot be told from a retry decided later: it is the latest attempt, and the count of
		// attempts shows there was another.
		assert.Equal(t, [][]string{{"s-1", "allow", "forged", "2"}},
			rows("SELECT session_id, action, message, toString(attempts) FROM {db}.decision_summary WHERE decision_id = '"+forgedSame+"'"))
		assert.Equal(t, [][]string{{"audit-3", "forged"}},
			rows("SELECT audit_id, decision_message FROM {db}.trail WHERE decision_id = '"+forgedSame+"'"), "the audit event once, with the latest attempt")
	})
	assert.Equal(t, [][]string{{fmt.Sprint(len(ids))}},
		rows("SELECT toString(count()) FROM {db}.trail WHERE audit_id LIKE 'audit-%'"), "no audit event is joined twice")
	assert.Equal(t, [][]string{{fmt.Sprint(len(ids))}},
		rows("SELECT toString(count()) FROM {db}.trail_for(since = '{since}', session_id = 's-1', audit_id = '') WHERE audit_id LIKE 'audit-%'"), "no audit event is joined twice")
}
