// Package demo tests `gatehouse dev` as a person runs it: the binary as a process, with the
// scenario of `make demo`, against the real components of the test bed.
package demo

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/devenv"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// output collects what a process prints and lets a test wait for a line.
type output struct {
	mu      sync.Mutex
	buf     strings.Builder
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s, the process exits or timeout passes.
func (o *output) waitFor(t *testing.T, s string, exited <-chan struct{}, timeout time.Duration) {
	t.Helper()
	o.waitForRe(t, regexp.MustCompile(regexp.QuoteMeta(s)), exited, timeout)
}

// waitForRe waits until the output matches re, the process exits or timeout passes.
func (o *output) waitForRe(t *testing.T, re *regexp.Regexp, exited <-chan struct{}, timeout time.Duration) {
	t.Helper()
	s := re.String()
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		found, changed := re.MatchString(o.buf.String()), o.changed
		o.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-exited:
			if !re.MatchString(o.String()) {
				t.Fatalf("the process exited before printing %q:\n%s", s, o.String())
			}
			return
		case <-deadline:
			t.Fatalf("no %q after %s:\n%s", s, timeout, o.String())
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// gatehouse returns the binary and an environment that points it at the test bed's components.
func gatehouse(t *testing.T) (string, []string) {
	t.Helper()
	a, err := testbed.FindAssets()
	require.NoError(t, err)
	bin, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	return bin, append(os.Environ(), "KUBEBUILDER_ASSETS="+a.KubeDir, "GATEHOUSE_LIBCHDB="+a.LibCHDB)
}

// TestDevScenario runs `gatehouse dev --scenario` as `make demo` does, checks what the person
// sees and what the audit trail holds, follows a new approval request with
// `gatehouse approvals list --watch`, and stops it with SIGINT: no process and no port may be
// left.
func TestDevScenario(t *testing.T) {
	bin, env := gatehouse(t)
	dir := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(bin, "dev", "--scenario", "--dir", dir,
		"--proxy-address", freeAddr(t), "--issuer-address", freeAddr(t), "--approval-timeout", "2m")
	cmd.Env = env
	out := newOutput()
	cmd.Stdout, cmd.Stderr = out, out
	// Like a terminal's Ctrl-C: the signal goes to gatehouse dev alone; it stops the rest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			for _, f := range []string{"proxy", "webhook", "enricher"} {
				data, _ := os.ReadFile(filepath.Join(dir, "logs", f+".log"))
				lines := strings.Split(string(data), "\n")
				if len(lines) > 60 {
					lines = lines[len(lines)-60:]
				}
				t.Logf("--- %s log (last lines) ---\n%s", f, strings.Join(lines, "\n"))
			}
		}
	})
	out.waitFor(t, "Ctrl-C stops everything.", exited, 8*time.Minute)
	t.Logf("gatehouse dev --scenario up and through the scenario in %s", time.Since(start).Round(time.Second))
	text := out.String()
	st, err := devenv.ReadState(dir)
	require.NoError(t, err)

	t.Run("every start-up step reports its duration", func(t *testing.T) {
		for _, step := range []string{"NATS JetStream", "ClickHouse", "OIDC issuer", "enricher", "kube-apiserver + etcd", "dev node", "admission webhooks", "proxy", "default policies", "kubeconfigs"} {
			assert.Regexp(t, `✓ `+regexp.QuoteMeta(step)+`\s+[0-9.]+m?s`, text)
		}
		for _, f := range []string{devenv.AgentKubeconfig, devenv.ApproverKubeconfig, devenv.AdminKubeconfig} {
			assert.FileExists(t, filepath.Join(dir, f))
		}
	})
	t.Run("the Secret reached kubectl masked", func(t *testing.T) {
		assert.NotContains(t, text, devenv.DemoPassword)
		assert.NotContains(t, text, base64.StdEncoding.EncodeToString([]byte(devenv.DemoPassword)))
		m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(text)
		require.NotNil(t, m, "the Secret's yaml is shown")
		decoded, err := base64.StdEncoding.DecodeString(m[1])
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(decoded), "gatehouse:masked:"), "placeholder, got %q", decoded)
	})
	t.Run("the exec into the privileged pod was blocked with the policy's message", func(t *testing.T) {
		assert.Contains(t, text, `Gatehouse denied CONNECT pods/exec "node-debugger"`)
		assert.Contains(t, text, "a shell in it is a shell on its node")
		assert.Contains(t, text, `rule "no-exec-into-privileged-pods"`)
	})
	t.Run("the binding was held and approved; the deletion held and denied", func(t *testing.T) {
		assert.Regexp(t, `Approved\n\s+the agent's kubectl returns:\n\s+clusterrolebinding.rbac.authorization.k8s.io/agent-admin created`, text)
		assert.Contains(t, text, "was denied by oidc:approver: not during the demo")
	})

	session := regexp.MustCompile(`session (t-[0-9a-f]+)`).FindStringSubmatch(text)
	require.NotNil(t, session)
	t.Run("the trail in ClickHouse", func(t *testing.T) {
		rows := query(t, st.ClickHouseHTTP, `SELECT route, user, verb, resource, subresource, namespace, name, code, decision_action, decision_rule, approval_state
			FROM gatehouse.trail WHERE stage IN ('ResponseComplete', '') AND (session_id = {session:String} OR user = 'ci-deployer')`,
			url.Values{"param_session": {session[1]}})
		has := func(want map[string]any) bool {
			for _, r := range rows {
				match := true
				for k, v := range want {
					match = match && fmt.Sprint(r[k]) == fmt.Sprint(v)
				}
				if match {
					return true
				}
			}
			return false
		}
		for name, want := range map[string]map[string]any{
			"the Secret read":           {"route": "gateway", "user": "oidc:agent", "verb": "get", "resource": "secrets", "name": "db-credentials", "code": 200},
			"the blocked exec":          {"user": "oidc:agent", "resource": "pods", "subresource": "exec", "name": "node-debugger", "code": 403, "decision_action": "deny", "decision_rule": "no-exec-into-privileged-pods"},
			"the approved binding":      {"route": "gateway", "verb": "create", "resource": "clusterrolebindings", "name": "agent-admin", "code": 201, "approval_state": "GrantUsed"},
			"the denied deletion":       {"verb": "delete", "resource": "namespaces", "name": "scratch", "code": 403, "approval_state": "Denied"},
			"the call around the proxy": {"route": "bypass", "user": "ci-deployer", "verb": "list", "resource": "secrets", "namespace": "demo", "code": 200},
		} {
			assert.True(t, has(want), "%s: no row with %v in %v", name, want, rows)
		}
		leaks := query(t, st.ClickHouseHTTP, `SELECT count() AS n FROM gatehouse.audit_events
			WHERE position(request_object, {p:String}) > 0 OR position(response_object, {p:String}) > 0
			   OR position(request_object, {b:String}) > 0 OR position(response_object, {b:String}) > 0`,
			url.Values{"param_p": {devenv.DemoPassword}, "param_b": {base64.StdEncoding.EncodeToString([]byte(devenv.DemoPassword))}})
		assert.Equal(t, "0", fmt.Sprint(leaks[0]["n"]), "the audit trail holds the Secret's password")
	})

	t.Run("approvals list --watch follows a new request", func(t *testing.T) {
		watchOut := newOutput()
		watch := exec.Command(bin, "approvals", "list", "--watch", "--kubeconfig", filepath.Join(dir, devenv.ApproverKubeconfig))
		watch.Stdout, watch.Stderr = watchOut, watchOut
		require.NoError(t, watch.Start())
		watchDone := make(chan struct{})
		go func() { _ = watch.Wait(); close(watchDone) }()
		defer func() { _ = watch.Process.Signal(syscall.SIGINT); <-watchDone }()

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		a, err := testbed.FindAssets()
		require.NoError(t, err)
		agent := exec.CommandContext(ctx, a.Kubectl(), "--kubeconfig", filepath.Join(dir, devenv.AgentKubeconfig),
			"create", "secret", "generic", "watched", "-n", "demo", "--from-literal=token=abc")
		agentOut := newOutput()
		agent.Stdout, agent.Stderr = agentOut, agentOut
		require.NoError(t, agent.Start())
		agentDone := make(chan struct{})
		go func() { _ = agent.Wait(); close(agentDone) }()

		watchOut.waitFor(t, "secrets demo/watched", watchDone, time.Minute)
		id := regexp.MustCompile(`(ap-[a-z0-9]+)\s+Pending\s+oidc:agent\s+create secrets demo/watched`).FindStringSubmatch(watchOut.String())
		require.NotNil(t, id, watchOut.String())
		deny := exec.Command(bin, "approvals", "deny", id[1], "--reason", "no new secrets today", "--kubeconfig", filepath.Join(dir, devenv.ApproverKubeconfig))
		b, err := deny.CombinedOutput()
		require.NoError(t, err, string(b))
		watchOut.waitForRe(t, regexp.MustCompile(id[1]+`\s+Denied`), watchDone, time.Minute)
		<-agentDone
		assert.Contains(t, agentOut.String(), "denied by oidc:approver: no new secrets today")
	})

	t.Run("gatehouse dev token mints a demo identity's token", func(t *testing.T) {
		tok, err := exec.Command(bin, "dev", "token", "approver", "--dir", dir).Output()
		require.NoError(t, err)
		a, err := testbed.FindAssets()
		require.NoError(t, err)
		who, err := exec.Command(a.Kubectl(), "--server", st.ProxyURL, "--certificate-authority", filepath.Join(dir, "proxy-ca.crt"),
			"--token", strings.TrimSpace(string(tok)), "auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}").CombinedOutput()
		require.NoError(t, err, string(who))
		assert.Contains(t, string(who), "gatehouse:approvers")
	})
	t.Run("a person logs in with gatehouse login and uses kubectl through the exec plugin", func(t *testing.T) {
		a, err := testbed.FindAssets()
		require.NoError(t, err)
		kubeconfig := filepath.Join(t.TempDir(), "config")
		cache := t.TempDir()
		loginEnv := append(os.Environ(), "XDG_CACHE_HOME="+cache, "DISPLAY=", "WAYLAND_DISPLAY=")
		login := exec.Command(bin, "login", "--server", st.ProxyURL, "--issuer", st.IssuerURL,
			"--certificate-authority", filepath.Join(dir, "proxy-ca.crt"), "--issuer-certificate-authority", filepath.Join(dir, "issuer-ca.crt"),
			"--kubeconfig", kubeconfig, "--session", "incident-42")
		login.Env = loginEnv
		prompt, stdout := newOutput(), newOutput()
		login.Stdout, login.Stderr = stdout, prompt
		require.NoError(t, login.Start())
		loginDone := make(chan struct{})
		var loginErr error
		go func() { loginErr = login.Wait(); close(loginDone) }()
		// No display: the device flow. The person enters the code on the issuer's page.
		code := regexp.MustCompile(`[A-Z]{4}-[A-Z]{4}`)
		prompt.waitForRe(t, code, loginDone, time.Minute)
		issuer := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(t, filepath.Join(dir, "issuer-ca.crt"))}}
		resp, err := issuer.PostForm(st.IssuerURL+"/device", url.Values{"user_code": {code.FindString(prompt.String())}, "identity": {"developer"}})
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		<-loginDone
		require.NoError(t, loginErr, prompt.String())
		assert.Contains(t, stdout.String(), "Logged in as developer")

		kubectl := exec.Command(a.Kubectl(), "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		kubectl.Env = loginEnv
		who, err := kubectl.CombinedOutput()
		require.NoError(t, err, string(who))
		assert.Equal(t, "oidc:developer", string(who), "kubectl reached the proxy with the person's token from the plugin")
		// --session: kubectl's calls belong to the named session (an ID derived from the name and
		// the identity, "s-..."), the same for every call, not to the token ("t-...").
		sessionOf := func() string {
			kubectl := exec.Command(a.Kubectl(), "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "json")
			kubectl.Env = loginEnv
			out, err := kubectl.Output()
			require.NoError(t, err)
			var review struct {
				Status struct {
					UserInfo struct {
						Extra map[string][]string `json:"extra"`
					} `json:"userInfo"`
				} `json:"status"`
			}
			require.NoError(t, json.Unmarshal(out, &review))
			ids := review.Status.UserInfo.Extra[identity.ExtraSessionID]
			require.Len(t, ids, 1, string(out))
			return ids[0]
		}
		first := sessionOf()
		assert.True(t, strings.HasPrefix(first, "s-"), "a named session, got %q", first)
		assert.Equal(t, first, sessionOf())
		files, _ := filepath.Glob(filepath.Join(cache, "gatehouse", "credentials", "*.json"))
		require.Len(t, files, 1)
		fi, err := os.Stat(files[0])
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	})

	t.Run("the gatehouse sql command it prints answers an auditor's question", func(t *testing.T) {
		m := regexp.MustCompile(`gatehouse sql --clickhouse-addr (\S+) --query denied-attempts`).FindStringSubmatch(text)
		require.NotNil(t, m, "gatehouse dev prints the auditors' command")
		out, err := exec.Command(bin, "sql", "--clickhouse-addr", m[1], "--query", "denied-attempts", "--param", "since=1h").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "node-debugger", "the blocked exec is among the denied attempts")
	})

	// Ctrl-C: everything stops, nothing is left.
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("gatehouse dev did not stop within 2 minutes of SIGINT:\n%s", out.String())
	}
	require.NoError(t, waitErr, out.String())
	assert.Contains(t, out.String(), "Stopped everything")
	for _, c := range st.Components {
		if c.PID != 0 && c.PID != st.PID {
			assert.True(t, errors.Is(syscall.Kill(c.PID, 0), syscall.ESRCH), "%s (pid %d) is still running", c.Name, c.PID)
		}
		for _, addr := range c.Addresses {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
			}
			assert.Error(t, err, "%s still listens on %s", c.Name, addr)
		}
	}
	for _, addr := range []string{strings.TrimPrefix(st.ProxyURL, "https://"), strings.TrimPrefix(st.IssuerURL, "https://")} {
		_, err := net.DialTimeout("tcp", addr, time.Second)
		assert.Error(t, err, "%s still listens", addr)
	}
	assert.Empty(t, devenv.ProcessesUsing(dir), "processes of the run are left (kube-apiserver, etcd, components)")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Contains(t, []string{"logs", ".lock", ".gatehouse-dev"}, e.Name(), "left in the state directory")
	}
}

