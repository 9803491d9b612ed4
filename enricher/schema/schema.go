package schema

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql views.sql
var files embed.FS

// ErrInvalidOptions is returned by Migrate for options it cannot use.
var ErrInvalidOptions = errors.New("schema: invalid options")

// Table names. The views are the auditors' entry points; the tables hold one row per record.
const (
	TableAuditEvents      = "audit_events"
	TableGatewayRequests  = "gateway_requests"
	TableGatewayDecisions = "gateway_decisions"
	TableSessions         = "sessions"
	TableApprovals        = "approvals"
	TableIngestErrors     = "ingest_errors"
	TableDeadLetters      = "dead_letters"
	TableRecordings       = "session_recordings"
	TableMigrations       = "schema_migrations"

	ViewTrail           = "trail"
	ViewDecisionSummary = "decision_summary"
	ViewApprovalSummary = "approval_summary"
	ViewSessionSummary  = "session_summary"
	ViewOpenStreams     = "open_streams"
	ViewRecordings      = "recording_summary"
	ViewTrailFor        = "trail_for"
	ViewOpenStreamsFor  = "open_streams_for"
	ViewApprovalsFor    = "approval_summary_for"
	ViewSessionsFor     = "session_summary_for"
	ViewIngestErrorLog  = "ingest_error_log"
	ViewDeadLetterLog   = "dead_letter_log"
)

// timeColumns names the column each data table's retention is computed from.
var timeColumns = map[string]string{
	TableAuditEvents:      "request_received_at",
	TableGatewayRequests:  "time",
	TableGatewayDecisions: "time",
	TableSessions:         "time",
	TableApprovals:        "time",
	TableIngestErrors:     "time",
	TableDeadLetters:      "time",
	TableRecordings:       "start",
}

// Defaults of Options.
const (
	DefaultDatabase      = "gatehouse"
	DefaultRetentionDays = 365
	DefaultGatewayGrace  = 5 * time.Minute
	DefaultHoldMargin    = time.Hour
)

// Options configures Migrate. The zero value is usable.
type Options struct {
	// Database holds the tables and views; it is created when missing. Default "gatehouse".
	Database string
	// RetentionDays is how long rows are kept, by the time of the action they record: rows
	// older than that are dropped a whole daily partition at a time (TTL with
	// ttl_only_drop_parts). Default DefaultRetentionDays; a negative value keeps rows forever.
	RetentionDays int
	// Retention overrides RetentionDays for single tables (audit_events, gateway_requests,
	// gateway_decisions, sessions, approvals, session_recordings, ingest_errors, dead_letters):
	// table name to days, a negative value keeping that table's rows forever.
	Retention map[string]int
	// GatewayGrace is how long the trail view waits for the gateway's record of an audit event
	// that carries the gateway's session extras before it calls the event a bypass. It is
	// rounded up to whole seconds. Default DefaultGatewayGrace.
	GatewayGrace time.Duration
	// HoldMargin is how long before a window's start the trail_for view (and so every canned
	// query) reads the gateway's records, decisions and approvals: at least the longest the
	// proxy holds a call for approval (its --approval-timeout), plus the clocks' skew between
	// the webhook and kube-apiserver. The answered attempt of a call held longer than that
	// before the window's start would not join its record in trail_for (trail is not bounded).
	// Default DefaultHoldMargin.
	HoldMargin time.Duration
	// Roles says whether Migrate creates the auditors' role (AuditorRole) and grants it SELECT on
	// the views. Default RolesOff.
	Roles RolesMode
	// AuditorRole names the auditors' role. Default "<Database>_auditor".
	AuditorRole string
	// Logger receives the warnings of RolesAuto. Default: discard.
	Logger *slog.Logger
	// Cluster is the ClickHouse cluster (remote_servers) to create the schema on. Every
	// statement then runs ON CLUSTER; each table becomes <table>_local with the Replicated
	// form of its engine (ReplicatedReplacingMergeTree, in ClickHouse Keeper at
	// /clickhouse/tables/{shard}/<database>/<table>_local, replica {replica}: the servers need
	// the shard and replica macros), and <table> is a Distributed table over the local tables,
	// sharded by the record's identity, so inserts and the views use the same names as on a
	// single server. Inserts must be forwarded before they return (distributed_foreground_insert,
	// which the enricher sets with a cluster). Default "": a single server, plain tables.
	Cluster string

	// singleServer renders Cluster's schema for one server without ClickHouse Keeper: no ON
	// CLUSTER, plain engines; the local and Distributed tables stay. A test seam: it tests on one
	// server what a cluster runs.
	singleServer bool
}

