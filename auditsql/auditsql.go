// Package auditsql runs auditors' SQL against the enricher's ClickHouse database, read-only, and
// writes the answer as a table, CSV or JSON: ad-hoc queries and the canned queries of
// docs/auditing.md (enricher/schema.Queries), with their parameters.
//
// # Threat model
//
// An auditor's account should only be able to read (the auditors' role of the schema migrations
// can only SELECT the views). Run does not rely on it: every query runs with ClickHouse's
// readonly setting, which refuses any statement that writes or changes settings of the server,
// whatever the account may do. Parameters are sent as ClickHouse query parameters, never spliced
// into the SQL.
package auditsql

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

// ErrParams is returned for parameters that are missing, unknown or malformed.
var ErrParams = errors.New("auditsql: parameters")

// Formats of Result.Write.
const (
	FormatTable = "table"
	FormatCSV   = "csv"
	FormatJSON  = "json"
)

// Result is the answer of a query.
type Result struct {
	Columns []string
	Types   []string
	Rows    [][]any
	// Elapsed is how long the query took, from sending it to its last row.
	Elapsed time.Duration
	// CPU is the CPU time ClickHouse spent on the query (user and system, all threads), and
	// ReadRows and ReadBytes what it read, as the server reports them (native protocol only).
	CPU                 time.Duration
	ReadRows, ReadBytes uint64
}

var paramRE = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*):([A-Za-z0-9(), ']+)\}`)

// Params returns the parameters an SQL text uses ({name:Type}), in order of appearance.
func Params(sql string) []schema.Param {
	var out []schema.Param
	seen := map[string]bool{}
	for _, m := range paramRE.FindAllStringSubmatch(sql, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, schema.Param{Name: m[1], Type: m[2]})
		}
	}
	return out
}

// ResolveParams returns the value of every parameter of params: the given one, else its default.
// A time parameter (DateTime, DateTime64, Date) also takes a duration, meaning that long before
// now ("24h", "7d", "90m"), or an RFC 3339 time. It fails for a required parameter that is
// missing and for a given one the query does not have.
func ResolveParams(params []schema.Param, given map[string]string, now time.Time) (map[string]string, error) {
	known := map[string]bool{}
	out := map[string]string{}
	var errs []error
	for _, p := range params {
		known[p.Name] = true
		v, ok := given[p.Name]
		if !ok {
			if !p.HasDefault {
				errs = append(errs, fmt.Errorf("--param %s=<%s> is required", p.Name, p.Type))
				continue
			}
			v = p.Default
		}
		if isTime(p.Type) {
			t, err := parseTime(v, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("--param %s: %w", p.Name, err))
				continue
			}
			v = t.UTC().Format("2006-01-02 15:04:05.000000")
		}
		out[p.Name] = v
	}
	var unknown []string
	for k := range given {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("the query has no parameter %q", k))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParams, err)
	}
	return out, nil
}

func isTime(t string) bool {
	return strings.HasPrefix(t, "DateTime") || t == "Date" || t == "Date32"
}

// parseTime reads a time: RFC 3339, "2006-01-02 15:04:05[.999999]" (UTC), "2006-01-02", or a
// duration before now (Go syntax, plus days: "7d").
func parseTime(v string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02 15:04:05, 2006-01-02) or a duration before now (24h, 7d)", v)
}

// Run runs one query with params, read-only, and returns its rows.
func Run(ctx context.Context, conn driver.Conn, sql string, params map[string]string) (*Result, error) {
	settings := clickhouse.Settings{}
	// readonly=2 refuses every write and lets the query's own settings through. An account
	// that is read-only already (readonly=1) may not change the setting, and need not.
	var ro string
	if err := conn.QueryRow(ctx, "SELECT toString(getSetting('readonly'))").Scan(&ro); err != nil {
		return nil, fmt.Errorf("auditsql: %w", err)
	}
	if ro == "0" {
		settings["readonly"] = 2
	}
	p := clickhouse.Parameters{}
	for k, v := range params {
		p[k] = v
	}
	res := &Result{}
	var mu sync.Mutex
	profile := func(events []clickhouse.ProfileEvent) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Type == "increment" && (e.Name == "UserTimeMicroseconds" || e.Name == "SystemTimeMicroseconds") {
				res.CPU += time.Duration(e.Value) * time.Microsecond
			}
		}
	}
	progress := func(pr *clickhouse.Progress) {
		mu.Lock()
		defer mu.Unlock()
		res.ReadRows += pr.Rows
		res.ReadBytes += pr.Bytes
	}
	start := time.Now()
	rows, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p), clickhouse.WithSettings(settings),
		clickhouse.WithProfileEvents(profile), clickhouse.WithProgress(progress)), sql)
	if err != nil {
		return nil, fmt.Errorf("auditsql: %w", err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	for _, ct := range types {
		res.Columns = append(res.Columns, ct.Name())
		res.Types = append(res.Types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("auditsql: %w", err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = reflect.ValueOf(d).Elem().Interface()
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditsql: %w", err)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// Write writes the result as format: a table with a header line, CSV with a header line, or a
// JSON array of objects.
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(r.Columns, "\t")))
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(Text(v))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(r.Columns); err != nil {
			return err
		}
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = Text(v)
			}
			if err := cw.Write(cells); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case FormatJSON:
		out := make([]orderedRow, len(r.Rows))
		for i, row := range r.Rows {
			out[i] = orderedRow{cols: r.Columns, vals: row}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return fmt.Errorf("auditsql: the format must be %s, %s or %s, not %q", FormatTable, FormatCSV, FormatJSON, format)
}

// orderedRow is a JSON object with the result's columns in order.
type orderedRow struct {
	cols []string
	vals []any
}

func (o orderedRow) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range o.cols {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(c)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(jsonValue(o.vals[i]))
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return jsonValue(rv.Elem().Interface())
	}
	return v
}

// Text formats a value for a table cell or a CSV field: times in UTC with microseconds, arrays as
// [a, b], maps as {k: v}.
func Text(v any) string {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "" // NULL
		}
		return Text(rv.Elem().Interface())
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.000000")
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = Text(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := rv.MapKeys()
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = Text(k.Interface()) + ": " + Text(rv.MapIndex(k).Interface())
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
