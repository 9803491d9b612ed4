// Command benchratio reads `go test -bench` output and reports every benchmark as a ratio to
// its baseline measured in the same run, since absolute times on a shared machine are noise.
//
// A baseline is a sub-benchmark whose name starts with "baseline=": for BenchmarkX/baseline=Y,
// every sibling BenchmarkX/Z is reported as Z/Y on the median ns/op over -count runs, plus any
// custom metrics (p99-ns, events/s, ...) the benchmark reported, side by side. Metrics the
// baseline lacks are shown as they are.
//
// Cases that differ only in one numeric parameter of their name (clients=1, clients=50, ...;
// size=1MB, size=100MB) form a scaling curve: the report shows their ratios side by side, and
// their per-unit metrics (ns/MB, B/watch, ...) relative to the smallest parameter, so that
// linear cost reads as 1.00x all along.
//
// A benchmark that reports an "unrecorded" metric counts the trail records it could not write
// (the trail refused them: backlog, NATS unavailable). A run with any did less work than a
// deployment must, so its ratios flatter it: the report says so in a warning, on the case's line
// and at its end, and in the JSON (warnings, and each case's unrecorded).
//
// benchratio passes the raw output through to standard output as it comes (the run's progress),
// writes it unchanged to -raw (benchstat's input format) and the report as JSON to -json.
//
//	go test -run '^$' -bench . -count 5 ./... | go run ./scripts/benchratio -json bench.json -raw bench.txt
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func main() {
	jsonPath := flag.String("json", "", "write the report as JSON to this file")
	rawPath := flag.String("raw", "", "write the raw benchmark output (benchstat's input) to this file")
	flag.Parse()
	if err := main1(*jsonPath, *rawPath); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func main1(jsonPath, rawPath string) error {
	var raw io.Writer = io.Discard
	if rawPath != "" {
		f, err := os.Create(rawPath)
		if err != nil {
			return err
		}
		defer f.Close()
		raw = f
	}
	rep, err := run(os.Stdin, io.MultiWriter(os.Stdout, raw), os.Stdout)
	if err != nil {
		return err
	}
	if jsonPath == "" {
		return nil
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\nReport written to %s", jsonPath)
	if rawPath != "" {
		fmt.Fprintf(os.Stdout, ", raw output (for benchstat) to %s", rawPath)
	}
	fmt.Fprintln(os.Stdout)
	return nil
}

// result holds every run of one benchmark.
type result struct {
	metrics map[string][]float64 // unit -> values
}

// Report is the JSON form of the report.
type Report struct {
	// Groups has one entry per baseline, in the order the benchmarks ran.
	Groups []Group `json:"groups"`
	// Scaling has one entry per family of cases that differ in one numeric parameter.
	Scaling []Curve `json:"scaling,omitempty"`
	// Failures lists the lines of failed benchmarks and packages.
	Failures []string `json:"failures,omitempty"`
	// Warnings names the benchmarks whose runs the trail refused records in: their ratios
	// flatter them.
	Warnings []string `json:"warnings,omitempty"`
}

// Group is a baseline and the cases measured against it.
type Group struct {
	Package   string `json:"package"`
	Benchmark string `json:"benchmark"`
	Baseline  string `json:"baseline"`
	// BaselineMetrics are the baseline's medians, by unit, for reference only.
	BaselineMetrics map[string]float64 `json:"baselineMetrics"`
	Cases           []Case             `json:"cases"`
}

// Case is one benchmark against its baseline.
type Case struct {
	Name string `json:"name"`
	Runs int    `json:"runs"`
	// Ratios are case/baseline of the medians, for every unit both reported (ns/op, p99-ns, ...).
	Ratios map[string]float64 `json:"ratios"`
	// Metrics are the case's medians of the units its baseline does not report.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// AllocsPerOp is the case's median allocations per operation, when reported.
	AllocsPerOp *float64 `json:"allocsPerOp,omitempty"`
	// Unrecorded, when the case reports it, counts the trail records refused in all its runs,
	// and UnrecordedRuns the runs with any: not zero means its ratios flatter it.
	Unrecorded     *float64 `json:"unrecorded,omitempty"`
	UnrecordedRuns int      `json:"unrecordedRuns,omitempty"`
}

// Curve is a family of cases that differ only in one numeric parameter.
type Curve struct {
	// Name is the case's name with the parameter's value replaced by "*".
	Name      string  `json:"name"`
	Parameter string  `json:"parameter"`
	Points    []Point `json:"points"`
}

// Point is one case of a curve.
type Point struct {
	Value string `json:"value"`
	// TimeRatio is the case's ns/op ratio to its baseline.
	TimeRatio float64 `json:"timeRatio"`
	// Relative are the case's per-unit metrics (units with a "/", such as ns/MB or B/watch,
	// and events/s) divided by the first point's: 1.00 all along is linear cost.
	Relative map[string]float64 `json:"relative,omitempty"`
}

var (
	line    = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	param   = regexp.MustCompile(`^([A-Za-z][\w-]*)=(\d+(?:\.\d+)?)([A-Za-z]*)$`)
	failure = regexp.MustCompile(`^(--- FAIL|FAIL|panic:)`)
)

// unrecordedUnit is the metric of the trail records a benchmark run could not write.
const unrecordedUnit = "unrecorded"

// standard are go test's own units: shown as ratios, never as scaling metrics.
var standard = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "MB/s": true}

func run(in io.Reader, raw, out io.Writer) (*Report, error) {
	results := map[string]*result{}
	pkgOf := map[string]string{}
	pkg := ""
	names := []string{}
	rep := &Report{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Fprintln(raw, text)
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = p
			continue
		}
		if failure.MatchString(text) {
			rep.Failures = append(rep.Failures, text)
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		name := pkg + " " + m[1]
		r, ok := results[name]
		if !ok {
			r = &result{metrics: map[string][]float64{}}
			results[name] = r
			names = append(names, name)
			pkgOf[name] = pkg
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r.metrics[f[i+1]] = append(r.metrics[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}

	// caseOf finds each case's baseline, for the scaling curves.
	type found struct {
		r, base *result
	}
	caseOf := map[string]found{}
	for _, base := range names {
		parent, sub, ok := strings.Cut(base, "/baseline=")
		if !ok || strings.Contains(sub, "/") {
			continue
		}
		b := results[base]
		g := Group{
			Package:         pkgOf[base],
			Benchmark:       strings.TrimPrefix(parent, pkgOf[base]+" "),
			Baseline:        sub,
			BaselineMetrics: medians(b),
		}
		for _, name := range names {
			rest, ok := strings.CutPrefix(name, parent+"/")
			if !ok || name == base || strings.HasPrefix(rest, "baseline=") || isNestedGroup(rest, names, parent) {
				continue
			}
			r := results[name]
			c := Case{Name: rest, Runs: len(r.metrics["ns/op"]), Ratios: map[string]float64{}, Metrics: map[string]float64{}}
			for _, unit := range sortedUnits(r) {
				if unit == "B/op" || unit == "allocs/op" || unit == "MB/s" || unit == unrecordedUnit {
					continue
				}
				if _, ok := b.metrics[unit]; ok {
					c.Ratios[unit] = ratio(r, b, unit)
				} else {
					c.Metrics[unit] = median(r.metrics[unit])
				}
			}
			if a, ok := r.metrics["allocs/op"]; ok {
				v := median(a)
				c.AllocsPerOp = &v
			}
			if u, ok := r.metrics[unrecordedUnit]; ok {
				total, runs := unrecorded(u)
				c.Unrecorded, c.UnrecordedRuns = &total, runs
			}
			g.Cases = append(g.Cases, c)
			caseOf[name] = found{r, b}
		}
		rep.Groups = append(rep.Groups, g)
	}
	if len(rep.Groups) == 0 {
		return nil, fmt.Errorf("no baseline=... sub-benchmarks in the input")
	}
	for _, name := range names {
		if total, runs := unrecorded(results[name].metrics[unrecordedUnit]); runs > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: the trail refused %.0f records in %d of %d runs: those runs did less work than a deployment must, so their ratios flatter them",
				name, total, runs, len(results[name].metrics[unrecordedUnit])))
		}
	}

	// Scaling curves: cases whose names differ in one name=<number> element.
	curves := map[string]*Curve{}
	var order []string
	for _, name := range names {
		fc, ok := caseOf[name]
		if !ok {
			continue
		}
		elems := strings.Split(name, "/")
		for i, e := range elems {
			m := param.FindStringSubmatch(e)
			if m == nil {
				continue
			}
			key := strings.Join(slices.Concat(elems[:i], []string{m[1] + "=*"}, elems[i+1:]), "/")
			c, ok := curves[key]
			if !ok {
				c = &Curve{Name: key, Parameter: m[1]}
				curves[key] = c
				order = append(order, key)
			}
			p := Point{Value: m[2] + m[3], TimeRatio: ratio(fc.r, fc.base, "ns/op"), Relative: map[string]float64{}}
			for _, unit := range sortedUnits(fc.r) {
				if !standard[unit] && strings.Contains(unit, "/") && !strings.HasPrefix(unit, "cpu-ns") {
					p.Relative[unit] = median(fc.r.metrics[unit])
				}
			}
			c.Points = append(c.Points, p)
		}
	}
	for _, key := range order {
		c := curves[key]
		if len(c.Points) < 2 {
			continue
		}
		first := maps.Clone(c.Points[0].Relative)
		for i := range c.Points {
			for unit, v := range c.Points[i].Relative {
				if first[unit] == 0 {
					delete(c.Points[i].Relative, unit)
					continue
				}
				c.Points[i].Relative[unit] = v / first[unit]
			}
		}
		rep.Scaling = append(rep.Scaling, *c)
	}
	printReport(out, rep)
	return rep, nil
}

// isNestedGroup reports whether rest lies under a deeper baseline of its own (parent/X/baseline=...),
// where it is reported instead.
func isNestedGroup(rest string, names []string, parent string) bool {
	for i := strings.LastIndex(rest, "/"); i > 0; i = strings.LastIndex(rest[:i], "/") {
		prefix := parent + "/" + rest[:i] + "/baseline="
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && !strings.Contains(n[len(prefix):], "/") {
				return true
			}
		}
	}
	return false
}

