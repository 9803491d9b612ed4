package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The run functions' tests run the commands in this process against real components, started
// once, on first use, for the package.
var bed struct {
	issuerOnce sync.Once
	issuer     *testbed.Issuer
	issuerErr  error

	kubeOnce sync.Once
	kube     *testbed.Kube
	kubeErr  error

	chOnce sync.Once
	ch     *testbed.ClickHouse
	chErr  error
}

func TestMain(m *testing.M) {
	// controller-runtime's components log through its global logger (main sets it).
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if bed.issuer != nil {
		bed.issuer.Close()
	}
	if bed.kube != nil {
		bed.kube.Stop()
	}
	if bed.ch != nil {
		bed.ch.Close()
	}
	os.Exit(code)
}

func testIssuer(t *testing.T) *testbed.Issuer {
	t.Helper()
	bed.issuerOnce.Do(func() { bed.issuer, bed.issuerErr = testbed.StartIssuer() })
	require.NoError(t, bed.issuerErr)
	return bed.issuer
}

func testKube(t *testing.T) *testbed.Kube {
	t.Helper()
	bed.kubeOnce.Do(func() { bed.kube, bed.kubeErr = testbed.StartKube(testbed.KubeOptions{}) })
	require.NoError(t, bed.kubeErr)
	return bed.kube
}

func testClickHouse(t *testing.T) *testbed.ClickHouse {
	t.Helper()
	bed.chOnce.Do(func() { bed.ch, bed.chErr = testbed.StartClickHouse() })
	require.NoError(t, bed.chErr)
	return bed.ch
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// running is a command's run function running in this process.
type running struct {
	cancel context.CancelFunc
	done   chan error
	log    *testbed.SyncBuffer
}

// start parses args as the command's flags, then runs the command's real run function with the
// options until stop. Development mode's embedded NATS server keeps its data in a temporary
// cache directory.
func start[O any](t *testing.T, newCmd func(*globals, func(context.Context, *slog.Logger, O) error) *cobra.Command,
	run func(context.Context, *slog.Logger, O) error, args ...string) *running {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	o, err := parse(t, newCmd, args...)
	require.NoError(t, err)
	r := &running{done: make(chan error, 1), log: &testbed.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { r.done <- run(ctx, log, o) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("log:\n%s", r.log)
		}
	})
	return r
}

// waitReady waits until url answers 200, failing early when the command ends.
func (r *running) waitReady(t *testing.T, url string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-r.done:
			r.done <- err
			return false, fmt.Errorf("the command ended: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	require.NoError(t, err, "%s is not ready", url)
}

// stop cancels the command's context and returns what run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the command did not stop within 60s of its context's end")
		return nil
	}
}

// get returns the body of a GET of url.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// insecure trusts any serving certificate: development mode's are self-signed.
var insecure = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed test servers
}}

func TestRunNATS(t *testing.T) {
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	var out testbed.SyncBuffer
	cmd := newNATSCommand(&globals{logger: slog.New(slog.DiscardHandler)}, runNATS)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--dev", "--bind-address", host, "--port", port, "--store-dir", t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	// The server accepts clients while it provisions; the ready line comes after that.
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "NATS JetStream ready at nats://"+addr) },
		30*time.Second, 20*time.Millisecond, "the ready line: %s", &out)
	nc, err := nats.Connect("nats://" + addr)
	require.NoError(t, err, "ready means serving")
	defer nc.Close()
	require.NoError(t, nc.Publish("gatehouse.test", []byte("hello")))
	require.NoError(t, nc.Flush())

	cancel()
	require.NoError(t, <-done, "it stops cleanly when its context ends")
	require.Eventually(t, func() bool { return nc.IsClosed() || !nc.IsConnected() }, 10*time.Second, 10*time.Millisecond, "the server is gone")

	// A port in use is reported at once, by name.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, busy, _ := net.SplitHostPort(l.Addr().String())
	cmd = newNATSCommand(&globals{logger: slog.New(slog.DiscardHandler)}, runNATS)
	cmd.SetArgs([]string{"--dev", "--port", busy, "--store-dir", t.TempDir()})
	require.ErrorContains(t, cmd.ExecuteContext(t.Context()), "choose another --port")
}

