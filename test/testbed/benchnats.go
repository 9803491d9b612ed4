package testbed

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
	"github.com/gatehouse-dev/gatehouse/trail"
)

// BenchNATS is the NATS server of a package's benchmarks: a `gatehouse nats` process of its own
// (StartNATSProcess), as a deployment runs it, so that storing the trail's records is not
// counted as the benchmarked component's CPU, and an in-process server cannot fall behind the
// component it shares two cores with in ways a deployment's would not. It is started by the first
// benchmark that asks for a connection; the package's TestMain defers Stop. The zero value is
// ready to use; a package keeps one in its test state.
//
// It also counts the records the benchmarks' trail publishers refused (Count): a run in which
// records were refused did less work than a deployment must, and says so (Report's
// "unrecorded", which make bench warns about).
type BenchNATS struct {
	once sync.Once
	srv  *NATSCluster
	err  error

	mu    sync.Mutex
	conns map[natsbus.Role]*nats.Conn

	unrecorded atomic.Int64
	// refusal is the last error counted, reported with the count.
	refusal atomic.Pointer[string]
}

// Conn returns a connection to the benchmarks' server with role's credentials, as the
// component connects, starting the server first if it has not started.
func (n *BenchNATS) Conn(b testing.TB, role natsbus.Role) *nats.Conn {
	b.Helper()
	n.once.Do(func() { n.srv, n.err = StartNATSProcess() })
	if n.err != nil {
		b.Fatalf("the benchmarks' NATS server: %v", n.err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if nc := n.conns[role]; nc != nil {
		return nc
	}
	nc, err := n.srv.ConnectAs(role)
	if err != nil {
		b.Fatalf("connect to the benchmarks' NATS server as %s: %v", role, err)
	}
	if n.conns == nil {
		n.conns = map[natsbus.Role]*nats.Conn{}
	}
	n.conns[role] = nc
	return nc
}

// Publisher returns a trail publisher on role's connection to the benchmarks' server. It is
// closed when the benchmark ends, which fails the benchmark if records were left unstored.
func (n *BenchNATS) Publisher(b testing.TB, role natsbus.Role, opts trail.PublisherOptions) *trail.Publisher {
	b.Helper()
	pub, err := trail.NewPublisher(n.Conn(b, role), opts)
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
	return pub
}

// Count counts err, when not nil, as a record the trail refused, and returns it: a benchmark's
// publisher wrapper passes every publish error through it.
func (n *BenchNATS) Count(err error) error {
	if err != nil {
		n.unrecorded.Add(1)
		msg := err.Error()
		n.refusal.Store(&msg)
	}
	return err
}

// Stop closes the connections and stops the server, if it started.
func (n *BenchNATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nc := range n.conns {
		nc.Close()
	}
	n.conns = nil
	if n.srv != nil {
		n.srv.Stop()
	}
}

// BenchMark is where a benchmark's CPU accounting starts (Mark).
type BenchMark struct {
	self, nats time.Duration
	unrecorded int64
}

// Mark returns the CPU time (user and system) the test process has used so far, that of the
// benchmarks' NATS server, and the records refused so far.
func (n *BenchNATS) Mark(b testing.TB) BenchMark {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	m := BenchMark{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), unrecorded: n.unrecorded.Load()}
	if n.srv != nil {
		var err error
		if m.nats, err = n.srv.ServerCPUTime(0); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// Report reports per operation (ops of them) since m: the test process's CPU time
// (cpu-ns/op), which a baseline and its cases both pay for their clients and servers, and for
// a case (not a baseline, whose name has a "/baseline=" element) the NATS server's CPU time
// storing its records (nats-cpu-ns/op, in clock ticks of 10ms: coarse for short runs) and the
// records its trail refused (unrecorded).
func (n *BenchNATS) Report(b *testing.B, m BenchMark, ops int) {
	b.Helper()
	if ops <= 0 {
		return
	}
	now := n.Mark(b)
	b.ReportMetric(float64((now.self-m.self).Nanoseconds())/float64(ops), "cpu-ns/op")
	if strings.Contains(b.Name(), "/baseline=") {
		return
	}
	if n.srv != nil {
		b.ReportMetric(float64((now.nats-m.nats).Nanoseconds())/float64(ops), "nats-cpu-ns/op")
	}
	b.ReportMetric(float64(now.unrecorded-m.unrecorded), "unrecorded")
	if now.unrecorded > m.unrecorded {
		if msg := n.refusal.Load(); msg != nil {
			b.Logf("the trail refused %d records, the last with: %s", now.unrecorded-m.unrecorded, *msg)
		}
	}
}
