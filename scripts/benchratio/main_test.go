package main

import (
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
	var out strings.Builder
	require.NoError(t, run(strings.NewReader(in), &out))
	s := out.String()
	assert.Contains(t, s, in[:20], "the raw output passes through")
	assert.Regexp(t, `fancy\s+2\.00x time\s+2\.00x p99-ns\s+allocs/op=20`, s, "medians of the runs, metric by metric")
	assert.Regexp(t, `mask\s+1\.50x time\s+events/s=7`, s, "nested baselines; metrics the baseline lacks are shown as they are")
	assert.NotContains(t, s, "BenchmarkY (baseline", "a baseline= with a deeper path is not a baseline")
}

func TestNoBaseline(t *testing.T) {
	var out strings.Builder
	err := run(strings.NewReader("BenchmarkX-2 100 10 ns/op\n"), &out)
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
