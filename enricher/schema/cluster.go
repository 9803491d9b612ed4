package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// shardKeys are the sharding keys of the Distributed tables: a function of the columns that
// identify a record in the table's sorting key, so that every copy of a record lands on the same
// shard, where ReplacingMergeTree (and FINAL) make it one row.
var shardKeys = map[string]string{
	TableAuditEvents:      "cityHash64(audit_id)",
	TableGatewayRequests:  "cityHash64(id)",
	TableGatewayDecisions: "cityHash64(id)",
	TableSessions:         "cityHash64(id)",
	TableApprovals:        "cityHash64(approval_id)",
	TableIngestErrors:     "cityHash64(stream, stream_sequence)",
	TableDeadLetters:      "cityHash64(target_table, record_key)",
	TableRecordings:       "cityHash64(session_id, recording_id)",
}

// LocalSuffix ends the name of the table that holds a shard's rows (Options.Cluster); the table
// without it is the Distributed table over them.
const LocalSuffix = "_local"

var (
	createTable = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s`)
	alterTable  = regexp.MustCompile(`^ALTER TABLE (\w+)\.(\w+)\s+(ADD COLUMN|ADD INDEX|UPDATE|MODIFY|DROP|COMMENT)\b`)
	createView  = regexp.MustCompile(`^CREATE OR REPLACE VIEW (\w+)\.(\w+)( SQL SECURITY \w+)? AS\s`)
	engine      = regexp.MustCompile(`(?m)^ENGINE = (ReplacingMergeTree|MergeTree)\s*$`)
	// replicatedEngine matches the engine clusterStatements writes.
	replicatedEngine = regexp.MustCompile(`ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'\)`)
)

// onCluster returns the ON CLUSTER clause of o, empty for a single server.
func (o Options) onCluster() string {
	if o.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + quoteIdent(o.Cluster)
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// clusterStatements rewrites the statements of one migration (or of the views) for a cluster:
// every statement runs ON CLUSTER; a table becomes <table>_local with the Replicated engine of
// its engine, followed by the Distributed table of the table's name over it, re-created after
// every change of the local table's columns. A statement of any other shape is an error, so a
// new migration cannot silently skip the cluster.
func clusterStatements(o Options, name string, stmts []string) ([]string, error) {
	on := o.onCluster()
	var out []string
	for i, s := range stmts {
		switch {
		case createTable.MatchString(s):
			m := createTable.FindStringSubmatch(s)
			db, table := m[1], m[2]
			if _, ok := shardKeys[table]; !ok {
				return nil, fmt.Errorf("schema: %s, statement %d: table %s has no sharding key (shardKeys)", name, i+1, table)
			}
			if !engine.MatchString(s) {
				return nil, fmt.Errorf("schema: %s, statement %d: table %s: only MergeTree and ReplacingMergeTree are made replicated", name, i+1, table)
			}
			local := table + LocalSuffix
			s = createTable.ReplaceAllString(s, "CREATE TABLE IF NOT EXISTS "+db+"."+local+on+"\n")
			s = engine.ReplaceAllString(s, "ENGINE = Replicated${1}("+quoteString("/clickhouse/tables/{shard}/"+db+"/"+local)+", '{replica}')")
			out = append(out, s, distributed(o, db, table))
		case alterTable.MatchString(s):
			m := alterTable.FindStringSubmatch(s)
			db, table := m[1], m[2]
			s = strings.Replace(s, "ALTER TABLE "+db+"."+table, "ALTER TABLE "+db+"."+table+LocalSuffix+on, 1)
			out = append(out, s)
			if m[3] != "UPDATE" && m[3] != "ADD INDEX" { // the columns changed
				out = append(out, distributed(o, db, table))
			}
		case createView.MatchString(s):
			m := createView.FindStringSubmatch(s)
			out = append(out, strings.Replace(s, m[1]+"."+m[2]+m[3]+" AS", m[1]+"."+m[2]+on+m[3]+" AS", 1))
		default:
			return nil, fmt.Errorf("schema: %s, statement %d: no cluster form for %.60q", name, i+1, s)
		}
	}
	return out, nil
}

// distributed returns the statement that (re)creates the Distributed table over table's local
// tables with the local table's columns. It holds no rows: inserts through it are forwarded to
// the shards before they return (the enricher sets distributed_foreground_insert), so replacing
// it loses nothing.
func distributed(o Options, db, table string) string {
	return "CREATE OR REPLACE TABLE " + db + "." + table + o.onCluster() + " AS " + db + "." + table + LocalSuffix +
		"\nENGINE = Distributed(" + quoteString(o.Cluster) + ", " + quoteString(db) + ", " + quoteString(table+LocalSuffix) + ", " + shardKeys[table] + ")"
}
