package proxy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// sessionKubeconfig writes a kubeconfig that reaches the proxy with tok in the session label.
func sessionKubeconfig(t *testing.T, tok, label string) string {
	t.Helper()
	path, err := testbed.WriteKubeconfig(t.TempDir(), &rest.Config{
		Host:            env.proxy.URL + "/gatehouse/client/session=" + label,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.proxyCA},
	})
	require.NoError(t, err)
	return path
}

// sessionID returns the session ID the proxy gives tok's requests with label.
func sessionID(t *testing.T, tok, label string) string {
	t.Helper()
	resp, _ := get(t, "/version", tok, map[string]string{"Gatehouse-Session": label})
	require.NotEmpty(t, resp.Header.Get("Gatehouse-Session"))
	return resp.Header.Get("Gatehouse-Session")
}

// recordings reads the recordings of a session from JetStream, by recording ID, until want of
// them are final.
func recordings(t *testing.T, session string, want int) map[string][]*trail.Recording {
	t.Helper()
	cons, err := env.inspect.OrderedConsumer(t.Context(), trail.StreamRecordings, jetstream.OrderedConsumerConfig{FilterSubjects: []string{trail.SubjectRecordings(session)}})
	require.NoError(t, err)
	out := map[string][]*trail.Recording{}
	final := func() int {
		n := 0
		for _, cs := range out {
			for _, c := range cs {
				if c.Final {
					n++
				}
			}
		}
		return n
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && final() < want; {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			r, err := trail.Decode(m.Data())
			require.NoError(t, err)
			c := r.(*trail.Recording)
			out[c.RecordingID] = append(out[c.RecordingID], c)
		}
	}
	require.Equal(t, want, final(), "recordings of session %s", session)
	for _, cs := range out {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Seq < cs[j].Seq })
	}
	return out
}

// castOf verifies a recording's chain and decodes it.
func castOf(t *testing.T, chunks []*trail.Recording) *recording.Cast {
	t.Helper()
	_, err := trail.VerifyChain(chunks)
	require.NoError(t, err)
	var data strings.Builder
	for _, c := range chunks {
		data.WriteString(c.Data)
	}
	cast, err := recording.Decode(strings.NewReader(data.String()))
	require.NoError(t, err)
	return cast
}

// TestExecIsMaskedAndRecorded runs commands through the proxy with kubectl, over SPDY and
// WebSocket, that print a Secret's value (read by the session before) and a token: the client
// sees placeholders, the recording holds exactly what the client saw, chunk by chunk verifiable.
func TestExecIsMaskedAndRecorded(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "exec-rec")
	// A value no detector recognises: only the Secret it came from makes it a secret.
	const value = "plain-looking-value-4f1c"
	const ghToken = "ghp_" + "Zy8xW7vU6tS5rQ4pO3nM2lK1jI0hG9fE8dC7" // made up, GitHub's shape
	_, err := env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		StringData: map[string]string{"api-value": value}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The container has the Secret mounted as a file, as a kubelet mounts it.
	const mounted = "/etc/app/api-value"
	_, err = env.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "app", MountPath: "/etc/app", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "app", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app"}}}},
		}})
	require.NoError(t, err)

	tok := token(t, "alice", nil)
	label := "exec-recorded-" + trail.NewID()[28:]
	kc := sessionKubeconfig(t, tok, label)
	session := sessionID(t, tok, label)
	secretYAML := kubectl(t, kc, "get", "secret", "app", "-n", ns, "-o", "jsonpath={.data.api-value}")
	require.NotContains(t, secretYAML, value)

	script := fmt.Sprintf("cat %s; echo; echo export TOKEN=%s; echo to-stderr >&2; exit 3", mounted, ghToken)
	outputs := map[string]string{}
	for _, ws := range []string{"false", "true"} {
		t.Run("websockets="+ws, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, env.kube.Kubectl, "--kubeconfig", kc, "-n", ns, "exec", "-i", "shell", "--", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
			cmd.Stdin = strings.NewReader("")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			require.True(t, errors.As(err, &exitErr), "kubectl: %v: %s", err, stderr.String())
			assert.Equal(t, 3, exitErr.ExitCode(), "the command's exit status reaches the client")
			out := stdout.String()
			assert.NotContains(t, out, value, "a value of a Secret the session read is masked")
			assert.NotContains(t, out, ghToken)
			assert.Contains(t, out, "export TOKEN=gatehouse:masked:")
			assert.Contains(t, stderr.String(), "to-stderr")
			outputs[ws] = out
		})
	}
	// The placeholder is the one the API showed for the value.
	dec, err := base64Decode(secretYAML)
	require.NoError(t, err)
	assert.Contains(t, outputs["false"], string(dec)+"\n")

	recs := recordings(t, session, 2)
	var seen []string
	for id, chunks := range recs {
		cast := castOf(t, chunks)
		assert.Equal(t, id, chunks[0].RecordingID)
		assert.Equal(t, "exec", chunks[0].Subresource)
		assert.Equal(t, "oidc:alice", chunks[0].User)
		require.Len(t, chunks[0].Command, 3)
		assert.Equal(t, strings.ReplaceAll(script, ghToken, ""), strings.ReplaceAll(chunks[0].Command[2], chunks[0].Command[2][strings.Index(chunks[0].Command[2], "gatehouse:masked:"):][:len("gatehouse:masked:")+12], ""),
			"the command is recorded masked")
		var stdout strings.Builder
		for _, e := range cast.Events {
			if e.Code == recording.CodeOutput {
				stdout.WriteString(e.Data)
			}
		}
		seen = append(seen, stdout.String())
		assert.Contains(t, cast.Output(), "to-stderr\n")
		status, ok := cast.ExitStatus()
		require.True(t, ok)
		assert.Equal(t, 3, status)
	}
	assert.ElementsMatch(t, []string{outputs["false"], outputs["true"]}, seen, "each recording holds exactly what its client saw")

	t.Run("another session did not read the Secret", func(t *testing.T) {
		out := kubectlExec(t, sessionKubeconfig(t, tok, "exec-other"), ns, "cat", mounted)
		assert.Equal(t, value, out, "the values are the session's own: the test can fail")
	})
}

