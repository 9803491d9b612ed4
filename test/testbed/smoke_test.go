package testbed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The test bed's own tests: each component answers as the real one does, so that a test that
// fails elsewhere fails because of Gatehouse, not of its bed.

func TestSmokeKubeAPI(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "smoke")
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Data:       map[string]string{"greeting": "hello from gatehouse"},
	}
	_, err := bed.kube.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)

	got, err := bed.kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "hello", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "hello from gatehouse", got.Data["greeting"])

	// The kubectl built from the API server's release reads it too.
	out := kubectl(t, nil, "get", "configmap", "hello", "-n", ns, "-o", "jsonpath={.data.greeting}")
	assert.Equal(t, "hello from gatehouse", out)

	version := kubectl(t, nil, "version", "-o", "json")
	var v struct {
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	require.NoError(t, json.Unmarshal([]byte(version), &v))
	assert.Regexp(t, `^v1\.\d+\.\d+$`, v.ServerVersion.GitVersion, "the API server reports a real version")
}

// TestSmokeExec runs a command in a pod on the stub kubelet with stdin round trip, through the
// API server, over SPDY and over WebSocket, with client-go and with kubectl.
func TestSmokeExec(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "exec")
	_, err := bed.kubelet.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	})
	require.NoError(t, err)

	execURL := func(cmd ...string) *rest.Request {
		return bed.kube.Clientset.CoreV1().RESTClient().Post().
			Resource("pods").Namespace(ns).Name("shell").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "main", Command: cmd, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	}
	executors := map[string]func(cmd ...string) (remotecommand.Executor, error){
		"spdy": func(cmd ...string) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(bed.kube.Config, http.MethodPost, execURL(cmd...).URL())
		},
		"websocket": func(cmd ...string) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(bed.kube.Config, http.MethodGet, execURL(cmd...).URL().String())
		},
	}
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			exec, err := newExec("cat")
			require.NoError(t, err)
			var stdout, stderr bytes.Buffer
			err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{
				Stdin: strings.NewReader("round trip through " + name + "\n"), Stdout: &stdout, Stderr: &stderr,
			})
			require.NoError(t, err, "stderr: %s", stderr.String())
			assert.Equal(t, "round trip through "+name+"\n", stdout.String())

			exec, err = newExec("sh", "-c", "echo to-stderr >&2; exit 3")
			require.NoError(t, err)
			stdout.Reset()
			stderr.Reset()
			err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
			var exitErr utilexec.CodeExitError
			require.ErrorAs(t, err, &exitErr)
			assert.Equal(t, 3, exitErr.Code)
			assert.Equal(t, "to-stderr\n", stderr.String())
		})
	}
	for _, ws := range []string{"false", "true"} {
		t.Run("kubectl/websockets="+ws, func(t *testing.T) {
			out := kubectl(t, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws},
				"exec", "-i", "-n", ns, "shell", "--", "sh", "-c", "tr a-z A-Z")
			assert.Equal(t, "STDIN ROUND TRIP\n", out)
		})
	}
}

// TestSmokeLogsAndPortForward follows a container log and forwards a port through the API
// server to the stub kubelet.
func TestSmokeLogsAndPortForward(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "streams")
	_, err := bed.kubelet.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "nginx"}}},
	})
	require.NoError(t, err)

	bed.kubelet.AppendLog(ns, "web", "main", "first line\n")
	logs, err := bed.kube.Clientset.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{Container: "main", Follow: true}).Stream(ctx)
	require.NoError(t, err)
	defer logs.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(logs, buf, len("first line\n"))
	require.NoError(t, err)
	assert.Equal(t, "first line\n", string(buf[:n]))
	bed.kubelet.AppendLog(ns, "web", "main", "second line\n")
	n, err = io.ReadAtLeast(logs, buf, len("second line\n"))
	require.NoError(t, err)
	assert.Equal(t, "second line\n", string(buf[:n]), "a followed log streams new lines as they come")

	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("kubectl/websockets=%t", ws), func(t *testing.T) {
			testbed.CheckPortForward(t, bed.kube.Kubectl, bed.kube.Kubeconfig, ns, "web", ws)
		})
	}
}

