package enricher

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestClickHouseOutage stops ClickHouse while batches arrive and starts it again: every event
// is stored exactly once, and the intake never refused a batch meanwhile.
func TestClickHouseOutage(t *testing.T) {
	ch, err := testbed.StartClickHouse()
	require.NoError(t, err)
	t.Cleanup(ch.Close)
	h := newHarness(t, harnessOptions{ch: openClickHouse(t, ch, "native")})
	o := genOptions{id: "outage"}
	const total = 6000

	h.postBatches(t, 0, 2000, 400, o)
	require.Eventually(t, func() bool { return h.count(t, "SELECT count() FROM {db}.audit_events") > 0 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, ch.Stop())
	h.postBatches(t, 2000, 4000, 400, o) // accepted: they wait in JetStream
	require.Eventually(t, func() bool {
		return bytes.Contains([]byte(h.logs.String()), []byte("batch not processed, it will be delivered again"))
	}, 20*time.Second, 50*time.Millisecond, "inserts fail while ClickHouse is down")
	require.NoError(t, ch.Start())
	h.postBatches(t, 4000, total, 400, o)

	h.waitRows(t, total, 60*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	h.settle(t)
	h.assertStoredOnce(t, total)
}

// enricherProcess is `gatehouse enricher` run as a process, as deployed (mutual TLS, a spool
// directory), against a NATS and a ClickHouse of the test's own.
type enricherProcess struct {
	*harness
	args     []string
	spoolDir string
	health   string
	p        *testbed.Process
	chServer *testbed.ClickHouse
}

func newEnricherProcess(t *testing.T, extra ...string) *enricherProcess {
	t.Helper()
	_, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	natsSrv, _, js := startNATS(t)
	chSrv, err := testbed.StartClickHouse()
	require.NoError(t, err)
	t.Cleanup(chSrv.Close)
	conn := openClickHouse(t, chSrv, "native")
	db := testDatabase(t, conn)
	t.Cleanup(func() {
		if t.Failed() {
			l := chSrv.Log()
			t.Logf("ClickHouse log: %s", l[max(0, len(l)-5000):])
		}
	})
	dir := t.TempDir()
	pki, err := testbed.NewPKI(dir)
	require.NoError(t, err)
	keyPath := filepath.Join(dir, "masking.key")
	require.NoError(t, os.WriteFile(keyPath, testKey, 0o600))
	port, healthPort := freePort(t), freePort(t)
	p := &enricherProcess{spoolDir: filepath.Join(dir, "spool"), health: "http://127.0.0.1:" + strconv.Itoa(healthPort), chServer: chSrv}
	p.args = append([]string{"enricher", "--log-format", "text",
		"--clickhouse-addr", chSrv.HTTPAddr, "--clickhouse-protocol", "http", "--clickhouse-database", db,
		"--tls-cert-file", pki.ServerCertFile, "--tls-private-key-file", pki.ServerKeyFile, "--client-ca-file", pki.CAFile,
		"--spool-dir", p.spoolDir,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--health-bind-address", "127.0.0.1:" + strconv.Itoa(healthPort),
		"--masking-key-file", keyPath,
	}, append(natsSrv.Args(natsbus.RoleEnricher), extra...)...)
	p.harness = &harness{ch: conn, db: db, js: js, url: "https://127.0.0.1:" + strconv.Itoa(port) + IntakePath, logs: &lockedBuffer{},
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}}, spooled: p.spooled}
	return p
}

// start starts the process and waits until its intake is ready.
func (p *enricherProcess) start(t *testing.T) {
	t.Helper()
	var err error
	p.p, err = testbed.StartGatehouse(p.args...)
	require.NoError(t, err)
	proc := p.p
	p.logs.mu.Lock()
	p.logs.live = proc.Output
	p.logs.mu.Unlock()
	t.Cleanup(func() { _ = proc.Kill() })
	require.NoError(t, proc.WaitReady(p.health+"/readyz", 60*time.Second))
}

// kill ends the process with SIGKILL and keeps what it logged.
func (p *enricherProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.p.Kill())
	p.logs.mu.Lock()
	p.logs.live = nil
	p.logs.mu.Unlock()
	p.logs.add(p.p.Output())
}

// spooled returns the number of batches in the running process's spool, from its metrics.
func (p *enricherProcess) spooled(t testing.TB) int {
	t.Helper()
	n, err := testbed.Metric(t.Context(), p.health+"/metrics", "gatehouse_enricher_spool_batches")
	require.NoError(t, err)
	return int(n)
}

