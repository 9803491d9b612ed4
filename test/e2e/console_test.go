package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The console's browser tests: `gatehouse console` as a process next to the deployed proxy and
// webhook, approvers logging in through Dex (a real OpenID Connect provider) in Debian's
// Chromium, driven with chromedp.

const (
	dexPassword  = "correct horse battery staple"
	viewerGroup  = "gatehouse:viewers"
	consoleAgent = "agents"
)

var cons struct {
	once    sync.Once
	err     error
	dex     *testbed.Dex
	process *testbed.Process
	url     string
	caPEM   []byte
	// alloc is the Chromium every approver's browser context runs in.
	alloc context.Context
}

// consoleEnv starts Dex, the console and Chromium once for the tests that need them.
func consoleEnv(t *testing.T) {
	t.Helper()
	cons.once.Do(func() { cons.err = startConsole() })
	require.NoError(t, cons.err)
}

func startConsole() error {
	addr, health := freeAddr(), freeAddr()
	host, port, _ := net.SplitHostPort(addr)
	cons.url = "https://" + addr
	var err error
	cons.dex, err = testbed.StartDex([]testbed.DexUser{
		{Email: "approver-1@example.com", Password: dexPassword, Groups: []string{approverGroup}},
		{Email: "approver-2@example.com", Password: dexPassword, Groups: []string{approverGroup}},
		{Email: "viewer@example.com", Password: dexPassword, Groups: []string{viewerGroup}},
	}, []testbed.DexClient{{ID: "gatehouse-console", Secret: "console-client-secret", RedirectURIs: []string{cons.url + "/callback"}}})
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	cons.caPEM = certPEM
	files := map[string]string{
		"console.crt":   string(certPEM),
		"console.key":   string(keyPEM),
		"session.key":   "e2e-console-session-key-0123456789abcdef",
		"client.secret": "console-client-secret",
		"console-authn.yaml": fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: ""}
- issuer:
    url: %s
    audiences: ["gatehouse-console"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: email, prefix: ""}
    groups: {claim: groups, prefix: ""}
`, bed.issuer.URL, indentPEM(bed.issuer.CAPEM), cons.dex.Issuer, indentPEM(cons.dex.CAPEM)),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(bed.dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	f := func(name string) string { return filepath.Join(bed.dir, name) }
	if cons.process, err = testbed.StartGatehouse(append([]string{"console", "--log-format", "text",
		"--authentication-config", f("console-authn.yaml"),
		"--oidc-issuer-url", cons.dex.Issuer,
		"--oidc-client-id", "gatehouse-console",
		"--oidc-client-secret-file", f("client.secret"),
		"--external-url", cons.url,
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", f("console.crt"), "--tls-private-key-file", f("console.key"),
		"--session-key-file", f("session.key"),
		"--masking-key-file", maskingKeyFile(),
		"--approval-key-file", approvalKeyFile(),
		"--viewer-groups", viewerGroup,
		// The session pages read the enricher's ClickHouse database.
		"--clickhouse-addr", bed.clickhouse.NativeAddr,
		"--health-bind-address", health,
	}, bed.nats.Args(natsbus.RoleConsole)...)...); err != nil {
		return err
	}
	if err := cons.process.WaitReady("http://"+health+"/readyz", 60*time.Second); err != nil {
		return err
	}
	bed.readyz = append(bed.readyz, "http://"+health+"/readyz")

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium is needed for the console's browser tests: apt-get install chromium chromium-driver (scripts/install-deps.sh): %w", err)
	}
	profile, err := os.MkdirTemp("", "gatehouse-chromium-")
	if err != nil {
		return err
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The console, Dex and the test issuer use certificates made for the test.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, _ := chromedp.NewExecAllocator(context.Background(), opts...)
	// Start the browser once; every approver gets a browser context of their own in it.
	cons.alloc, _ = chromedp.NewContext(alloc)
	return chromedp.Do(cons.alloc)
}

func indentPEM(pem []byte) string {
	return strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", "\n      ")
}

// approverBrowser is one approver's browser: its own browser context (cookies) in Chromium.
type approverBrowser struct {
	ctx   context.Context
	email string
}

// login opens a browser context for email and signs in at the console through Dex.
func login(t *testing.T, email string) *approverBrowser {
	t.Helper()
	consoleEnv(t)
	ctx, cancel := chromedp.NewContext(cons.alloc, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run creates the tab, which lives as long as the context of that run: never
	// under a timeout.
	require.NoError(t, chromedp.Do(ctx))
	b := &approverBrowser{ctx: ctx, email: email}
	b.run(t, "log in through Dex",
		chromedp.Navigate(cons.url+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), email),
		chromedp.SendKeys(chromedp.ID("password"), dexPassword),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("inbox-title")),
	)
	who := b.text(t, ".who span")
	require.Equal(t, email, who, "the console shows the identity mapped from Dex's ID token")
	return b
}

func (b *approverBrowser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, what, err)
	}
}

func (b *approverBrowser) fail(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	b.screenshot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
	t.Fatalf("%s (%s, at %s): %v\nconsole log:\n%s\ndex log:\n%s", what, b.email, loc, err,
		testbed.LastLines(cons.process.Output(), 40), testbed.LastLines(cons.dex.Output(), 20))
}

// value runs an action that returns a value.
func value[T any](t *testing.T, b *approverBrowser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

// text returns the text of the first element matching a CSS selector.
func (b *approverBrowser) text(t *testing.T, css string) string {
	t.Helper()
	return value(t, b, "read "+css, chromedp.Text(chromedp.CSS(css)))
}

// eval evaluates a JavaScript expression that yields a boolean.
func (b *approverBrowser) eval(t *testing.T, expr string) bool {
	t.Helper()
	return value(t, b, expr, chromedp.Evaluate[bool](expr))
}

// screenshot saves the page as name.png in the test output directory.
func (b *approverBrowser) screenshot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	dir := testOutputDir(t)
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot: %s", path)
	return path
}

// testOutputDir is where tests leave screenshots: $GATEHOUSE_TEST_OUTPUT or a folder in the
// temporary directory, one subfolder per test.
func testOutputDir(t *testing.T) string {
	root := os.Getenv("GATEHOUSE_TEST_OUTPUT")
	if root == "" {
		root = filepath.Join(os.TempDir(), "gatehouse-test-output")
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// rowOf is an XPath to the inbox row of the request whose target is name.
func rowOf(name string) string {
	return fmt.Sprintf(`//ol[@id="inbox"]/li[.//span[contains(concat(" ", @class, " "), " target ") and (text()=%q or substring(text(), string-length(text()) - %d)=%q)]]`,
		name, len(name), "/"+name)
}

