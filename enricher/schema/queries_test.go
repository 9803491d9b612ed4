package schema_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

var docQuery = regexp.MustCompile("(?s)<!-- query: ([a-z0-9-]+) -->\\s*```sql\\n(.*?)```")

// TestQueriesAreTheDocumentedOnes: docs/auditing.md shows every canned query gatehouse sql runs,
// in the same order and with the same text, and nothing else as a canned query.
func TestQueriesAreTheDocumentedOnes(t *testing.T) {
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "auditing.md"))
	require.NoError(t, err)
	qs, err := schema.Queries()
	require.NoError(t, err)
	found := docQuery.FindAllStringSubmatch(string(doc), -1)
	var docNames, names []string
	for _, m := range found {
		docNames = append(docNames, m[1])
	}
	for _, q := range qs {
		names = append(names, q.Name)
	}
	require.Equal(t, names, docNames, "the documentation lists the canned queries in order")
	for i, q := range qs {
		assert.Equal(t, q.SQL, strings.TrimSpace(found[i][2]), "query %s differs from its documentation", q.Name)
	}
}

func TestQueries(t *testing.T) {
	qs, err := schema.Queries()
	require.NoError(t, err)
	require.NotEmpty(t, qs)
	for _, q := range qs {
		assert.NotEmpty(t, q.Description, q.Name)
		assert.NotContains(t, q.SQL, "--", "%s: no comments inside the SQL", q.Name)
		for _, p := range q.Params {
			if p.Name == "session_id" || p.Name == "audit_id" {
				assert.False(t, p.HasDefault, "%s: %s is required", q.Name, p.Name)
			}
		}
	}
	q, err := schema.LookupQuery("who-changed-what")
	require.NoError(t, err)
	assert.Equal(t, []schema.Param{{Name: "since", Type: "DateTime64(6)", Default: "24h", HasDefault: true},
		{Name: "namespace", Type: "String", Default: "", HasDefault: true}}, q.Params)
	sql, err := q.Render("audit_2026")
	require.NoError(t, err)
	assert.Contains(t, sql, "FROM audit_2026.trail_for(")
	assert.NotContains(t, sql, "gatehouse.")
	_, err = q.Render("x; DROP")
	require.ErrorIs(t, err, schema.ErrInvalidOptions)
	_, err = schema.LookupQuery("nope")
	require.Error(t, err)
}