// TestEnricherKilled runs `gatehouse enricher` as a process, kills it with SIGKILL while it
// inserts, and starts it again: nothing is lost, nothing is stored twice.
func TestEnricherKilled(t *testing.T) {
	p := newEnricherProcess(t, "--batch-max-messages", "2", "--batch-max-wait", "100ms", "--workers", "1", "--ack-wait", "3s")
	p.start(t)
	h := p.harness
	o := genOptions{id: "killed"}
	const total = 12000
	h.postBatches(t, 0, total, 400, o)

	// Kill it once some, not all, batches are inserted.
	var atKill uint64
	require.Eventually(t, func() bool {
		atKill = countRowsIfExists(t, h, "SELECT count() FROM {db}.audit_events")
		return atKill > 0
	}, 30*time.Second, 5*time.Millisecond, "nothing inserted: %s", h.logs.tail(3000))
	p.kill(t)
	require.Less(t, atKill, uint64(total), "killed while inserting")
	t.Logf("killed with %d of %d rows inserted", atKill, total)

	p.start(t)
	h.postBatches(t, 0, 800, 400, o) // kube-apiserver retrying what it sent before
	h.waitRows(t, total, 60*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	// What was inserted and not acknowledged before the kill is delivered again after
	// --ack-wait, possibly after every event is stored: count once nothing is left to deliver.
	h.settle(t)
	h.assertStoredOnce(t, total)
}

// TestEnricherKilledWhileSpooling kills the enricher with SIGKILL while it writes large
// batches to its spool, before it answered them: the next start discards the torn batches, the
// senders retry as kube-apiserver does, and every event is stored exactly once, including those
// of batches that were answered 200 just before the kill.
func TestEnricherKilledWhileSpooling(t *testing.T) {
	p := newEnricherProcess(t)
	p.start(t)
	h := p.harness
	const batches, size = 6, 20000
	o := genOptions{id: "torn"}
	bodies := make([][]byte, batches)
	for i := range bodies {
		bodies[i] = testEventList(i*size, (i+1)*size, o)
	}
	answered := make([]int, batches)
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.client.Do(req)
			if err != nil {
				return // killed
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered[i] = resp.StatusCode
		})
	}
	// Kill it while a batch is being written to the spool.
	require.Eventually(t, func() bool {
		parts, _ := filepath.Glob(filepath.Join(p.spoolDir, "*"+spoolPartSuffix))
		for _, f := range parts {
			if st, err := os.Stat(f); err == nil && st.Size() > 64<<10 {
				return true
			}
		}
		return false
	}, 60*time.Second, time.Millisecond, "no batch was being spooled: %s", h.logs.tail(3000))
	p.kill(t)
	wg.Wait()
	parts, _ := filepath.Glob(filepath.Join(p.spoolDir, "*"+spoolPartSuffix))
	require.NotEmpty(t, parts, "killed in the middle of writing a batch")
	var acked int
	for _, code := range answered {
		if code == http.StatusOK {
			acked++
		}
	}
	t.Logf("killed with %d torn batch files; %d of %d batches answered 200", len(parts), acked, batches)
	require.Less(t, acked, batches, "killed before every batch was answered")

	p.start(t)
	assert.Contains(t, h.logs.String(), "deleted batches a previous run was still writing")
	parts, _ = filepath.Glob(filepath.Join(p.spoolDir, "*"+spoolPartSuffix))
	assert.Empty(t, parts, "torn batches are discarded at start")
	// kube-apiserver sends again what was not answered 200, and maybe one that was.
	for i, body := range bodies {
		if answered[i] != http.StatusOK || i == 0 {
			require.Equal(t, http.StatusOK, h.post(t, body))
		}
	}
	h.waitRows(t, batches*size, 120*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	h.settle(t)
	h.assertStoredOnce(t, batches*size)
}

// countRowsIfExists counts, treating a table that does not exist yet as empty.
func countRowsIfExists(t testing.TB, h *harness, query string) uint64 {
	t.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.ch.QueryRow(ctx, replaceDB(query, h.db)).Scan(&n); err != nil {
		return 0
	}
	return n
}

