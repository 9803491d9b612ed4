package auditsql_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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

var chServer *testbed.ClickHouse

func TestMain(m *testing.M) {
	var err error
	if chServer, err = testbed.StartClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "auditsql:", err)
		os.Exit(1)
	}
	code := m.Run()
	chServer.Close()
	os.Exit(code)
}

func connect(t *testing.T) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chServer.NativeAddr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestResolveParams(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	q, err := schema.LookupQuery("who-changed-what")
	require.NoError(t, err)
	tests := []struct {
		name    string
		params  []schema.Param
		given   map[string]string
		want    map[string]string
		wantErr string
	}{
		{"defaults", q.Params, nil, map[string]string{"since": "2026-11-30 12:00:00.000000", "namespace": ""}, ""},
		{"a duration in days", q.Params, map[string]string{"since": "7d", "namespace": "shop"},
			map[string]string{"since": "2026-11-24 12:00:00.000000", "namespace": "shop"}, ""},
		{"a Go duration", q.Params, map[string]string{"since": "90m"}, map[string]string{"since": "2026-12-01 10:30:00.000000", "namespace": ""}, ""},
		{"RFC 3339", q.Params, map[string]string{"since": "2026-11-01T08:00:00+02:00"}, map[string]string{"since": "2026-11-01 06:00:00.000000", "namespace": ""}, ""},
		{"ClickHouse's spelling", q.Params, map[string]string{"since": "2026-11-01 08:00:00"}, map[string]string{"since": "2026-11-01 08:00:00.000000", "namespace": ""}, ""},
		{"not a time", q.Params, map[string]string{"since": "yesterday"}, nil, "is not a time"},
		{"an unknown parameter", q.Params, map[string]string{"nmespace": "shop"}, nil, `no parameter "nmespace"`},
		{"a required one missing", []schema.Param{{Name: "session_id", Type: "String"}}, nil, nil, "--param session_id=<String> is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auditsql.ResolveParams(tt.params, tt.given, now)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, auditsql.ErrParams)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, []schema.Param{{Name: "a", Type: "String"}, {Name: "since", Type: "DateTime64(6)"}},
		auditsql.Params("SELECT {a:String}, {since:DateTime64(6)}, {a:String}"))
}

// TestRunIsReadOnly: whatever the account may do, a query of gatehouse sql cannot change
// anything.
func TestRunIsReadOnly(t *testing.T) {
	ctx := t.Context()
	conn := connect(t)
	require.NoError(t, conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS ro_test"))
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS ro_test.t (x UInt8) ENGINE = MergeTree ORDER BY x"))
	require.NoError(t, conn.Exec(ctx, "INSERT INTO ro_test.t VALUES (1)"))
	for _, stmt := range []string{
		"INSERT INTO ro_test.t VALUES (2)",
		"ALTER TABLE ro_test.t DELETE WHERE 1",
		"TRUNCATE TABLE ro_test.t",
		"DROP TABLE ro_test.t",
		"CREATE TABLE ro_test.u (x UInt8) ENGINE = Memory",
		"SELECT 1 SETTINGS readonly = 0",
	} {
		_, err := auditsql.Run(ctx, conn, stmt, nil)
		var ex *clickhouse.Exception
		require.True(t, errors.As(err, &ex), "%s must be refused, got %v", stmt, err)
		assert.Contains(t, []int32{164, 497}, ex.Code, "%s: READONLY, got %v", stmt, err)
	}
	res, err := auditsql.Run(ctx, conn, "SELECT count() AS n FROM ro_test.t WHERE x = {x:UInt8}", map[string]string{"x": "1"})
	require.NoError(t, err)
	assert.Equal(t, [][]any{{uint64(1)}}, res.Rows, "one row, nothing added")
	assert.Positive(t, res.ReadRows)
}

func TestWrite(t *testing.T) {
	ctx := t.Context()
	res, err := auditsql.Run(ctx, connect(t), `SELECT 'a,b' AS s, toDateTime64('2026-12-01 10:00:00.5', 6, 'UTC') AS t, ['x', 'y'] AS a,
		map('k', 1) AS m, true AS b, CAST(NULL AS Nullable(DateTime64(6, 'UTC'))) AS n, 'tab\there' AS w`, nil)
	require.NoError(t, err)
	tests := []struct{ format, want string }{
		{auditsql.FormatTable, "S    T                           A       M       B     N  W\na,b  2026-12-01 10:00:00.500000  [x, y]  {k: 1}  true     tab here\n"},
		{auditsql.FormatCSV, "s,t,a,m,b,n,w\n\"a,b\",2026-12-01 10:00:00.500000,\"[x, y]\",{k: 1},true,,tab\there\n"},
		{auditsql.FormatJSON, `[
  {
    "s": "a,b",
    "t": "2026-12-01T10:00:00.5Z",
    "a": [
      "x",
      "y"
    ],
    "m": {
      "k": 1
    },
    "b": true,
    "n": null,
    "w": "tab\there"
  }
]
`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, res.Write(&b, tt.format))
			assert.Equal(t, tt.want, b.String())
		})
	}
	assert.Error(t, res.Write(&bytes.Buffer{}, "xml"))
}
