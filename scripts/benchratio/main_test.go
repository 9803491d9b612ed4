package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRatios(t *testing.T) {
	in := `pkg: example.com/p
BenchmarkX/baseline=plain-2   	100	 1000 ns/op	 50 p99-ns	 10 allocs/op
BenchmarkX/baseline=plain-2   	100	 3000 ns/op	 70 p99-ns	 10 allocs/op
BenchmarkX/fancy-2            	100	 3000 ns/op	100 p99-ns	 20 allocs/op
BenchmarkX/fancy-2            	100	 5000 ns/op	140 p99-ns	 20 allocs/op
BenchmarkY/baseline=a/b-2     	100	 1000 ns/op
BenchmarkZ/events=10/baseline=valid-2	100	 100 ns/op
BenchmarkZ/events=10/mask-2           	100	 150 ns/op	 7 events/s
`
	var raw, out strings.Builder
	rep, err := run(strings.NewReader(in), &raw, &out)
	require.NoError(t, err)
	assert.Equal(t, in, raw.String(), "the raw output passes through unchanged")
	s := out.String()
	assert.Regexp(t, `fancy\s+2\.00x time\s+2\.00x p99-ns\s+allocs/op=20`, s, "medians of the runs, metric by metric")
	assert.Regexp(t, `mask\s+1\.50x time\s+events/s=7`, s, "nested baselines; metrics the baseline lacks are shown as they are")
	assert.NotContains(t, s, "BenchmarkY (baseline", "a baseline= with a deeper path is not a baseline")
	assert.NotContains(t, s, "WARNING")
	assert.Empty(t, rep.Warnings)

	require.Len(t, rep.Groups, 2)
	x := rep.Groups[0]
	assert.Equal(t, "example.com/p", x.Package)
	assert.Equal(t, "BenchmarkX", x.Benchmark)
	assert.Equal(t, "plain", x.Baseline)
	require.Len(t, x.Cases, 1)
	assert.Equal(t, Case{Name: "fancy", Runs: 2, Ratios: map[string]float64{"ns/op": 2, "p99-ns": 2}, Metrics: map[string]float64{}, AllocsPerOp: ptr(20.0)}, x.Cases[0])
	assert.Equal(t, map[string]float64{"events/s": 7}, rep.Groups[1].Cases[0].Metrics)
}

func TestScaling(t *testing.T) {
	in := `pkg: example.com/p
BenchmarkS/size=1MB/baseline=valid-2	100	 1000 ns/op	 1000 ns/MB
BenchmarkS/size=1MB/mask-2           	100	 2000 ns/op	 2000 ns/MB
BenchmarkS/size=10MB/baseline=valid-2	100	 10000 ns/op	 1000 ns/MB
BenchmarkS/size=10MB/mask-2          	100	 22000 ns/op	 2200 ns/MB
BenchmarkC/clients=1/baseline=rp-2   	100	 100 ns/op
BenchmarkC/clients=1/gatehouse-2     	100	 110 ns/op
BenchmarkC/clients=50/baseline=rp-2  	100	 100 ns/op
BenchmarkC/clients=50/gatehouse-2    	100	 150 ns/op
`
	var out strings.Builder
	rep, err := run(strings.NewReader(in), &strings.Builder{}, &out)
	require.NoError(t, err)
	require.Len(t, rep.Scaling, 2)
	s := rep.Scaling[0]
	assert.Equal(t, "example.com/p BenchmarkS/size=*/mask", s.Name)
	assert.Equal(t, "size", s.Parameter)
	require.Len(t, s.Points, 2)
	assert.Equal(t, "1MB", s.Points[0].Value)
	assert.InDelta(t, 2.0, s.Points[0].TimeRatio, 1e-9)
	assert.InDelta(t, 1.0, s.Points[0].Relative["ns/MB"], 1e-9)
	assert.InDelta(t, 2.2, s.Points[1].TimeRatio, 1e-9)
	assert.InDelta(t, 1.1, s.Points[1].Relative["ns/MB"], 1e-9, "per-MB cost relative to the smallest size")
	c := rep.Scaling[1]
	assert.Equal(t, "clients", c.Parameter)
	assert.InDelta(t, 1.5, c.Points[1].TimeRatio, 1e-9)
	assert.Contains(t, out.String(), "Scaling")
}

