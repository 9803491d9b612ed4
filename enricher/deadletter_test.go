package enricher

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// poisonedList returns an EventList of n events of which those at the indexes poisoned carry
// the audit ID prefix "poison".
func poisonedList(id string, n int, poisoned ...int) []byte {
	var b strings.Builder
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		o := genOptions{id: id}
		for _, p := range poisoned {
			if p == i {
				o.id = "poison-" + id
			}
		}
		b.Write(genEvent(i, o))
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// TestDeadLetters makes ClickHouse reject some rows for good (a CHECK constraint, the way a
// deployment's own rules or a value out of range would): those rows go to dead_letters, with
// the error and where they came from, the rest of their batch is stored, the stream goes on,
// and the metric counts them.
func TestDeadLetters(t *testing.T) {
	for _, protocol := range []string{"native", "http"} {
		t.Run(protocol, func(t *testing.T) {
			h := newHarness(t, harnessOptions{ch: openClickHouse(t, sharedClickHouse(t), protocol)})
			ctx := t.Context()
			require.NoError(t, h.ch.Exec(ctx, "ALTER TABLE "+h.db+".audit_events ADD CONSTRAINT no_poison CHECK NOT startsWith(audit_id, 'poison')"))
			require.NoError(t, h.ch.Exec(ctx, "ALTER TABLE "+h.db+".gateway_requests ADD CONSTRAINT no_poison CHECK NOT startsWith(id, 'poison')"))

			require.Equal(t, 200, h.post(t, poisonedList("dl", 300, 7, 150, 299)))
			h.waitRows(t, 3, 30*time.Second, "SELECT count() FROM {db}.dead_letters FINAL WHERE target_table = 'audit_events'")
			h.waitRows(t, 297, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
			require.Equal(t, 200, h.post(t, testEventList(0, 100, genOptions{id: "after"})))
			h.waitRows(t, 397, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")

			rows := queryRows(t, h.ch, "SELECT record_key, stream, toString(stream_sequence > 0), error, row FROM "+h.db+".dead_letters FINAL WHERE target_table = 'audit_events' ORDER BY record_key")
			require.Len(t, rows, 3)
			for i, r := range rows {
				assert.True(t, strings.HasPrefix(r[0], fmt.Sprintf("poison-dl-%08d/ResponseComplete/", []int{7, 150, 299}[i])), r[0])
				assert.Equal(t, "GATEHOUSE_AUDIT", r[1])
				assert.Equal(t, "1", r[2], "the stream sequence is known")
				assert.Contains(t, r[3], "no_poison")
				var row map[string]any
				require.NoError(t, json.Unmarshal([]byte(r[4]), &row))
				assert.Equal(t, strings.SplitN(r[0], "/", 2)[0], row["audit_id"], "the rejected row is kept whole")
				assert.Contains(t, row, "request_uri")
			}

			// Trail records too.
			pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "proxy/test"})
			require.NoError(t, err)
			for _, id := range []string{"ok-1", "poison-1", "ok-2"} {
				require.NoError(t, pub.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: id}, AuditID: id, SessionID: "s-dl",
					Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200}))
			}
			require.NoError(t, pub.Close(ctx))
			h.waitRows(t, 2, 30*time.Second, "SELECT count() FROM {db}.gateway_requests FINAL")
			h.waitRows(t, 1, 30*time.Second, "SELECT count() FROM {db}.dead_letters FINAL WHERE target_table = 'gateway_requests' AND record_key = 'poison-1'")
			assert.Contains(t, h.logs.String(), "ClickHouse rejected a row; stored in dead_letters")
		})
	}
}

// TestServerFailuresAreNotDeadLetters makes every row fail for a reason that is the server's
// (a column the schema needs is gone): nothing is dead-lettered, the batch waits, and once the
// schema is repaired every event is stored.
func TestServerFailuresAreNotDeadLetters(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	require.NoError(t, h.ch.Exec(ctx, "ALTER TABLE "+h.db+".audit_events DROP COLUMN origin"))
	require.Equal(t, 200, h.post(t, testEventList(0, 200, genOptions{id: "srv"})))
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "every row failed") || strings.Contains(h.logs.String(), "batch not processed, it will be delivered again")
	}, 30*time.Second, 50*time.Millisecond)
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.dead_letters"))
	require.NoError(t, h.ch.Exec(ctx, "ALTER TABLE "+h.db+".audit_events ADD COLUMN origin LowCardinality(String) AFTER truncated"))
	h.waitRows(t, 200, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.dead_letters"))
}

