package scale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestApprovalAcrossReplicas: a call is held through one proxy and one webhook, and its retry,
// once approved, passes through the other proxy and the other webhook: no replica keeps state
// the others need.
func TestApprovalAcrossReplicas(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "replicas")
	agent := newUser("agent-replicas", agentGroup).withOptions("hold=refuse")
	approver := newUser("approver-replicas", approverGroup)
	t.Cleanup(func() { bed.proxyFront.Only(-1); bed.webhookFront.Only(-1) })

	t.Run("both proxies serve the one address", func(t *testing.T) {
		before := bed.proxyFront.Served()
		for i := range 4 {
			out, err := agent.kubectl(ctx, "", "-n", ns, "create", "configmap", "round-"+strconv.Itoa(i), "--from-literal=a=b")
			require.NoError(t, err, out)
		}
		for i, n := range bed.proxyFront.Served() {
			assert.Greater(t, n, before[i], "proxy %d served none of four calls", i)
		}
	})

	// Each phase reaches one proxy and one webhook only; the others' connections are cut, as a
	// rolling update does. What reached each replica is counted in bytes.
	create := []string{"-n", ns, "create", "secret", "generic", "db", "--from-literal=password=replica-canary"}
	bed.proxyFront.Only(0)
	bed.webhookFront.Only(0)
	proxies, webhooks := bed.proxyFront.Received(), bed.webhookFront.Received()
	out, err := agent.kubectl(ctx, "", create...)
	require.Error(t, err, "held for approval")
	id := approvalID(t, out)
	assert.Greater(t, bed.proxyFront.Received()[0], proxies[0], "held by proxy 0")
	assert.Greater(t, bed.webhookFront.Received()[0], webhooks[0], "requested by webhook 0")
	assert.Equal(t, []int64{proxies[1], webhooks[1]}, []int64{bed.proxyFront.Received()[1], bed.webhookFront.Received()[1]},
		"nothing reached proxy 1 and webhook 1 yet")

	bed.proxyFront.Only(1)
	bed.webhookFront.Only(1)
	proxies, webhooks = bed.proxyFront.Received(), bed.webhookFront.Received()
	_, err = approver.approvals(t, "approve", id, "--reason", "replicas")
	require.NoError(t, err)
	out, err = agent.kubectl(ctx, "", create...)
	require.NoError(t, err, "the retry passes through the other proxy and webhook: %s", out)
	assert.Greater(t, bed.proxyFront.Received()[1], proxies[1], "retried through proxy 1")
	assert.Greater(t, bed.webhookFront.Received()[1], webhooks[1], "admitted by webhook 1")
	assert.Equal(t, []int64{proxies[0], webhooks[0]}, []int64{bed.proxyFront.Received()[0], bed.webhookFront.Received()[0]},
		"nothing reached the proxy and the webhook that held the call")

	_, err = bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	shown, err := approver.approvals(t, "show", id, "-o", "json")
	require.NoError(t, err)
	assert.Contains(t, shown, `"state": "Used"`)

	// The grant was used once, by webhook 1: a third try is held again.
	out, err = agent.kubectl(ctx, "", "-n", ns, "delete", "secret", "db")
	require.Error(t, err, "a delete of a secret is held too: %s", out)
	assert.NotEqual(t, id, approvalID(t, out), "a new request, not the used grant")
}

// TestEnrichersShareTheirConsumers: two enrichers behind one intake address each publish what
// they receive, and read the streams through the same durable consumers: every audit event is
// stored exactly once, and both did part of the work.
func TestEnrichersShareTheirConsumers(t *testing.T) {
	ctx := t.Context()
	ch := clickhouseConn(t)
	stopMerges(t, ch)
	ns := bed.kube.Namespace(t, "enrichers")
	const n = 200
	direct := directClient(t)
	before := make([]float64, replicas)
	for i := range replicas {
		before[i] = metric(t, bed.enricherMetrics[i], "gatehouse_enricher_inserted_rows_total", `table="audit_events"`)
	}
	intake := make([]float64, replicas)
	for i := range replicas {
		intake[i] = metric(t, bed.enricherMetrics[i], "gatehouse_enricher_intake_events_total", `origin="webhook"`)
	}
	// kube-apiserver keeps its connection to the intake: the first half of the events reach
	// enricher 0, the second half enricher 1, once the first half is stored (so no batch is cut
	// in flight and sent again).
	t.Cleanup(func() { bed.enricherFront.Only(-1) })
	for half := range replicas {
		bed.enricherFront.Only(half)
		for i := half * n / 2; i < (half+1)*n/2; i++ {
			_, err := direct.CoreV1().ConfigMaps(ns).Create(ctx, configMap(i), metav1.CreateOptions{})
			require.NoError(t, err)
		}
		final, _ := waitForCreates(t, ch, ns, (half+1)*n/2)
		require.Equal(t, (half+1)*n/2, final)
	}
	final, raw := waitForCreates(t, ch, ns, n)
	assert.Equal(t, n, final, "every event stored")
	assert.Equal(t, n, raw, "no event stored twice (merges are stopped: a second insert would be a second row)")
	// Which enricher stores a batch is the consumer's choice, not the intake's: each received
	// half, and what either received was stored once (above).
	split := make([]float64, replicas)
	for i := range replicas {
		split[i] = metric(t, bed.enricherMetrics[i], "gatehouse_enricher_inserted_rows_total", `table="audit_events"`) - before[i]
		got := metric(t, bed.enricherMetrics[i], "gatehouse_enricher_intake_events_total", `origin="webhook"`)
		assert.GreaterOrEqual(t, got-intake[i], float64(n/2), "enricher %d received its half of the events", i)
	}
	t.Logf("audit rows inserted by each enricher: %v (the apiserver's own requests included)", split)
}