func TestFailuresReported(t *testing.T) {
	in := "pkg: example.com/p\nBenchmarkX/baseline=a-2 1 10 ns/op\n--- FAIL: BenchmarkX/b\nFAIL\texample.com/p\t1.0s\n"
	rep, err := run(strings.NewReader(in), &strings.Builder{}, &strings.Builder{})
	require.NoError(t, err)
	assert.Equal(t, []string{"--- FAIL: BenchmarkX/b", "FAIL\texample.com/p\t1.0s"}, rep.Failures)
}

func TestNoBaseline(t *testing.T) {
	_, err := run(strings.NewReader("BenchmarkX-2 100 10 ns/op\n"), &strings.Builder{}, &strings.Builder{})
	require.Error(t, err)
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 2, 3}, 2.5}} {
		assert.Equal(t, tc.want, median(tc.in))
	}
}

func ptr[T any](v T) *T { return &v }

// TestUnrecordedWarns: runs in which the trail refused records did less work than a deployment
// must. The report says so on the case's line, in a warning before and after the ratios, and in
// the JSON; clean runs raise no warning.
func TestUnrecordedWarns(t *testing.T) {
	in := `pkg: example.com/w
BenchmarkA/rules=10/baseline=noop-2	100	 1000 ns/op	 0 unrecorded
BenchmarkA/rules=10/baseline=noop-2	100	 1000 ns/op	 0 unrecorded
BenchmarkA/rules=10/baseline=noop-2	100	 1000 ns/op	 0 unrecorded
BenchmarkA/rules=10/policy-2       	100	 2000 ns/op	 0 unrecorded
BenchmarkA/rules=10/policy-2       	100	 1500 ns/op	 120 unrecorded
BenchmarkA/rules=10/policy-2       	100	 1600 ns/op	 30 unrecorded
BenchmarkA/rules=50/baseline=noop-2	100	 1000 ns/op	 0 unrecorded
BenchmarkA/rules=50/policy-2       	100	 2000 ns/op	 0 unrecorded
`
	var out strings.Builder
	rep, err := run(strings.NewReader(in), &strings.Builder{}, &out)
	require.NoError(t, err)
	s := out.String()

	require.Len(t, rep.Warnings, 1, "one warning, for the case that lost records")
	assert.Contains(t, rep.Warnings[0], "example.com/w BenchmarkA/rules=10/policy")
	assert.Contains(t, rep.Warnings[0], "refused 150 records in 2 of 3 runs")
	assert.Equal(t, 2, strings.Count(s, "WARNING: example.com/w BenchmarkA/rules=10/policy"), "before and after the ratios")
	assert.Regexp(t, `policy\s+1\.60x time.*UNRECORDED=150 in 2 of 3 runs: FLATTERED`, s)

	require.Len(t, rep.Groups, 2)
	flattered, clean := rep.Groups[0].Cases[0], rep.Groups[1].Cases[0]
	assert.Equal(t, ptr(150.0), flattered.Unrecorded)
	assert.Equal(t, 2, flattered.UnrecordedRuns)
	assert.NotContains(t, flattered.Ratios, "unrecorded", "a count of refusals is no ratio")
	assert.NotContains(t, flattered.Metrics, "unrecorded")
	assert.Equal(t, ptr(0.0), clean.Unrecorded, "a clean case says it recorded everything")
	assert.Zero(t, clean.UnrecordedRuns)
	assert.NotContains(t, s, "FLATTERED\n  policy", "only the flattered case is marked")
	assert.Equal(t, 1, strings.Count(s, "UNRECORDED="))

	data, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"warnings":["example.com/w BenchmarkA/rules=10/policy: the trail refused 150 records in 2 of 3 runs`)
	assert.Contains(t, string(data), `"unrecorded":150,"unrecordedRuns":2`)
}

// TestUnrecordedBaselineWarns: a baseline that lost records is warned about too.
func TestUnrecordedBaselineWarns(t *testing.T) {
	in := "pkg: example.com/w\nBenchmarkB/baseline=a-2 1 10 ns/op 3 unrecorded\nBenchmarkB/c-2 1 20 ns/op 0 unrecorded\n"
	rep, err := run(strings.NewReader(in), &strings.Builder{}, &strings.Builder{})
	require.NoError(t, err)
	require.Len(t, rep.Warnings, 1)
	assert.Contains(t, rep.Warnings[0], "BenchmarkB/baseline=a: the trail refused 3 records in 1 of 1 runs")
}