// requestIDOf waits for the inbox row of name and returns its approval ID. A held call that
// returned instead is reported.
func (b *approverBrowser) requestIDOf(t *testing.T, name string, calls ...*heldCall) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(rowOf(name)))); err != nil {
		for _, c := range calls {
			if c.returned() {
				t.Logf("the held call returned: %v: %s", c.err, c.out)
			}
		}
		dctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		state, stateErr := chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify({visibility: document.visibilityState,
			sse: htmx.config.sse, connected: !!(document.getElementById("live")._htmx || {}).sse, live: document.body.dataset.live})`))
		t.Logf("page state: %s %v", state, stateErr)
		b.fail(t, "wait for "+name+" in the inbox", err)
	}
	id := value(t, b, "read the row's id", chromedp.AttributeValue(chromedp.Search(rowOf(name)), "id"))
	require.True(t, id.Exists)
	return strings.TrimPrefix(id.Value, "req-")
}

// decide approves or denies on the request page with a reason, confirming in the dialog.
func (b *approverBrowser) decide(t *testing.T, id, verdict, reason string) {
	t.Helper()
	button := "button.approve"
	if verdict == "Deny" {
		button = "button.deny"
	}
	b.run(t, verdict+" "+id,
		chromedp.Navigate(cons.url+"/approvals/"+id),
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SendKeys(chromedp.ID("reason"), reason),
		chromedp.Click(chromedp.CSS(button)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//div[@id="live-%s"]//li[contains(., %q)]`, id, reason))),
	)
}

