package schema_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

// TestLongHeldStreams: a stream admission held and the proxy re-sent has two open records (the
// request's, and the re-sent attempt's) while it runs; its attempts join them as held and open,
// open_streams lists it once, and the finished record closes it. trail_for gives the rows trail
// gives, whatever the window, session or Audit-ID.
func TestLongHeldStreams(t *testing.T) {
	ctx := t.Context()
	conn := connect(t, clickhouse.Native)
	db := "schema_test_streams"
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
	at := time.Now().UTC().Add(-time.Minute)
	ts := func(d time.Duration) string { return at.Add(d).Format("2006-01-02 15:04:05.000000") }
	exec := func(q string, args ...any) {
		t.Helper()
		require.NoError(t, conn.Exec(ctx, fmt.Sprintf(q, args...)))
	}
	event := func(id, stage string, code int, d time.Duration) {
		exec(`INSERT INTO %s.audit_events (audit_id, stage, request_received_at, stage_at, verb, resource, subresource, namespace, name, user,
			user_groups, session_id, code, impersonated) VALUES ('%s', '%s', '%s', '%s', 'get', 'pods', 'exec', 'shop', 'db-0', 'oidc:agent', ['agents'], 's-1', %d, true)`,
			db, id, stage, ts(d), ts(d), code)
	}
	record := func(id, auditID, heldID, phase string, code int) {
		exec(`INSERT INTO %s.gateway_requests (id, time, audit_id, held_audit_id, session_id, user, verb, resource, subresource, namespace, name,
			code, approval_id, phase, recording_id) VALUES ('%s', '%s', '%s', '%s', 's-1', 'oidc:agent', 'create', 'pods', 'exec', 'shop', 'db-0', %d, 'ap-1', '%s', 'X')`,
			db, id, ts(0), auditID, heldID, code, phase)
	}
	rows := func(q string) []string {
		t.Helper()
		r, err := conn.Query(ctx, q)
		require.NoError(t, err, q)
		defer r.Close()
		var out []string
		for r.Next() {
			var a, b, c, d string
			require.NoError(t, r.Scan(&a, &b, &c, &d))
			out = append(out, strings.Join([]string{a, b, c, d}, " "))
		}
		require.NoError(t, r.Err())
		sort.Strings(out)
		return out
	}
	trail := func() []string {
		return rows("SELECT audit_id, stage, attempt, outcome FROM " + db + ".trail")
	}
	sameInTrailFor := func() {
		t.Helper()
		for _, args := range []string{
			"since = '2000-01-01 00:00:00', session_id = '', audit_id = ''",
			"since = '2000-01-01 00:00:00', session_id = 's-1', audit_id = ''",
			"since = '" + ts(-time.Hour) + "', session_id = '', audit_id = 'X'",
			"since = '" + ts(-time.Hour) + "', session_id = '', audit_id = 'Y'",
		} {
			got := rows("SELECT audit_id, stage, attempt, outcome FROM " + db + ".trail_for(" + args + ")")
			var want []string
			for _, r := range trail() {
				if strings.Contains(args, "audit_id = 'X'") && !strings.HasPrefix(r, "X ") ||
					strings.Contains(args, "audit_id = 'Y'") && !strings.HasPrefix(r, "Y ") {
					continue
				}
				want = append(want, r)
			}
			assert.Equal(t, want, got, "trail_for(%s)", args)
		}
		assert.Empty(t, rows("SELECT audit_id, stage, attempt, outcome FROM "+db+".trail_for(since = '"+ts(time.Hour)+"', session_id = '', audit_id = '')"),
			"nothing after the window's start")
	}

	// The exec is held: its open record is stored, admission refuses the first attempt X.
	record("X/open", "X", "", "Open", 0)
	event("X", "ResponseComplete", 403, 0)
	assert.Equal(t, []string{"X ResponseComplete open denied"}, trail(), "until it is re-sent, the 403 is all there is")
	// Approved, re-sent as Y, which is streaming.
	record("Y/open", "Y", "X", "Open", 0)
	event("Y", "ResponseStarted", 101, 40*time.Second)
	assert.Equal(t, []string{"X ResponseComplete held held", "Y ResponseStarted open open"}, trail())
	assert.Equal(t, []string{"X Y X "}, rows("SELECT record_id, audit_id, held_audit_id, '' FROM "+db+".open_streams"), "listed once, on the attempt it runs on")
	sameInTrailFor()

	// The exec ends.
	record("X", "Y", "X", "", 101)
	event("Y", "ResponseComplete", 101, 40*time.Second)
	assert.Equal(t, []string{"X ResponseComplete held held", "Y ResponseComplete answered succeeded", "Y ResponseStarted answered started"}, trail())
	assert.Empty(t, rows("SELECT record_id, audit_id, held_audit_id, '' FROM "+db+".open_streams"))
	var changed uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT countIf(changed) FROM "+db+".trail").Scan(&changed))
	assert.Zero(t, changed, "an exec changes no object")
	sameInTrailFor()

	// A stream whose events never came (its proxy stopped before kube-apiserver answered).
	record("Z/open", "Z", "", "Open", 0)
	assert.Contains(t, trail(), "Z  open open")
	assert.Equal(t, []string{"Z Z  "}, rows("SELECT record_id, audit_id, held_audit_id, '' FROM "+db+".open_streams"))
}

