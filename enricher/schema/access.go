package schema

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// RolesMode says whether Migrate creates the auditors' role and grants it the views.
type RolesMode string

// Roles modes.
const (
	// RolesOff leaves roles and grants to the database administrator (the zero value):
	// AccessStatements prints what to run.
	RolesOff RolesMode = "off"
	// RolesAuto creates the role and grants when the server and the enricher's account allow it,
	// and logs a warning saying what to run instead when they do not (a server without SQL-driven
	// access control, an account without the right to manage roles).
	RolesAuto RolesMode = "auto"
	// RolesOn creates the role and grants, and fails the migration when it cannot.
	RolesOn RolesMode = "on"
)

// ErrRoles is wrapped by Migrate's error when RolesOn is set and the role or its grants cannot be
// created.
var ErrRoles = errors.New("schema: the auditors' role cannot be managed")

// ErrGrant is wrapped by Migrate's error when the account may not run a migration's statement:
// it lacks a grant of EnricherGrants (a new migration may need a new one).
var ErrGrant = errors.New("schema: the account lacks a grant a migration needs; grant it what `gatehouse sql --print-grants` prints")

// ClickHouse error codes the role management tells apart.
const (
	codeAccessDenied      = 497
	codeNoWritableStorage = 514 // ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND
	codeReadonlyStorage   = 495 // ACCESS_STORAGE_READONLY
)

var viewRE = regexp.MustCompile(`(?m)^CREATE OR REPLACE VIEW ([A-Za-z_][A-Za-z0-9_]*)\.([a-z_]+)`)

// ViewNames returns the names of the views Migrate creates.
func ViewNames(o Options) ([]string, error) {
	views, err := Views(o)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range views {
		if m := viewRE.FindStringSubmatch(v); m != nil {
			out = append(out, m[2])
		}
	}
	return out, nil
}

// auditorRole returns the name of the auditors' role: Options.AuditorRole, or <database>_auditor.
func (o Options) auditorRole() string {
	if o.AuditorRole != "" {
		return o.AuditorRole
	}
	db := o.Database
	if db == "" {
		db = DefaultDatabase
	}
	return db + "_auditor"
}

// AuditorGrants returns the privileges of the auditors' role, as GRANT statements without their
// grantee ("GRANT SELECT ON gatehouse.trail"): SELECT on each view, nothing else. Views run with
// their definer's rights (SQL SECURITY DEFINER), so the role needs no right on the tables; it
// cannot insert, alter, delete, truncate, optimize or drop anything.
func AuditorGrants(o Options) ([]string, error) {
	o.setDefaults()
	views, err := ViewNames(o)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(views))
	for _, v := range views {
		out = append(out, "GRANT SELECT ON "+o.Database+"."+v)
	}
	return out, nil
}

// EnricherGrants returns the privileges the enricher's own account needs on its database, as
// GRANT statements without their grantee: create and migrate the tables (including the one
// UPDATE migration 3 runs and the sorting key migration 7 extends), replace the views, set
// retention, insert and read. It is the only account that needs to write; with these grants it still cannot delete rows (ALTER DELETE,
// DELETE), truncate, or drop or rename a table. Managing the auditors' role (RolesAuto, RolesOn)
// takes in addition the grants of RoleManagerGrants.
func EnricherGrants(o Options) []string {
	o.setDefaults()
	db := o.Database
	return []string{
		"GRANT CREATE DATABASE ON " + db + ".*",
		"GRANT CREATE TABLE, CREATE VIEW, DROP VIEW ON " + db + ".*",
		"GRANT ALTER ADD COLUMN, ALTER ADD INDEX, ALTER ORDER BY, ALTER TTL, ALTER UPDATE ON " + db + ".*",
		"GRANT INSERT, SELECT ON " + db + ".*",
		// ClickHouse 25 and later grant the use of table engines too.
		"GRANT TABLE ENGINE ON ReplacingMergeTree",
	}
}

