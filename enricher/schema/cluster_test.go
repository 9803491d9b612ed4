package schema_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

const testCluster = "gatehouse_test"

// all returns every statement of the migrations and the views for o.
func all(t *testing.T, o schema.Options) []string {
	t.Helper()
	ms, err := schema.Migrations(o)
	require.NoError(t, err)
	var out []string
	for _, m := range ms {
		out = append(out, m.Statements...)
	}
	views, err := schema.Views(o)
	require.NoError(t, err)
	return append(out, views...)
}

// TestClusterStatements: with a cluster every statement runs ON CLUSTER, every table is a
// Replicated local table with a Distributed table of the table's name over it; without one,
// nothing of that appears, so a single server's migrations and their checksums stay as they were.
func TestClusterStatements(t *testing.T) {
	single := all(t, schema.Options{})
	for _, s := range single {
		for _, word := range []string{"ON CLUSTER", "Replicated", schema.LocalSuffix, "Distributed"} {
			assert.NotContains(t, s, word)
		}
	}
	clustered := all(t, schema.Options{Cluster: testCluster})
	require.Greater(t, len(clustered), len(single))
	createLocal := regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS gatehouse\.(\w+)_local ON CLUSTER ` + "`" + testCluster + "`")
	tables := 0
	for i, s := range clustered {
		assert.Contains(t, s, " ON CLUSTER `"+testCluster+"`", s)
		m := createLocal.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		tables++
		table := m[1]
		assert.Regexp(t, `ENGINE = Replicated(Replacing)?MergeTree\('/clickhouse/tables/\{shard\}/gatehouse/`+table+`_local', '\{replica\}'\)`, s)
		require.Less(t, i+1, len(clustered))
		assert.Equal(t, "CREATE OR REPLACE TABLE gatehouse."+table+" ON CLUSTER `"+testCluster+"` AS gatehouse."+table+"_local", strings.SplitN(clustered[i+1], "\n", 2)[0])
		assert.Contains(t, clustered[i+1], "ENGINE = Distributed('"+testCluster+"', 'gatehouse', '"+table+"_local', cityHash64(", "sharded by the record")
	}
	assert.Equal(t, 8, tables, "every table of the schema")

	_, err := schema.Migrations(schema.Options{Cluster: "a cluster; DROP"})
	require.ErrorIs(t, err, schema.ErrInvalidOptions)
	_, err = schema.ClusterStatements(schema.Options{Cluster: testCluster}, "9999_new.sql", []string{"RENAME TABLE gatehouse.a TO gatehouse.b"})
	require.Error(t, err, "a statement without a cluster form fails, rather than running on one server")
}

// TestClusterSchemaOnOneServer runs the cluster schema on the one ClickHouse server the test bed
// has (see docs/deploying.md for why no more): the statements, ON CLUSTER included, parse; the
// Replicated tables are accepted with the shard and replica macros; and with ON CLUSTER and
// replication left out, the local and Distributed tables migrate (twice), take inserts through
// the Distributed tables and answer the views, with a record stored twice counted once.
func TestClusterSchemaOnOneServer(t *testing.T) {
	ch, err := testbed.StartClickHouseWithConfig(func(port int) string {
		return fmt.Sprintf(`<clickhouse>
  <macros><shard>01</shard><replica>replica-1</replica></macros>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <remote_servers>
    <%[1]s><shard><internal_replication>true</internal_replication>
      <replica><host>127.0.0.1</host><port>%[2]d</port></replica>
    </shard></%[1]s>
  </remote_servers>
</clickhouse>
`, testCluster, port)
	})
	require.NoError(t, err)
	t.Cleanup(ch.Close)
	ctx := clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"distributed_foreground_insert": 1}))
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.NativeAddr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	const db = "cluster_one"
	o := schema.Options{Database: db, Cluster: testCluster}
	t.Run("every statement parses", func(t *testing.T) {
		access, err := schema.AccessStatements(o)
		require.NoError(t, err)
		var roles []string
		for _, s := range access {
			if !strings.HasSuffix(s, " TO <enricher>") { // the enricher's own account is an administrator's to name
				roles = append(roles, s)
			}
		}
		require.NotEmpty(t, roles)
		for _, s := range append(all(t, o), roles...) {
			var formatted string
			require.NoError(t, conn.QueryRow(ctx, "SELECT formatQuery({q:String})", clickhouse.Named("q", s)).Scan(&formatted), s)
			assert.Contains(t, formatted, "ON CLUSTER "+testCluster)
		}
	})
	t.Run("the replicated tables are accepted", func(t *testing.T) {
		require.NoError(t, conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db))
		t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC") })
		created := 0
		for _, s := range all(t, o) {
			if !strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS ") {
				continue
			}
			// A server runs a distributed DDL task without its ON CLUSTER clause.
			require.NoError(t, conn.Exec(ctx, strings.Replace(s, " ON CLUSTER `"+testCluster+"`", "", 1)), s)
			created++
		}
		var replicated uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = {db:String} AND engine LIKE 'Replicated%MergeTree'",
			clickhouse.Named("db", db)).Scan(&replicated))
		assert.Equal(t, uint64(created), replicated)
		require.NoError(t, conn.Exec(ctx, "DROP DATABASE "+db+" SYNC"))
	})
	t.Run("local and distributed tables on one server", func(t *testing.T) {
		one := schema.SingleServer(o)
		require.NoError(t, schema.Migrate(ctx, conn, one))
		require.NoError(t, schema.Migrate(ctx, conn, one), "a second run changes nothing")
		t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC") })
		var engine string
		require.NoError(t, conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = {db:String} AND name = 'audit_events'",
			clickhouse.Named("db", db)).Scan(&engine))
		assert.Equal(t, "Distributed", engine)
		var ttl string
		require.NoError(t, conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'audit_events_local'",
			clickhouse.Named("db", db)).Scan(&ttl))
		assert.Contains(t, ttl, " TTL toDateTime(request_received_at) + toIntervalDay(365)", "retention is set on the local tables")

		for range 2 { // a record stored twice, as after a redelivery
			require.NoError(t, conn.Exec(ctx, "INSERT INTO "+db+".audit_events (audit_id, stage, event_key, request_received_at, stage_at, user, verb, resource, name) "+
				"VALUES ('cluster-1', 'ResponseComplete', 7, toDateTime64('2026-12-01 10:00:00', 6, 'UTC'), toDateTime64('2026-12-01 10:00:01', 6, 'UTC'), 'alice', 'get', 'pods', 'web')"))
		}
		count := func(q string) uint64 {
			var n uint64
			require.NoError(t, conn.QueryRow(ctx, q).Scan(&n), q)
			return n
		}
		assert.Equal(t, uint64(2), count("SELECT count() FROM "+db+".audit_events_local WHERE audit_id = 'cluster-1'"), "both inserts reached the local table")
		assert.Equal(t, uint64(1), count("SELECT count() FROM "+db+".audit_events FINAL WHERE audit_id = 'cluster-1'"))
		assert.Equal(t, uint64(1), count("SELECT count() FROM "+db+".trail WHERE audit_id = 'cluster-1'"), "the views read through the Distributed tables")
	})
}
