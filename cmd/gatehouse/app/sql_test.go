package app

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runSQL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCommand(&out, &errOut)
	cmd.SetArgs(append([]string{"sql", "--log-format", "text"}, args...))
	err := cmd.Execute()
	return out.String() + errOut.String(), err
}

func TestSQLCommand(t *testing.T) {
	t.Run("lists the canned queries with their parameters", func(t *testing.T) {
		out, err := runSQL(t, "--list")
		require.NoError(t, err)
		for _, want := range []string{"who-changed-what", "since:DateTime64(6)=24h namespace:String=''", "session-timeline", "session_id:String"} {
			assert.Contains(t, out, want)
		}
	})
	t.Run("shows a query for another database", func(t *testing.T) {
		out, err := runSQL(t, "--query", "who-changed-what", "--show", "--clickhouse-database", "audit_prod")
		require.NoError(t, err)
		assert.Contains(t, out, "FROM audit_prod.trail_for(")
	})
	t.Run("prints the grants", func(t *testing.T) {
		out, err := runSQL(t, "--print-grants")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(out, "CREATE ROLE IF NOT EXISTS gatehouse_auditor;\n"), out)
		assert.Contains(t, out, "GRANT SELECT ON gatehouse.trail_for TO gatehouse_auditor;")
		assert.Contains(t, out, "GRANT INSERT, SELECT ON gatehouse.* TO <enricher>;")
	})
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no query", nil, "give exactly one of"},
		{"two queries", []string{"--query", "approvals", "SELECT 1"}, "give exactly one of"},
		{"an unknown query", []string{"--query", "who-did-it"}, `no canned query "who-did-it"`},
		{"a missing parameter", []string{"--query", "session-timeline"}, "--param session_id=<String> is required"},
		{"an unknown parameter", []string{"--query", "approvals", "--param", "user=alice"}, `no parameter "user"`},
		{"a bad time", []string{"--query", "approvals", "--param", "since=last week"}, "is not a time"},
		{"a bad format", []string{"SELECT 1", "-o", "xml"}, "--output must be table, csv or json"},
		{"a bad database", []string{"--query", "approvals", "--clickhouse-database", "x;y"}, "invalid options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runSQL(t, tc.args...)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