func TestRunConsole(t *testing.T) {
	issuer := testIssuer(t)
	dir := t.TempDir()
	authConfig := filepath.Join(dir, "authn.yaml")
	require.NoError(t, os.WriteFile(authConfig, []byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: ["gatehouse-console"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: ""}
`, issuer.URL, strings.ReplaceAll(strings.TrimSpace(string(issuer.CAPEM)), "\n", "\n      "))), 0o600))
	addr, health := freeAddr(t), freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	r := start(t, newConsoleCommand, runConsole, "--dev",
		"--authentication-config", authConfig, "--oidc-client-id", "gatehouse-console",
		"--external-url", "https://"+addr, "--bind-address", host, "--secure-port", port,
		"--health-bind-address", health, "--shutdown-grace-period", "2s")
	r.waitReady(t, "http://"+health+"/readyz")

	code, _ := get(t, insecure, "https://"+addr+"/")
	assert.Less(t, code, 500, "the console answers")
	code, metrics := get(t, http.DefaultClient, "http://"+health+"/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, metrics, "go_goroutines", "the runtime's metrics, from controller-runtime's registry")
	code, _ = get(t, http.DefaultClient, "http://"+health+"/healthz")
	assert.Equal(t, http.StatusOK, code)

	require.NoError(t, r.stop(t), "it stops cleanly when its context ends")
	_, err := http.Get("http://" + health + "/readyz")
	require.Error(t, err, "and leaves nothing listening")
	assert.Contains(t, r.log.String(), "no --session-key-file: using a random session key (development only)")
	assert.Contains(t, r.log.String(), "started an embedded NATS server without authentication (development only)")
}

func TestRunEnricher(t *testing.T) {
	ch := testClickHouse(t)
	addr, health := freeAddr(t), freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	r := start(t, newEnricherCommand, runEnricher, "--dev",
		"--clickhouse-addr", ch.NativeAddr, "--clickhouse-database", "app_run_enricher",
		"--bind-address", host, "--secure-port", port,
		"--spool-dir", t.TempDir(), "--batch-max-wait", "100ms",
		"--health-bind-address", health, "--shutdown-grace-period", "2s")
	r.waitReady(t, "http://"+health+"/readyz")

	batch := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"level":"Metadata","auditID":"app-run-1","stage":"ResponseComplete",` +
		`"requestURI":"/api/v1/namespaces","verb":"list","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],` +
		`"requestReceivedTimestamp":"2026-12-01T10:00:00.000000Z","stageTimestamp":"2026-12-01T10:00:00.001000Z"}]}`
	resp, err := insecure.Post("https://"+addr+enricher.IntakePath, "application/json", strings.NewReader(batch))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "development mode's intake takes batches without a client certificate")
	require.Eventually(t, func() bool {
		_, metrics := get(t, http.DefaultClient, "http://"+health+"/metrics")
		return strings.Contains(metrics, `gatehouse_enricher_inserted_rows_total{table="audit_events"} 1`)
	}, 30*time.Second, 50*time.Millisecond, "the event is stored, and the enricher's metrics are served")

	require.NoError(t, r.stop(t), "it stops cleanly when its context ends")
}

// proxyArgs returns the flags of a development proxy in front of the test cluster, trusting the
// test issuer, with no policies, and the address it serves and its health address.
func proxyArgs(t *testing.T) (args []string, addr, health string) {
	t.Helper()
	kube, issuer := testKube(t), testIssuer(t)
	dir := t.TempDir()
	kubeconfig, err := testbed.WriteKubeconfig(dir, kube.Config)
	require.NoError(t, err)
	authConfig := filepath.Join(dir, "authn.yaml")
	require.NoError(t, os.WriteFile(authConfig, []byte(issuer.AuthenticationConfig("gatehouse")), 0o600))
	policies := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(policies, nil, 0o600))
	addr, health = freeAddr(t), freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	return []string{"--dev", "--kubeconfig=" + kubeconfig, "--authentication-config=" + authConfig, "--policy-file=" + policies,
		"--bind-address=" + host, "--secure-port=" + port, "--health-bind-address=" + health, "--shutdown-grace-period=2s"}, addr, health
}

func TestRunProxy(t *testing.T) {
	issuer := testIssuer(t)
	args, addr, health := proxyArgs(t)
	r := start(t, newProxyCommand, runProxy, args...)
	r.waitReady(t, "http://"+health+"/readyz")

	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/version", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+issuer.MustSign(t, issuer.Claims("agent")))
	resp, err := insecure.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the proxy forwards an authenticated request")
	_, metrics := get(t, http.DefaultClient, "http://"+health+"/metrics")
	assert.Contains(t, metrics, "gatehouse_proxy_", "the proxy's metrics")
	assert.Contains(t, metrics, "controller_runtime_", "and its manager's")

	// A second proxy on the same health address fails at once, naming the address, and leaves
	// nothing behind.
	o, err := parse(t, newProxyCommand, append(without(args, "secure-port"), "--secure-port="+strconv.Itoa(mustPort(t, freeAddr(t))))...)
	require.NoError(t, err)
	err = runProxy(t.Context(), slog.New(slog.DiscardHandler), o)
	require.ErrorContains(t, err, "address already in use")

	require.NoError(t, r.stop(t), "it stops cleanly when its context ends")
}

// TestRunProxyReadinessSaysWhy runs the proxy with its own NATS identity, over TLS, against a
// NATS server whose streams the administrator has not made yet: the one health endpoint reports
// the proxy not ready because of NATS and the log says which stream is missing; once provisioned
// it is ready; when NATS goes away it is not ready again, and the log says it is not connected.
func TestRunProxyReadinessSaysWhy(t *testing.T) {
	srv, err := testbed.StartNATS()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	admin, err := srv.Connect()
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	js, err := jetstream.New(admin)
	require.NoError(t, err)
	require.NoError(t, testbed.DeleteStreams(t.Context(), js))

	args, _, health := proxyArgs(t)
	r := start(t, newProxyCommand, runProxy, append(args, srv.Args(natsbus.RoleProxy)...)...)
	notReady := func(why string) {
		t.Helper()
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + health + "/readyz")
			if err != nil {
				return false // not serving yet
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return err == nil && resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "nats") &&
				strings.Contains(r.log.String(), why)
		}, 60*time.Second, 50*time.Millisecond, "/readyz names the nats check and the log says %q", why)
	}
	notReady("the stream " + trail.StreamTrail + " does not exist")

	require.NoError(t, natsbus.ProvisionConn(t.Context(), admin, natsbus.ProvisionOptions{}))
	r.waitReady(t, "http://"+health+"/readyz")

	srv.Shutdown()
	notReady("not connected to NATS")
	require.NoError(t, r.stop(t), "it stops cleanly while NATS is away")
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}
