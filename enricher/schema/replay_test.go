package schema_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

// populate inserts n rows into every data table that exists, with columns every schema version
// has, tagged with the version the database was at.
func populate(t *testing.T, conn clickhouse.Conn, db string, version uint32, n int) map[string]int {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	exists := func(table string) bool {
		var c uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
			clickhouse.Named("db", db), clickhouse.Named("t", table)).Scan(&c))
		return c == 1
	}
	inserts := map[string]func(i int, at string) string{
		schema.TableAuditEvents: func(i int, at string) string {
			uri := "/api/v1/namespaces/shop/secrets"
			if i%2 == 0 {
				uri += "?dryRun=All"
			}
			return fmt.Sprintf(`INSERT INTO %s.audit_events (audit_id, stage, event_key, request_received_at, stage_at, verb, request_uri, user, user_groups, code)
				VALUES ('v%d-%d', 'ResponseComplete', %d, '%s', '%s', 'create', '%s', '%s', ['agents'], 201)`,
				db, version, i, i, at, at, uri, map[bool]string{true: "oidc:agent", false: "system:kube-scheduler"}[i%3 == 0])
		},
		schema.TableGatewayRequests: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.gateway_requests (id, time, audit_id, session_id, user, verb, code) VALUES ('v%d-%d', '%s', 'v%d-%d', 's-1', 'oidc:agent', 'CREATE', 201)`,
				db, version, i, at, version, i)
		},
		schema.TableGatewayDecisions: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.gateway_decisions (id, time, verb, action) VALUES ('v%d-%d', '%s', 'UPDATE', 'allow')`, db, version, i, at)
		},
		schema.TableSessions: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.sessions (id, time, session_id, event) VALUES ('v%d-%d', '%s', 's-1', 'Started')`, db, version, i, at)
		},
		schema.TableApprovals: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.approvals (id, time, approval_id, event, verb) VALUES ('v%d-%d', '%s', 'ap-%d', 'Requested', 'CONNECT')`, db, version, i, at, i)
		},
		schema.TableIngestErrors: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.ingest_errors (time, stream, stream_sequence) VALUES ('%s', 'v%d', %d)`, db, at, version, i)
		},
		schema.TableDeadLetters: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.dead_letters (time, target_table, record_key) VALUES ('%s', 'audit_events', 'v%d-%d')`, db, at, version, i)
		},
		schema.TableRecordings: func(i int, at string) string {
			return fmt.Sprintf(`INSERT INTO %s.session_recordings (recording_id, seq, session_id, start, time) VALUES ('v%d', %d, 's-1', '%s', '%s')`, db, version, i, at, at)
		},
	}
	added := map[string]int{}
	for table, insert := range inserts {
		if !exists(table) {
			continue
		}
		for i := range n {
			at := now.Add(-time.Duration(i) * 25 * time.Hour).Format("2006-01-02 15:04:05.000000") // several daily partitions
			require.NoError(t, conn.Exec(ctx, insert(i, at)), table)
		}
		added[table] = n
	}
	return added
}

func counts(t *testing.T, conn clickhouse.Conn, db string, tables []string, final bool) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range tables {
		var n uint64
		q := "SELECT count() FROM " + db + "." + table
		if final {
			q += " FINAL"
		}
		require.NoError(t, conn.QueryRow(t.Context(), q).Scan(&n), table)
		out[table] = int(n)
	}
	return out
}

// TestMigrationsNeverDropRows builds a database migration by migration, filling every table after
// each one, then migrates it to the current schema, replays every migration over it (as an
// enricher that lost schema_migrations would), changes the retention, replaces the views and
// migrates again: every row inserted at any version is still there, once, and rows stored
// before a column existed read it from its default.
func TestMigrationsNeverDropRows(t *testing.T) {
	ctx := t.Context()
	conn := connect(t, clickhouse.Native)
	db := "schema_test_replay"
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	o := schema.Options{Database: db}
	ms, err := schema.Migrations(o)
	require.NoError(t, err)
	require.NoError(t, conn.Exec(ctx, "CREATE DATABASE "+db))
	want := map[string]int{}
	for _, m := range ms {
		for _, s := range m.Statements {
			require.NoError(t, conn.Exec(ctx, s), "%s: %s", m.Name, s)
		}
		for table, n := range populate(t, conn, db, m.Version, 4) {
			want[table] += n
		}
	}
	tables := make([]string, 0, len(want))
	for table := range want {
		tables = append(tables, table)
	}
	require.Len(t, tables, 8, "every data table was filled")

	check := func(what string) {
		t.Helper()
		assert.Equal(t, want, counts(t, conn, db, tables, false), "%s: every row is stored", what)
		assert.Equal(t, want, counts(t, conn, db, tables, true), "%s: and each is one row", what)
	}
	require.NoError(t, schema.Migrate(ctx, conn, o), "the migrator on a database built by hand")
	check("after Migrate")

	// Replay every migration, as an enricher that finds no schema_migrations would.
	require.NoError(t, conn.Exec(ctx, "TRUNCATE TABLE "+db+".schema_migrations"))
	require.NoError(t, schema.Migrate(ctx, conn, o))
	check("after every migration was applied again")
	for _, m := range ms {
		for _, s := range m.Statements {
			require.NoError(t, conn.Exec(ctx, s), "%s again", m.Name)
		}
	}
	check("after every statement ran again")

	// Retention and views change; rows stay.
	o.RetentionDays = 30
	o.Retention = map[string]int{schema.TableAuditEvents: 3650, schema.TableSessions: -1}
	require.NoError(t, schema.Migrate(ctx, conn, o))
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE "+db+".audit_events FINAL"))
	check("after a retention change and a merge")

	// Rows stored before migration 6 derive what it added from what they hold.
	var dry, agents, controlPlane uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT countIf(dry_run), countIf(actor_kind = 'agent'), countIf(actor_kind = 'control-plane') FROM "+db+
		".audit_events FINAL WHERE audit_id LIKE 'v1-%'").Scan(&dry, &agents, &controlPlane))
	assert.Equal(t, []uint64{2, 2, 2}, []uint64{dry, agents, controlPlane}, "dry runs from their URI, actors from user and groups")
	var lowered uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".gateway_decisions FINAL WHERE verb != lower(verb)").Scan(&lowered))
	assert.Zero(t, lowered, "migration 3's vocabulary")
	// Rows stored before migration 7, or without its columns (an older enricher's), have no place
	// in the stream.
	var placed, rows uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT countIf(stream_sequence != 0 OR record_index != 0), count() FROM "+db+".gateway_decisions FINAL").Scan(&placed, &rows))
	assert.Equal(t, []uint64{0, uint64(want[schema.TableGatewayDecisions])}, []uint64{placed, rows})
}
