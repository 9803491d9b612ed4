package drills

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds what the drills share: one ClickHouse server (each drill has its own database).
var bed struct {
	root       string
	clickhouse *testbed.ClickHouse
	full       bool // GATEHOUSE_DRILLS=full: the long variants
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// envtest logs through controller-runtime's global logger.
	ctrllog.SetLogger(logr.Discard())
	var err error
	if bed.root, err = testbed.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "drills:", err)
		return 1
	}
	bed.full = os.Getenv("GATEHOUSE_DRILLS") == "full"
	if bed.clickhouse, err = testbed.StartClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "drills:", err)
		return 1
	}
	defer bed.clickhouse.Close()
	// The engine aborts when a killed enricher's connection is reset (testbed.Supervise): the
	// drills are about the enricher, which must ride out a ClickHouse server that restarts.
	stop := bed.clickhouse.Supervise(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	defer stop()
	return m.Run()
}

// report prints a drill's result line, which `make drills` collects.
func report(format string, args ...any) {
	fmt.Printf("DRILL "+format+"\n", args...)
}

// drillBed is one drill's components.
type drillBed struct {
	dir      string
	db       string
	server   *testbed.ClickHouse // where the enricher writes
	ch       driver.Conn
	nats     *testbed.NATS
	pki      *testbed.PKI
	kube     *testbed.Kube
	logPath  string // kube-apiserver's audit log
	enricher *testbed.Process
	args     []string // the enricher's
	health   string
	intake   string
}

func (b *drillBed) intakeURL() string { return b.intake }

// newMemoryBed starts NATS and the enricher, without kube-apiserver, on the shared ClickHouse
// server.
func newMemoryBed(t *testing.T) *drillBed { return newMemoryBedOn(t, bed.clickhouse) }

// newMemoryBedOn is newMemoryBed on the ClickHouse server ch.
func newMemoryBedOn(t *testing.T, ch *testbed.ClickHouse) *drillBed {
	t.Helper()
	b := &drillBed{dir: t.TempDir(), db: "drill_memory", server: ch}
	b.setUp(t, false)
	return b
}

// restartEnricher stops the enricher and starts a fresh process.
func (b *drillBed) restartEnricher(t *testing.T) {
	t.Helper()
	require.NoError(t, b.enricher.Stop())
	b.startEnricher(t)
}

// newDrillBed starts NATS, the enricher (following kube-apiserver's audit log when backstop is
// set) and kube-apiserver with the audit webhook, as deployed, and the log backend as ground
// truth, rotated at every megabyte.
func newDrillBed(t *testing.T, name string, backstop bool) *drillBed {
	t.Helper()
	b := &drillBed{dir: t.TempDir(), db: "drill_" + strings.ReplaceAll(name, "-", "_"), server: bed.clickhouse}
	b.setUp(t, backstop)
	kubeconfig := filepath.Join(b.dir, "audit-webhook.kubeconfig")
	require.NoError(t, b.pki.WriteAuditWebhookKubeconfig(kubeconfig, b.intake))
	var err error
	b.kube, err = testbed.StartKube(testbed.KubeOptions{APIServerFlags: testbed.MergeFlags(
		testbed.AuditWebhook(filepath.Join(bed.root, "manifests", "audit", "policy.yaml"), kubeconfig),
		testbed.AuditLog(b.logPath, 1),
	)})
	require.NoError(t, err)
	t.Cleanup(b.kube.Stop)
	return b
}

