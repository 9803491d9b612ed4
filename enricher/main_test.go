package enricher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// bed holds the components the tests of this package share. Tests that need their own NATS
// (every test that runs an Enricher: the streams and the durable consumers are per server) or
// their own ClickHouse (the outage test) start it themselves.
var bed struct {
	once       sync.Once
	clickhouse *testbed.ClickHouse
	err        error
}

// testKey is the masking key of the tests.
var testKey = []byte("gatehouse-enricher-test-key-0123456789")

func TestMain(m *testing.M) {
	// envtest and controller-runtime's certificate watcher log through this global.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if bed.clickhouse != nil {
		bed.clickhouse.Close()
	}
	os.Exit(code)
}

// sharedClickHouse returns the ClickHouse server the package's tests share, started on first
// use (tests of pure logic and fuzzing run without one).
func sharedClickHouse(t testing.TB) *testbed.ClickHouse {
	t.Helper()
	bed.once.Do(func() { bed.clickhouse, bed.err = testbed.StartClickHouse() })
	require.NoError(t, bed.err, "the shared ClickHouse server did not start")
	return bed.clickhouse
}

// openClickHouse connects to a ClickHouse server over the protocol given.
func openClickHouse(t testing.TB, ch *testbed.ClickHouse, protocol string) driver.Conn {
	t.Helper()
	o := ClickHouseOptions{Addr: []string{ch.NativeAddr}, Protocol: protocol, Database: "default"}
	if protocol == "http" {
		o.Addr = []string{ch.HTTPAddr}
	}
	conn, err := o.Open(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// testDatabase returns a fresh database name for t and drops the database at the end.
func testDatabase(t testing.TB, conn driver.Conn) string {
	t.Helper()
	db := "t_" + strings.ToLower(nonIdent.ReplaceAllString(t.Name(), "_"))
	if len(db) > 60 {
		db = db[:60]
	}
	ctx := context.Background()
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db))
	return db
}

// startNATS starts a NATS server of t's own and connects to it as the test's own identity, which
// publishes what other components would and inspects the streams.
func startNATS(t testing.TB) (*testbed.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := testbed.StartNATS()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	nc, err := srv.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return srv, nc, js
}

func newMasker(t testing.TB) *masking.Masker {
	t.Helper()
	m, err := masking.New(masking.Config{Key: testKey})
	require.NoError(t, err)
	return m
}

// harness is an Enricher running in-process: intake on HTTPS, consumers on a NATS server of
// its own, storing into its own database.
type harness struct {
	*Enricher
	nats *testbed.NATS
	// nc and js are the test's own connection; the enricher runs on enc, with its own identity.
	nc       *nats.Conn
	js       jetstream.JetStream
	enc      *nats.Conn
	ch       driver.Conn
	db       string
	url      string // intake URL
	client   *http.Client
	pki      *testbed.PKI
	spoolDir string
	logs     *lockedBuffer
	// spooled counts the batches in the spool. Default: the in-process Enricher's.
	spooled func(testing.TB) int

	stop func()
}

type harnessOptions struct {
	ch       driver.Conn // default: the shared ClickHouse over the native protocol
	tweak    func(*Options)
	noStart  bool // do not run Start (intake returns 503)
	database string
	spoolDir string          // default: a fresh directory
	setup    func(*Enricher) // sets test seams before anything runs
}

