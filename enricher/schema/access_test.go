package schema_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
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

// usersXML renders a ClickHouse users configuration: the default user (an administrator who
// cannot be granted anything through SQL, as the engine keeps no SQL-managed access storage),
// the enricher's account with EnricherGrants, the auditors' role with AuditorGrants, an auditor
// with that role, and a reader of the whole database for comparison.
func usersXML(o schema.Options, role string) (string, error) {
	auditor, err := schema.AuditorGrants(o)
	if err != nil {
		return "", err
	}
	grants := func(qs []string) string {
		var b strings.Builder
		b.WriteString("<grants>")
		for _, q := range qs {
			b.WriteString("<query>" + html.EscapeString(q) + "</query>")
		}
		b.WriteString("</grants>")
		return b.String()
	}
	user := func(name, password, body string) string {
		return "<" + name + "><password>" + password + "</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>" +
			"<profile>default</profile><quota>default</quota>" + body + "</" + name + ">"
	}
	return "<clickhouse><profiles><default/></profiles><quotas><default/></quotas>" +
		"<roles><" + role + ">" + grants(auditor) + "</" + role + "></roles><users>" +
		user("default", "", "<access_management>1</access_management>") +
		user("enricher", "enricher-pw", grants(schema.EnricherGrants(o))) +
		user("outdated", "outdated-pw", grants(outdatedGrants(o))) +
		user("auditor", "auditor-pw", grants([]string{"GRANT " + role})) +
		"</users></clickhouse>", nil
}

// outdatedGrants are EnricherGrants on o's database with "_outdated" appended, without the grant
// the latest migration added (ALTER ORDER BY): an account set up for an older enricher.
func outdatedGrants(o schema.Options) []string {
	o.Database += "_outdated"
	var qs []string
	for _, q := range schema.EnricherGrants(o) {
		qs = append(qs, strings.Replace(q, "ALTER ORDER BY, ", "", 1))
	}
	return qs
}