// setUp starts NATS and the enricher (following kube-apiserver's audit log when backstop is
// set), with mutual TLS and a spool, as deployed.
func (b *drillBed) setUp(t *testing.T, backstop bool) {
	t.Helper()
	var err error
	b.ch, err = clickhouse.Open(&clickhouse.Options{Addr: []string{b.server.NativeAddr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.ch.Close() })
	require.NoError(t, b.ch.Exec(t.Context(), "DROP DATABASE IF EXISTS "+b.db))
	b.nats, err = testbed.StartNATS()
	require.NoError(t, err)
	t.Cleanup(b.nats.Stop)
	b.pki, err = testbed.NewPKI(b.dir)
	require.NoError(t, err)
	keyFile := filepath.Join(b.dir, "masking.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("drill-masking-key-0123456789abcdef"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(b.dir, "log"), 0o700))
	b.logPath = filepath.Join(b.dir, "log", "audit.log")

	addr, health := freeAddr(t), freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	b.health = "http://" + health
	b.args = []string{"enricher", "--log-format", "text",
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", b.pki.ServerCertFile, "--tls-private-key-file", b.pki.ServerKeyFile,
		"--client-ca-file", b.pki.CAFile,
		"--spool-dir", filepath.Join(b.dir, "spool"),
		"--clickhouse-addr", b.server.NativeAddr, "--clickhouse-database", b.db,
		"--masking-key-file", keyFile,
		"--health-bind-address", health,
		"--batch-max-wait", "500ms",
	}
	b.args = append(b.args, b.nats.Args(natsbus.RoleEnricher)...)
	if backstop {
		b.args = append(b.args, "--audit-log-path", b.logPath)
	}
	b.intake = "https://" + addr + "/audit"
	b.startEnricher(t)
	t.Cleanup(func() {
		if t.Failed() {
			out := b.enricher.Output()
			t.Logf("enricher log (last 6000 bytes): %s", out[max(0, len(out)-6000):])
		}
	})
}

func (b *drillBed) startEnricher(t *testing.T) {
	t.Helper()
	p, err := testbed.StartGatehouse(b.args...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	require.NoError(t, p.WaitReady(b.health+"/readyz", 60*time.Second))
	b.enricher = p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// load drives API requests against kube-apiserver from several clients, each with an Audit-ID
// of its own, and remembers which were answered 2xx.
type load struct {
	cs      kubernetes.Interface
	ns      string
	mu      sync.Mutex
	ok      []string // audit IDs of requests answered 2xx
	failed  atomic.Int64
	stop    chan struct{}
	done    sync.WaitGroup
	running atomic.Bool
}

type auditIDKey struct{}

// startLoad starts workers clients, each making about one request every pace.
func startLoad(t *testing.T, kube *testbed.Kube, workers int, pace time.Duration) *load {
	t.Helper()
	cfg := rest.CopyConfig(kube.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if id, ok := req.Context().Value(auditIDKey{}).(string); ok {
				req = req.Clone(req.Context())
				req.Header.Set("Audit-ID", id)
			}
			return rt.RoundTrip(req)
		})
	}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	l := &load{cs: cs, ns: kube.Namespace(t, "drill"), stop: make(chan struct{})}
	l.running.Store(true)
	for w := range workers {
		l.done.Go(func() { l.worker(w, pace) })
	}
	t.Cleanup(l.end)
	return l
}

// call runs one request with a fresh Audit-ID and records its outcome.
func (l *load) call(f func(ctx context.Context) error) {
	id := fmt.Sprintf("drill-%016x", rand.Uint64())
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), auditIDKey{}, id), 30*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		l.failed.Add(1)
		return
	}
	l.mu.Lock()
	l.ok = append(l.ok, id)
	l.mu.Unlock()
}

func (l *load) worker(w int, pace time.Duration) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	cms := l.cs.CoreV1().ConfigMaps(l.ns)
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		name := fmt.Sprintf("d-%d-%d", w, i)
		switch i % 4 {
		case 0:
			l.call(func(ctx context.Context) error {
				_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name},
					Data: map[string]string{"payload": strings.Repeat("x", 200), "worker": strconv.Itoa(w)}}, metav1.CreateOptions{})
				return err
			})
		case 1:
			l.call(func(ctx context.Context) error {
				_, err := cms.Get(ctx, fmt.Sprintf("d-%d-%d", w, i-1), metav1.GetOptions{})
				return err
			})
		case 2:
			l.call(func(ctx context.Context) error {
				_, err := cms.List(ctx, metav1.ListOptions{Limit: 5})
				return err
			})
		case 3:
			l.call(func(ctx context.Context) error {
				return cms.Delete(ctx, fmt.Sprintf("d-%d-%d", w, i-3), metav1.DeleteOptions{})
			})
		}
	}
}

// end stops the clients and waits for them.
func (l *load) end() {
	if l.running.CompareAndSwap(true, false) {
		close(l.stop)
	}
	l.done.Wait()
}

// waitAnswered waits until n requests were answered 2xx.
func (l *load) waitAnswered(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, testbed.WaitFor(t.Context(), 5*time.Minute, func(context.Context) error {
		if got := len(l.answered()); got < n {
			return fmt.Errorf("%d of %d requests answered (%d failed)", got, n, l.failed.Load())
		}
		return nil
	}))
}

func (l *load) answered() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ok...)
}

