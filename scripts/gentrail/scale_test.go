package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/auditsql"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// Environment of the scale test (make scale sets them):
//
//	GATEHOUSE_SCALE_ROWS         audit events to generate (default 20000, a quick check)
//	GATEHOUSE_SCALE_CLICKHOUSE   host:port (native) of a ClickHouse to use instead of a fresh one
//	GATEHOUSE_SCALE_REUSE=1      keep a database generated before with the same rows
//
// With at least a million rows every canned query must answer in under a second (the median of
// three runs after a first one).
const (
	envRows       = "GATEHOUSE_SCALE_ROWS"
	envClickHouse = "GATEHOUSE_SCALE_CLICKHOUSE"
	envReuse      = "GATEHOUSE_SCALE_REUSE"
	// scaleLimit is the most ClickHouse CPU time a canned query may take at scale. CPU time, not
	// wall time: on a machine shared with other work the wall time also counts waiting for a
	// core (both are reported).
	scaleLimit = time.Second
)

// end is when the generated activity ends: fixed, so that the rows are the same every time.
var end = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func scaleConn(t *testing.T) driver.Conn {
	t.Helper()
	addr := os.Getenv(envClickHouse)
	if addr == "" {
		ch, err := testbed.StartClickHouse()
		require.NoError(t, err)
		t.Cleanup(ch.Close)
		addr = ch.NativeAddr
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, ReadTimeout: 10 * time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestGeneratorIsDeterministic: the same flags generate the same rows.
func TestGeneratorIsDeterministic(t *testing.T) {
	ctx := t.Context()
	conn := scaleConn(t)
	var sums [2]map[string]string
	for i, db := range []string{"gentrail_det_a", "gentrail_det_b"} {
		require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
		t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
		require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
		_, err := Generate(ctx, conn, Options{Database: db, Rows: 5000, Days: 3, End: end, Seed: 7, Chunk: 1000})
		require.NoError(t, err)
		sums[i] = map[string]string{}
		for _, table := range []string{"audit_events", "gateway_requests", "gateway_decisions", "approvals", "sessions", "session_recordings"} {
			var s string
			require.NoError(t, conn.QueryRow(ctx, "SELECT toString(count()) || '/' || toString(groupBitXor(cityHash64(*))) FROM "+db+"."+table).Scan(&s))
			sums[i][table] = s
		}
	}
	assert.Equal(t, sums[0], sums[1])
}

// TestCannedQueriesAtScale generates GATEHOUSE_SCALE_ROWS audit events with the gateway's
// records, decisions and approvals, checks that they hold every kind of row the trail tells
// apart, and runs every canned query on them; with a million rows or more each must answer in
// under a second.
func TestCannedQueriesAtScale(t *testing.T) {
	ctx := t.Context()
	rows := uint64(20_000)
	if s := os.Getenv(envRows); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, envRows)
		rows = n
	}
	conn := scaleConn(t)
	db := fmt.Sprintf("gentrail_%d", rows)
	var have uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'audit_events'", clickhouse.Named("db", db)).Scan(&have)
	if have == 0 || os.Getenv(envReuse) == "" {
		require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
		require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
		start := time.Now()
		stats, err := Generate(ctx, conn, Options{Database: db, Rows: rows, Days: 30, End: end, Seed: 1})
		require.NoError(t, err)
		t.Logf("generated in %s: %v", time.Since(start).Round(time.Second), stats)
		ratio := float64(stats["audit_events"]) / float64(rows)
		assert.InDelta(t, 1, ratio, 0.02, "about the rows asked for")
	} else {
		require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
	}
	if os.Getenv(envClickHouse) == "" {
		t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	}

	// The generated rows hold every kind of row the trail tells apart.
	since := end.Add(-24 * time.Hour).Format("2006-01-02 15:04:05.000000")
	kinds := map[string]uint64{}
	r, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"since": "2000-01-01 00:00:00"})),
		"SELECT concat(route, '/', outcome), count() FROM "+db+".trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '') GROUP BY 1")
	require.NoError(t, err)
	for r.Next() {
		var k string
		var n uint64
		require.NoError(t, r.Scan(&k, &n))
		kinds[k] = n
	}
	require.NoError(t, r.Err())
	r.Close()
	t.Logf("rows by route and outcome: %v", kinds)
	for _, k := range []string{"gateway/succeeded", "gateway/held", "gateway/denied", "gateway/dry-run", "gateway/open", "gateway/started",
		"gateway-only/denied", "bypass/succeeded", "bypass/denied", "bypass/dry-run"} {
		assert.Positive(t, kinds[k], "generated rows include %s", k)
	}
	for k, n := range kinds {
		if strings.HasPrefix(k, "pending/") || k == "bypass/held" {
			t.Errorf("%d rows are %s: the generator's gateway records do not join", n, k)
		}
	}

	params := queryParams(t, conn, db, since)
	qs, err := schema.Queries()
	require.NoError(t, err)
	type timing struct {
		name                 string
		rows                 int
		median, cpu, slowest time.Duration
		read                 uint64
	}
	var timings []timing
	for _, q := range qs {
		sql, err := q.Render(db)
		require.NoError(t, err)
		given := map[string]string{}
		for _, p := range q.Params {
			given[p.Name] = params[p.Name]
		}
		values, err := auditsql.ResolveParams(q.Params, given, end)
		require.NoError(t, err)
		var runs []*auditsql.Result
		for i := range 4 {
			res, err := auditsql.Run(ctx, conn, sql, values)
			require.NoError(t, err, q.Name)
			if i > 0 { // the first run reads from disk; auditors run queries in a row
				runs = append(runs, res)
			}
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].Elapsed < runs[j].Elapsed })
		med := runs[len(runs)/2]
		timings = append(timings, timing{name: q.Name, rows: len(med.Rows), median: med.Elapsed, cpu: med.CPU, slowest: runs[len(runs)-1].Elapsed, read: med.ReadRows})
		switch q.Name {
		case "ingest-errors", "dead-letters", "unrecorded-gateway-traffic":
			// The generated gateway records everything it forwards, and the enricher lost nothing.
			assert.Empty(t, med.Rows, "%s", q.Name)
		default:
			assert.NotEmpty(t, med.Rows, "%s answers something at scale", q.Name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d audit events (%s); since = %s; median of 3 runs after a first\n\n", rows, db, since)
	fmt.Fprintln(&b, "| Query | Rows | Median | ClickHouse CPU | Slowest | Rows read |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|")
	for _, tm := range timings {
		fmt.Fprintf(&b, "| %s | %d | %d ms | %d ms | %d ms | %d |\n", tm.name, tm.rows, tm.median.Milliseconds(), tm.cpu.Milliseconds(),
			tm.slowest.Milliseconds(), tm.read)
		if rows >= 1_000_000 {
			assert.Less(t, tm.cpu, scaleLimit, "%s takes ClickHouse under %s of CPU with %d audit events", tm.name, scaleLimit, rows)
		}
	}
	t.Log(b.String())
}

// queryParams picks the values of the canned queries' parameters from the generated rows: the
// busiest session of the last day, a call that was held and approved, a namespace.
func queryParams(t *testing.T, conn driver.Conn, db, since string) map[string]string {
	t.Helper()
	ctx := t.Context()
	var session, auditID string
	require.NoError(t, conn.QueryRow(ctx, "SELECT session_id FROM "+db+".gateway_requests WHERE time >= {s:DateTime64(6)} GROUP BY session_id ORDER BY count() DESC, session_id LIMIT 1",
		clickhouse.Named("s", since)).Scan(&session))
	require.NoError(t, conn.QueryRow(ctx, "SELECT audit_id FROM "+db+".gateway_requests WHERE time >= {s:DateTime64(6)} AND held_audit_id != '' AND held_audit_id != audit_id ORDER BY audit_id LIMIT 1",
		clickhouse.Named("s", since)).Scan(&auditID))
	return map[string]string{"since": since, "session_id": session, "audit_id": auditID, "namespace": "shop"}
}
