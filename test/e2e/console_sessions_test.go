package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// recordedSession is a terminal session recorded through Gatehouse: an agent read a Secret,
// then printed its value with cat in a container that mounts it, and echoed a known line.
type recordedSession struct {
	id   string
	user string
	// canary is the Secret's value: masked on the terminal, in the recording and in the log.
	canary string
	// echoed is what the shell printed for the known command.
	echoed string
	// recording is the ID of the terminal recording.
	recording string
}

// recordTerminalSession runs `kubectl exec -it` through Gatehouse on a terminal and waits until
// the session's recording is complete in ClickHouse.
func recordTerminalSession(t *testing.T) recordedSession {
	t.Helper()
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "console-replay")
	// A value no detector recognises: only the Secret it came from makes it secret.
	rs := recordedSession{canary: "console-canary-" + trail.NewID()[28:], echoed: "replayed-42"}
	_, err := setupClient(t).CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		StringData: map[string]string{"token": rs.canary + "\n"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "api", MountPath: "/var/run/api", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "api", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "api"}}}},
		}})
	require.NoError(t, err)

	agent := newUser("agent-console-replay", agentGroup)
	rs.user = "oidc:agent-console-replay"
	label := "console-replay-" + trail.NewID()[28:]
	inSession := agent.withOptions("session=" + label)
	out, err := inSession.kubectl(ctx, "", "-n", ns, "get", "secret", "api", "-o", "yaml")
	require.NoError(t, err, out)
	require.NotContains(t, out, rs.canary)
	rs.id = sessionOf(t, agent, label)

	term := startTerminal(t, nil, bed.kube.Kubectl, "--kubeconfig", inSession.kubeconfig, "-n", ns, "exec", "-it", "shell", "--", "sh")
	term.expect("$ ")
	term.typeKeys("cat /var/run/api/token\r")
	term.expect("gatehouse:masked:")
	term.typeKeys("echo replayed-$((40+2))\r")
	term.expect(rs.echoed)
	term.typeKeys("exit 3\r")
	assert.Equal(t, 3, term.wait())
	require.NotContains(t, term.output(), rs.canary, "the Secret's value is masked on the terminal")
	for _, e := range timeline(t, rs.id, 1) {
		if e.Recording != nil && e.Recording.Format == trail.FormatAsciicast {
			rs.recording = e.Recording.ID
		}
	}
	return rs
}

// cspRecorder collects the page's Content-Security-Policy violations in sessionStorage, so that
// they outlive navigations within the console; it is installed before any document loads.
const cspRecorder = `document.addEventListener("securitypolicyviolation", function (e) {
	var v = JSON.parse(sessionStorage.getItem("csp-violations") || "[]");
	v.push(e.violatedDirective + " blocked " + (e.blockedURI || "(inline)") + " at " + e.sourceFile + ":" + e.lineNumber);
	sessionStorage.setItem("csp-violations", JSON.stringify(v));
});`

// cspViolations returns the violations recorded on the console's pages so far.
func (b *approverBrowser) cspViolations(t *testing.T) []string {
	t.Helper()
	return value(t, b, "read the CSP violations", chromedp.Evaluate[[]string](`JSON.parse(sessionStorage.getItem("csp-violations") || "[]")`))
}