// RoleManagerGrants returns what the enricher's account needs in addition to EnricherGrants to
// create the auditors' role and grant it the views.
func RoleManagerGrants(o Options) []string {
	o.setDefaults()
	return []string{
		"GRANT CREATE ROLE ON *.*",
		"GRANT SELECT ON " + o.Database + ".* WITH GRANT OPTION",
	}
}

// AccessStatements returns the statements that create the auditors' role and grant it the
// views, for a database administrator to run when Migrate does not (RolesOff), followed by the
// grants of the enricher's own account (<enricher> stands for it).
func AccessStatements(o Options) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	role := o.auditorRole()
	grants, err := AuditorGrants(o)
	if err != nil {
		return nil, err
	}
	out := o.roleStatements(role, grants)
	for _, g := range append(EnricherGrants(o), RoleManagerGrants(o)...) {
		out = append(out, g+" TO <enricher>")
	}
	return out, nil
}

// roleStatements returns the statements that create role and grant it grants. With a cluster
// they run ON CLUSTER, so that every server's access storage has the role, as every server has
// the views.
func (o Options) roleStatements(role string, grants []string) []string {
	on := ""
	if o.Cluster != "" && !o.singleServer {
		on = o.onCluster()
	}
	out := []string{"CREATE ROLE IF NOT EXISTS " + role + on}
	for _, g := range grants {
		out = append(out, "GRANT"+on+strings.TrimPrefix(g, "GRANT")+" TO "+role)
	}
	return out
}

// manageRoles creates the auditors' role and grants it the views, as o.Roles says.
func manageRoles(ctx context.Context, conn driver.Conn, o Options) error {
	if o.Roles == "" || o.Roles == RolesOff {
		return nil
	}
	role := o.auditorRole()
	grants, err := AuditorGrants(o)
	if err != nil {
		return err
	}
	for _, s := range o.roleStatements(role, grants) {
		err := conn.Exec(ctx, s)
		if err == nil {
			continue
		}
		var ex *clickhouse.Exception
		if o.Roles == RolesAuto && errors.As(err, &ex) &&
			(ex.Code == codeNoWritableStorage || ex.Code == codeAccessDenied || ex.Code == codeReadonlyStorage) {
			o.Logger.Warn("the auditors' role was not created: the ClickHouse server has no SQL-managed access storage, "+
				"or this account may not manage roles; create it as docs/auditing.md says (gatehouse sql --print-grants)",
				"role", role, "statement", s, "code", ex.Code)
			return nil
		}
		return fmt.Errorf("%w: %s: %w", ErrRoles, s, err)
	}
	return checkRole(ctx, conn, o, role, grants)
}

// checkRole verifies that the role holds nothing but its grants: a role that can do more than
// read the views is reported (Migrate never revokes what an administrator granted).
func checkRole(ctx context.Context, conn driver.Conn, o Options, role string, grants []string) error {
	rows, err := conn.Query(ctx, "SELECT access_type, ifNull(database, '*'), ifNull(table, '*') FROM system.grants WHERE role_name = {r:String}",
		clickhouse.Named("r", role))
	if err != nil {
		return fmt.Errorf("%w: read the grants of %s: %w", ErrRoles, role, err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, g := range grants {
		want[strings.TrimPrefix(g, "GRANT SELECT ON ")] = true
	}
	var extra []string
	for rows.Next() {
		var access, db, table string
		if err := rows.Scan(&access, &db, &table); err != nil {
			return err
		}
		if access != "SELECT" || !want[db+"."+table] {
			extra = append(extra, access+" ON "+db+"."+table)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(extra) > 0 {
		err := fmt.Errorf("%w: role %s holds more than SELECT on the views: %s; revoke it", ErrRoles, role, strings.Join(extra, ", "))
		if o.Roles == RolesOn {
			return err
		}
		o.Logger.Warn(err.Error())
	}
	return nil
}