func newHarness(t testing.TB, ho harnessOptions) *harness {
	t.Helper()
	h := &harness{logs: &lockedBuffer{}}
	h.nats, h.nc, h.js = startNATS(t)
	var err error
	h.enc, err = h.nats.ConnectAs(natsbus.RoleEnricher, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	require.NoError(t, err)
	t.Cleanup(h.enc.Close)
	h.ch = ho.ch
	if h.ch == nil {
		h.ch = openClickHouse(t, sharedClickHouse(t), "native")
	}
	h.db = ho.database
	if h.db == "" {
		h.db = testDatabase(t, h.ch)
	}
	h.spoolDir = ho.spoolDir
	if h.spoolDir == "" {
		h.spoolDir = t.TempDir()
	}
	opts := Options{
		NATS:         h.enc,
		ClickHouse:   h.ch,
		Masker:       newMasker(t),
		EnvelopeKey:  EnvelopeKey(testKey),
		SpoolDir:     h.spoolDir,
		Schema:       schema.Options{Database: h.db, GatewayGrace: 30 * time.Second},
		BatchMaxWait: 200 * time.Millisecond,
		RetryDelay:   300 * time.Millisecond,
		Logger:       slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if ho.tweak != nil {
		ho.tweak(&opts)
	}
	e, err := New(opts)
	require.NoError(t, err)
	h.Enricher = e
	if ho.setup != nil {
		ho.setup(e)
	}

	// Mutual TLS, as deployed: the intake requires a client certificate its CA signed.
	h.pki, err = testbed.NewPKI(t.TempDir())
	require.NoError(t, err)
	cfg := h.pki.ServerTLS()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.url = "https://" + l.Addr().String() + IntakePath
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: h.pki.ClientTLS()}}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	mux := http.NewServeMux()
	mux.Handle("POST "+IntakePath, e)
	wg.Go(func() { _ = serving.Run(ctx, &http.Server{Handler: mux}, l, cfg, time.Second) })
	if !ho.noStart {
		wg.Go(func() { _ = e.Start(ctx) })
	}
	h.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(h.stop)
	if !ho.noStart {
		require.Eventually(t, func() bool { return e.Ready(ctx) == nil && e.migrated.Load() }, 30*time.Second, 20*time.Millisecond, "enricher not started: %s", h.logs.tail(2000))
	}
	return h
}

// post sends an intake request and returns the status code.
func (h *harness) post(t testing.TB, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// count runs a counting query against the harness database ({db} is replaced).
func (h *harness) count(t testing.TB, query string, args ...any) uint64 {
	t.Helper()
	return countRows(t, h.ch, strings.ReplaceAll(query, "{db}", h.db), args...)
}

func countRows(t testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, conn.QueryRow(ctx, query, args...).Scan(&n), query)
	return n
}

// waitRows waits until query counts want rows.
func (h *harness) waitRows(t testing.TB, want uint64, timeout time.Duration, query string) {
	t.Helper()
	var got uint64
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		got = h.count(t, query)
		return got == want, nil
	})
	if err != nil {
		t.Fatalf("%s: got %d rows, want %d; enricher log:\n%s", query, got, want, h.logs.tail(4000))
	}
}

// settle waits until the enricher has nothing left to store: no batch in its spool, no audit
// batch in JetStream that its consumer has not been given or has not acknowledged. Until then
// a batch inserted but not acknowledged (a crash, a lost acknowledgement) can be inserted again
// at any moment, also after every event is stored once.
func (h *harness) settle(t testing.TB) {
	t.Helper()
	spooled := h.spooled
	if spooled == nil {
		spooled = func(testing.TB) int { return h.spool.stats().Batches }
	}
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n := spooled(t)
		cons, err := h.js.Consumer(ctx, trail.StreamAudit, trail.EnricherConsumer(trail.StreamAudit).Durable)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		info, err := cons.Info(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d batches spooled, %d messages pending, %d unacknowledged", n, info.NumPending, info.NumAckPending)
		return n == 0 && info.NumPending == 0 && info.NumAckPending == 0, nil
	})
	require.NoError(t, err, "the enricher did not settle: %s; log:\n%s", last, h.logs.tail(3000))
}

// assertStoredOnce checks, once the enricher settled, that the audit events are want events
// stored once each: every (audit ID, stage) is there, and merging the table's parts leaves one
// row of each.
func (h *harness) assertStoredOnce(t *testing.T, want uint64) {
	t.Helper()
	assert.Equal(t, want, h.count(t, "SELECT uniqExact(audit_id, stage) FROM {db}.audit_events"), "distinct (audit_id, stage)")
	// An OPTIMIZE that cannot merge now (a background merge holds some parts) does nothing,
	// silently unless optimize_throw_if_noop: try again until it merged.
	optimize := clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"optimize_throw_if_noop": 1}))
	var err error
	_ = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		err = h.ch.Exec(optimize, "OPTIMIZE TABLE "+h.db+".audit_events FINAL")
		return err == nil, nil
	})
	require.NoError(t, err, "OPTIMIZE TABLE %s.audit_events FINAL", h.db)
	assert.Equal(t, want, h.count(t, "SELECT count() FROM {db}.audit_events"), "rows after merging")
}

// lockedBuffer collects log output from concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
	// live, when set, returns what a running process wrote so far: String adds it.
	live func() string
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live != nil {
		return b.buf.String() + b.live()
	}
	return b.buf.String()
}

// add appends what a process that ended wrote.
func (b *lockedBuffer) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
