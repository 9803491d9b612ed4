// Command benchratio reads `go test -bench` output and reports every benchmark as a ratio to
// its baseline measured in the same run, since absolute times on a shared machine are noise.
//
// A baseline is a sub-benchmark whose name starts with "baseline=": for BenchmarkX/baseline=Y,
// every sibling BenchmarkX/Z is reported as Z/Y on the median ns/op over -count runs, plus any
// custom metrics (p99-ns, events/s, ...) the benchmark reported, side by side.
//
//	go test -run '^$' -bench . -count 5 ./... | go run ./scripts/benchratio
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// result holds every run of one benchmark.
type result struct {
	metrics map[string][]float64 // unit -> values
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	results := map[string]*result{}
	pkg := ""
	names := []string{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Fprintln(out, text) // pass the raw output through
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = p
			continue
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
		return err
	}

	fmt.Fprintln(out, "\nRatios to the baseline of the same run (median of runs; < 1 is faster):")
	found := false
	for _, base := range names {
		parent, sub, ok := strings.Cut(base, "/baseline=")
		if !ok || strings.Contains(sub, "/") {
			continue
		}
		found = true
		b := results[base]
		fmt.Fprintf(out, "\n%s (baseline %s: %s)\n", parent, sub, describe(b))
		for _, name := range names {
			rest, ok := strings.CutPrefix(name, parent+"/")
			if !ok || name == base || strings.HasPrefix(rest, "baseline=") {
				continue
			}
			r := results[name]
			fmt.Fprintf(out, "  %-40s %6.2fx time", rest, ratio(r, b, "ns/op"))
			for _, unit := range sortedUnits(r) {
				if unit == "ns/op" || unit == "B/op" || unit == "allocs/op" || unit == "MB/s" {
					continue
				}
				if _, ok := b.metrics[unit]; ok {
					fmt.Fprintf(out, "  %6.2fx %s", ratio(r, b, unit), unit)
				} else {
					fmt.Fprintf(out, "  %s=%.4g", unit, median(r.metrics[unit]))
				}
			}
			if a, ok := r.metrics["allocs/op"]; ok {
				fmt.Fprintf(out, "  allocs/op=%.0f", median(a))
			}
			fmt.Fprintln(out)
		}
	}
	if !found {
		return fmt.Errorf("no baseline=... sub-benchmarks in the input")
	}
	return nil
}

func describe(r *result) string {
	return fmt.Sprintf("%.0f ns/op", median(r.metrics["ns/op"]))
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
