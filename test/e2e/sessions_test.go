package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// sessions runs `gatehouse sessions` against the test bed's ClickHouse.
func sessions(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"sessions", "--log-format", "text",
		"--clickhouse-addr", bed.clickhouse.NativeAddr}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), err
	}
	return out.String(), nil
}

// terminal is a kubectl running on a pseudo-terminal, as a person at a terminal runs it.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	f    *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startTerminal(t *testing.T, env []string, kubectl string, args ...string) *terminal {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), kubectl, args...)
	cmd.Env = append(os.Environ(), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	require.NoError(t, err)
	term := &terminal{t: t, cmd: cmd, f: f, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = f.Close() })
	return term
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// expect waits until the terminal shows s.
func (term *terminal) expect(s string) {
	term.t.Helper()
	require.Eventually(term.t, func() bool { return strings.Contains(term.output(), s) }, 30*time.Second, 20*time.Millisecond,
		"the terminal did not show %q; it shows %q", s, term.output())
}

// typeKeys types s key by key, as a person does: each key once the terminal echoed the one
// before.
func (term *terminal) typeKeys(s string) {
	term.t.Helper()
	for _, k := range []byte(s) {
		shown := len(term.output())
		_, err := term.f.Write([]byte{k})
		require.NoError(term.t, err)
		require.Eventually(term.t, func() bool { return len(term.output()) > shown }, 30*time.Second, time.Millisecond,
			"the terminal did not echo %q; it shows %q", k, term.output())
	}
}

// wait waits for kubectl to exit and returns its exit code.
func (term *terminal) wait() int {
	term.t.Helper()
	err := term.cmd.Wait()
	<-term.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(term.t, err)
	return 0
}

// sessionOf returns the session ID Gatehouse gives id's requests in the session label.
func sessionOf(t *testing.T, id user, label string) string {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(bed.proxyCA))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, bed.proxyURL+"/version", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+id.token)
	req.Header.Set("Gatehouse-Session", label)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.NotEmpty(t, resp.Header.Get("Gatehouse-Session"))
	return resp.Header.Get("Gatehouse-Session")
}

// timeline returns a session's timeline as `gatehouse sessions show -o json` prints it, once
// want terminal recordings are complete in it.
func timeline(t *testing.T, session string, want int) []sessionlog.Entry {
	t.Helper()
	var entries []sessionlog.Entry
	var last string
	require.Eventually(t, func() bool {
		out, err := sessions(t, "show", session, "-o", "json")
		last = out
		// Decoded into a new slice each time: decoded into the last one, an entry without a
		// recording would keep the one the entry at its index had in the last poll.
		entries = nil
		if err != nil || json.Unmarshal([]byte(out), &entries) != nil {
			return false
		}
		complete := map[string]bool{}
		for _, e := range entries {
			if r := e.Recording; r != nil && r.Format == trail.FormatAsciicast && r.Complete {
				complete[r.ID] = true
			}
		}
		return len(complete) == want
	}, 90*time.Second, 500*time.Millisecond, "the session's recordings did not reach ClickHouse: %s", last)
	return entries
}