// unrecorded returns the records refused over runs, and the runs with any.
func unrecorded(runs []float64) (total float64, with int) {
	for _, v := range runs {
		if v > 0 {
			total += v
			with++
		}
	}
	return total, with
}

func printReport(out io.Writer, rep *Report) {
	printWarnings(out, rep)
	fmt.Fprintln(out, "\nRatios to the baseline of the same run (median of runs; time < 1 is faster):")
	for _, g := range rep.Groups {
		fmt.Fprintf(out, "\n%s %s (baseline %s: %.0f ns/op)\n", g.Package, g.Benchmark, g.Baseline, g.BaselineMetrics["ns/op"])
		for _, c := range g.Cases {
			fmt.Fprintf(out, "  %-40s %6.2fx time", c.Name, c.Ratios["ns/op"])
			for _, unit := range sortedKeys(c.Ratios) {
				if unit != "ns/op" {
					fmt.Fprintf(out, "  %6.2fx %s", c.Ratios[unit], unit)
				}
			}
			for _, unit := range sortedKeys(c.Metrics) {
				fmt.Fprintf(out, "  %s=%.4g", unit, c.Metrics[unit])
			}
			if c.AllocsPerOp != nil {
				fmt.Fprintf(out, "  allocs/op=%.0f", *c.AllocsPerOp)
			}
			if c.UnrecordedRuns > 0 {
				fmt.Fprintf(out, "  UNRECORDED=%.0f in %d of %d runs: FLATTERED", *c.Unrecorded, c.UnrecordedRuns, c.Runs)
			}
			fmt.Fprintln(out)
		}
	}
	if len(rep.Scaling) > 0 {
		fmt.Fprintln(out, "\nScaling (time ratio to the baseline at each point; per-unit metrics relative to the first point):")
		for _, c := range rep.Scaling {
			fmt.Fprintf(out, "\n%s\n", c.Name)
			for _, p := range c.Points {
				fmt.Fprintf(out, "  %s=%-10s %6.2fx time", c.Parameter, p.Value, p.TimeRatio)
				for _, unit := range sortedKeys(p.Relative) {
					fmt.Fprintf(out, "  %6.2fx %s", p.Relative[unit], unit)
				}
				fmt.Fprintln(out)
			}
		}
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(out, "\nFailures:")
		for _, f := range rep.Failures {
			fmt.Fprintln(out, "  "+f)
		}
	}
	printWarnings(out, rep)
}

// printWarnings shows the warnings before the ratios and again after them, where a reader of a
// long run's output looks.
func printWarnings(out io.Writer, rep *Report) {
	for _, w := range rep.Warnings {
		fmt.Fprintln(out, "\nWARNING: "+w)
	}
}

func medians(r *result) map[string]float64 {
	m := map[string]float64{}
	for unit, v := range r.metrics {
		m[unit] = median(v)
	}
	return m
}

func ratio(r, base *result, unit string) float64 {
	b := median(base.metrics[unit])
	if b == 0 {
		return 0
	}
	return median(r.metrics[unit]) / b
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sortedUnits(r *result) []string {
	var u []string
	for k := range r.metrics {
		u = append(u, k)
	}
	sort.Strings(u)
	return u
}

func sortedKeys(m map[string]float64) []string {
	var u []string
	for k := range m {
		u = append(u, k)
	}
	sort.Strings(u)
	return u
}