// TestSmokeNATS publishes to a JetStream stream under message IDs, retries one, and reads every
// message once through a durable pull consumer.
func TestSmokeNATS(t *testing.T) {
	ctx := t.Context()
	nc, err := bed.nats.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMOKE", Subjects: []string{"smoke.>"}, Duplicates: time.Minute})
	require.NoError(t, err)
	// The server serves the whole package: the next run (-count) starts from an empty stream.
	t.Cleanup(func() { require.NoError(t, js.DeleteStream(context.Background(), "SMOKE")) })

	const n = 100
	for i := range n {
		msg := nats.NewMsg(fmt.Sprintf("smoke.%03d", i))
		msg.Data = []byte("hello")
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("smoke-%03d", i))
		_, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	// A retry of a message already stored is stored once.
	dup := nats.NewMsg("smoke.000")
	dup.Header.Set(jetstream.MsgIDHeader, "smoke-000")
	ack, err := js.PublishMsg(ctx, dup)
	require.NoError(t, err)
	assert.True(t, ack.Duplicate)

	cons, err := js.CreateOrUpdateConsumer(ctx, "SMOKE", jetstream.ConsumerConfig{Durable: "smoke", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	seen := map[string]int{}
	for len(seen) < n {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range batch.Messages() {
			seen[m.Subject()]++
			require.NoError(t, m.Ack())
			got++
		}
		require.NoError(t, batch.Error())
		require.Positive(t, got, "no message within 10s; %d of %d seen", len(seen), n)
	}
	for subject, c := range seen {
		assert.Equal(t, 1, c, "message %s delivered once", subject)
	}
}

// TestSmokeNATSProcess: the standalone `gatehouse nats` process serves the components'
// identities over mutual TLS with the streams provisioned, refuses a client without a
// certificate, and reports its own CPU time.
func TestSmokeNATSProcess(t *testing.T) {
	ctx := t.Context()
	srv, err := testbed.StartNATSProcess()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)

	nc, err := srv.ConnectAs(natsbus.RoleProxy)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	pub, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "smoke"})
	require.NoError(t, err)
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{AuditID: "smoke-1", SessionID: "s-smoke", Code: 200}),
		"the proxy's identity stores a record: the streams are provisioned")

	admin, err := srv.ConnectAs(natsbus.RoleAdmin)
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	js, err := jetstream.New(admin)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, trail.StreamTrail)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), info.State.Msgs)
	assert.Equal(t, 1, info.Config.Replicas, "one server, not clustered")

	_, err = nats.Connect(srv.URL(), nats.RootCAs(srv.PKI.CAFile), nats.MaxReconnects(0))
	require.Error(t, err, "a client without a certificate and an NKey is refused")

	cpu, err := srv.ServerCPUTime(0)
	require.NoError(t, err)
	assert.Positive(t, cpu, "the server's start alone takes CPU")
}

func TestSmokeClickHouse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol clickhouse.Protocol
		addr     string
	}{
		{"native", clickhouse.Native, bed.clickhouse.NativeAddr},
		{"http", clickhouse.HTTP, bed.clickhouse.HTTPAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			conn, err := clickhouse.Open(&clickhouse.Options{Protocol: tc.protocol, Addr: []string{tc.addr}})
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.Ping(ctx))
			table := "smoke_" + tc.name
			require.NoError(t, conn.Exec(ctx, "DROP TABLE IF EXISTS "+table))
			require.NoError(t, conn.Exec(ctx, `CREATE TABLE `+table+` (
				id UInt64, user LowCardinality(String), ts DateTime64(9) CODEC(Delta, ZSTD), extra Map(String, String)
			) ENGINE = MergeTree ORDER BY (user, ts)`))

			batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
			require.NoError(t, err)
			now := time.Now()
			for i := range 1000 {
				require.NoError(t, batch.Append(uint64(i), fmt.Sprintf("user-%d", i%7), now.Add(time.Duration(i)), map[string]string{"i": strconv.Itoa(i)}))
			}
			require.NoError(t, batch.Send())

			var count, sum uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count(), sum(id) FROM "+table).Scan(&count, &sum))
			assert.Equal(t, uint64(1000), count)
			assert.Equal(t, uint64(999*1000/2), sum)
			var extra string
			require.NoError(t, conn.QueryRow(ctx, "SELECT extra['i'] FROM "+table+" WHERE id = {id:UInt64}", clickhouse.Named("id", "42")).Scan(&extra))
			assert.Equal(t, "42", extra)
		})
	}
}

func TestSmokeOIDC(t *testing.T) {
	ctx := oidc.ClientContext(t.Context(), bed.issuer.Client)
	provider, err := oidc.NewProvider(ctx, bed.issuer.URL)
	require.NoError(t, err)
	verifier := provider.Verifier(&oidc.Config{ClientID: "gatehouse", SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}})

	claims := bed.issuer.Claims("agent-1")
	claims["email"] = "agent-1@example.com"
	token := bed.issuer.MustSign(t, claims)
	idt, err := verifier.Verify(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "agent-1", idt.Subject)

	claims["sub"] = "cluster-admin"
	_, err = verifier.Verify(ctx, testbed.Tamper(token, claims))
	require.Error(t, err, "a tampered token must not verify")

	t.Run("service account token via the API server's issuer discovery", func(t *testing.T) {
		ns := bed.kube.Namespace(t, "sa")
		_, err := bed.kube.Clientset.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		tr, err := bed.kube.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "agent", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"gatehouse"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)

		// The API server serves discovery to authenticated clients; use the admin's transport.
		httpClient, err := rest.HTTPClientFor(bed.kube.Config)
		require.NoError(t, err)
		issuer := strings.TrimSuffix(bed.kube.Config.Host, "/") + "/" // envtest's --service-account-issuer
		kctx := oidc.ClientContext(t.Context(), httpClient)
		kp, err := oidc.NewProvider(kctx, issuer)
		require.NoError(t, err)
		idt, err := kp.Verifier(&oidc.Config{ClientID: "gatehouse"}).Verify(kctx, tr.Status.Token)
		require.NoError(t, err)
		assert.Equal(t, "system:serviceaccount:"+ns+":agent", idt.Subject)

		_, err = kp.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(kctx, tr.Status.Token)
		require.Error(t, err, "a token for another audience must not verify")
	})
}

func kubectl(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bed.kube.Kubectl, append([]string{"--kubeconfig", bed.kube.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if len(args) > 0 && args[0] == "exec" {
		cmd.Stdin = strings.NewReader("stdin round trip\n")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), stderr.String())
	return string(out)
}