// TestInteractiveExecIsRecorded drives `kubectl exec -it` through Gatehouse on a terminal, over
// SPDY and WebSocket, with a person's typing: a Secret's value the session read is printed by
// cat in the container and masked on the terminal and in the recording; the recording, read back
// with `gatehouse sessions`, holds exactly what the terminal showed, verifies, plays back and
// exports as asciicast v3.
func TestInteractiveExecIsRecorded(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "interactive")
	// A value no detector recognises: only the Secret it came from makes it secret.
	const value = "e2e-plain-value-7Hq2Lw"
	_, err := setupClient(t).CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		StringData: map[string]string{"token": value + "\n"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The container has the Secret mounted as a file, as a kubelet mounts it.
	const mounted = "/var/run/api/token"
	_, err = bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "api", MountPath: "/var/run/api", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "api", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "api"}}}},
		}})
	require.NoError(t, err)

	agent := newUser("agent-terminal", agentGroup)
	label := "terminal-" + trail.NewID()[28:]
	inSession := agent.withOptions("session=" + label)
	out, err := inSession.kubectl(ctx, "", "-n", ns, "get", "secret", "api", "-o", "yaml")
	require.NoError(t, err, out)
	require.NotContains(t, out, value)
	session := sessionOf(t, agent, label)

	screens := map[string]string{}
	for _, ws := range []string{"false", "true"} {
		term := startTerminal(t, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}, bed.kube.Kubectl,
			"--kubeconfig", inSession.kubeconfig, "-n", ns, "exec", "-it", "shell", "--", "sh")
		term.expect("$ ")
		term.typeKeys("cat " + mounted + "\r")
		term.expect("gatehouse:masked:")
		term.typeKeys("echo done-$((40+2))\r")
		term.expect("done-42")
		term.typeKeys("exit 3\r")
		assert.Equal(t, 3, term.wait(), "the shell's exit status reaches kubectl")
		screen := term.output()
		assert.NotContains(t, screen, value, "the Secret's value is masked on the terminal")
		screens[ws] = screen
	}

	entries := timeline(t, session, 2)
	var recorded []string
	for _, e := range entries {
		r := e.Recording
		if r == nil || r.Format != trail.FormatAsciicast {
			continue
		}
		if !r.Complete {
			// Seen under load: a recording of one chunk that never completes besides the two
			// runs' complete ones. Logged, not yet explained.
			played, _ := sessions(t, "export", r.ID)
			t.Logf("recording %s (%d chunks) is not complete:\n%s", r.ID, r.Chunks, played)
			continue
		}
		if len(r.Typed) == 0 {
			played, _ := sessions(t, "export", r.ID)
			t.Logf("recording %s (%d chunks, complete %v) has no typed lines; its data:\n%s", r.ID, r.Chunks, r.Complete, played)
		}
		assert.Contains(t, r.Typed, "cat "+mounted, "the typed commands are in the timeline")
		assert.Contains(t, r.Typed, "exit 3")
		require.NotNil(t, r.ExitStatus)
		assert.Equal(t, 3, *r.ExitStatus)
		verified, err := sessions(t, "verify", r.ID)
		require.NoError(t, err, verified)
		assert.Contains(t, verified, ": OK,")

		cast := filepath.Join(t.TempDir(), "session.cast")
		exported, err := sessions(t, "export", r.ID, "-f", cast)
		require.NoError(t, err, exported)
		f, err := os.Open(cast)
		require.NoError(t, err)
		c, err := recording.Decode(f)
		f.Close()
		require.NoError(t, err)
		assert.Equal(t, 3, c.Header.Version)
		// A key's echo passes at once: only a key typed while a prompt was held back waits for
		// the prompt's delay (the proxy's --terminal-output-delay, 10ms).
		delays := slices.Sorted(slices.Values(echoDelays(c)))
		require.NotEmpty(t, delays)
		assert.Less(t, delays[len(delays)/2], 10*time.Millisecond, "the median delay of a typed key's echo; all: %v", delays)
		assert.NotContains(t, c.Output(), value, "the Secret's value is masked in the recording")
		assert.Contains(t, c.Output(), "gatehouse:masked:")
		var resized bool
		for _, ev := range c.Events {
			resized = resized || (ev.Code == recording.CodeResize && ev.Data == "100x30")
		}
		assert.True(t, resized, "the terminal's size is recorded")
		recorded = append(recorded, c.Output())

		played, err := sessions(t, "play", r.ID, "--speed", "100", "--idle-limit", "10ms")
		require.NoError(t, err, played)
		assert.Equal(t, c.Output(), played, "play shows what the terminal showed")
	}
	require.Len(t, recorded, 2)
	// What the terminal showed is what was recorded, byte for byte, then kubectl's own word on
	// the exit status.
	for _, screen := range screens {
		matched := false
		for _, rec := range recorded {
			if strings.HasPrefix(screen, rec) {
				matched = true
				rest := strings.TrimSpace(strings.TrimPrefix(screen, rec))
				assert.Contains(t, []string{"", "command terminated with exit code 3"}, rest)
			}
		}
		assert.True(t, matched, "no recording matches the terminal's output %q; recorded: %q", screen, recorded)
	}

	shown, err := sessions(t, "show", session)
	require.NoError(t, err, shown)
	assert.Contains(t, shown, "$ cat "+mounted)
	assert.Contains(t, shown, "-> exit 3")
	assert.NotContains(t, shown, value)
	verifiedAll, err := sessions(t, "verify", session)
	require.NoError(t, err, verifiedAll)
}

// TestOldKubectlExecThroughGatehouse: older kubectl releases (those scripts/testbed.sh builds,
// 1.27 and 1.30, and those the machine carries) exec through Gatehouse's terminal handling, over
// what each negotiates.
func TestOldKubectlExecThroughGatehouse(t *testing.T) {
	releases, err := testbed.KubectlReleases(t.Context())
	require.NoError(t, err)
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "old-kubectl")
	_, err = bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
	require.NoError(t, err)
	agent := newUser("agent-old-kubectl", agentGroup)
	for _, r := range releases {
		for _, ws := range []string{"false", "true"} {
			t.Run(r.Version+"/websockets="+ws, func(t *testing.T) {
				cmd := exec.CommandContext(ctx, r.Path, "--kubeconfig", agent.kubeconfig, "-n", ns, "exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z; exit 4")
				cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
				cmd.Stdin = strings.NewReader("old kubectl\n")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				require.True(t, errors.As(err, &ee), "%v: %s", err, stderr.String())
				assert.Equal(t, 4, ee.ExitCode())
				assert.Equal(t, "OLD KUBECTL\n", stdout.String())
			})
		}
	}
}

