package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// The scaling curves of the proxy: each point is Gatehouse (authentication with a cached token,
// masking and the trail on) against a plain httputil.ReverseProxy to the same upstream, in the
// same run. make bench shows each curve's ratios side by side.

// BenchmarkProxyConcurrency sends small GETs from 1, 50 and 500 concurrent clients. It reports
// the median and 99th-percentile latency of a request and the requests per second.
func BenchmarkProxyConcurrency(b *testing.B) {
	u := newUpstream(b)
	u.discardRequests()
	tok := token(b, "alice", nil)
	servers := []struct {
		name string
		srv  *httptest.Server
	}{{"baseline=reverseproxy", newBaselineProxy(b, u)}, {"gatehouse", newStubProxy(b, u, nil)}}
	for _, clients := range []int{1, 50, 500} {
		for _, s := range servers {
			b.Run(fmt.Sprintf("clients=%d/%s", clients, s.name), func(b *testing.B) {
				client := s.srv.Client()
				url := s.srv.URL + "/api/v1/namespaces/default/configmaps/settings"
				do := func() error {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				}
				for range 100 { // warm connections and the token cache
					if err := do(); err != nil {
						b.Fatal(err)
					}
				}
				work := make(chan struct{}, clients)
				lats := make([][]time.Duration, clients)
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start, cpu0 := time.Now(), processCPU(b)
				for i := range clients {
					wg.Go(func() {
						for range work {
							t0 := time.Now()
							if err := do(); err != nil {
								b.Error(err)
								return
							}
							lats[i] = append(lats[i], time.Since(t0))
						}
					})
				}
				for range b.N {
					work <- struct{}{}
				}
				close(work)
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				reportCPU(b, cpu0)
				lat := slices.Concat(lats...)
				if len(lat) == 0 {
					return
				}
				reportLatency(b, lat)
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "requests/s")
			})
		}
	}
}

// BenchmarkProxyList reads a 1 MB list, which Gatehouse reads whole and masks: Secrets (whose
// values the session also keeps, for its exec sessions) and ConfigMaps. gatehouse reads the same
// list again and again, as a client polling it does: each object is masked once and then taken
// from the masker's cache of masked items, as long as it does not change. gatehouse-changed
// reads a list whose every object changed since it was last read (a new resourceVersion), with
// a cache too small to keep them between reads: every object is masked as if read for the first
// time, and the cache-hits/op it reports show that none came from the cache. mask-ns/op is the
// time each read spent being masked, from the proxy's own metric.
func BenchmarkProxyList(b *testing.B) {
	const variants = 16 // lists whose every object differs from the others'
	tok := token(b, "alice", nil)
	for _, l := range []struct {
		resource string
		list     []byte
	}{{"secrets", maskingtest.SecretList(1 << 20)}, {"configmaps", maskingtest.ConfigMapList(1 << 20)}} {
		changed := make([][]byte, variants)
		for k := range changed {
			changed[k] = bytes.ReplaceAll(l.list, []byte(`"resourceVersion":"`), fmt.Appendf(nil, `"resourceVersion":"%d`, k+1))
		}
		var served atomic.Pointer[[]byte]
		served.Store(&l.list)
		u := newUpstream(b)
		u.setRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(*served.Load())
			return true
		})
		u.discardRequests()
		small, err := masking.New(masking.Config{Key: []byte(testMaskingKey), Limits: masking.Limits{ItemCacheBytes: 1 << 20}})
		require.NoError(b, err)
		reg, regChanged := prometheus.NewRegistry(), prometheus.NewRegistry()
		for _, s := range []struct {
			name   string
			srv    *httptest.Server
			change bool
			m      *masking.Masker
			reg    *prometheus.Registry
		}{
			{name: "baseline=reverseproxy", srv: newBaselineProxy(b, u)},
			{name: "gatehouse", srv: newStubProxy(b, u, func(o *proxy.Options) { o.Metrics = reg }), reg: reg},
			{name: "gatehouse-changed", srv: newStubProxy(b, u, func(o *proxy.Options) { o.Masker, o.Metrics = small, regChanged }),
				change: true, m: small, reg: regChanged},
		} {
			b.Run(l.resource+"/size=1MB/"+s.name, func(b *testing.B) {
				client := s.srv.Client()
				reads := 0
				do := func() {
					if s.change {
						served.Store(&changed[reads%variants])
					} else {
						served.Store(&l.list)
					}
					reads++
					req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/api/v1/namespaces/default/"+l.resource, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || n < int64(len(l.list))/8 { // masked values are shorter
						b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
					}
				}
				for range 5 {
					do()
				}
				lat := make([]time.Duration, 0, b.N)
				b.SetBytes(int64(len(l.list)))
				b.ReportAllocs()
				var hits0 int64
				if s.m != nil {
					hits0 = s.m.ItemCacheStats().Hits
				}
				var mask0 float64
				if s.reg != nil {
					_, mask0 = maskingTime(b, s.reg)
				}
				b.ResetTimer()
				cpu0 := processCPU(b)
				for b.Loop() {
					t0 := time.Now()
					do()
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				reportCPU(b, cpu0)
				reportLatency(b, lat)
				if s.reg != nil {
					_, mask := maskingTime(b, s.reg)
					b.ReportMetric((mask-mask0)*1e9/float64(b.N), "mask-ns/op")
				}
				if s.m != nil {
					b.ReportMetric(float64(s.m.ItemCacheStats().Hits-hits0)/float64(b.N), "cache-hits/op")
				}
			})
		}
	}
}