// consoleClient reaches the console with another browser's cookies, as a forger would.
func consoleClient(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cons.caPEM)
	return &http.Client{Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// sessionCookie returns the browser's console session cookie.
func (b *approverBrowser) sessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{cons.url}})
	require.NoError(t, err)
	for _, c := range res.Cookies {
		if c.Name == "__Host-gatehouse-console" {
			assert.True(t, c.HTTPOnly, "HttpOnly")
			assert.True(t, c.Secure, "Secure")
			assert.Equal(t, network.CookieSameSiteStrict, c.SameSite)
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatal("no console session cookie")
	return nil
}

// csrfToken reads the CSRF token from the browser's page.
func (b *approverBrowser) csrfToken(t *testing.T) string {
	t.Helper()
	token := value(t, b, "read the CSRF token", chromedp.AttributeValue(chromedp.CSS(`input[name="csrf"]`), "value"))
	require.True(t, token.Exists)
	return token.Value
}

func postDecision(t *testing.T, id string, cookie *http.Cookie, form url.Values, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, cons.url+"/approvals/"+id+"/decide", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", cons.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := consoleClient(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestConsoleLiveApproval: an agent's held kubectl call appears in two open consoles without a
// reload; an approver approves it with a reason, the call completes, and the other console
// shows the result at once.
func TestConsoleLiveApproval(t *testing.T) {
	ctx := t.Context()
	a := login(t, "approver-1@example.com")
	b := login(t, "approver-2@example.com")
	for _, br := range []*approverBrowser{a, b} {
		br.run(t, "mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	}

	agent := newUser("agent-c1", consoleAgent)
	crb1 := unique("console-admin")
	call := hold(ctx, agent, "", "create", "clusterrolebinding", crb1, "--clusterrole=cluster-admin", "--user=agent-c1")
	id := a.requestIDOf(t, crb1, call)
	require.Equal(t, id, b.requestIDOf(t, crb1))
	for _, br := range []*approverBrowser{a, b} {
		assert.True(t, br.eval(t, `window.__sameDocument === true`), "the request appeared without a reload")
	}
	stored, err := testBroker(t).Get(ctx, id)
	require.NoError(t, err)
	rule := stored.Policy.Policy + "/" + stored.Policy.Rule
	row := value(t, a, "read the row", chromedp.Text(chromedp.Search(rowOf(crb1))))
	for _, want := range []string{"create clusterrolebindings.rbac.authorization.k8s.io", "oidc:agent-c1", rule, "0 of 1", "expires in", "Review and decide"} {
		assert.Contains(t, row, want)
	}
	assert.False(t, call.returned(), "the call is held")
	a.screenshot(t, "console-inbox")

	// At 360 px the pages have no horizontal scrolling.
	a.run(t, "narrow", chromedp.EmulateViewport(360, 740))
	assert.True(t, a.eval(t, `document.documentElement.scrollWidth <= 360`), "the inbox fits 360 px")
	a.screenshot(t, "console-inbox-360px")
	a.run(t, "open the request narrow", chromedp.Navigate(cons.url+"/approvals/"+id), chromedp.WaitVisible(chromedp.ID("reason")))
	assert.True(t, a.eval(t, `document.documentElement.scrollWidth <= 360`), "the request page fits 360 px")
	a.screenshot(t, "console-request-360px")
	a.run(t, "wide", chromedp.EmulateViewport(1280, 900))

	a.run(t, "open the request", chromedp.Navigate(cons.url+"/approvals/"+id), chromedp.WaitVisible(chromedp.ID("reason")))
	page := strings.Join(strings.Fields(a.text(t, "main")), " ")
	for _, want := range []string{rule, strings.Join(strings.Fields(stored.Policy.Message), " "), "oidc:agent-c1", "roleRef", "cluster-admin", "Reason", "1 of the members of gatehouse:approvers"} {
		assert.Contains(t, page, want)
	}
	for _, control := range []string{"reason"} {
		assert.True(t, a.eval(t, fmt.Sprintf(`document.querySelector('label[for=%q]') !== null`, control)), "the %s field has a label", control)
	}
	a.screenshot(t, "console-request")

	// An approval needs a reason: without one there is no confirmation and no post.
	a.run(t, "approve without a reason", chromedp.Click(chromedp.CSS("button.approve")))
	assert.False(t, a.eval(t, `document.getElementById("confirm").open`))

	decided := time.Now()
	a.decide(t, id, "Approve", "change 4711: on-call access")
	call.wait(t)
	require.NoError(t, call.err, call.out)
	t.Logf("approval in the console to the held call's completion: %s", call.at.Sub(decided))
	b.run(t, "the other console shows the decision", chromedp.WaitVisible(chromedp.Search(
		fmt.Sprintf(`//li[@id="req-%s"][@data-state="Approved" or @data-state="Used"]`, id))))
	assert.True(t, b.eval(t, `window.__sameDocument === true`), "without a reload")
}

// TestConsoleTwoApprovers: a rule that needs two approvals; the first approval (by keyboard)
// shows as 1 of 2 in the second approver's open page, the second one releases the call. An
// update through the direct path shows its diff against the live object.
func TestConsoleTwoApprovers(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "two")
	applyTwoApproversPolicy(t, ns)
	a := login(t, "approver-1@example.com")
	b := login(t, "approver-2@example.com")

	agent := newUser("agent-c2", consoleAgent)
	call := hold(ctx, agent, "", "create", "configmap", "two-config", "-n", ns, "--from-literal=mode=on")
	id := a.requestIDOf(t, "two-config")
	b.run(t, "open the request", chromedp.Navigate(cons.url+"/approvals/"+id), chromedp.WaitVisible(chromedp.ID("reason")))

	oneOfTwo := chromedp.Search(fmt.Sprintf(`//div[@id="live-%s"]//span[@class="approvals" and text()="1 of 2 approvals"]`, id))
	// The first approver decides by keyboard: the reason, then "a", then Enter on Confirm.
	a.run(t, "approve by keyboard",
		chromedp.Navigate(cons.url+"/approvals/"+id),
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SendKeys(chromedp.ID("reason"), "first of two"),
		chromedp.Blur(chromedp.ID("reason")),
		chromedp.KeyEvent("a"),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(oneOfTwo),
	)
	b.run(t, "the second approver's page shows 1 of 2 live", chromedp.WaitVisible(oneOfTwo))
	assert.True(t, a.eval(t, `document.getElementById("decide").hidden`), "an approver votes once")
	assert.False(t, call.returned(), "one approval of two does not release the call")
	b.decide(t, id, "Approve", "second of two")
	call.wait(t)
	require.NoError(t, call.err, call.out)

	// The direct path: an update of the ConfigMap, held at admission, shown with its diff.
	_, err := bed.kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "two-config", metav1.GetOptions{})
	require.NoError(t, err)
	out, err := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", writeDirectKubeconfig(t), "-n", ns,
		"patch", "configmap", "two-config", "-p", `{"data":{"mode":"off","extra":"yes"}}`).CombinedOutput()
	require.Error(t, err, "held at admission")
	updateID := approvalID(t, string(out))
	a.run(t, "the diff",
		chromedp.Navigate(cons.url+"/approvals/"+updateID),
		chromedp.WaitVisible(chromedp.CSS(`pre.diff`)),
	)
	diff := a.text(t, "pre.diff")
	assert.Contains(t, diff, "-   mode: \"on\"")
	assert.Contains(t, diff, "+   mode: \"off\"")
	assert.Contains(t, diff, "+   extra: \"yes\"")
	a.screenshot(t, "console-request-diff")
	a.decide(t, updateID, "Deny", "not during the freeze")
	a.run(t, "denied", chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//div[@id="live-%s"][@data-state="Denied"]`, updateID))))
}

// applyTwoApproversPolicy holds configmaps named two-* in ns for two approvals, for everyone
// but administrators, and waits until both the proxy and the webhook enforce it.
func applyTwoApproversPolicy(t *testing.T, ns string) {
	t.Helper()
	policy := fmt.Sprintf(`apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: console-two-approvers-%s
spec:
  priority: 150
  rules:
  - name: two-approvers
    match:
      operations: [CREATE, UPDATE]
      apiGroups: [""]
      resources: [configmaps]
      namespaces: [%s]
      names: ["two-*"]
    exclude:
      groups: ["system:masters"]
    action: requireApproval
    message: Configuration named two-* needs two approvers.
    approval:
      approverGroups: ["gatehouse:approvers"]
      approvals: 2
      grantTTL: 5m
`, ns, ns)
	file := filepath.Join(bed.dir, "policy-"+ns+".yaml")
	require.NoError(t, os.WriteFile(file, []byte(policy), 0o600))
	out, err := exec.Command(bed.kube.Kubectl, "--kubeconfig", bed.kube.Kubeconfig, "apply", "-f", file).CombinedOutput()
	require.NoError(t, err, string(out))
	probe := newUser("policy-probe-2", consoleAgent)
	direct := writeDirectKubeconfig(t)
	require.Eventually(t, func() bool {
		viaProxy, _ := probe.kubectl(t.Context(), "", "create", "configmap", "two-probe", "-n", ns, "--dry-run=server")
		out, _ := exec.Command(bed.kube.Kubectl, "--kubeconfig", direct, "create", "configmap", "two-probe", "-n", ns, "--dry-run=server").CombinedOutput()
		return strings.Contains(viaProxy, "two approvers") && strings.Contains(string(out), "two approvers")
	}, 60*time.Second, 250*time.Millisecond, "the policy is enforced by the proxy and the webhook")
}

var directKubeconfig struct {
	once sync.Once
	path string
	err  error
}

// writeDirectKubeconfig returns a kubeconfig of the direct user, who bypasses Gatehouse.
func writeDirectKubeconfig(t *testing.T) string {
	t.Helper()
	directKubeconfig.once.Do(func() {
		directKubeconfig.path, directKubeconfig.err = testbed.WriteKubeconfig(bed.dir, bed.direct)
	})
	require.NoError(t, directKubeconfig.err)
	return directKubeconfig.path
}

// TestConsoleNonApproverAndForgedPosts: a viewer sees the request but no decision buttons,
// and posts forged with another user's cookie or token, or from another origin, are refused.
func TestConsoleNonApproverAndForgedPosts(t *testing.T) {
	ctx := t.Context()
	approver := login(t, "approver-1@example.com")
	viewer := login(t, "viewer@example.com")
	agent := newUser("agent-c3", consoleAgent)
	crb3 := unique("console-admin")
	call := hold(ctx, agent, "", "create", "clusterrolebinding", crb3, "--clusterrole=cluster-admin", "--user=agent-c3")
	id := viewer.requestIDOf(t, crb3)
	assert.True(t, viewer.eval(t, fmt.Sprintf(`document.querySelectorAll("#req-%s a.decide-link").length === 0`, id)), "no decision link for a viewer")
	viewer.run(t, "open the request as a viewer",
		chromedp.Navigate(cons.url+"/approvals/"+id),
		chromedp.WaitVisible(chromedp.CSS(".status-panel")))
	assert.True(t, viewer.eval(t, `getComputedStyle(document.getElementById("decide")).display === "none"`), "a viewer sees no approve or deny buttons")
	assert.True(t, viewer.eval(t, `[...document.querySelectorAll("button")].every(b => b.offsetParent === null || !/Approve|Deny/.test(b.textContent))`))
	assert.Equal(t, `Only members of "gatehouse:approvers" may decide this request.`, viewer.text(t, ".why-not"))
	viewer.screenshot(t, "console-request-viewer")

	approver.run(t, "open the page", chromedp.Navigate(cons.url+"/approvals/"+id), chromedp.WaitVisible(chromedp.ID("reason")))
	approverCookie := approver.sessionCookie(t)
	approverToken := approver.csrfToken(t)
	viewerCookie := viewer.sessionCookie(t)
	viewerToken := viewer.csrfToken(t)
	approve := func(token string) url.Values {
		v := url.Values{"verdict": {"Approve"}, "reason": {"forged"}}
		if token != "" {
			v.Set("csrf", token)
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		cookie  *http.Cookie
		form    url.Values
		headers map[string]string
		want    int
	}{
		{"the approver's cookie without a CSRF token", approverCookie, approve(""), nil, http.StatusForbidden},
		{"the approver's cookie with the viewer's token", approverCookie, approve(viewerToken), nil, http.StatusForbidden},
		{"the approver's cookie and token from another site", approverCookie, approve(approverToken), map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"the viewer's own cookie and token", viewerCookie, approve(viewerToken), nil, http.StatusForbidden},
		{"no cookie", nil, approve(approverToken), nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := postDecision(t, id, tc.cookie, tc.form, tc.headers)
			assert.Equal(t, tc.want, code)
		})
	}
	// A form post from a page of another origin (Dex's: the same site, another port) in the
	// approver's own browser, with the approver's token: the browser marks it as cross-origin
	// and the console refuses it.
	approver.run(t, "post from another origin",
		chromedp.Navigate(cons.dex.Issuer+"/.well-known/openid-configuration"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`fetch(%q, {method: "POST", mode: "no-cors", credentials: "include",
			headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "verdict=Approve&reason=forged&csrf=%s"}).then(() => true, () => false)`,
			cons.url+"/approvals/"+id+"/decide", approverToken), chromedp.EvalAwaitPromise))
	// (The fetch fails in the page either way: the console's Cross-Origin-Resource-Policy
	// withholds its answer from other origins.)
	assert.False(t, call.returned(), "nothing forged released the call")
	code, _ := postDecision(t, id, approverCookie, url.Values{"verdict": {"Deny"}, "reason": {"cleaning up"}, "csrf": {approverToken}}, nil)
	assert.Equal(t, http.StatusSeeOther, code, "the approver's own form is accepted: nothing was decided before")
	call.wait(t)
	require.Error(t, call.err)
	assert.Contains(t, call.out, "denied by approver-1@example.com: cleaning up")
}

// TestConsoleExpiry: the page counts down, shows the expiry when the console records it (nobody
// else asks for the request), and a decision after it is refused.
func TestConsoleExpiry(t *testing.T) {
	ctx := t.Context()
	a := login(t, "approver-1@example.com")
	token := a.csrfToken(t)
	cookie := a.sessionCookie(t)
	r, err := testBroker(t).Create(ctx, approvals.Spec{
		Requester:      trail.Identity{User: "oidc:agent-c4", Groups: []string{consoleAgent}},
		Operation:      trail.Operation{Verb: "DELETE", APIVersion: "v1", Resource: "namespaces", Name: unique("expiring")},
		Fingerprint:    unique("expiring"),
		Policy:         trail.Policy{Policy: "gatehouse-approvals", Rule: "namespace-deletion", Action: "requireApproval", Message: "Deleting a namespace deletes everything in it."},
		ApproverGroups: []string{approverGroup},
		Required:       1,
		GrantTTL:       time.Minute,
		Path:           approvals.PathAdmission,
		Timeout:        8 * time.Second,
	})
	require.NoError(t, err)
	a.run(t, "open the request", chromedp.Navigate(cons.url+"/approvals/"+r.ID), chromedp.WaitVisible(chromedp.ID("reason")))
	assert.Contains(t, a.text(t, "time.countdown"), "expires in")
	// The live part changes only with an event: the console stored the expiry at the deadline.
	a.run(t, "expired", chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//div[@id="live-%s"][@data-state="Expired"]`, r.ID))))
	assert.True(t, a.eval(t, `document.getElementById("decide").hidden`), "no buttons once expired")
	assert.Equal(t, "expired", a.text(t, "time.countdown"))
	got, err := testBroker(t).Get(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approvals.StateExpired, got.State)
	code, body := postDecision(t, r.ID, cookie, url.Values{"verdict": {"Approve"}, "reason": {"too late"}, "csrf": {token}}, nil)
	assert.Equal(t, http.StatusConflict, code, body)
}

// TestConsoleAfterNATSRestart: the page says when the console lost NATS, and after the restart
// it follows again: a new held call appears and can be approved.
func TestConsoleAfterNATSRestart(t *testing.T) {
	ctx := t.Context()
	a := login(t, "approver-1@example.com")
	a.run(t, "mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	bed.nats.Shutdown()
	restarted := false
	defer func() {
		if !restarted {
			require.NoError(t, bed.nats.Start())
		}
	}()
	a.run(t, "the page says NATS is lost", chromedp.WaitVisible(chromedp.Search(`//div[@id="status"][contains(., "lost NATS")]`)))
	a.screenshot(t, "console-nats-lost")
	require.NoError(t, bed.nats.Start())
	restarted = true
	a.run(t, "the page is live again", chromedp.WaitNotVisible(chromedp.ID("status")))
	for _, url := range bed.readyz {
		require.Eventually(t, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 100*time.Millisecond, "%s not ready again after NATS came back", url)
	}
	agent := newUser("agent-c5", consoleAgent)
	crb5 := unique("console-admin")
	call := hold(ctx, agent, "", "create", "clusterrolebinding", crb5, "--clusterrole=cluster-admin", "--user=agent-c5")
	id := a.requestIDOf(t, crb5)
	assert.True(t, a.eval(t, `window.__sameDocument === true`), "the same page follows again after the restart")
	a.decide(t, id, "Approve", "after the restart")
	call.wait(t)
	require.NoError(t, call.err, call.out)
}

// TestConsoleLatency measures the time from an approval request being stored to its row
// appearing in an open console, over 50 requests made 100 ms apart, and holds it to a second.
func TestConsoleLatency(t *testing.T) {
	ctx := t.Context()
	a := login(t, "approver-1@example.com")
	a.run(t, "observe the inbox", chromedp.Evaluate[chromedp.Void](`window.__seen = {};
		new MutationObserver(ms => { for (const m of ms) for (const n of m.addedNodes)
			if (n.id && n.id.startsWith("req-") && !(n.id.slice(4) in window.__seen)) window.__seen[n.id.slice(4)] = Date.now(); })
		.observe(document.getElementById("inbox"), {childList: true})`))
	broker := testBroker(t)
	created := map[string]time.Time{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range 50 {
		<-tick.C
		r, err := broker.Create(ctx, approvals.Spec{
			Requester:      trail.Identity{User: "oidc:latency-agent", Groups: []string{consoleAgent}},
			SessionID:      "latency",
			Operation:      trail.Operation{Verb: "DELETE", APIVersion: "v1", Resource: "namespaces", Name: fmt.Sprintf("latency-%02d", i)},
			Fingerprint:    fmt.Sprintf("latency-%02d", i),
			Policy:         trail.Policy{Policy: "gatehouse-approvals", Rule: "namespace-deletion", Action: "requireApproval", Message: "Deleting a namespace deletes everything in it."},
			ApproverGroups: []string{approverGroup},
			Required:       1,
			GrantTTL:       time.Minute,
			Path:           approvals.PathAdmission,
			Timeout:        30 * time.Second,
		})
		require.NoError(t, err)
		created[r.ID] = r.Created
	}
	var seen map[string]int64
	require.Eventually(t, func() bool {
		seen = value(t, a, "read the times", chromedp.Evaluate[map[string]int64](`window.__seen`))
		n := 0
		for id := range created {
			if _, ok := seen[id]; ok {
				n++
			}
		}
		return n == len(created)
	}, 30*time.Second, 100*time.Millisecond, "every request appears in the console")
	var lat []time.Duration
	for id, at := range created {
		lat = append(lat, time.UnixMilli(seen[id]).Sub(at))
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)*50/100-1], lat[(len(lat)*99+99)/100-1]
	t.Logf("request stored -> row in the console, %d requests: p50 %s, p99 %s, max %s", len(lat), p50, p99, lat[len(lat)-1])
	assert.LessOrEqual(t, p99, time.Second, "requests appear within a second")
}

// testBroker is an approval broker of the test itself, on the test bed's NATS: it creates
// requests as admission does, with the webhook's identity and the approval key.
func testBroker(t *testing.T) *approvals.Broker {
	t.Helper()
	nc, err := bed.nats.ConnectAs(natsbus.RoleWebhook)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: "e2e-console"})
	require.NoError(t, err)
	b, err := approvals.New(js, approvals.Options{Key: bed.gatehouse.ApprovalKey, Recorder: pub, Source: "e2e-console"})
	require.NoError(t, err)
	return b
}

// unique makes a name unique to this run, so the tests can run again (-count) on one cluster.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}