func kubectlExec(t *testing.T, kc, ns string, args ...string) string {
	t.Helper()
	return kubectl(t, kc, append([]string{"exec", "-n", ns, "shell", "--"}, args...)...)
}

// failingRecordings cannot start a recording.
type failingRecordings struct{}

func (failingRecordings) Ready() error { return recording.ErrUnavailable }
func (failingRecordings) Open(context.Context, recording.Info, []byte) (*recording.Writer, error) {
	return nil, recording.ErrUnavailable
}

// newRealProxy serves a proxy in front of the test bed's API server, with options changed by
// configure.
func newRealProxy(t testing.TB, configure func(*proxy.Options)) *httptest.Server {
	t.Helper()
	authCfg, err := authn.ParseAuthenticationConfig([]byte(authenticationConfig()))
	require.NoError(t, err)
	authCfg.JWT = authCfg.JWT[:1]
	a, err := authn.NewAuthenticator(authn.AuthenticatorOptions{Config: authCfg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = a.Start(ctx) }()
	require.Eventually(t, func() bool { return a.Ready(ctx) == nil }, 10*time.Second, 20*time.Millisecond)
	pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{})
	require.NoError(t, err)
	o := proxy.Options{Upstream: env.proxyUser, Authenticator: a, Masker: env.masker, Recorder: pub, Recordings: env.recordings}
	configure(&o)
	p, err := proxy.NewProxy(o)
	require.NoError(t, err)
	srv := httptest.NewTLSServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// TestSessionsAreRefusedUnrecorded: a session that cannot be recorded does not start.
func TestSessionsAreRefusedUnrecorded(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "exec-unrec")
	_, err := env.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}})
	require.NoError(t, err)
	const marker = "/work/ran"
	ran := func() bool {
		return strings.TrimSpace(kubectlExec(t, kubeconfig(t, token(t, "alice", nil)), ns, "ls", "/work")) == "ran"
	}
	srv := newRealProxy(t, func(o *proxy.Options) { o.Recordings = failingRecordings{} })
	kc, err := testbed.WriteKubeconfig(t.TempDir(), &rest.Config{Host: srv.URL, BearerToken: token(t, "alice", nil),
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(srv)}})
	require.NoError(t, err)
	for _, ws := range []string{"false", "true"} {
		cmd := exec.CommandContext(ctx, env.kube.Kubectl, "--kubeconfig", kc, "-n", ns, "exec", "shell", "--", "touch", marker)
		cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), "cannot record this session", "websockets=%s", ws)
		assert.False(t, ran(), "the command did not run")
	}
	// With unrecorded sessions allowed, it runs.
	srv = newRealProxy(t, func(o *proxy.Options) { o.Recordings, o.Unrecorded = failingRecordings{}, proxy.AllowUnrecorded })
	kc, err = testbed.WriteKubeconfig(t.TempDir(), &rest.Config{Host: srv.URL, BearerToken: token(t, "alice", nil),
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(srv)}})
	require.NoError(t, err)
	kubectl(t, kc, "exec", "-n", ns, "shell", "--", "touch", marker)
	assert.True(t, ran())
}

