package devenv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// bypassUser is the identity of the scenario's call straight to kube-apiserver: a CI
// deployer's credentials the agent came across.
const bypassUser = "ci-deployer"

// TrailSQL is the query the scenario prints the session's trail with: every call of the
// session, and the calls of bypassUser that went around the gateway.
const TrailSQL = `SELECT formatDateTime(time, '%H:%i:%S') AS at, route, outcome, user, verb,
       resource || if(subresource != '', '/' || subresource, '') AS resource,
       if(namespace != '', namespace || '/', '') || name AS object, code,
       decision_action AS decision, decision_rule AS rule, approval_id, approval_state
FROM gatehouse.trail
WHERE time >= {since:DateTime64(6)} AND stage IN ('ResponseComplete', '')
  AND (session_id = {session:String} OR (route = 'bypass' AND user = {bypass_user:String}))
ORDER BY time, stage_time`

// ScenarioResult is what the scenario saw, for callers that check it.
type ScenarioResult struct {
	SessionID string
	Since     time.Time
}

// Scenario plays a scripted agent session with real kubectl through the proxy while the
// person watches, then prints the session's trail from ClickHouse with the SQL it ran.
func (e *Env) Scenario(ctx context.Context) (*ScenarioResult, error) {
	if e.kube == nil {
		return nil, errors.New("--scenario needs the local control plane; it does not run against an attached cluster")
	}
	w := e.out
	res := &ScenarioResult{Since: time.Now().UTC().Add(-time.Second)}
	tok, err := e.issuer.Mint("agent")
	if err != nil {
		return nil, err
	}
	agent := e.file("scenario-agent.kubeconfig")
	if err := writeKubeconfig(agent, &rest.Config{Host: e.proxyURL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: e.proxyCA}}, "agent"); err != nil {
		return nil, err
	}
	if res.SessionID, err = e.sessionOf(ctx, tok); err != nil {
		return nil, err
	}
	approver, err := e.approverClient()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "\n━━ Scenario: an agent's session through Gatehouse (user oidc:agent, session %s) ━━\n", res.SessionID)

	say := func(n int, text string) { fmt.Fprintf(w, "\n%d. %s\n", n, text) }
	show := func(args []string, out string, err error) {
		fmt.Fprintf(w, "   $ kubectl %s\n", strings.Join(args, " "))
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			fmt.Fprintf(w, "     %s\n", l)
		}
		if err != nil {
			fmt.Fprintf(w, "     (exit: %s)\n", exitText(err))
		}
	}
	run := func(kubeconfig string, args ...string) (string, error) {
		out, err := e.kubectl(ctx, kubeconfig, "", args...)
		show(args, out, err)
		return out, err
	}

	say(1, "The agent lists the pods of namespace demo.")
	if _, err := run(agent, "get", "pods", "-n", demoNamespace); err != nil {
		return nil, err
	}

	say(2, "It reads a Secret: Gatehouse masks the values before they reach the agent.")
	out, err := run(agent, "get", "secret", demoSecret, "-n", demoNamespace, "-o", "yaml")
	if err != nil {
		return nil, err
	}
	if strings.Contains(out, DemoPassword) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(DemoPassword))) {
		return nil, errors.New("the Secret's password reached the agent unmasked")
	}
	fmt.Fprintf(w, "   ✓ the password is not in what the agent got\n")

	say(3, "It tries a shell in a privileged pod (hostPID, privileged container): the policy blocks it.")
	if _, err := run(agent, "exec", "node-debugger", "-n", demoNamespace, "--", "cat", "/etc/shadow"); err == nil {
		return nil, errors.New("exec into the privileged pod was allowed")
	}

	say(4, "It grants itself cluster-admin: the call is held until an approver decides.")
	if err := e.held(ctx, agent, approver, []string{"create", "clusterrolebinding", "agent-admin", "--clusterrole=cluster-admin", "--user=" + userPrefix + "agent"},
		"clusterrolebindings", "agent-admin", approvals.Approve, "ticket OPS-1234: agent needs it for the migration", show); err != nil {
		return nil, err
	}

	say(5, "It deletes the namespace scratch: held, and this time the approver says no.")
	if err := e.held(ctx, agent, approver, []string{"delete", "namespace", scratchNamespace, "--wait=false"},
		"namespaces", scratchNamespace, approvals.Deny, "not during the demo: scratch holds the team's experiments", show); err != nil {
		return nil, err
	}

	say(6, "It finds a CI deployer's kubeconfig and calls kube-apiserver directly, around Gatehouse.")
	leaked, err := e.leakedKubeconfig(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := run(leaked, "get", "secrets", "-n", demoNamespace); err != nil {
		return nil, err
	}

	say(7, "The session's trail in ClickHouse (kube-apiserver's audit events joined with Gatehouse's records):")
	if err := e.printTrail(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// held runs a kubectl call that a policy holds, waits until the approver sees the request,
// pauses so the person watching can read it, and decides.
func (e *Env) held(ctx context.Context, kubeconfig string, approver *approvals.Client, args []string, resource, name string,
	verdict approvals.Verdict, reason string, show func([]string, string, error)) error {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.kubectl(ctx, kubeconfig, "", args...)
		done <- result{out, err}
	}()
	fmt.Fprintf(e.out, "   $ kubectl %s\n     … waiting for approval\n", strings.Join(args, " "))
	var req *approvals.Request
	deadline := time.Now().Add(60 * time.Second)
	for req == nil {
		items, err := approver.List(ctx, approvals.StatePending)
		if err == nil {
			for _, r := range items {
				if r.Operation.Resource == resource && r.Operation.Name == name {
					req = r
				}
			}
		}
		if req != nil {
			break
		}
		select {
		case r := <-done:
			show(args, r.out, r.err)
			return fmt.Errorf("the call was not held: %v", r.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no approval request for %s %s after 60s", resource, name)
		}
	}
	fmt.Fprintf(e.out, "   approver (oidc:approver) sees request %s from %s: %s %s %s (rule %s/%s)\n",
		req.ID, req.Requester.User, strings.ToLower(req.Operation.Verb), req.Operation.Resource, req.Operation.Name, req.Policy.Policy, req.Policy.Rule)
	const pause = 3 * time.Second
	fmt.Fprintf(e.out, "   … the approver reads it (%s)\n", pause)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
	}
	decided, err := approver.Decide(ctx, req.ID, verdict, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "   $ gatehouse approvals %s %s --reason %q\n     %s: %s\n", strings.ToLower(string(verdict)), req.ID, reason, decided.ID, decided.State)
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Fprintf(e.out, "   the agent's kubectl returns:\n")
	for _, l := range strings.Split(strings.TrimRight(r.out, "\n"), "\n") {
		fmt.Fprintf(e.out, "     %s\n", l)
	}
	switch {
	case verdict == approvals.Approve && r.err != nil:
		return fmt.Errorf("the approved call failed: %w", r.err)
	case verdict == approvals.Deny && r.err == nil:
		return errors.New("the denied call succeeded")
	}
	return nil
}

// sessionOf returns the session ID the proxy gives calls with tok.
func (e *Env) sessionOf(ctx context.Context, tok string) (string, error) {
	hc, err := rest.HTTPClientFor(&rest.Config{Host: e.proxyURL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: e.proxyCA}})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.proxyURL+"/api/v1/namespaces/"+demoNamespace, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s := resp.Header.Get("Gatehouse-Session")
	if s == "" {
		return "", fmt.Errorf("the proxy answered %s without a Gatehouse-Session header", resp.Status)
	}
	return s, nil
}

