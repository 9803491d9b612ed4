package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/auditsql"
	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

type sqlOptions struct {
	clickhouse  enricher.ClickHouseOptions
	query       string
	file        string
	params      map[string]string
	format      string
	list        bool
	show        bool
	printGrants bool
	timing      bool
}

func newSQLCommand(g *globals) *cobra.Command {
	o := &sqlOptions{}
	cmd := &cobra.Command{
		Use:   "sql [SQL]",
		Short: "Run SQL, or a canned query of docs/auditing.md, read-only against the audit trail in ClickHouse",
		Long: `Run a query against the enricher's ClickHouse database and print the answer as a table, CSV
or JSON. The query is the SQL argument (- reads it from stdin), --file, or one of the canned
queries of docs/auditing.md by name (--query who-changed-what; --list shows them all with their
parameters). Parameters ({name:Type} in the SQL) are given with --param name=value; a time takes
an RFC 3339 time or a duration before now (--param since=7d). Queries run with ClickHouse's
readonly setting: nothing can be changed through this command.

The connection flags are the enricher's (--clickhouse-addr, --clickhouse-username,
--clickhouse-password-file, TLS). Auditors use an account with the auditors' role, which can only
SELECT the views; --print-grants prints the statements that create it.`,
		Example: `  gatehouse sql --query who-changed-what --param namespace=shop --param since=7d
  gatehouse sql --query session-timeline --param session_id=3f2a... -o json
  gatehouse sql "SELECT outcome, count() FROM gatehouse.trail WHERE time >= {since:DateTime64(6)} GROUP BY outcome" --param since=24h
  gatehouse sql --list`,
		Args: cobra.MaximumNArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			return o.clickhouse.Validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
	fs := cmd.Flags()
	o.clickhouse.AddFlags(fs)
	fs.StringVarP(&o.query, "query", "q", "", "Name of a canned query of docs/auditing.md.")
	fs.StringVarP(&o.file, "file", "f", "", "File holding the SQL to run.")
	fs.StringToStringVarP(&o.params, "param", "p", nil, "Query parameter name=value (repeatable).")
	fs.StringVarP(&o.format, "output", "o", auditsql.FormatTable, "Output format: table, csv or json.")
	fs.BoolVar(&o.list, "list", false, "List the canned queries and their parameters.")
	fs.BoolVar(&o.show, "show", false, "Print the SQL of --query instead of running it.")
	fs.BoolVar(&o.printGrants, "print-grants", false, "Print the statements that create the auditors' role (SELECT on the views only) and grant the enricher's account what it needs, for an administrator to run.")
	fs.BoolVar(&o.timing, "timing", false, "Print the number of rows and the query's time to stderr.")
	return cmd
}

func (o *sqlOptions) run(cmd *cobra.Command, args []string) error {
	out := cmd.OutOrStdout()
	db := o.clickhouse.Database
	switch {
	case o.list:
		return listQueries(out)
	case o.printGrants:
		stmts, err := schema.AccessStatements(schema.Options{Database: db, Cluster: o.clickhouse.Cluster})
		if err != nil {
			return err
		}
		for _, s := range stmts {
			fmt.Fprintln(out, s+";")
		}
		return nil
	}
	var sql string
	var params []schema.Param
	sources := 0
	for _, set := range []bool{o.query != "", o.file != "", len(args) > 0} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return errors.New("give exactly one of: the SQL as an argument, --file, or --query NAME (--list shows the names)")
	}
	switch {
	case o.query != "":
		q, err := schema.LookupQuery(o.query)
		if err != nil {
			return err
		}
		if sql, err = q.Render(db); err != nil {
			return err
		}
		params = q.Params
	case o.file != "":
		b, err := os.ReadFile(o.file)
		if err != nil {
			return err
		}
		sql = string(b)
	case args[0] == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return err
		}
		sql = string(b)
	default:
		sql = args[0]
	}
	if params == nil {
		params = auditsql.Params(sql)
	}
	if o.show {
		_, err := fmt.Fprintln(out, sql)
		return err
	}
	values, err := auditsql.ResolveParams(params, o.params, time.Now())
	if err != nil {
		return err
	}
	switch o.format {
	case auditsql.FormatTable, auditsql.FormatCSV, auditsql.FormatJSON:
	default:
		return fmt.Errorf("--output must be table, csv or json, not %q", o.format)
	}
	ctx := cmd.Context()
	conn, err := o.clickhouse.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := auditsql.Run(ctx, conn, sql, values)
	if err != nil {
		return err
	}
	if err := res.Write(out, o.format); err != nil {
		return err
	}
	if o.timing {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d rows in %s (ClickHouse: %s CPU, read %d rows, %d bytes)\n", len(res.Rows),
			res.Elapsed.Round(time.Millisecond), res.CPU.Round(time.Millisecond), res.ReadRows, res.ReadBytes)
	}
	return nil
}

func listQueries(w io.Writer) error {
	qs, err := schema.Queries()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUERY\tPARAMETERS\tWHAT IT ANSWERS")
	for _, q := range qs {
		var ps []string
		for _, p := range q.Params {
			s := p.Name + ":" + p.Type
			if p.HasDefault {
				s += "=" + p.Default
				if p.Default == "" {
					s += "''"
				}
			}
			ps = append(ps, s)
		}
		desc, _, _ := strings.Cut(q.Description, ": ")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", q.Name, strings.Join(ps, " "), desc)
	}
	return tw.Flush()
}
