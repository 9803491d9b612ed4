package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// BenchmarkProxyWrite compares a small create through Gatehouse, whose answer waits until
// JetStream stored the write's trail record, with a plain httputil.ReverseProxy; a third case
// drops the records, so that the difference is the cost of storing the record first.
func BenchmarkProxyWrite(b *testing.B) {
	u := newUpstream(b)
	u.setRespond(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
		return true
	})
	u.discardRequests()
	tok := token(b, "alice", nil)
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"baseline=reverseproxy", newBaselineProxy(b, u)},
		{"gatehouse", newStubProxy(b, u, nil)},
		{"gatehouse-without-trail", newStubProxy(b, u, func(o *proxy.Options) { o.Recorder = dropRecorder{} })},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := tc.srv.Client()
			do := func() {
				req, _ := http.NewRequest(http.MethodPost, tc.srv.URL+"/api/v1/namespaces/default/configmaps", strings.NewReader(configMapJSON))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for range 100 {
				do()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				do()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// execBed is a pod of the stub kubelet reached two ways: through Gatehouse (masked, recorded,
// served by the proxy itself) and through a plain reverse proxy that passes the upgraded
// connection through, unrecorded, with an administrator's credentials.
type execBed struct {
	ns          string
	gatehouse   *rest.Config
	passthrough *rest.Config
	// unrecorded reaches a Gatehouse whose recordings always fail and which passes unrecorded
	// sessions: masking without recording, for the cost breakdown only.
	unrecorded *rest.Config
}

func newExecBed(b *testing.B) *execBed {
	b.Helper()
	ns := env.kube.Namespace(b, "bench-exec")
	if _, err := env.kubelet.RunPod(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}); err != nil {
		b.Fatal(err)
	}
	h1 := rest.CopyConfig(env.kube.Config)
	h1.NextProtos = []string{"http/1.1"}
	rt, err := rest.TransportFor(h1)
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse(env.kube.Config.Host)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: rt}
	pass := httptest.NewUnstartedServer(rp)
	pass.StartTLS()
	b.Cleanup(pass.Close)
	// Both Gatehouses publish their trail records, and the recorded one its recordings, to the
	// benchmarks' NATS server, a process of its own as deployed.
	recordings, err := recording.NewPublisher(benchNATS.Conn(b, natsbus.RoleProxy), recording.PublisherOptions{Source: "proxy/bench"})
	if err != nil {
		b.Fatal(err)
	}
	rec := newRealProxy(b, func(o *proxy.Options) { o.Recorder, o.Recordings = benchRecorder(b), recordings })
	unrec := newRealProxy(b, func(o *proxy.Options) {
		o.Recorder, o.Recordings, o.Unrecorded = benchRecorder(b), failingRecordings{}, proxy.AllowUnrecorded
	})
	return &execBed{
		ns: ns,
		unrecorded: &rest.Config{Host: unrec.URL, BearerToken: token(b, "alice", nil),
			TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(unrec)}},
		gatehouse: &rest.Config{Host: rec.URL, BearerToken: token(b, "alice", nil),
			TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(rec)}},
		passthrough: &rest.Config{Host: pass.URL, TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(pass)}},
	}
}

func (e *execBed) executor(b *testing.B, cfg *rest.Config, ws, stdin bool, command ...string) remotecommand.Executor {
	b.Helper()
	rc, err := rest.RESTClientFor(withCodec(cfg))
	if err != nil {
		b.Fatal(err)
	}
	req := rc.Post().Resource("pods").Namespace(e.ns).Name("bench").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "main", Command: command, Stdin: stdin, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	var exec remotecommand.Executor
	if ws {
		exec, err = remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, req.URL().String())
	} else {
		exec, err = remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	}
	if err != nil {
		b.Fatal(err)
	}
	return exec
}

func withCodec(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkExecThroughput streams 100 MB of ordinary text lines out of a container (`yes |
// head -c`), through Gatehouse (masked and recorded, the recording published to the benchmarks'
// JetStream server, a process of its own; cpu-ns/op is the test process's; the client speaks SPDY,
// Gatehouse WebSocket to kube-apiserver, which translates to SPDY for the kubelet) and through an
// unrecorded pass-through (SPDY end to end), in the same run. passthrough-websocket is the
// pass-through with a WebSocket client: kube-apiserver's own translation, for comparison.
func BenchmarkExecThroughput(b *testing.B) {
	e := newExecBed(b)
	const size = 100 << 20
	script := fmt.Sprintf("yes 'an ordinary line of output from a build, 0123456789' | head -c %d", size)
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
		ws   bool
	}{
		{"baseline=passthrough", e.passthrough, false}, {"passthrough-websocket", e.passthrough, true},
		{"gatehouse", e.gatehouse, false}, {"gatehouse-without-recording", e.unrecorded, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			cpu0 := processCPU(b)
			for b.Loop() {
				var out countWriter
				exec := e.executor(b, tc.cfg, tc.ws, false, "sh", "-c", script)
				if err := exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard}); err != nil {
					b.Fatal(err)
				}
				if out.n != size {
					b.Fatalf("got %d bytes, want %d", out.n, size)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkExecFrameLatency sends lines to `cat` in a container and times each until it comes
// back, through Gatehouse (masked and recorded) and through an unrecorded pass-through: the
// latency a recorded session adds to a frame.
func BenchmarkExecFrameLatency(b *testing.B) {
	e := newExecBed(b)
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
	}{{"baseline=passthrough", e.passthrough}, {"gatehouse", e.gatehouse}, {"gatehouse-without-recording", e.unrecorded}} {
		b.Run(tc.name, func(b *testing.B) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			exec := e.executor(b, tc.cfg, false, true, "cat")
			done := make(chan error, 1)
			go func() {
				done <- exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Stderr: io.Discard})
				_ = outW.Close()
			}()
			lines := bufio.NewReader(outR)
			roundTrip := func(i int) time.Duration {
				line := fmt.Sprintf("frame %d of an interactive session\n", i)
				start := time.Now()
				if _, err := io.WriteString(inW, line); err != nil {
					b.Fatal(err)
				}
				got, err := lines.ReadString('\n')
				if err != nil || got != line {
					b.Fatalf("got %q, %v; want %q", got, err, line)
				}
				return time.Since(start)
			}
			for i := range 50 {
				roundTrip(i)
			}
			lat := make([]time.Duration, 0, b.N)
			i := 0
			b.ResetTimer()
			for b.Loop() {
				lat = append(lat, roundTrip(i))
				i++
			}
			b.StopTimer()
			_ = inW.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			reportLatency(b, lat)
		})
	}
}