var (
	identifier  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

func (o *Options) setDefaults() {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.RetentionDays == 0 {
		o.RetentionDays = DefaultRetentionDays
	}
	if o.GatewayGrace == 0 {
		o.GatewayGrace = DefaultGatewayGrace
	}
	if o.HoldMargin == 0 {
		o.HoldMargin = DefaultHoldMargin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options Migrate cannot use.
func (o *Options) Validate() error {
	if o.Database != "" && !identifier.MatchString(o.Database) {
		return fmt.Errorf("%w: database name %q must match %s", ErrInvalidOptions, o.Database, identifier)
	}
	if o.Cluster != "" && !clusterName.MatchString(o.Cluster) {
		return fmt.Errorf("%w: cluster name %q must match %s", ErrInvalidOptions, o.Cluster, clusterName)
	}
	if o.GatewayGrace < 0 {
		return fmt.Errorf("%w: the gateway grace period must not be negative", ErrInvalidOptions)
	}
	if o.HoldMargin < 0 {
		return fmt.Errorf("%w: the hold margin must not be negative", ErrInvalidOptions)
	}
	for table, days := range o.Retention {
		if _, ok := timeColumns[table]; !ok {
			return fmt.Errorf("%w: no table %q has a retention (tables: %s)", ErrInvalidOptions, table, strings.Join(retentionTables(), ", "))
		}
		if days == 0 {
			return fmt.Errorf("%w: the retention of %s must be a number of days, or negative to keep its rows forever", ErrInvalidOptions, table)
		}
	}
	switch o.Roles {
	case "", RolesOff, RolesAuto, RolesOn:
	default:
		return fmt.Errorf("%w: roles must be %s, %s or %s, not %q", ErrInvalidOptions, RolesOff, RolesAuto, RolesOn, o.Roles)
	}
	if o.AuditorRole != "" && !identifier.MatchString(o.AuditorRole) {
		return fmt.Errorf("%w: role name %q must match %s", ErrInvalidOptions, o.AuditorRole, identifier)
	}
	return nil
}

// retentionTables returns the tables that have a retention, sorted.
func retentionTables() []string {
	tables := make([]string, 0, len(timeColumns))
	for t := range timeColumns {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	return tables
}

// retentionDays returns the retention of table.
func (o Options) retentionDays(table string) int {
	if d, ok := o.Retention[table]; ok {
		return d
	}
	return o.RetentionDays
}

// Migration is one versioned schema change.
type Migration struct {
	// Version orders migrations; it is the number the file name starts with.
	Version uint32
	// Name is the file name.
	Name string
	// Statements are the statements of the migration, rendered for the options.
	Statements []string
}

// params are the values the SQL templates see.
type params struct {
	DB           string
	GraceSeconds int64
	// HoldSeconds is how long before a window's start the trail_for view reads the gateway's
	// records: a held call's record carries the time the call arrived, its answered attempt
	// the time it was re-sent, up to the proxy's hold limit later.
	HoldSeconds int64
	// Window renders the parameterized trail_for view rather than trail.
	Window bool
}

func newParams(o Options) params {
	return params{
		DB:           o.Database,
		GraceSeconds: int64((o.GatewayGrace + time.Second - 1) / time.Second),
		HoldSeconds:  int64((o.HoldMargin + time.Second - 1) / time.Second),
	}
}

// Windowed returns p for the parameterized trail_for view.
func (p params) Windowed() params {
	p.Window = true
	return p
}

// Migrations returns the embedded migrations rendered for o, in order.
func Migrations(o Options) ([]Migration, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("schema: migration file %s does not start with a version number", base)
		}
		if len(out) > 0 && out[len(out)-1].Version == uint32(v) {
			// schema_migrations records versions: a second migration with the same number
			// would never be applied.
			return nil, fmt.Errorf("schema: migrations %s and %s have the same version %d", out[len(out)-1].Name, base, v)
		}
		stmts, err := render(name, newParams(o))
		if err != nil {
			return nil, err
		}
		if stmts, err = o.forCluster(base, stmts); err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: uint32(v), Name: base, Statements: stmts})
	}
	return out, nil
}

// Views returns the CREATE OR REPLACE VIEW statements for o.
func Views(o Options) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	stmts, err := render("views.sql", newParams(o))
	if err != nil {
		return nil, err
	}
	return o.forCluster("views.sql", stmts)
}

// forCluster returns the statements of one file for o's cluster: unchanged for a single server.
func (o Options) forCluster(name string, stmts []string) ([]string, error) {
	if o.Cluster == "" {
		return stmts, nil
	}
	stmts, err := clusterStatements(o, name, stmts)
	if err != nil || !o.singleServer {
		return stmts, err
	}
	for i, s := range stmts {
		s = strings.ReplaceAll(s, o.onCluster(), "")
		stmts[i] = replicatedEngine.ReplaceAllString(s, "ENGINE = $1")
	}
	return stmts, nil
}

// local returns the name of the table that holds table's rows on this server.
func (o Options) local(table string) string {
	if o.Cluster == "" {
		return table
	}
	return table + LocalSuffix
}

// render executes a template file and splits it into statements. A statement ends with a line
// that ends in a semicolon; lines starting with "--" are comments.
func render(name string, p params) ([]string, error) {
	text, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("schema: parse %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("schema: render %s: %w", name, err)
	}
	var stmts []string
	var cur strings.Builder
	for line := range strings.SplitSeq(buf.String(), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		return nil, fmt.Errorf("schema: %s ends with an unterminated statement", name)
	}
	return stmts, nil
}