func tlsConfig(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// query runs SQL over ClickHouse's HTTP interface and returns the rows.
func query(t *testing.T, httpAddr, sql string, params url.Values) []map[string]any {
	t.Helper()
	resp, err := http.Post("http://"+httpAddr+"/?"+params.Encode(), "text/plain", strings.NewReader(sql+" FORMAT JSONEachRow"))
	require.NoError(t, err)
	defer resp.Body.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		rows = append(rows, r)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("ClickHouse: %s %s", resp.Status, b)
	}
	return rows
}

// TestDevBadInput: each mistake gets one line that says what to do, and nothing starts.
func TestDevBadInput(t *testing.T) {
	bin, env := gatehouse(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	stale := filepath.Join(t.TempDir(), "stale")
	require.NoError(t, os.MkdirAll(stale, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(stale, ".gatehouse-dev"), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(stale, "state.json"), []byte(`{"pid": 999999, "started": "2026-01-01T00:00:00Z"}`), 0o600))
	notOurs := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notOurs, "thesis.tex"), []byte("important"), 0o600))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"--proxy-address", busy.Addr().String()}, busy.Addr().String() + " is in use (the proxy needs it): stop what listens there or pass --proxy-address"},
		{"missing component", []string{"--kube-assets", filepath.Join(t.TempDir(), "nothing")}, "kube-apiserver not found in"},
		{"missing ClickHouse", []string{"--libchdb", "/nonexistent/libchdb.so"}, "run `scripts/testbed.sh clickhouse`"},
		{"stale state directory", []string{"--dir", stale}, "holds a run that did not stop cleanly (pid 999999"},
		{"not a state directory", []string{"--dir", notOurs}, "is not a gatehouse dev state directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"dev", "--proxy-address", freeAddr(t), "--issuer-address", freeAddr(t), "--dir", filepath.Join(t.TempDir(), "s")}, tt.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			require.Error(t, err)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %q", stderr.String())
			assert.NotContains(t, stdout.String(), "✓", "nothing started")
		})
	}
	_, err = os.Stat(filepath.Join(notOurs, "thesis.tex"))
	assert.NoError(t, err, "a directory that is not ours is left alone")
}