// TestAccessControl runs the engine with users, roles and grants (the test engine enforces them
// when they are configured in its users file; it keeps no SQL-managed access storage, so the
// migrations' own CREATE ROLE is refused there and the same grants are configured instead):
//   - the enricher's account with EnricherGrants migrates and inserts, and cannot delete,
//     truncate or drop anything: the trail is append-only for it too;
//   - the auditors' role, with AuditorGrants, runs every canned query and can read nothing but
//     the views, write nothing, change nothing;
//   - roles on fails the migration on a server that cannot store roles, roles auto warns and
//     goes on.
func TestAccessControl(t *testing.T) {
	ctx := t.Context()
	db := "access_test"
	o := schema.Options{Database: db}
	role := db + "_auditor"
	users, err := usersXML(o, role)
	require.NoError(t, err)
	ch, err := testbed.StartClickHouseWithUsers(users)
	require.NoError(t, err)
	t.Cleanup(ch.Close)
	open := func(user, password string) driver.Conn {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.NativeAddr}, Auth: clickhouse.Auth{Username: user, Password: password}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	denied := func(t *testing.T, conn driver.Conn, stmt string) {
		t.Helper()
		err := conn.Exec(ctx, stmt)
		var ex *clickhouse.Exception
		require.True(t, errors.As(err, &ex), "%s must be refused, got %v", stmt, err)
		assert.Equal(t, int32(497), ex.Code, "%s: ACCESS_DENIED, got %v", stmt, err)
	}

	enricher := open("enricher", "enricher-pw")
	require.NoError(t, schema.Migrate(ctx, enricher, o), "the enricher's grants suffice to migrate")
	require.NoError(t, schema.Migrate(ctx, enricher, o), "and to migrate again (views replaced, retention set)")
	err = schema.Migrate(ctx, open("outdated", "outdated-pw"), schema.Options{Database: db + "_outdated"})
	require.ErrorIs(t, err, schema.ErrGrant, "an account without a grant the migrations need is told what to grant")
	assert.Contains(t, err.Error(), "0007", "and which migration needs it")
	now := time.Now().UTC().Format("2006-01-02 15:04:05.000000")
	require.NoError(t, enricher.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.audit_events (audit_id, stage, request_received_at, stage_at, verb, user, session_id, code)
		VALUES ('a-1', 'ResponseComplete', '%s', '%s', 'get', 'alice', 's-1', 200)`, db, now, now)))
	require.NoError(t, enricher.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.gateway_requests (id, time, audit_id, session_id, user, verb, code)
		VALUES ('a-1', '%s', 'a-1', 's-1', 'alice', 'get', 200)`, db, now)))

	t.Run("the trail is append-only for the enricher's account", func(t *testing.T) {
		for _, stmt := range []string{
			"ALTER TABLE " + db + ".audit_events DELETE WHERE 1",
			"DELETE FROM " + db + ".audit_events WHERE 1",
			"TRUNCATE TABLE " + db + ".audit_events",
			"DROP TABLE " + db + ".gateway_requests",
			"RENAME TABLE " + db + ".audit_events TO " + db + ".gone",
			"ALTER TABLE " + db + ".audit_events DROP PARTITION tuple()",
			"ALTER TABLE " + db + ".audit_events DROP COLUMN message",
			"DROP DATABASE " + db,
		} {
			denied(t, enricher, stmt)
		}
		// Dropping views is the enricher's (it replaces them at every start); a table is not a view.
		require.Error(t, enricher.Exec(ctx, "DROP VIEW "+db+".audit_events"))
		var n uint64
		require.NoError(t, enricher.QueryRow(ctx, "SELECT count() FROM "+db+".audit_events").Scan(&n))
		assert.Equal(t, uint64(1), n, "every row is still there")
	})

	auditor := open("auditor", "auditor-pw")
	t.Run("the auditors' role runs every canned query", func(t *testing.T) {
		qs, err := schema.Queries()
		require.NoError(t, err)
		for _, q := range qs {
			sql, err := q.Render(db)
			require.NoError(t, err)
			params := clickhouse.Parameters{}
			for _, p := range q.Params {
				switch p.Name {
				case "since":
					params[p.Name] = "2020-01-01 00:00:00"
				default:
					params[p.Name] = "a-1"
				}
			}
			rows, err := auditor.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
			require.NoError(t, err, q.Name)
			for rows.Next() {
			}
			require.NoError(t, rows.Err(), q.Name)
			rows.Close()
		}
		var n uint64
		require.NoError(t, auditor.QueryRow(ctx, "SELECT count() FROM "+db+".trail WHERE audit_id = 'a-1'").Scan(&n))
		assert.Equal(t, uint64(1), n, "and sees the rows through the views")
	})
	t.Run("the auditors' role reads the views only, and changes nothing", func(t *testing.T) {
		for _, stmt := range []string{
			"SELECT count() FROM " + db + ".audit_events",
			"SELECT count() FROM " + db + ".gateway_requests",
			"SELECT count() FROM " + db + ".schema_migrations",
			"INSERT INTO " + db + ".audit_events (audit_id) VALUES ('forged')",
			"ALTER TABLE " + db + ".audit_events DELETE WHERE 1",
			"ALTER TABLE " + db + ".audit_events UPDATE user = 'x' WHERE 1",
			"TRUNCATE TABLE " + db + ".audit_events",
			"OPTIMIZE TABLE " + db + ".audit_events FINAL",
			"DROP VIEW " + db + ".trail",
			"CREATE OR REPLACE VIEW " + db + ".trail AS SELECT 1",
			"CREATE TABLE " + db + ".mine (x UInt8) ENGINE = Memory",
			"ALTER TABLE " + db + ".audit_events MODIFY TTL toDateTime(request_received_at) + toIntervalDay(1)",
		} {
			denied(t, auditor, stmt)
		}
	})

	t.Run("roles on fails without SQL-managed access storage, auto warns", func(t *testing.T) {
		admin := open("default", "")
		other := schema.Options{Database: "access_test_roles", Roles: schema.RolesOn}
		t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS access_test_roles") })
		err := schema.Migrate(ctx, admin, other)
		require.ErrorIs(t, err, schema.ErrRoles)
		assert.Contains(t, err.Error(), "CREATE ROLE IF NOT EXISTS access_test_roles_auditor")
		var logs bytes.Buffer
		other.Roles = schema.RolesAuto
		other.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		require.NoError(t, schema.Migrate(ctx, admin, other))
		assert.Contains(t, logs.String(), "the auditors' role was not created")
	})
}

func TestAccessStatements(t *testing.T) {
	stmts, err := schema.AccessStatements(schema.Options{Database: "audit"})
	require.NoError(t, err)
	views, err := schema.ViewNames(schema.Options{Database: "audit"})
	require.NoError(t, err)
	require.NotEmpty(t, views)
	assert.Equal(t, "CREATE ROLE IF NOT EXISTS audit_auditor", stmts[0])
	for _, v := range views {
		assert.Contains(t, stmts, "GRANT SELECT ON audit."+v+" TO audit_auditor")
	}
	for _, s := range stmts {
		if strings.HasSuffix(s, " TO audit_auditor") {
			assert.True(t, strings.HasPrefix(s, "GRANT SELECT ON audit."), "the auditors' role only reads: %s", s)
		}
	}
	stmts, err = schema.AccessStatements(schema.Options{Database: "audit", AuditorRole: "readers"})
	require.NoError(t, err)
	assert.Equal(t, "CREATE ROLE IF NOT EXISTS readers", stmts[0])

	// On a cluster the role and its grants exist on every server, as the views do.
	stmts, err = schema.AccessStatements(schema.Options{Database: "audit", Cluster: "audit_cluster"})
	require.NoError(t, err)
	assert.Equal(t, "CREATE ROLE IF NOT EXISTS audit_auditor ON CLUSTER `audit_cluster`", stmts[0])
	for _, v := range views {
		assert.Contains(t, stmts, "GRANT ON CLUSTER `audit_cluster` SELECT ON audit."+v+" TO audit_auditor")
	}
}