// TestDecisionOrder: decision_summary takes a decision's first attempt, and the trail an audit
// event's attempt of the action kube-apiserver acted on, by the order JetStream stored them
// (stream_sequence, then record_index), whatever time a record claims, before and after
// ClickHouse merges the parts: a copy stored again later, or a record forged with an attempt's
// session, time and ID, does not replace it. Rows without a sequence (stored by an enricher older
// than migration 7) count as stored before every row with one, and among themselves by the time
// they claim; a copy of a record keeps its place.
func TestDecisionOrder(t *testing.T) {
	ctx := t.Context()
	conn := connect(t, clickhouse.Native)
	db := "schema_test_decision_order"
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	ts := func(d time.Duration) string { return at.Add(d).Format("2006-01-02 15:04:05.000000") }
	type record struct {
		d        time.Duration
		seq      uint64
		index    uint32
		message  string
		ingested time.Duration // after at: when the enricher stored it
	}
	tests := []struct {
		name     string
		records  []record // in the order they are inserted
		first    string
		d        time.Duration
		attempts int
	}{
		{"rows of an enricher older than migration 7 stored together, by time", []record{{2 * time.Second, 0, 0, "second", 0}, {0, 0, 0, "first", 0}}, "first", 0, 2},
		{"rows of an enricher older than migration 7, by the time they claim, whenever it stored them",
			[]record{{0, 0, 0, "stored first", time.Second}, {-48 * time.Hour, 0, 0, "dated first", 2 * time.Second}}, "dated first", -48 * time.Hour, 2},
		{"a copy an enricher older than migration 7 stored again does not move the first",
			[]record{{0, 0, 0, "a", 10 * time.Second}, {time.Second, 0, 0, "b", 70 * time.Second}, {0, 0, 0, "a", 130 * time.Second}}, "a", 0, 2},
		{"the stored order, whatever time a record claims", []record{{0, 20, 1, "stored first", 0}, {-48 * time.Hour, 30, 1, "stored later", 0}}, "stored first", 0, 2},
		{"the lines of one message", []record{{time.Second, 20, 1, "line 1", 0}, {0, 20, 2, "line 2", 0}}, "line 1", time.Second, 2},
		{"rows without a sequence before rows with one", []record{{0, 0, 0, "old enricher", time.Second}, {-time.Hour, 40, 1, "new enricher", 0}}, "old enricher", 0, 2},
		{"a copy keeps its place", []record{{0, 20, 1, "first", 0}, {time.Second, 25, 1, "second", 0}, {0, 20, 1, "first", 0}}, "first", 0, 2},
		{"a copy stored again later does not move the first", []record{{0, 1, 1, "a1", 0}, {2 * time.Second, 2, 1, "a2", 0}, {0, 20, 1, "a1", 0}}, "a1", 0, 2},
		{"a record forged with an attempt's session, time and ID does not replace it",
			[]record{{0, 10, 1, "real", 0}, {0, 30, 1, "forged", 0}}, "real", 0, 1},
		{"the message before the line", []record{{time.Second, 20, 2, "message 20", 0}, {0, 30, 1, "message 30", 0}}, "message 20", time.Second, 2},
		{"the line before the time, however far apart", []record{{30 * 24 * time.Hour, 20, 1, "line 1", 0}, {0, 20, 2, "line 2", 0}}, "line 1", 30 * 24 * time.Hour, 2},
		{"a record whose place was not known is stored last", []record{{time.Second, math.MaxUint64, 1, "unknown place", 0}, {0, 50, 1, "known place", 0}}, "known place", 0, 2},
	}
	// trail_for reads the decisions of its window's time only: a first attempt 30 days after the
	// request, or one dated two days before it, is not in it.
	outsideWindow := map[string]bool{"the line before the time, however far apart": true,
		"rows of an enricher older than migration 7, by the time they claim, whenever it stored them": true}
	check := func(t *testing.T, i int, name, want string, d time.Duration, wantAttempts int, when string) {
		t.Helper()
		id := fmt.Sprintf("d-%d", i)
		var message, first string
		var attempts uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT message, toString(time), attempts FROM "+db+".decision_summary WHERE decision_id = {id:String}",
			clickhouse.Named("id", id)).Scan(&message, &first, &attempts))
		assert.Equal(t, []string{want, ts(d)}, []string{message, first}, "decision_summary %s: the first stored attempt's columns and time", when)
		assert.Equal(t, uint64(wantAttempts), attempts, when)
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".decision_summary WHERE decision_id = {id:String}",
			clickhouse.Named("id", id)).Scan(&n))
		assert.Equal(t, uint64(1), n, "decision_summary %s: one row per decision", when)
		for _, from := range []string{"trail", "trail_for(since = '" + ts(-time.Hour) + "', session_id = '', audit_id = '')"} {
			if outsideWindow[name] && from != "trail" {
				continue
			}
			require.NoError(t, conn.QueryRow(ctx, "SELECT decision_message FROM "+db+"."+from+" WHERE decision_id = {id:String}",
				clickhouse.Named("id", id)).Scan(&message))
			assert.Equal(t, want, message, "%s %s: the first stored attempt with the action acted on", from, when)
		}
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("d-%d", i)
			for _, r := range tc.records {
				cols, vals := "", ""
				if r.seq != 0 { // as an enricher older than migration 7 inserts: without the columns
					cols, vals = ", stream_sequence, record_index", fmt.Sprintf(", %d, %d", r.seq, r.index)
				}
				require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.gateway_decisions (id, time, ingested_at, component, session_id, action, message%s)
					VALUES ('%s', '%s', '%s', 'validating-webhook', 's-1', 'deny', '%s'%s)`, db, cols, id, ts(r.d), ts(r.ingested), r.message, vals)))
			}
			require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.audit_events (audit_id, stage, request_received_at, stage_at, verb, session_id, code,
				admission_decision_id, admission_action) VALUES ('a-%d', 'ResponseComplete', '%s', '%s', 'create', 's-1', 403, '%s', 'deny')`,
				db, i, ts(0), ts(0), id)))
			check(t, i, tc.name, tc.first, tc.d, tc.attempts, "before a merge")
		})
	}
	// ClickHouse merges the parts: what the views show does not change.
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE "+db+".gateway_decisions FINAL"))
	for i, tc := range tests {
		t.Run(tc.name+" after a merge", func(t *testing.T) {
			check(t, i, tc.name, tc.first, tc.d, tc.attempts, "after a merge")
		})
	}
}