// TestNATSServerLoss: one of the three NATS servers is killed (SIGKILL) while audit events
// stream in and an approval is pending, and it leads the audit stream, the trail stream and the
// approvals bucket at that moment. The remaining two keep quorum: every event is stored exactly
// once, and the approval is decided and its grant used.
func TestNATSServerLoss(t *testing.T) {
	ctx := t.Context()
	ch := clickhouseConn(t)
	stopMerges(t, ch)
	ns := bed.kube.Namespace(t, "nats-loss")
	agent := newUser("agent-loss", agentGroup).withOptions("hold=refuse")
	approver := newUser("approver-loss", approverGroup)
	create := []string{"-n", ns, "create", "secret", "generic", "db", "--from-literal=password=loss-canary"}
	out, err := agent.kubectl(ctx, "", create...)
	require.Error(t, err, "held for approval")
	id := approvalID(t, out)

	nc, err := bed.nats.ConnectAs(natsbus.RoleAdmin)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, stream := range []string{trail.StreamAudit, trail.StreamTrail, trail.StreamRecordings, "KV_" + approvals.Bucket} {
		s, err := js.Stream(lctx, stream)
		require.NoError(t, err)
		assert.Equal(t, 3, s.CachedInfo().Config.Replicas, "%s is provisioned with three replicas", stream)
	}
	victim, err := testbed.Leader(lctx, js, trail.StreamAudit)
	require.NoError(t, err)
	// One server leads everything that matters here when it dies.
	for _, stream := range []string{trail.StreamTrail, "KV_" + approvals.Bucket} {
		moveLeader(t, nc, js, stream, victim)
	}

	const n = 300
	direct := directClient(t)
	var created atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := direct.CoreV1().ConfigMaps(ns).Create(ctx, configMap(i), metav1.CreateOptions{}); err != nil {
				done <- err
				return
			}
			created.Add(1)
		}
		done <- nil
	}()
	for created.Load() < n/3 {
		time.Sleep(10 * time.Millisecond)
	}
	i := bed.nats.Index(victim)
	require.GreaterOrEqual(t, i, 0, victim)
	require.NoError(t, bed.nats.KillServer(i))
	t.Logf("killed %s (leader of %s, %s and the approvals bucket) after %d of %d writes", victim, trail.StreamAudit, trail.StreamTrail, created.Load(), n)
	t.Cleanup(func() {
		if err := bed.nats.RestartServer(i); err != nil {
			t.Errorf("restart %s: %v", victim, err)
		}
	})

	// While the surviving servers elect new leaders, the console and the webhook fail closed
	// and say so; the approver and the agent try again, as the messages ask.
	killed := time.Now()
	retry(t, "approve with a server down", func() (string, error) {
		return approver.approvals(t, "approve", id, "--reason", "one server down")
	})
	decided := time.Since(killed)
	retry(t, "use the grant with a server down", func() (string, error) { return agent.kubectl(ctx, "", create...) })
	t.Logf("approved %s after the kill, the grant used %s after it", decided.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	require.NoError(t, <-done)

	final, raw := waitForCreates(t, ch, ns, n)
	assert.Equal(t, n, final, "every event stored")
	t.Logf("%d events, %d rows before deduplication by the table's key (redeliveries after the leader changed)", final, raw)
	lctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	leader, err := testbed.Leader(lctx, js, trail.StreamAudit)
	require.NoError(t, err)
	assert.NotEqual(t, victim, leader)

	// The approval's own records, through the trail stream that lost its leader.
	events := map[string]int{}
	require.Eventually(t, func() bool {
		rows, err := ch.Query(ctx, "SELECT event, count() FROM gatehouse.approvals FINAL WHERE approval_id = {id:String} GROUP BY event", clickhouse.Named("id", id))
		if err != nil {
			return false
		}
		defer rows.Close()
		clear(events)
		for rows.Next() {
			var e string
			var c uint64
			if rows.Scan(&e, &c) == nil {
				events[e] = int(c)
			}
		}
		return events["GrantUsed"] > 0
	}, 60*time.Second, 250*time.Millisecond, "the approval's records reach ClickHouse")
	for e, c := range events {
		assert.Equal(t, 1, c, "approval event %s stored once", e)
	}
	assert.Subset(t, keys(events), []string{"Requested", "Approved", "GrantUsed"})
}