func replaceDB(q, db string) string {
	return string(bytes.ReplaceAll([]byte(q), []byte("{db}"), []byte(db)))
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// auditLogLine returns event i as kube-apiserver's log backend writes it.
func auditLogLine(i int, o genOptions) []byte {
	ev := genEvent(i, o)
	return append(append([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1",`), ev[1:]...), '\n')
}

// appendLines appends events from..to-1 to the log file path.
func appendLines(t *testing.T, path string, from, to int, o genOptions) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	for i := from; i < to; i++ {
		_, err := f.Write(auditLogLine(i, o))
		require.NoError(t, err)
	}
}

// rotate renames the log as kube-apiserver's log backend (lumberjack) does.
func rotate(t *testing.T, path string, at time.Time) string {
	t.Helper()
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	rotated := filepath.Join(dir, strings.TrimSuffix(base, ext)+"-"+at.UTC().Format(backupTimeFormat)+ext)
	require.NoError(t, os.Rename(path, rotated))
	return rotated
}

// TestTailAuditLog follows an audit log through partial writes, a bad line and a rotation.
func TestTailAuditLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	var polls atomic.Int64
	h := newHarness(t, harnessOptions{tweak: func(o *Options) {
		o.AuditLogPath = path
		o.AuditLogPollInterval = 50 * time.Millisecond
	}, setup: func(e *Enricher) {
		e.afterPoll = func() { polls.Add(1) }
	}})
	o := genOptions{id: "tail", secret: "tail-canary-77341"}
	appendLines(t, path, 0, 500, o)
	h.waitRows(t, 500, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")

	// Half a line, then the rest.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	l := auditLogLine(500, o)
	_, err = f.Write(l[:40])
	require.NoError(t, err)
	// Two whole polls see the half line (the one running may have begun before it was written).
	after := polls.Load() + 3
	require.Eventually(t, func() bool { return polls.Load() >= after }, 10*time.Second, 10*time.Millisecond)
	_, err = f.Write(l[40:])
	require.NoError(t, err)
	_, err = f.Write([]byte("this is not an audit event\n"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	appendLines(t, path, 501, 700, o)
	// Rotate as kube-apiserver's log backend does: rename, then write a new file.
	rotate(t, path, time.Now())
	appendLines(t, path, 700, 1000, o)
	h.waitRows(t, 1000, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Equal(t, uint64(1000), h.count(t, "SELECT count() FROM {db}.audit_events FINAL WHERE origin = 'file'"))
	assert.Contains(t, h.logs.String(), "audit log line is not an audit event, skipped")
	assert.Contains(t, h.logs.String(), "audit log rotated")
	assertNowhere(t, h.ch, h.db, o.secret)
	assert.NotContains(t, h.logs.String(), "this is not an audit event", "bad lines are reported by offset, not content")
}

// TestTailAuditLogResumes stops the enricher, lets the log grow and rotate twice while it is
// away, and starts it again: it resumes at its saved position in the rotated file, reads the
// newer rotated files and the new log, and stores every event once. A rotated file compressed
// before it was read is reported as a gap.
func TestTailAuditLogResumes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	spoolDir := t.TempDir()
	conn := openClickHouse(t, sharedClickHouse(t), "native")
	db := testDatabase(t, conn)
	start := func() *harness {
		return newHarness(t, harnessOptions{ch: conn, database: db, spoolDir: spoolDir, tweak: func(o *Options) {
			o.AuditLogPath = path
			o.AuditLogPollInterval = 50 * time.Millisecond
		}})
	}
	o := genOptions{id: "resume"}
	h := start()
	appendLines(t, path, 0, 300, o)
	h.waitRows(t, 300, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	h.stop()

	t0 := time.Now()
	appendLines(t, path, 300, 400, o)
	rotate(t, path, t0)
	appendLines(t, path, 400, 500, o)
	rotate(t, path, t0.Add(time.Second))
	appendLines(t, path, 500, 600, o)

	h = start()
	h.waitRows(t, 600, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Contains(t, h.logs.String(), "resuming in a rotated audit log")
	h.settle(t)
	h.assertStoredOnce(t, 600)
	h.stop()

	// While away again: the log rotates and the rotated file is compressed, unread.
	appendLines(t, path, 600, 700, o)
	gone := rotate(t, path, t0.Add(2*time.Second))
	require.NoError(t, os.Rename(gone, gone+".gz"))
	appendLines(t, path, 700, 800, o)
	h = start()
	h.waitRows(t, 700, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Contains(t, h.logs.String(), "the audit log file the enricher was reading is gone")
}