// TestInsertColumnsMatchSchema checks every INSERT's column set against the tables the
// migrations create: the same names, and Go types that fit the ClickHouse types, so that a
// migration and rows.go cannot drift apart unnoticed.
func TestInsertColumnsMatchSchema(t *testing.T) {
	conn := openClickHouse(t, sharedClickHouse(t), "native")
	db := testDatabase(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, schema.Migrate(ctx, conn, schema.Options{Database: db}))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })

	tables := []*columns{
		&newEventRows().columns, &newRequestRows().columns, &newDecisionRows().columns, &newSessionRows().columns,
		&newApprovalRows().columns, &newErrorRows().columns, &newDeadLetterRows().columns, &newRecordingRows().columns,
	}
	covered := map[string]bool{}
	for _, c := range tables {
		t.Run(c.table, func(t *testing.T) {
			covered[c.table] = true
			rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
				clickhouse.Named("db", db), clickhouse.Named("t", c.table))
			require.NoError(t, err)
			want := map[string]string{}
			var order []string
			for rows.Next() {
				var name, typ string
				require.NoError(t, rows.Scan(&name, &typ))
				want[name] = typ
				order = append(order, name)
			}
			require.NoError(t, rows.Err())
			require.NotEmpty(t, want, "the migrations create %s", c.table)
			assert.ElementsMatch(t, order, c.names, "the INSERT of rows.go names exactly the columns of the table")
			for i, name := range c.names {
				typ, ok := want[name]
				if !ok {
					continue
				}
				goType := reflect.TypeOf(c.values[i](0, 0)).Elem()
				assert.True(t, fits(goType, typ), "%s.%s: Go %s does not fit ClickHouse %s", c.table, name, goType, typ)
			}
		})
	}
	// Every data table of the schema has an INSERT.
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' AND name != {m:String}",
		clickhouse.Named("db", db), clickhouse.Named("m", schema.TableMigrations))
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		assert.True(t, covered[name], "table %s has no INSERT in rows.go", name)
	}
	require.NoError(t, rows.Err())
}

// fits reports whether values of a Go type are what clickhouse-go appends to a column of a
// ClickHouse type.
func fits(g reflect.Type, ch string) bool {
	if inner, ok := unwrap(ch, "LowCardinality"); ok {
		ch = inner
	}
	switch g.Kind() {
	case reflect.String:
		return ch == "String"
	case reflect.Bool:
		return ch == "Bool"
	case reflect.Uint16:
		return ch == "UInt16"
	case reflect.Uint32:
		return ch == "UInt32"
	case reflect.Uint64:
		return ch == "UInt64"
	case reflect.Int64:
		return ch == "Int64"
	case reflect.Slice:
		inner, ok := unwrap(ch, "Array")
		return ok && fits(g.Elem(), inner)
	case reflect.Map:
		inner, ok := unwrap(ch, "Map")
		if !ok {
			return false
		}
		k, v, ok := splitTop(inner)
		return ok && fits(g.Key(), k) && fits(g.Elem(), v)
	case reflect.Struct:
		return g == reflect.TypeFor[time.Time]() && strings.HasPrefix(ch, "DateTime64(")
	}
	return false
}

// unwrap returns the argument of a type constructor: unwrap("Array(String)", "Array") is
// "String".
func unwrap(ch, name string) (string, bool) {
	if strings.HasPrefix(ch, name+"(") && strings.HasSuffix(ch, ")") {
		return ch[len(name)+1 : len(ch)-1], true
	}
	return "", false
}

// splitTop splits "A, B" at the comma that is not inside parentheses.
func splitTop(s string) (string, string, bool) {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
			}
		}
	}
	return "", "", false
}
