package enricher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/serving"
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
	assert.Equal(t, uint64(total), h.count(t, "SELECT uniqExact(audit_id, stage) FROM {db}.audit_events"))
	require.NoError(t, h.ch.Exec(t.Context(), "OPTIMIZE TABLE "+h.db+".audit_events FINAL"))
	assert.Equal(t, uint64(total), h.count(t, "SELECT count() FROM {db}.audit_events"))
}

// TestEnricherKilled runs `gatehouse enricher` as a process, kills it with SIGKILL while it
// inserts, and starts it again: nothing is lost, nothing is stored twice.
func TestEnricherKilled(t *testing.T) {
	bin, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	natsSrv, _, _ := startNATS(t)
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
	certFile, keyFile := writeServingCert(t, dir)
	keyPath := filepath.Join(dir, "masking.key")
	require.NoError(t, os.WriteFile(keyPath, testKey, 0o600))
	port, healthPort := freePort(t), freePort(t)
	args := []string{"enricher", "--log-format", "text",
		"--nats-url", natsSrv.URL(),
		"--clickhouse-addr", chSrv.HTTPAddr, "--clickhouse-protocol", "http", "--clickhouse-database", db,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--health-bind-address", "127.0.0.1:" + strconv.Itoa(healthPort),
		"--masking-key-file", keyPath,
		"--batch-max-messages", "2", "--batch-max-wait", "100ms", "--workers", "1", "--ack-wait", "3s",
	}
	var logs lockedBuffer
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(healthPort) + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 50*time.Millisecond, "enricher not ready: %s", logs.tail(3000))
		return cmd
	}
	cmd := start()
	h := &harness{ch: conn, db: db, url: "https://127.0.0.1:" + strconv.Itoa(port) + IntakePath, logs: &logs,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} //nolint:gosec // self-signed test server
	o := genOptions{id: "killed"}
	const total = 12000
	h.postBatches(t, 0, total, 400, o)

	// Kill it once some, not all, batches are inserted.
	var atKill uint64
	require.Eventually(t, func() bool {
		atKill = countRowsIfExists(t, h, "SELECT count() FROM {db}.audit_events")
		return atKill > 0
	}, 30*time.Second, 5*time.Millisecond, "nothing inserted: %s", logs.tail(3000))
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.Less(t, atKill, uint64(total), "killed while inserting")
	t.Logf("killed with %d of %d rows inserted", atKill, total)

	start()
	h.postBatches(t, 0, 800, 400, o) // kube-apiserver retrying what it sent before
	h.waitRows(t, total, 60*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Equal(t, uint64(total), h.count(t, "SELECT uniqExact(audit_id, stage) FROM {db}.audit_events"))
	require.NoError(t, conn.Exec(t.Context(), "OPTIMIZE TABLE "+db+".audit_events FINAL"))
	assert.Equal(t, uint64(total), h.count(t, "SELECT count() FROM {db}.audit_events"))
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

// writeServingCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files.
func writeServingCert(t testing.TB, dir string) (string, string) {
	t.Helper()
	cert, err := serving.SelfSignedCertificate("127.0.0.1")
	require.NoError(t, err)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600))
	return certFile, keyFile
}

// TestTailAuditLog follows an audit log through partial writes, a bad line and a rotation.
func TestTailAuditLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	h := newHarness(t, harnessOptions{tweak: func(o *Options) {
		o.AuditLogPath = path
		o.AuditLogPollInterval = 50 * time.Millisecond
	}})
	o := genOptions{id: "tail", secret: "tail-canary-77341"}
	line := func(i int) []byte {
		ev := genEvent(i, o)
		return append(append([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1",`), ev[1:]...), '\n')
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	for i := range 500 {
		_, err := f.Write(line(i))
		require.NoError(t, err)
	}
	h.waitRows(t, 500, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")

	// Half a line, then the rest.
	l := line(500)
	_, err = f.Write(l[:40])
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	_, err = f.Write(l[40:])
	require.NoError(t, err)
	_, err = f.Write([]byte("this is not an audit event\n"))
	require.NoError(t, err)
	for i := 501; i < 700; i++ {
		_, err := f.Write(line(i))
		require.NoError(t, err)
	}
	// Rotate as kube-apiserver's log backend does: rename, then write a new file.
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(path, path+".1"))
	f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	for i := 700; i < 1000; i++ {
		_, err := f.Write(line(i))
		require.NoError(t, err)
	}
	h.waitRows(t, 1000, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	assert.Equal(t, uint64(1000), h.count(t, "SELECT count() FROM {db}.audit_events FINAL WHERE origin = 'file'"))
	assert.Contains(t, h.logs.String(), "audit log line is not an audit event, skipped")
	assert.Contains(t, h.logs.String(), "audit log rotated")
	assertNowhere(t, h.ch, h.db, o.secret)
	assert.NotContains(t, h.logs.String(), "this is not an audit event", "bad lines are reported by offset, not content")
}