// moveLeader makes server the leader of stream's replica group (a JetStream leader step-down
// with a preferred server), and waits until it is.
func moveLeader(t *testing.T, nc *nats.Conn, js jetstream.JetStream, stream, server string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	body, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": server}})
	require.NoError(t, err)
	for {
		leader, err := testbed.Leader(ctx, js, stream)
		require.NoError(t, err)
		if leader == server {
			return
		}
		if _, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body); err != nil && ctx.Err() != nil {
			t.Fatalf("%s: leader %s, not %s: %v", stream, leader, server, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: leader %s, not %s", stream, leader, server)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// retry runs f until it succeeds, for at most 30 seconds, and fails the test with its last
// output then.
func retry(t *testing.T, what string, f func() (string, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v: %s", what, err, out)
		}
		t.Logf("%s: %s", what, strings.TrimSpace(out))
		time.Sleep(500 * time.Millisecond)
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func configMap(i int) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("event-%04d", i)}, Data: map[string]string{"i": strconv.Itoa(i)}}
}

// waitForCreates waits until ClickHouse holds the audit events of n configmap creates in ns,
// and returns their count as the auditors' queries see it (FINAL) and as rows.
func waitForCreates(t *testing.T, ch driver.Conn, ns string, n int) (final, raw int) {
	t.Helper()
	count := func(modifier string) int {
		var c uint64
		err := ch.QueryRow(t.Context(), "SELECT count() FROM gatehouse.audit_events "+modifier+
			" WHERE namespace = {ns:String} AND resource = 'configmaps' AND verb = 'create' AND name LIKE 'event-%' AND stage = 'ResponseComplete'",
			clickhouse.Named("ns", ns)).Scan(&c)
		require.NoError(t, err)
		return int(c)
	}
	deadline := time.Now().Add(90 * time.Second)
	for final = count("FINAL"); final < n && time.Now().Before(deadline); final = count("FINAL") {
		time.Sleep(250 * time.Millisecond)
	}
	return final, count("")
}

func clickhouseConn(t *testing.T) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{bed.clickhouse.NativeAddr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// stopMerges keeps every inserted row of the audit and approval tables a row of its own while
// the test runs, so a duplicate insert is seen rather than merged away.
func stopMerges(t *testing.T, ch driver.Conn) {
	t.Helper()
	for _, table := range []string{"audit_events", "approvals"} {
		require.NoError(t, ch.Exec(t.Context(), "SYSTEM STOP MERGES gatehouse."+table))
		t.Cleanup(func() { _ = ch.Exec(context.Background(), "SYSTEM START MERGES gatehouse."+table) })
	}
}

// metric reads a counter from a /metrics page: the sample of name whose labels contain label.
func metric(t *testing.T, url, name, label string) float64 {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec // the test's own address
	require.NoError(t, err)
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		total += v
	}
	require.NoError(t, sc.Err())
	return total
}

func directClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(bed.direct)
	cfg.QPS, cfg.Burst = 1000, 1000 // not client-go's 5 per second: the test is the load
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return c
}

// user is a test user of Gatehouse: a token, and a kubeconfig that reaches the proxies' address
// with it.
type user struct {
	token      string
	kubeconfig string
}

func newUser(subject string, groups ...string) user {
	c := bed.issuer.Claims(subject)
	c["groups"] = groups
	tok, err := bed.issuer.Sign(c)
	if err != nil {
		panic(err)
	}
	return user{token: tok, kubeconfig: kubeconfigAt(tok, "")}
}

// withOptions returns id with client options in its server URL, e.g. "hold=refuse".
func (id user) withOptions(options string) user {
	return user{token: id.token, kubeconfig: kubeconfigAt(id.token, "/gatehouse/client/"+options)}
}

func kubeconfigAt(tok, path string) string {
	f, err := testbed.WriteKubeconfig(bed.dir, &rest.Config{
		Host:            bed.proxyURL + path,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA},
	})
	if err != nil {
		panic(err)
	}
	return f
}

func (id user) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bed.kube.Kubectl, append([]string{"--kubeconfig", id.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// approvals runs `gatehouse approvals` as id.
func (id user) approvals(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"approvals", "--kubeconfig", id.kubeconfig}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String() + stderr.String(), fmt.Errorf("gatehouse approvals %v: %w: %s", args, err, stderr.String())
	}
	return out.String(), nil
}

func approvalID(t *testing.T, msg string) string {
	t.Helper()
	i := strings.Index(msg, "ap-")
	require.GreaterOrEqual(t, i, 0, "no approval ID in %q", msg)
	require.GreaterOrEqual(t, len(msg), i+19, msg)
	return msg[i : i+19]
}