func (e *Env) approverClient() (*approvals.Client, error) {
	tok, err := e.issuer.Mint("approver")
	if err != nil {
		return nil, err
	}
	// The console serves the approvals API, with the proxy's certificate.
	hc, err := rest.HTTPClientFor(&rest.Config{Host: e.consoleURL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: e.proxyCA}})
	if err != nil {
		return nil, err
	}
	return &approvals.Client{BaseURL: e.consoleURL, HTTP: hc}, nil
}

// leakedKubeconfig writes the CI deployer's kubeconfig: a client certificate straight to
// kube-apiserver, allowed to read the demo namespace (created by the setup controller, which
// the policies leave to RBAC).
func (e *Env) leakedKubeconfig(ctx context.Context) (string, error) {
	cs, err := kubernetes.NewForConfig(e.setup)
	if err != nil {
		return "", err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: bypassUser, Namespace: demoNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "gatehouse-dev-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: bypassUser}},
	}
	if _, err := cs.RbacV1().RoleBindings(demoNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	u, err := e.kube.AddUser(envtest.User{Name: bypassUser, Groups: []string{"ci"}}, nil)
	if err != nil {
		return "", err
	}
	path := e.file("ci-deployer.kubeconfig")
	return path, writeKubeconfig(path, u.Config(), bypassUser)
}

// printTrail waits until the session's calls are in ClickHouse (the approved binding, the
// denied deletion, the bypass) and prints them with the SQL.
func (e *Env) printTrail(ctx context.Context, res *ScenarioResult) error {
	params := url.Values{
		"param_since":       {res.Since.Format("2006-01-02 15:04:05.000000")},
		"param_session":     {res.SessionID},
		"param_bypass_user": {bypassUser},
	}
	ready := `SELECT countIf(resource = 'clusterrolebindings' AND code = 201) > 0
	  AND countIf(resource = 'namespaces' AND verb = 'delete') > 0
	  AND countIf(route = 'bypass') > 0
	FROM (` + TrailSQL + `) FORMAT TSV`
	start := time.Now()
	for {
		out, err := e.QueryClickHouse(ctx, ready, params)
		if err == nil && strings.TrimSpace(out) == "1" {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("the session's trail is not complete in ClickHouse after 2 minutes (last answer %q, %v)", out, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Fprintf(e.out, "   (in ClickHouse %s after the last call)\n\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(e.out, "   -- session=%s since=%s bypass_user=%s\n", res.SessionID, params.Get("param_since"), bypassUser)
	for _, l := range strings.Split(TrailSQL, "\n") {
		fmt.Fprintf(e.out, "   %s\n", l)
	}
	out, err := e.QueryClickHouse(ctx, TrailSQL+"\nFORMAT PrettyCompactMonoBlock", params)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(e.out, "   %s\n", l)
	}
	sqlFile := e.file("trail.sql")
	if err := os.WriteFile(sqlFile, []byte(TrailSQL+"\nFORMAT PrettyCompactMonoBlock\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "\n   Run it yourself: curl -s 'http://%s/?%s' --data-binary @%s\n", e.chHTTP, params.Encode(), sqlFile)
	return nil
}

// QueryClickHouse runs query over ClickHouse's HTTP interface with query parameters.
func (e *Env) QueryClickHouse(ctx context.Context, query string, params url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.chHTTP+"/?"+params.Encode(), strings.NewReader(query))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ClickHouse: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func exitText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "exit status"); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, ":"); j >= 0 {
			s = s[:j]
		}
	}
	return s
}