// TestExecRefusedUpstreamAnswersAsTheAPIServer: a session the API server refuses (no such pod)
// gets the API server's own answer, before any upgrade.
func TestExecRefusedUpstreamAnswersAsTheAPIServer(t *testing.T) {
	kc := kubeconfig(t, token(t, "alice", nil))
	for _, ws := range []string{"false", "true"} {
		cmd := exec.CommandContext(t.Context(), env.kube.Kubectl, "--kubeconfig", kc, "-n", "default", "exec", "no-such-pod", "--", "true")
		cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), `pods "no-such-pod" not found`, "websockets=%s", ws)
	}
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// TestPortForwardIsRecordedAsConnections: a port-forward through the proxy, over SPDY and
// tunnelled through WebSocket, is recorded as its connections with their ports and byte counts,
// never what they carried.
func TestPortForwardIsRecordedAsConnections(t *testing.T) {
	ns := env.kube.Namespace(t, "pf-rec")
	_, err := env.kubelet.RunPod(t.Context(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "nginx"}}}})
	require.NoError(t, err)
	tok := token(t, "alice", nil)
	label := "pf-recorded-" + trail.NewID()[28:]
	kc := sessionKubeconfig(t, tok, label)
	for _, ws := range []bool{false, true} {
		testbed.CheckPortForward(t, env.kube.Kubectl, kc, ns, "web", ws)
	}
	recs := recordings(t, sessionID(t, tok, label), 2)
	for _, chunks := range recs {
		_, err := trail.VerifyChain(chunks)
		require.NoError(t, err)
		assert.Equal(t, trail.FormatPortForward, chunks[0].Format)
		var data strings.Builder
		for _, c := range chunks {
			data.WriteString(c.Data)
		}
		assert.NotContains(t, data.String(), "ping through port-forward", "the bytes forwarded are not recorded")
		var opened, closed int
		for line := range strings.SplitSeq(strings.TrimSpace(data.String()), "\n") {
			var ev struct {
				Event                    string
				Port                     int32
				BytesToPod, BytesFromPod int64
			}
			require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
			switch ev.Event {
			case "open":
				opened++
				assert.Positive(t, ev.Port)
			case "close":
				closed++
				assert.Equal(t, int64(len("ping through port-forward\n")), ev.BytesToPod)
				assert.Equal(t, int64(len("ping through port-forward\n")), ev.BytesFromPod)
			}
		}
		assert.Equal(t, 1, opened, data.String())
		assert.Equal(t, 1, closed)
	}
}

// TestAttachIsRecorded attaches (as kubectl attach and kubectl debug do) to a container through
// the proxy, over SPDY and WebSocket: stdin reaches the container's process, its output comes
// back, and the session is recorded.
func TestAttachIsRecorded(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "attach-rec")
	_, err := env.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"tr", "a-z", "A-Z"}, Stdin: true}}}})
	require.NoError(t, err)
	tok := token(t, "alice", nil)
	label := "attach-" + trail.NewID()[28:]
	kc := sessionKubeconfig(t, tok, label)
	for _, ws := range []string{"false", "true"} {
		cmd := exec.CommandContext(ctx, env.kube.Kubectl, "--kubeconfig", kc, "-n", ns, "attach", "-i", "app", "-c", "main")
		cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
		cmd.Stdin = strings.NewReader("attached through the gateway\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "websockets=%s: %s", ws, stderr.String())
		assert.Equal(t, "ATTACHED THROUGH THE GATEWAY\n", stdout.String(), "websockets=%s", ws)
	}
	for _, chunks := range recordings(t, sessionID(t, tok, label), 2) {
		cast := castOf(t, chunks)
		assert.Equal(t, "attach", chunks[0].Subresource)
		assert.Equal(t, "ATTACHED THROUGH THE GATEWAY\n", cast.Output())
		assert.Equal(t, "attached through the gateway\n", cast.Input())
	}
}
