package schema_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

var chServer *testbed.ClickHouse

func TestMain(m *testing.M) {
	var err error
	chServer, err = testbed.StartClickHouse()
	if err != nil {
		fmt.Fprintln(os.Stderr, "schema:", err)
		os.Exit(1)
	}
	code := m.Run()
	chServer.Close()
	os.Exit(code)
}

func connect(t *testing.T, protocol clickhouse.Protocol) driver.Conn {
	t.Helper()
	addr := chServer.NativeAddr
	if protocol == clickhouse.HTTP {
		addr = chServer.HTTPAddr
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Protocol: protocol, Addr: []string{addr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestRender(t *testing.T) {
	ms, err := schema.Migrations(schema.Options{Database: "audit_x", GatewayGrace: 90*time.Second + time.Millisecond})
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	assert.Equal(t, uint32(1), ms[0].Version)
	for i, m := range ms {
		if i > 0 {
			// schema_migrations records versions: a version given twice would be applied once.
			assert.Greater(t, m.Version, ms[i-1].Version, "migration %s has a version of its own", m.Name)
		}
		for _, s := range m.Statements {
			assert.NotContains(t, s, "{{")
			assert.NotContains(t, s, "gatehouse.", "every statement uses the configured database")
			assert.False(t, strings.HasSuffix(s, ";"))
		}
	}
	views, err := schema.Views(schema.Options{Database: "audit_x", GatewayGrace: 90*time.Second + time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, 12, len(views), "the views")
	for _, v := range views {
		assert.Contains(t, v, "SQL SECURITY DEFINER", "auditors read the views with the definer's rights")
	}
	assert.Contains(t, strings.Join(views, "\n"), "toIntervalSecond(91)", "the grace period is rounded up to seconds")
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    schema.Options
		ok   bool
	}{
		{"zero value", schema.Options{}, true},
		{"database", schema.Options{Database: "audit_2026"}, true},
		{"injection", schema.Options{Database: "x; DROP TABLE y"}, false},
		{"dots", schema.Options{Database: "a.b"}, false},
		{"negative grace", schema.Options{GatewayGrace: -time.Second}, false},
		{"retention of a table", schema.Options{Retention: map[string]int{"audit_events": 30, "session_recordings": -1}}, true},
		{"retention of an unknown table", schema.Options{Retention: map[string]int{"trail": 30}}, false},
		{"retention of zero days", schema.Options{Retention: map[string]int{"approvals": 0}}, false},
		{"roles", schema.Options{Roles: schema.RolesAuto, AuditorRole: "audit_readers"}, true},
		{"unknown roles mode", schema.Options{Roles: "maybe"}, false},
		{"role injection", schema.Options{AuditorRole: "x; DROP USER y"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, schema.ErrInvalidOptions)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol clickhouse.Protocol
	}{
		{"native", clickhouse.Native},
		{"http", clickhouse.HTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			conn := connect(t, tc.protocol)
			db := "schema_test_" + tc.name
			require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
			t.Cleanup(func() { assert.NoError(t, conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)) })
			o := schema.Options{Database: db}

			// Twice: the second run changes nothing.
			require.NoError(t, schema.Migrate(ctx, conn, o))
			require.NoError(t, schema.Migrate(ctx, conn, o))

			var tables []string
			rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", clickhouse.Named("db", db))
			require.NoError(t, err)
			for rows.Next() {
				var n string
				require.NoError(t, rows.Scan(&n))
				tables = append(tables, n)
			}
			require.NoError(t, rows.Err())
			assert.ElementsMatch(t, []string{
				schema.TableAuditEvents, schema.TableGatewayRequests, schema.TableGatewayDecisions, schema.TableSessions,
				schema.TableApprovals, schema.TableIngestErrors, schema.TableDeadLetters, schema.TableMigrations, schema.TableRecordings,
				schema.ViewTrail, schema.ViewDecisionSummary, schema.ViewApprovalSummary, schema.ViewSessionSummary,
				schema.ViewOpenStreams, schema.ViewRecordings, schema.ViewTrailFor, schema.ViewOpenStreamsFor, schema.ViewApprovalsFor, schema.ViewSessionsFor,
				schema.ViewIngestErrorLog, schema.ViewDeadLetterLog,
			}, tables)

			var applied uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".schema_migrations FINAL").Scan(&applied))
			all, err := schema.Migrations(schema.Options{})
			require.NoError(t, err)
			assert.Equal(t, uint64(len(all)), applied, "every migration is recorded once")

			assert.Contains(t, engine(t, conn, db, schema.TableAuditEvents), "TTL toDateTime(request_received_at) + toIntervalDay(365)")
			assert.Contains(t, engine(t, conn, db, schema.TableAuditEvents), "ReplacingMergeTree")

			// Retention follows the options.
			o.RetentionDays = 30
			require.NoError(t, schema.Migrate(ctx, conn, o))
			assert.Contains(t, engine(t, conn, db, schema.TableGatewayRequests), "TTL toDateTime(time) + toIntervalDay(30)")
			o.RetentionDays = -1
			require.NoError(t, schema.Migrate(ctx, conn, o))
			assert.NotContains(t, engine(t, conn, db, schema.TableSessions), " TTL ")
			// Per table.
			o.RetentionDays = 400
			o.Retention = map[string]int{schema.TableAuditEvents: 730, schema.TableRecordings: 90, schema.TableDeadLetters: -1}
			require.NoError(t, schema.Migrate(ctx, conn, o))
			assert.Contains(t, engine(t, conn, db, schema.TableAuditEvents), "TTL toDateTime(request_received_at) + toIntervalDay(730)")
			assert.Contains(t, engine(t, conn, db, schema.TableRecordings), "TTL toDateTime(start) + toIntervalDay(90)")
			assert.NotContains(t, engine(t, conn, db, schema.TableDeadLetters), " TTL ")
			assert.Contains(t, engine(t, conn, db, schema.TableSessions), "TTL toDateTime(time) + toIntervalDay(400)")

			// The views are queryable.
			views, err := schema.ViewNames(o)
			require.NoError(t, err)
			for _, v := range views {
				var n uint64
				from := db + "." + v
				switch v {
				case schema.ViewTrailFor:
					from += "(since = '2020-01-01 00:00:00', session_id = '', audit_id = '')"
				case schema.ViewOpenStreamsFor, schema.ViewApprovalsFor, schema.ViewSessionsFor:
					from += "(since = '2020-01-01 00:00:00')"
				}
				require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+from).Scan(&n), v)
				assert.Zero(t, n)
			}
		})
	}
}

