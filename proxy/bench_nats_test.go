package proxy_test

import (
	"context"
	"testing"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// benchNATS is the NATS server of the benchmarks: a `gatehouse nats` process of its own, as a
// deployment runs it, so that storing the trail's records is not counted as the proxy's CPU
// (the tests' NATS, env.nats, runs inside the test process, where tests restart it). TestMain
// stops it.
var benchNATS testbed.BenchNATS

// benchRecorder is a benchmark proxy's trail: a publisher on the benchmarks' NATS server that
// counts the records it refuses. A benchmark run in which records were refused did less work
// than a deployment must; it reports them (unrecorded), and make bench says so.
func benchRecorder(b *testing.B) proxy.Recorder {
	b.Helper()
	return countingRecorder{benchNATS.Publisher(b, natsbus.RoleProxy, trail.PublisherOptions{Source: "proxy/bench", MaxPending: 1 << 16, MaxBatchRecords: trail.PackedRecords})}
}

type countingRecorder struct{ proxy.Recorder }

func (r countingRecorder) Ready() error { return benchNATS.Count(r.Recorder.Ready()) }
func (r countingRecorder) Publish(ctx context.Context, rec trail.Record) error {
	return benchNATS.Count(r.Recorder.Publish(ctx, rec))
}
func (r countingRecorder) PublishSync(ctx context.Context, rec trail.Record) error {
	return benchNATS.Count(r.Recorder.PublishSync(ctx, rec))
}

// processCPU marks where a benchmark's CPU accounting starts: the test process's (clients,
// proxies, upstream) and the benchmarks' NATS server's.
func processCPU(b *testing.B) testbed.BenchMark { return benchNATS.Mark(b) }

// reportCPU reports per operation since m (testbed.BenchNATS.Report).
func reportCPU(b *testing.B, m testbed.BenchMark) { benchNATS.Report(b, m, b.N) }