// TestReplayAgainstTheAPIServer replays a session's writes, as dry runs, against the API server
// after the cluster changed, and checks the report: which writes would succeed now, which would
// not, and how the answers differ from the recorded ones.
func TestReplayAgainstTheAPIServer(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "replay")
	agent := newUser("agent-replay", agentGroup)
	label := "replay-" + trail.NewID()[28:]
	inSession := agent.withOptions("session=" + label)
	for _, args := range [][]string{
		{"create", "configmap", "replay-a", "--from-literal=mode=one"},
		{"patch", "configmap", "replay-a", "--type=merge", "-p", `{"data":{"mode":"two"}}`},
		{"create", "configmap", "replay-b", "--from-literal=mode=one"},
	} {
		out, err := inSession.kubectl(ctx, "", append([]string{"-n", ns}, args...)...)
		require.NoError(t, err, out)
	}
	session := sessionOf(t, agent, label)
	// The audit events with their objects reach ClickHouse.
	require.Eventually(t, func() bool {
		out := clickhouseHTTP(t, "SELECT count() FROM gatehouse.audit_events FINAL WHERE session_id = '"+session+
			"' AND stage = 'ResponseComplete' AND verb IN ('create','patch') FORMAT TSV")
		return strings.TrimSpace(out) == "3"
	}, 90*time.Second, 500*time.Millisecond)

	// The cluster changes after the session: replay-a gets another key, replay-b goes.
	cms := bed.kube.Clientset.CoreV1().ConfigMaps(ns)
	a, err := cms.Get(ctx, "replay-a", metav1.GetOptions{})
	require.NoError(t, err)
	a.Data["other"] = "x"
	_, err = cms.Update(ctx, a, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, cms.Delete(ctx, "replay-b", metav1.DeleteOptions{}))

	out, err := sessions(t, "replay", session, "--kubeconfig", bed.kube.Kubeconfig, "--masking-key-file", maskingKeyFile(), "-o", "json")
	require.NoError(t, err, out)
	var results []sessionlog.Result
	require.NoError(t, json.Unmarshal([]byte(out), &results), out)
	require.Len(t, results, 3, out)
	createA, patchA, createB := results[0], results[1], results[2]
	assert.Equal(t, "create", createA.Call.Verb)
	assert.True(t, createA.RecordedSucceeded)
	assert.False(t, createA.Succeeded, "replay-a exists now: creating it again fails")
	assert.Equal(t, 409, createA.Code)
	assert.Equal(t, "patch", patchA.Call.Verb)
	assert.True(t, patchA.Succeeded)
	assert.Equal(t, 200, patchA.Code)
	assert.Contains(t, patchA.Diff, sessionlog.Change{Path: "data.other", Recorded: "(absent)", Replayed: `"x"`},
		"the patched object now has the key added after the session: %+v", patchA.Diff)
	for _, d := range patchA.Diff {
		assert.NotContains(t, d.Path, "resourceVersion", "fields every write changes are no differences")
	}
	assert.True(t, createB.Succeeded, "replay-b is gone: creating it would succeed again")
	assert.Equal(t, 201, createB.Code)
	assert.Empty(t, createB.Diff, "the same object as recorded")

	_, err = cms.Get(ctx, "replay-b", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a dry-run replay changes nothing")

	text, err := sessions(t, "replay", session, "--kubeconfig", bed.kube.Kubeconfig)
	require.NoError(t, err, text)
	assert.Contains(t, text, "Replayed 3 writes as dry runs.")
	assert.Contains(t, text, "would succeed now")
	assert.Contains(t, text, "fails now")
	assert.Contains(t, text, "~ data.other: (absent) -> (differs)", "without the masking key only the field is named")
}

// echoDelays returns, for each printable key typed alone, how long after it its echo was
// recorded.
func echoDelays(c *recording.Cast) []time.Duration {
	var out []time.Duration
	for i, e := range c.Events {
		if e.Code != recording.CodeInput || len(e.Data) != 1 || e.Data[0] < ' ' {
			continue
		}
		for _, o := range c.Events[i+1:] {
			if o.Code == recording.CodeOutput && strings.Contains(o.Data, e.Data) {
				out = append(out, o.Time-e.Time)
				break
			}
		}
	}
	return out
}
