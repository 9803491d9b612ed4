// Command gentrail fills the enricher's ClickHouse database with generated, realistic audit
// rows, for measuring the auditors' queries at scale:
//
//	go run ./scripts/gentrail -rows 10000000 --clickhouse-addr 127.0.0.1:9000
//
// The rows are a function of -rows, -days, -end and -seed alone: the same flags generate the same
// rows. Without -end the activity ends at the start of the current hour. The schema is migrated
// first (the tables are not emptied: use a fresh database).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gentrail:", err)
		os.Exit(1)
	}
}

func run() error {
	var ch enricher.ClickHouseOptions
	fs := pflag.NewFlagSet("gentrail", pflag.ContinueOnError)
	ch.AddFlags(fs)
	rows := fs.Uint64("rows", 100_000, "About how many audit events to generate.")
	days := fs.Int("days", 30, "Days of activity the rows cover.")
	end := fs.String("end", "", "When the activity ends (RFC 3339). Default: the start of the current hour.")
	seed := fs.Uint64("seed", 1, "Seed of the generated values.")
	migrateOnly := fs.Bool("migrate-only", false, "Only apply the schema (migrations, retention, views) and generate nothing.")
	fs.AddGoFlagSet(flag.CommandLine)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	endAt := time.Now().UTC().Truncate(time.Hour)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			return fmt.Errorf("-end: %w", err)
		}
		endAt = t
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, err := ch.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := schema.Migrate(ctx, conn, schema.Options{Database: ch.Database}); err != nil {
		return err
	}
	if *migrateOnly {
		return nil
	}
	start := time.Now()
	stats, err := Generate(ctx, conn, Options{Database: ch.Database, Rows: *rows, Days: *days, End: endAt, Seed: *seed,
		Progress: func(table string, done, total uint64) {
			fmt.Fprintf(os.Stderr, "\r%-20s %3d%%", table, done*100/total)
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
		}})
	if err != nil {
		return err
	}
	fmt.Printf("generated in %s (end %s, seed %d):\n", time.Since(start).Round(time.Second), endAt.Format(time.RFC3339), *seed)
	for _, t := range []string{"audit_events", "gateway_requests", "gateway_decisions", "approvals", "sessions", "session_recordings"} {
		fmt.Printf("  %-20s %12d rows\n", t, stats[t])
	}
	return nil
}