// TestVerbsAreLowerCased: rows recorded with admission operations as verbs (CREATE, CONNECT)
// before the one vocabulary are lower-cased by migration 3.
func TestVerbsAreLowerCased(t *testing.T) {
	ctx := t.Context()
	conn := connect(t, clickhouse.Native)
	db := "schema_test_verbs"
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { assert.NoError(t, conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)) })
	o := schema.Options{Database: db}
	require.NoError(t, schema.Migrate(ctx, conn, o))
	// Rows as they were stored before, and migration 3 not applied yet.
	for i, verb := range []string{"CREATE", "CONNECT", "UPDATE", "patch"} {
		require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.gateway_decisions (id, time, verb) VALUES ('d%d', now64(6), '%s')`, db, i, verb)))
		require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.approvals (id, time, approval_id, verb) VALUES ('a%d', now64(6), 'ap-%d', '%s')`, db, i, i, verb)))
	}
	require.NoError(t, conn.Exec(ctx, "ALTER TABLE "+db+".schema_migrations DELETE WHERE version = 3 SETTINGS mutations_sync = 2"))
	require.NoError(t, schema.Migrate(ctx, conn, o))
	for _, table := range []string{schema.TableGatewayDecisions, schema.TableApprovals} {
		rows, err := conn.Query(ctx, "SELECT verb FROM "+db+"."+table+" FINAL ORDER BY verb")
		require.NoError(t, err)
		var verbs []string
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			verbs = append(verbs, v)
		}
		require.NoError(t, rows.Err())
		assert.Equal(t, []string{"connect", "create", "patch", "update"}, verbs, table)
	}
}

func engine(t *testing.T, conn driver.Conn, db, table string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
		clickhouse.Named("db", db), clickhouse.Named("t", table)).Scan(&s))
	return s
}

func TestMigrateFailsClearlyWithoutServer(t *testing.T) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	require.NoError(t, err)
	defer conn.Close()
	err = schema.Migrate(t.Context(), conn, schema.Options{Database: "nowhere"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "schema: create database nowhere")
}