// maskingTime returns how many responses read whole the proxy whose metrics reg holds masked,
// and the seconds it spent on them (gatehouse_proxy_masking_duration_seconds).
func maskingTime(tb testing.TB, reg prometheus.Gatherer) (uint64, float64) {
	tb.Helper()
	families, err := reg.Gather()
	require.NoError(tb, err)
	for _, f := range families {
		if f.GetName() == "gatehouse_proxy_masking_duration_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	tb.Fatal("gatehouse_proxy_masking_duration_seconds is not exported")
	return 0, 0
}

// BenchmarkProxyWatchMemory opens 1,000 concurrent watches, each of which has received its first
// event, and reports the heap and the goroutines each open watch holds in the whole process
// (clients, proxy and upstream): the clients' and upstream's share is the same in both cases.
func BenchmarkProxyWatchMemory(b *testing.B) {
	const watches = 1000
	u := newUpstream(b)
	release := make(chan struct{})
	var releaseOnce sync.Once
	b.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	u.setRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"default","resourceVersion":"1"},"data":{"mode":"safe"}}}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	u.discardRequests()
	tok := token(b, "alice", nil)
	for _, s := range []struct {
		name string
		srv  *httptest.Server
	}{{"baseline=reverseproxy", newBaselineProxy(b, u)}, {"gatehouse", newStubProxy(b, u, nil)}} {
		b.Run(fmt.Sprintf("watches=%d/%s", watches, s.name), func(b *testing.B) {
			client := s.srv.Client()
			var heap, goroutines float64
			for b.Loop() {
				b.StopTimer()
				h0, g0 := heapInUse(), runtime.NumGoroutine()
				b.StartTimer()
				bodies := make([]io.ReadCloser, watches)
				var wg sync.WaitGroup
				for i := range watches {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/api/v1/namespaces/default/configmaps?watch=true", nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						bodies[i] = resp.Body
						line, err := bufioReader(resp.Body).ReadString('\n')
						if err != nil || len(line) < 10 {
							b.Errorf("first event: %q, %v", line, err)
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				heap += float64(heapInUse()-h0) / watches
				goroutines += float64(runtime.NumGoroutine()-g0) / watches
				for _, body := range bodies {
					if body != nil {
						body.Close()
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(heap/float64(b.N), "heap-B/watch")
			b.ReportMetric(goroutines/float64(b.N), "goroutines/watch")
		})
	}
}

// heapInUse returns the bytes of the heap in use, and of goroutine stacks, after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
