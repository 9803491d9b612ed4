package proxy

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestObserveCountsEveryRequest: requests are counted and timed by verb and code as
// WithLabelValues counts them, the cached observers and those looked up past the cache's bound
// alike, concurrently; a method no Kubernetes client sends is counted as "other".
func TestObserveCountsEveryRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, nil)
	verbs := []string{"get", "list", "watch", "create"}
	codes := []int{200, 404, 500}
	want := map[verbCode]int{}
	var recs []*trail.Request
	for i := range 3000 {
		vc := verbCode{verbs[i%len(verbs)], codes[i%len(codes)]}
		if i%5 == 0 {
			// More codes than the cache holds.
			vc.code = 100 + i%(2*maxCachedObservers)
		}
		verb := vc.verb
		if i%7 == 0 {
			// A method a client invented: one series for all of them.
			verb, vc.verb = fmt.Sprintf("verb-%d", i), "other"
		}
		want[vc]++
		recs = append(recs, &trail.Request{Operation: trail.Operation{Verb: verb}, Code: vc.code, Latency: time.Millisecond})
	}
	done := make(chan struct{})
	for part := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, r := range recs[part*len(recs)/2 : (part+1)*len(recs)/2] {
				m.observe(r)
			}
		}()
	}
	<-done
	<-done
	assert.Equal(t, maxCachedObservers, int(m.cached.Load()))
	var cached int
	m.byVerbCode.Range(func(any, any) bool { cached++; return true })
	assert.Equal(t, maxCachedObservers, cached)
	perVerb := map[string]int{}
	for vc, n := range want {
		perVerb[vc.verb] += n
	}
	labels := func(metric interface{ GetLabel() []*dto.LabelPair }) map[string]string {
		out := map[string]string{}
		for _, l := range metric.GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	var seen int
	for _, f := range families {
		switch f.GetName() {
		case "gatehouse_proxy_requests_total":
			seen++
			require.Len(t, f.GetMetric(), len(want))
			for _, metric := range f.GetMetric() {
				l := labels(metric)
				code, err := strconv.Atoi(l["code"])
				require.NoError(t, err)
				assert.Equal(t, float64(want[verbCode{l["verb"], code}]), metric.GetCounter().GetValue(), "%v", l)
			}
		case "gatehouse_proxy_request_duration_seconds":
			seen++
			require.Len(t, f.GetMetric(), len(perVerb))
			for _, metric := range f.GetMetric() {
				verb := labels(metric)["verb"]
				assert.Equal(t, uint64(perVerb[verb]), metric.GetHistogram().GetSampleCount(), verb)
			}
		}
	}
	assert.Equal(t, 2, seen)
}

// TestItemCacheMetrics: the masker's cache of masked list items is exported, read when
// gathered: a list masked twice was masked once and then taken from the cache.
func TestItemCacheMetrics(t *testing.T) {
	m, err := masking.New(masking.Config{Key: []byte("gatehouse-test-masking-key-0001")})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	newMetrics(reg, m)
	list := maskingtest.ConfigMapList(64 << 10)
	for range 2 {
		_, _, err := m.Body("application/json", "", list, masking.Target{Version: "v1", Resource: "configmaps"})
		require.NoError(t, err)
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			got[f.GetName()] = metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
		}
	}
	st := m.ItemCacheStats()
	require.Positive(t, st.Hits)
	assert.Equal(t, float64(st.Hits), got["gatehouse_proxy_masking_item_cache_hits_total"])
	assert.Equal(t, float64(st.Misses), got["gatehouse_proxy_masking_item_cache_misses_total"])
	assert.Equal(t, st.Hits, st.Misses, "every run masked once, then taken")
	assert.Positive(t, got["gatehouse_proxy_masking_item_cache_bytes"])
}