// Migrate brings the database to the current schema: it creates the database, applies the
// migrations not yet recorded in schema_migrations, sets each table's retention and replaces
// the views. Every step is idempotent, so concurrent enrichers may migrate at once.
func Migrate(ctx context.Context, conn driver.Conn, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o.setDefaults()
	migrations, err := Migrations(o)
	if err != nil {
		return err
	}
	db := o.Database
	on := o.onCluster()
	if o.singleServer {
		on = ""
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db+on); err != nil {
		return fmt.Errorf("schema: create database %s: %w", db, err)
	}
	// With a cluster, every server of every shard holds the one list of applied migrations.
	migrationsEngine := "ReplacingMergeTree"
	if o.Cluster != "" && !o.singleServer {
		migrationsEngine = "ReplicatedReplacingMergeTree(" + quoteString("/clickhouse/tables/all/"+db+"/"+TableMigrations) + ", '{replica}')"
	}
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+db+`.`+TableMigrations+on+` (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = `+migrationsEngine+` ORDER BY version`); err != nil {
		return fmt.Errorf("schema: create %s.%s: %w", db, TableMigrations, err)
	}
	applied, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				var ex *clickhouse.Exception
				if errors.As(err, &ex) && ex.Code == codeAccessDenied {
					return fmt.Errorf("%w: migration %s, statement %d: %w", ErrGrant, m.Name, i+1, err)
				}
				return fmt.Errorf("schema: migration %s, statement %d: %w", m.Name, i+1, err)
			}
		}
		if err := conn.Exec(ctx, `INSERT INTO `+db+`.`+TableMigrations+` (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`,
			m.Version, m.Name, checksum(m.Statements), time.Now()); err != nil {
			return fmt.Errorf("schema: record migration %s: %w", m.Name, err)
		}
	}
	if err := applyRetention(ctx, conn, o); err != nil {
		return err
	}
	views, err := Views(o)
	if err != nil {
		return err
	}
	for _, stmt := range views {
		if err := replaceView(ctx, conn, stmt); err != nil {
			return fmt.Errorf("schema: replace view: %w", err)
		}
	}
	return manageRoles(ctx, conn, o)
}

// replaceView runs a CREATE OR REPLACE VIEW statement. ClickHouse replaces a view atomically
// through a temporary table, which takes the right to drop tables; an account that may only drop
// views (the enricher's, which must not be able to drop the trail's tables: EnricherGrants)
// drops the view and creates it again instead.
func replaceView(ctx context.Context, conn driver.Conn, stmt string) error {
	err := conn.Exec(ctx, stmt)
	var ex *clickhouse.Exception
	if err == nil || !errors.As(err, &ex) || ex.Code != codeAccessDenied {
		return err
	}
	m := viewRE.FindStringSubmatch(stmt)
	if m == nil {
		return err
	}
	if err := conn.Exec(ctx, "DROP VIEW IF EXISTS "+m[1]+"."+m[2]); err != nil {
		return err
	}
	return conn.Exec(ctx, strings.Replace(stmt, "CREATE OR REPLACE VIEW", "CREATE VIEW", 1))
}

func appliedVersions(ctx context.Context, conn driver.Conn, db string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM "+db+"."+TableMigrations+" FINAL")
	if err != nil {
		return nil, fmt.Errorf("schema: read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("schema: read applied migrations: %w", err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

// applyRetention sets each data table's TTL to the configured retention, altering only tables
// whose TTL differs. Changing a TTL does not rewrite existing parts
// (materialize_ttl_after_modify=0): old partitions are dropped as they expire.
func applyRetention(ctx context.Context, conn driver.Conn, o Options) error {
	for _, table := range retentionTables() {
		days := o.retentionDays(table)
		var engine string
		timeColumn := timeColumns[table]
		table = o.local(table)
		if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
			clickhouse.Named("db", o.Database), clickhouse.Named("table", table)).Scan(&engine); err != nil {
			return fmt.Errorf("schema: read the definition of %s.%s: %w", o.Database, table, err)
		}
		on := o.onCluster()
		if o.singleServer {
			on = ""
		}
		hasTTL := strings.Contains(engine, " TTL ")
		want := retentionExpr(timeColumn, days)
		var stmt string
		switch {
		case days < 0 && hasTTL:
			stmt = "ALTER TABLE " + o.Database + "." + table + on + " REMOVE TTL"
		case days > 0 && !strings.Contains(engine, " TTL "+want):
			stmt = "ALTER TABLE " + o.Database + "." + table + on + " MODIFY TTL " + want
		default:
			continue
		}
		ctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"materialize_ttl_after_modify": 0}))
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("schema: set the retention of %s.%s: %w", o.Database, table, err)
		}
	}
	return nil
}

// retentionExpr is a TTL expression as ClickHouse prints it in system.tables.
func retentionExpr(column string, days int) string {
	return "toDateTime(" + column + ") + toIntervalDay(" + strconv.Itoa(days) + ")"
}

func checksum(stmts []string) string {
	h := sha256.New()
	for _, s := range stmts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