// groundTruth reads every event of kube-apiserver's audit log, the rotated files included, and
// returns how many it holds of each audit ID and stage.
func groundTruth(t *testing.T, logPath string) map[string]int {
	t.Helper()
	dir, base := filepath.Split(logPath)
	ext := filepath.Ext(base)
	files, err := filepath.Glob(filepath.Join(dir, strings.TrimSuffix(base, ext)+"*"+ext))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	truth := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		r := bufio.NewReaderSize(fh, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				var ev struct{ AuditID, Stage string }
				require.NoError(t, json.Unmarshal(line, &ev), "kube-apiserver's log holds audit events")
				truth[ev.AuditID+"/"+ev.Stage]++
			}
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, fh.Close())
	}
	return truth
}

// stored returns how many rows ClickHouse holds of each audit ID and stage, as the auditors'
// queries count them (FINAL).
func stored(t *testing.T, ch driver.Conn, db string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]int{}
	rows, err := ch.Query(ctx, "SELECT audit_id, stage, count() FROM "+db+".audit_events FINAL GROUP BY audit_id, stage")
	if err != nil {
		return out // not migrated yet
	}
	defer rows.Close()
	for rows.Next() {
		var id, stage string
		var n uint64
		require.NoError(t, rows.Scan(&id, &stage, &n))
		out[id+"/"+stage] = int(n)
	}
	require.NoError(t, rows.Err())
	return out
}

// verdict is a drill's result.
type verdict struct {
	events, lost, duplicated, unrecorded int
	examples                             []string
}

func (v verdict) zero() bool { return v.lost == 0 && v.duplicated == 0 && v.unrecorded == 0 }

// judge compares ClickHouse with the ground truth and the clients' answered requests.
func judge(truth, have map[string]int, answered []string) verdict {
	var v verdict
	for k, n := range truth {
		v.events += n
		switch got := have[k]; {
		case got < n:
			v.lost += n - got
			if len(v.examples) < 5 {
				v.examples = append(v.examples, "lost "+k)
			}
		case got > n:
			v.duplicated += got - n
			if len(v.examples) < 5 {
				v.examples = append(v.examples, "duplicated "+k)
			}
		}
	}
	for _, id := range answered {
		if have[id+"/ResponseComplete"] == 0 {
			v.unrecorded++
			if len(v.examples) < 5 {
				v.examples = append(v.examples, "unrecorded "+id)
			}
		}
	}
	sort.Strings(v.examples)
	return v
}

// settle waits until ClickHouse holds everything the log and the clients say happened, or the
// timeout passes, and returns the verdict.
func settle(t *testing.T, b *drillBed, l *load, timeout time.Duration) verdict {
	t.Helper()
	// The log holds every answered request's last event once kube-apiserver finished writing
	// it; what it writes after that is not part of the drill.
	answered := l.answered()
	var truth map[string]int
	require.Eventually(t, func() bool {
		truth = groundTruth(t, b.logPath)
		for _, id := range answered {
			if truth[id+"/ResponseComplete"] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "kube-apiserver's log holds every answered request")
	var v verdict
	_ = wait.PollUntilContextTimeout(t.Context(), time.Second, timeout, true, func(context.Context) (bool, error) {
		v = judge(truth, stored(t, b.ch, b.db), answered)
		return v.lost == 0 && v.unrecorded == 0, nil
	})
	return v
}

// webhookDropped returns how many events kube-apiserver's audit webhook backend gave up on
// (apiserver_audit_error_total for the webhook plugin).
func webhookDropped(t *testing.T, kube *testbed.Kube) int {
	t.Helper()
	raw, err := kube.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	require.NoError(t, err)
	total := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "apiserver_audit_error_total{") && strings.Contains(line, `plugin="webhook"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			require.NoError(t, err)
			total += int(v)
		}
	}
	return total
}

// metric returns the value of an enricher metric (summed over its labels).
func metric(t *testing.T, b *drillBed, name string) float64 {
	t.Helper()
	v, err := testbed.Metric(t.Context(), b.health+"/metrics", name)
	if err != nil {
		return -1
	}
	return v
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countRotated returns how many rotated files kube-apiserver's log backend left beside logPath.
func countRotated(t *testing.T, logPath string) int {
	t.Helper()
	dir, base := filepath.Split(logPath)
	ext := filepath.Ext(base)
	files, err := filepath.Glob(filepath.Join(dir, strings.TrimSuffix(base, ext)+"-*"+ext))
	require.NoError(t, err)
	return len(files)
}
