package proxy_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// benchNATS is the NATS server of the benchmarks: a `gatehouse nats` process of its own, as a
// deployment runs it, so that storing the trail's records is not counted as the proxy's CPU
// (the tests' NATS, env.nats, runs inside the test process, where tests restart it). It is
// started by the first benchmark that needs it and stopped after the last.
var benchNATS struct {
	once sync.Once
	srv  *testbed.NATSCluster
	nc   *nats.Conn
	err  error
	// unrecorded counts the records the benchmarks' trail publishers refused.
	unrecorded atomic.Int64
}

// benchTrail returns the proxy's connection to the benchmarks' NATS server.
func benchTrail(b *testing.B) *nats.Conn {
	b.Helper()
	benchNATS.once.Do(func() {
		if benchNATS.srv, benchNATS.err = testbed.StartNATSProcess(); benchNATS.err != nil {
			return
		}
		benchNATS.nc, benchNATS.err = benchNATS.srv.ConnectAs(natsbus.RoleProxy)
	})
	if benchNATS.err != nil {
		b.Fatalf("the benchmarks' NATS server: %v", benchNATS.err)
	}
	return benchNATS.nc
}

// stopBenchTrail stops the benchmarks' NATS server, if one started.
func stopBenchTrail() {
	if benchNATS.nc != nil {
		benchNATS.nc.Close()
	}
	if benchNATS.srv != nil {
		benchNATS.srv.Stop()
	}
}

// benchRecorder is a benchmark proxy's trail: a publisher on the benchmarks' NATS server that
// counts the records it refuses. A benchmark run in which records were refused did less work
// than a deployment must; it reports them (unrecorded), and make bench says so.
func benchRecorder(b *testing.B) proxy.Recorder {
	b.Helper()
	pub, err := trail.NewPublisher(benchTrail(b), trail.PublisherOptions{Source: "proxy/bench", MaxPending: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			b.Errorf("trail records not stored: %v", err)
		}
	})
	return countingRecorder{pub}
}

type countingRecorder struct{ proxy.Recorder }

func (r countingRecorder) Ready() error { return count(r.Recorder.Ready()) }
func (r countingRecorder) Publish(ctx context.Context, rec trail.Record) error {
	return count(r.Recorder.Publish(ctx, rec))
}
func (r countingRecorder) PublishSync(ctx context.Context, rec trail.Record) error {
	return count(r.Recorder.PublishSync(ctx, rec))
}

func count(err error) error {
	if err != nil {
		benchNATS.unrecorded.Add(1)
	}
	return err
}

// cpuMark is where a benchmark's CPU accounting starts (processCPU).
type cpuMark struct {
	self, nats time.Duration
	unrecorded int64
}

// processCPU returns the CPU time (user and system) the test process has used, the clients', the
// proxies' and the upstream's, and that of the benchmarks' NATS server.
func processCPU(b *testing.B) cpuMark {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	m := cpuMark{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), unrecorded: benchNATS.unrecorded.Load()}
	if benchNATS.srv != nil {
		var err error
		if m.nats, err = benchNATS.srv.ServerCPUTime(0); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// reportCPU reports per operation since m: the test process's CPU time (cpu-ns/op), which
// both a baseline and its cases pay for their clients and upstream, and for a case (not a
// baseline) the NATS server's CPU time storing its records (nats-cpu-ns/op, in clock ticks of
// 10ms: coarse for short runs) and the records its trail refused (unrecorded).
func reportCPU(b *testing.B, m cpuMark) {
	now := processCPU(b)
	b.ReportMetric(float64((now.self-m.self).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if strings.Contains(b.Name(), "/baseline=") {
		return
	}
	if benchNATS.srv != nil {
		b.ReportMetric(float64((now.nats-m.nats).Nanoseconds())/float64(b.N), "nats-cpu-ns/op")
	}
	b.ReportMetric(float64(now.unrecorded-m.unrecorded), "unrecorded")
}
