package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// BenchmarkProxyGet compares a small GET through Gatehouse (cached token, masking, trail record)
// with a plain httputil.ReverseProxy to the same upstream, in the same run. Two more cases break
// the cost down: without the trail (records dropped), and without masking as well.
func BenchmarkProxyGet(b *testing.B) {
	u := newUpstream(b)
	u.discardRequests()
	tok := token(b, "alice", nil)
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"baseline=reverseproxy", newBaselineProxy(b, u)},
		{"gatehouse", newStubProxy(b, u, nil)},
		{"gatehouse-without-trail", newStubProxy(b, u, func(o *proxy.Options) { o.Recorder = dropRecorder{} })},
		{"gatehouse-without-trail-and-masking", newStubProxy(b, u, func(o *proxy.Options) { o.Recorder, o.Masker = dropRecorder{}, passMasker{} })},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := tc.srv.Client()
			do := func() {
				req, _ := http.NewRequest(http.MethodGet, tc.srv.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for range 100 { // warm connections and the token cache
				do()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for b.Loop() {
				start := time.Now()
				do()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportCPU(b, cpu0)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkProxyWatches streams watch events over 50 concurrent watches through Gatehouse
// (masked event by event) and through a plain reverse proxy.
func BenchmarkProxyWatches(b *testing.B) {
	u := newUpstream(b)
	u.discardRequests()
	tok := token(b, "alice", nil)
	const watches, events = 50, 200
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"baseline=reverseproxy", newBaselineProxy(b, u)},
		{"gatehouse", newStubProxy(b, u, nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := tc.srv.Client()
			start, cpu0 := time.Now(), processCPU(b)
			for b.Loop() {
				var wg sync.WaitGroup
				for range watches {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/default/configmaps?watch=true&events=%d", tc.srv.URL, events), nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if n == 0 {
							b.Error("empty watch")
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*watches*events)/time.Since(start).Seconds(), "events/s")
			reportCPU(b, cpu0)
		})
	}
}

// dropRecorder takes records and drops them: for the cost breakdown only.
type dropRecorder struct{}

func (dropRecorder) Ready() error                                    { return nil }
func (dropRecorder) Publish(context.Context, trail.Record) error     { return nil }
func (dropRecorder) PublishSync(context.Context, trail.Record) error { return nil }

// passMasker says nothing needs masking: for the cost breakdown only.
type passMasker struct{}

func (passMasker) NeedsMasking(masking.Target) bool { return false }
func (passMasker) Body(_, _ string, b []byte, _ masking.Target) ([]byte, masking.Stats, error) {
	return b, masking.Stats{}, nil
}
func (passMasker) BodyInto(_ []byte, _, _ string, b []byte, _ masking.Target) ([]byte, masking.Stats, error) {
	return b, masking.Stats{}, nil
}
func (passMasker) Stream(_, _ string, r io.Reader, t masking.Target) (*masking.Reader, error) {
	return nil, errors.New("passMasker does not stream")
}
func (passMasker) Text(dst, src []byte) ([]byte, masking.Stats) {
	return append(dst, src...), masking.Stats{}
}
func (passMasker) JSON(dst, src []byte, _ masking.Target) ([]byte, masking.Stats, error) {
	return append(dst, src...), masking.Stats{}, nil
}
func (passMasker) Restore(written, _ []byte, _ masking.Target) (*masking.Restored, error) {
	return nil, masking.ErrPlaceholderMoved
}