// noCanary asserts that neither the page's markup nor its text holds the canary.
func (b *approverBrowser) noCanary(t *testing.T, canary, page string) {
	t.Helper()
	html := value(t, b, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML + "\n" + document.body.innerText`))
	assert.NotContains(t, html, canary, "the Secret's value on the %s", page)
}

// TestConsoleSessions: a terminal session recorded through Gatehouse, as a viewer sees it in the
// console: the sessions list, the session's timeline and the recording, played in the browser
// by asciinema-player under the recording page's Content-Security-Policy until it ends, showing
// what the terminal showed, with the Secret's value masked everywhere. An approver who may see
// no approval request of the session does not see it.
func TestConsoleSessions(t *testing.T) {
	rs := recordTerminalSession(t)
	viewer := login(t, "viewer@example.com")
	_, err := chromedp.Call(viewer.ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder})
	require.NoError(t, err)

	row := chromedp.ID("session-" + rs.id)
	viewer.run(t, "open the sessions list",
		chromedp.Navigate(cons.url+"/sessions"),
		chromedp.WaitVisible(row),
	)
	listed := viewer.text(t, "#session-"+rs.id)
	for _, want := range []string{rs.user, rs.id, "1 recording"} {
		assert.Contains(t, listed, want)
	}
	viewer.noCanary(t, rs.canary, "sessions list")

	viewer.run(t, "open the session",
		chromedp.Click(chromedp.CSS("#session-"+rs.id+" a.req-title")),
		chromedp.WaitVisible(chromedp.ID("timeline")),
	)
	timelineText := strings.Join(strings.Fields(viewer.text(t, "#timeline")), " ")
	for _, want := range []string{"get secrets console-replay", "pods/exec console-replay", "Terminal recording", "$ cat /var/run/api/token",
		"$ echo replayed-$((40+2))", "exit 3", "Play the recording"} {
		assert.Contains(t, timelineText, want)
	}
	viewer.noCanary(t, rs.canary, "session page")
	viewer.screenshot(t, "console-session")

	// The player: its state as player.js reports it, every state it passes through, and its
	// terminal's text at the moment it reports the end (the end is on the screen by then).
	state := `document.getElementById("player").dataset.state`
	viewer.run(t, "open the recording",
		chromedp.Click(chromedp.CSS("#timeline .recording a.button")),
		chromedp.WaitVisible(chromedp.CSS("#player .ap-wrapper")),
		chromedp.Poll[chromedp.Void](state+` === "ready"`, chromedp.WithPollingInterval(50*time.Millisecond)),
		chromedp.Evaluate[chromedp.Void](`window.__states = [];
			new MutationObserver(function () {
				var el = document.getElementById("player");
				window.__states.push(el.dataset.state);
				if (el.dataset.state === "ended") window.__endScreen = el.querySelector(".ap-term-text").innerText;
			}).observe(document.getElementById("player"), {attributes: true, attributeFilter: ["data-state"]});`),
	)
	assert.True(t, viewer.eval(t, `document.getElementById("chain").dataset.verified === "true"`), "the recording's hash chain verifies")
	assert.Contains(t, viewer.text(t, "#chain"), "Verified")
	viewer.run(t, "play the recording to its end",
		chromedp.Click(chromedp.CSS("#player .ap-overlay-start")),
		chromedp.Poll[chromedp.Void](state+` === "ended"`, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second)),
	)
	states := value(t, viewer, "read the player's states", chromedp.Evaluate[[]string](`window.__states`))
	require.NotEmpty(t, states, "the player changed state")
	assert.True(t, slices.Contains(states, "playing"), "the player played: %v", states)
	assert.Equal(t, "ended", states[len(states)-1], "the player ended: %v", states)
	screen := value(t, viewer, "read the terminal as the player ended", chromedp.Evaluate[string](`window.__endScreen`))
	for _, want := range []string{"$ cat /var/run/api/token", "gatehouse:masked:", rs.echoed, "exit 3"} {
		assert.Contains(t, screen, want, "the player's terminal")
	}
	assert.NotContains(t, screen, rs.canary, "the Secret's value in the player's terminal")
	// The text layer lies on the terminal's grid: the page's own styles do not reach it.
	layout := value(t, viewer, "measure the terminal", chromedp.Evaluate[[]string](`(function () {
		var term = document.querySelector("#player div.ap-term"), text = term.querySelector("pre.ap-term-text");
		return [String(text.clientHeight), getComputedStyle(text).fontSize, String(term.clientHeight), getComputedStyle(term).fontSize];
	})()`))
	assert.Equal(t, layout[2:], layout[:2], "the text layer's height and font size are the terminal's")
	viewer.noCanary(t, rs.canary, "recording page")
	cast := value(t, viewer, "fetch the cast", chromedp.Evaluate[string](
		`fetch(document.getElementById("player").dataset.cast).then(function (r) { return r.text(); })`, chromedp.EvalAwaitPromise))
	assert.Contains(t, cast, rs.echoed, "the cast the player played")
	assert.NotContains(t, cast, rs.canary, "the Secret's value in the cast")
	viewer.screenshot(t, "console-recording")
	assert.Empty(t, viewer.cspViolations(t), "Content-Security-Policy violations on the console's pages")

	// An approver sees the sessions of the approval requests they may see: none of this one.
	approver := login(t, "approver-1@example.com")
	approver.run(t, "open the sessions list as an approver",
		chromedp.Navigate(cons.url+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
	)
	assert.True(t, approver.eval(t, fmt.Sprintf(`document.getElementById(%q) === null`, "session-"+rs.id)), "the session is not listed for the approver")
	for _, path := range []string{"/sessions/" + rs.id, "/sessions/" + rs.id + "/recordings/" + rs.recording} {
		approver.run(t, "open "+path+" as an approver",
			chromedp.Navigate(cons.url+path),
			chromedp.WaitVisible(chromedp.CSS("main")),
		)
		body := approver.text(t, "main")
		assert.Contains(t, body, "that you may see", path)
		assert.NotContains(t, body, "replayed-", path)
		approver.noCanary(t, rs.canary, path)
	}
}
