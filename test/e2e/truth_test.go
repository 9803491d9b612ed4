package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/auditsql"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// This file holds the ground-truth test of the audit trail: a scripted session through the real
// stack records, on the client side, what it did and what each call returned; then every canned
// query of docs/auditing.md must answer exactly that. A row that claims an effect the session
// did not have, or misses one it had, fails the test.

// truthCall is one API call of the scenario: what was meant, what the client got back, and so
// what the trail must say about it.
type truthCall struct {
	step string
	// user is who the call ran as; via is gateway (through the proxy) or direct.
	user, via                            string
	verb, group, resource, sub, ns, name string
	// auditID and code are what the client got: the Audit-Id header and the HTTP status.
	auditID string
	code    int
	// route and outcome are the truth of the call's final row; changed whether it took effect.
	route, outcome string
	changed        bool
	// stages are the audit stages kube-apiserver writes for it ("" for a call the gateway
	// refused, which never reached kube-apiserver).
	stages []string
	// component, action, policy and rule: the policy decision that applied.
	component, action, policy, rule string
	// approval is the approval the call was held for or ran under.
	approval *truthApproval
	// resent: admission held the call, and the proxy re-sent it once approved; the first
	// attempt has an audit event of its own (outcome held).
	resent bool
	// open: a stream still running when the trail is read.
	open bool
}

type truthApproval struct {
	id, state, requester, requesterReason string
	approvers, reasons, deniedBy          []string
}

// truthRecorder is the client side's record: a transport wrapper that notes the Audit-Id and
// status of every request a step makes, and sets the headers a step asks for.
type truthRecorder struct {
	mu      sync.Mutex
	got     map[string][]truthAnswer // step -> answers
	session string
}

type truthAnswer struct {
	auditID, method string
	code            int
}

type truthStepKey struct{}

// truthStep carries the step a request belongs to and the headers it sends.
type truthStep struct {
	name    string
	headers map[string]string
}

func (r *truthRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		st, _ := req.Context().Value(truthStepKey{}).(truthStep)
		if len(st.headers) > 0 {
			req = req.Clone(req.Context())
			for k, v := range st.headers {
				req.Header.Set(k, v)
			}
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got[st.name] = append(r.got[st.name], truthAnswer{auditID: resp.Header.Get("Audit-Id"), method: req.Method, code: resp.StatusCode})
		if s := resp.Header.Get("Gatehouse-Session"); s != "" {
			r.session = s
		}
		return resp, nil
	})
}

// answer returns the one answer of a step.
func (r *truthRecorder) answer(t *testing.T, step string) truthAnswer {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.got[step], 1, "step %s made one request", step)
	return r.got[step][0]
}

func inStep(ctx context.Context, name string, headers map[string]string) context.Context {
	return context.WithValue(ctx, truthStepKey{}, truthStep{name: name, headers: headers})
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestGroundTruth drives one agent session through the proxy (reads, writes, a masked Secret
// read, an exec, a blocked exec, a held write that is approved, a held namespace deletion that
// is denied, a held write whose hold runs out, a dry run, a patch, a server-side apply, and a
// watch still open), direct calls of an administrator and of a user who bypasses the proxy,
// and a controller's set-up, and checks every canned query of docs/auditing.md against what
// the clients saw.
func TestGroundTruth(t *testing.T) {
	ctx := t.Context()
	start := time.Now().UTC()
	suffix := randomSuffix()
	ns := bed.kube.Namespace(t, "truth")
	doomed := bed.kube.Namespace(t, "truth-doomed")
	agentName, approverName, bypassName := "agent-truth-"+suffix, "approver-truth-"+suffix, "bypass-truth-"+suffix
	agentUser, approverUser := "oidc:"+agentName, "oidc:"+approverName
	setupUser := "system:serviceaccount:" + setupServiceAccount
	label := "truth-" + suffix
	const canary = "truth-canary-4f1d2b9e"

	// The scenario's clients record every call they make; checks of the cluster's state use the
	// test bed's administrator, who is not part of the scenario.
	var calls []*truthCall
	add := func(c *truthCall) *truthCall { calls = append(calls, c); return c }
	rec := &truthRecorder{got: map[string][]truthAnswer{}}

	// The controller's set-up, directly: a Secret (service accounts acting directly are not held),
	// a ConfigMap. Pods run on the dev node (as the test bed's administrator, not part of the
	// scenario).
	setupCfg, err := bed.kube.AddUser(setupUser)
	require.NoError(t, err)
	setupCfg.WrapTransport = rec.wrap
	setup, err := kubernetes.NewForConfig(setupCfg)
	require.NoError(t, err)
	_, err = setup.CoreV1().Secrets(ns).Create(inStep(ctx, "setup-secret", nil), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": canary}}, metav1.CreateOptions{})
	require.NoError(t, err)
	add(&truthCall{step: "setup-secret", user: setupUser, via: "direct", verb: "create", resource: "secrets", ns: ns, name: "db",
		route: "bypass", outcome: "succeeded", changed: true, stages: []string{"ResponseComplete"}, component: "validating-webhook", action: "allow"})
	_, err = setup.CoreV1().ConfigMaps(ns).Create(inStep(ctx, "setup-configmap", nil), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "safe"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	add(&truthCall{step: "setup-configmap", user: setupUser, via: "direct", verb: "create", resource: "configmaps", ns: ns, name: "settings",
		route: "bypass", outcome: "succeeded", changed: true, stages: []string{"ResponseComplete"}, component: "validating-webhook", action: "allow"})
	_, err = bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
	require.NoError(t, err)
	_, err = bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "priv", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox",
			SecurityContext: &corev1.SecurityContext{Privileged: boolPtr(true)}}}}})
	require.NoError(t, err)

	// The agent's session through the proxy.
	agentCfg := &rest.Config{Host: bed.proxyURL, BearerToken: token(agentName, agentGroup),
		TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}, QPS: -1, UserAgent: "truth-agent/1.0",
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return rec.wrap(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				r = r.Clone(r.Context())
				r.Header.Set("Gatehouse-Session", label)
				return rt.RoundTrip(r)
			}))
		}}
	agent, err := kubernetes.NewForConfig(agentCfg)
	require.NoError(t, err)
	gw := func(step, verb, resource, name string) *truthCall {
		return &truthCall{step: step, user: agentUser, via: "gateway", verb: verb, resource: resource, ns: ns, name: name,
			route: "gateway", outcome: "succeeded", stages: []string{"ResponseComplete"}}
	}
	allow := func(c *truthCall) *truthCall {
		c.component, c.action, c.changed = "validating-webhook", "allow", true
		return c
	}

	_, err = agent.CoreV1().Pods(ns).List(inStep(ctx, "list-pods", nil), metav1.ListOptions{})
	require.NoError(t, err)
	add(gw("list-pods", "list", "pods", ""))
	_, err = agent.CoreV1().ConfigMaps(ns).Get(inStep(ctx, "get-configmap", nil), "settings", metav1.GetOptions{})
	require.NoError(t, err)
	add(gw("get-configmap", "get", "configmaps", "settings"))
	_, err = agent.CoreV1().ConfigMaps(ns).Create(inStep(ctx, "create-configmap", nil), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "notes"}, Data: map[string]string{"note": "refactoring"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	add(allow(gw("create-configmap", "create", "configmaps", "notes")))
	secret, err := agent.CoreV1().Secrets(ns).Get(inStep(ctx, "read-secret", nil), "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, canary, string(secret.Data["password"]), "the agent sees the Secret masked")
	add(gw("read-secret", "get", "secrets", "db"))
	_, err = agent.CoreV1().ConfigMaps(ns).Patch(inStep(ctx, "patch-configmap", nil), "notes", types.MergePatchType,
		[]byte(`{"data":{"note":"patched"}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	add(allow(gw("patch-configmap", "patch", "configmaps", "notes")))
	_, err = agent.CoreV1().ConfigMaps(ns).Patch(inStep(ctx, "apply-configmap", nil), "applied", types.ApplyPatchType,
		[]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"},"data":{"by":"server-side apply"}}`),
		metav1.PatchOptions{FieldManager: "truth"})
	require.NoError(t, err)
	add(allow(gw("apply-configmap", "patch", "configmaps", "applied")))
	_, err = agent.CoreV1().Secrets(ns).Create(inStep(ctx, "dry-run-secret", nil), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "never"}, StringData: map[string]string{"password": canary}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err, "a dry run is never held")
	_, err = bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "never", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the dry run created nothing: %v", err)
	dry := add(gw("dry-run-secret", "create", "secrets", "never"))
	dry.outcome, dry.component, dry.action, dry.policy, dry.rule = "dry-run", "validating-webhook", "requireApproval", "gatehouse-approvals", "secret-changes"

	// An exec, and one into a privileged pod, which the default pack refuses.
	execIn := func(step, pod string) error {
		u := agent.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "main", Command: []string{"echo", "truth"}, Stdout: true}, scheme.ParameterCodec).URL()
		ex, err := remotecommand.NewSPDYExecutor(agentCfg, http.MethodPost, u)
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := ex.StreamWithContext(inStep(ctx, step, nil), remotecommand.StreamOptions{Stdout: &out}); err != nil {
			return err
		}
		if out.String() != "truth\n" {
			return fmt.Errorf("exec printed %q", out.String())
		}
		return nil
	}
	require.NoError(t, execIn("exec", "shell"))
	ex := add(gw("exec", "create", "pods", "shell"))
	ex.sub, ex.stages, ex.component, ex.action = "exec", []string{"ResponseStarted", "ResponseComplete"}, "validating-webhook", "allow"
	require.Error(t, execIn("blocked-exec", "priv"))
	// The proxy judges the pod itself and refuses at once: the call never reaches kube-apiserver.
	blocked := add(gw("blocked-exec", "create", "pods", "priv"))
	blocked.sub, blocked.outcome, blocked.route, blocked.stages, blocked.component, blocked.action, blocked.policy, blocked.rule =
		"exec", "denied", "gateway-only", []string{""}, "proxy", "deny", "gatehouse-exec", "no-exec-into-privileged-pods"

	// Held for approval: approved, denied, and held until the client's hold ran out.
	approver := &approvals.Client{BaseURL: bed.consoleURL, HTTP: approverHTTP(t, approverName)}
	pendingFor := func(resource, name string) *approvals.Request {
		var found *approvals.Request
		require.Eventually(t, func() bool {
			items, err := approver.List(ctx, approvals.StatePending)
			for _, r := range items {
				if err == nil && r.Operation.Resource == resource && r.Operation.Name == name && r.Requester.User == agentUser {
					found = r
				}
			}
			return found != nil
		}, 30*time.Second, 50*time.Millisecond, "an approval request for %s %s", resource, name)
		return found
	}
	background := func(f func() error) chan error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		return done
	}
	wait := func(done chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("a held call did not return")
			return nil
		}
	}
	const reason = "rotate the db password, ticket 7"
	done := background(func() error {
		_, err := agent.CoreV1().Secrets(ns).Create(inStep(ctx, "held-approved", map[string]string{"Gatehouse-Reason": reason}), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "approved"}, StringData: map[string]string{"password": canary}}, metav1.CreateOptions{})
		return err
	})
	req := pendingFor("secrets", "approved")
	_, err = approver.Decide(ctx, req.ID, approvals.Approve, "rotation agreed")
	require.NoError(t, err)
	require.NoError(t, wait(done), "the approved write completes")
	approved := add(gw("held-approved", "create", "secrets", "approved"))
	approved.component, approved.action, approved.policy, approved.rule, approved.changed, approved.resent =
		"validating-webhook", "requireApproval", "gatehouse-approvals", "secret-changes", true, true
	approved.approval = &truthApproval{id: req.ID, state: "GrantUsed", requester: agentUser, requesterReason: reason,
		approvers: []string{approverUser}, reasons: []string{approverUser + ": rotation agreed"}}

	done = background(func() error {
		return agent.CoreV1().Namespaces().Delete(inStep(ctx, "held-denied", nil), doomed, metav1.DeleteOptions{})
	})
	req = pendingFor("namespaces", doomed)
	_, err = approver.Decide(ctx, req.ID, approvals.Deny, "not today")
	require.NoError(t, err)
	err = wait(done)
	require.True(t, apierrors.IsForbidden(err), "the denied deletion is refused: %v", err)
	nsObj, err := bed.kube.Clientset.CoreV1().Namespaces().Get(ctx, doomed, metav1.GetOptions{})
	require.NoError(t, err)
	require.Nil(t, nsObj.DeletionTimestamp, "the namespace was not deleted")
	denied := gw("held-denied", "delete", "namespaces", doomed)
	denied.ns = doomed
	denied.outcome, denied.component, denied.action, denied.policy, denied.rule = "denied", "validating-webhook", "requireApproval", "gatehouse-approvals", "namespace-deletion"
	denied.approval = &truthApproval{id: req.ID, state: "Denied", requester: agentUser, deniedBy: []string{approverUser},
		reasons: []string{approverUser + ": not today"}}
	add(denied)

	_, err = agent.CoreV1().Secrets(ns).Create(inStep(ctx, "held-expired", map[string]string{"Gatehouse-Hold": "3s"}), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "late"}, StringData: map[string]string{"password": canary}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "nobody decided in time: %v", err)
	require.Contains(t, err.Error(), "nobody decided it")
	lateID := approvalIDOf(t, err)
	_, err = bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "late", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the expired write created nothing: %v", err)
	expired := add(gw("held-expired", "create", "secrets", "late"))
	expired.outcome, expired.component, expired.action, expired.policy, expired.rule = "denied", "validating-webhook", "requireApproval", "gatehouse-approvals", "secret-changes"
	expired.approval = &truthApproval{id: lateID, state: "Requested", requester: agentUser}

	// A watch, still open when the trail is read.
	w, err := agent.CoreV1().ConfigMaps(ns).Watch(inStep(ctx, "watch", nil), metav1.ListOptions{})
	require.NoError(t, err)
	defer w.Stop()
	watching := add(gw("watch", "watch", "configmaps", ""))
	watching.outcome, watching.stages, watching.open = "open", []string{"ResponseStarted"}, true

	// Direct calls: an administrator, and a user who bypasses the proxy.
	adminCfg := rest.CopyConfig(bed.direct)
	adminCfg.WrapTransport = rec.wrap
	admin, err := kubernetes.NewForConfig(adminCfg)
	require.NoError(t, err)
	direct := func(step, user, verb, resource, name string) *truthCall {
		return &truthCall{step: step, user: user, via: "direct", verb: verb, resource: resource, ns: ns, name: name,
			route: "bypass", outcome: "succeeded", stages: []string{"ResponseComplete"}}
	}
	_, err = admin.CoreV1().ConfigMaps(ns).Create(inStep(ctx, "admin-configmap", nil), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "admin"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	add(allow(direct("admin-configmap", directUser, "create", "configmaps", "admin")))
	_, err = admin.RbacV1().RoleBindings(ns).Create(inStep(ctx, "admin-rolebinding", nil), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "developers"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	rb := add(allow(direct("admin-rolebinding", directUser, "create", "rolebindings", "viewers")))
	rb.group = rbacv1.GroupName
	_, err = admin.CoreV1().Secrets(ns).Get(inStep(ctx, "admin-secret", nil), "db", metav1.GetOptions{})
	require.NoError(t, err)
	add(direct("admin-secret", directUser, "get", "secrets", "db"))

	_, err = setup.RbacV1().Roles(ns).Create(inStep(ctx, "setup-role", nil), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = setup.RbacV1().RoleBindings(ns).Create(inStep(ctx, "setup-rolebinding", nil), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: bypassName}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, s := range []struct{ step, verb, resource, name string }{
		{"setup-role", "create", "roles", "secret-reader"}, {"setup-rolebinding", "create", "rolebindings", "secret-reader"}} {
		add(&truthCall{step: s.step, user: setupUser, via: "direct", verb: s.verb, group: rbacv1.GroupName, resource: s.resource, ns: ns,
			name: s.name, route: "bypass", outcome: "succeeded", changed: true, stages: []string{"ResponseComplete"},
			component: "validating-webhook", action: "allow"})
	}
	bypassCfg, err := bed.kube.AddUser(bypassName)
	require.NoError(t, err)
	bypassCfg.WrapTransport = rec.wrap
	bypass, err := kubernetes.NewForConfig(bypassCfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := bypass.CoreV1().Secrets(ns).Get(inStep(ctx, "bypass-probe", nil), "db", metav1.GetOptions{})
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "RBAC lets the bypassing user read the Secret")
	_, err = bypass.CoreV1().Secrets(ns).Get(inStep(ctx, "bypass-secret", nil), "db", metav1.GetOptions{})
	require.NoError(t, err)
	add(direct("bypass-secret", bypassName, "get", "secrets", "db"))
	// The probes until RBAC took effect are calls too: each a read that succeeded or was refused.
	rec.mu.Lock()
	probes := rec.got["bypass-probe"]
	delete(rec.got, "bypass-probe")
	rec.mu.Unlock()
	for i, p := range probes {
		c := direct(fmt.Sprintf("bypass-probe-%d", i), bypassName, "get", "secrets", "db")
		if p.code == http.StatusForbidden {
			c.outcome = "denied"
		}
		rec.mu.Lock()
		rec.got[c.step] = []truthAnswer{p}
		rec.mu.Unlock()
		add(c)
	}

	// What the clients got.
	for _, c := range calls {
		a := rec.answer(t, c.step)
		c.auditID, c.code = a.auditID, a.code
		require.NotEmpty(t, c.auditID, "step %s got an Audit-Id", c.step)
		if c.sub == "exec" && c.route == "gateway" {
			// The proxy serves exec itself and reaches kube-apiserver over WebSocket, whatever
			// the client spoke: kube-apiserver audits the GET of that upgrade.
			c.verb = "get"
		}
	}
	require.NotEmpty(t, rec.session)
	session := rec.session
	t.Logf("session %s, %d calls", session, len(calls))
	for _, c := range calls {
		t.Logf("  %-20s %-6s %-7s %-6s %s/%s %d %s", c.step, c.via, c.verb, c.resource, c.ns, c.name, c.code, c.auditID)
	}

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{bed.clickhouse.NativeAddr}})
	require.NoError(t, err)
	defer conn.Close()
	since := start.Format("2006-01-02 15:04:05.000000")
	run := func(t require.TestingT, name string, params map[string]string) []map[string]string {
		q, err := schema.LookupQuery(name)
		require.NoError(t, err)
		values, err := auditsql.ResolveParams(q.Params, params, time.Now())
		require.NoError(t, err)
		res, err := auditsql.Run(ctx, conn, q.SQL, values)
		require.NoError(t, err, name)
		out := make([]map[string]string, len(res.Rows))
		for i, row := range res.Rows {
			m := map[string]string{}
			for j, col := range res.Columns {
				m[col] = auditsql.Text(row[j])
			}
			out[i] = m
		}
		return out
	}

	// Wait until the trail holds every call, joined: every audit event of the session's calls
	// and the direct calls, with its gateway record (no row pending), and every approval's last
	// event.
	timelineWant := expectedTimeline(calls)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		rows := run(c, "session-timeline", map[string]string{"session_id": session})
		assert.Len(c, rows, len(timelineWant), "session rows")
		for _, r := range rows {
			assert.NotEqual(c, "pending", r["route"])
		}
		for _, call := range calls {
			if call.via != "direct" {
				continue
			}
			n := run(c, "audit-id", map[string]string{"audit_id": call.auditID})
			assert.Len(c, n, 1, "the direct call %s", call.step)
		}
		for _, call := range calls {
			if call.approval != nil {
				a := run(c, "approvals", map[string]string{"since": since})
				var state string
				for _, r := range a {
					if r["approval_id"] == call.approval.id {
						state = r["state"]
					}
				}
				assert.Equal(c, call.approval.state, state, "approval of %s", call.step)
			}
		}
	}, 90*time.Second, time.Second, "the trail holds the scenario")

	timeline := run(t, "session-timeline", map[string]string{"session_id": session})
	held := heldIDs(timeline)
	t.Run("session-timeline", func(t *testing.T) {
		assertRows(t, timelineWant, timeline, timelineColumns, held)
		require.Len(t, held, 1, "one held attempt")
	})
	users := map[string]bool{agentUser: true, setupUser: true, directUser: true, bypassName: true}
	mine := func(rows []map[string]string) []map[string]string {
		var out []map[string]string
		for _, r := range rows {
			if users[r["user"]] || (session != "" && r["session_id"] == session) {
				out = append(out, r)
			}
		}
		return out
	}
	sinceParams := map[string]string{"since": since}
	kind := func(c *truthCall) string {
		switch {
		case c.user == agentUser:
			return "agent"
		case strings.HasPrefix(c.user, "system:serviceaccount:"):
			return "service-account"
		}
		return "human"
	}
	sessionOf := func(c *truthCall) string {
		if c.via == "gateway" {
			return session
		}
		return ""
	}
	nsRow := func(c *truthCall) string {
		if c.resource == "namespaces" {
			return c.name
		}
		return c.ns
	}
	approval := func(c *truthCall) (id, state string, approvers []string) {
		if c.approval == nil {
			return "", "", nil
		}
		return c.approval.id, c.approval.state, c.approval.approvers
	}
	list := func(s []string) string { return auditsql.Text(s) }

	t.Run("who-changed-what", func(t *testing.T) {
		var want []map[string]string
		for _, c := range calls {
			if !c.changed || c.ns != ns {
				continue
			}
			id, _, approvers := approval(c)
			want = append(want, map[string]string{"actor_kind": kind(c), "user": c.user, "route": c.route, "session_id": sessionOf(c),
				"verb": c.verb, "resource": c.resource, "subresource": c.sub, "namespace": c.ns, "name": c.name, "code": strconv.Itoa(c.code),
				"decision_policy": c.policy, "decision_rule": c.rule, "approval_id": id, "approvers": list(approvers), "audit_id": c.auditID})
		}
		rows := mine(run(t, "who-changed-what", map[string]string{"since": since, "namespace": ns}))
		assertRows(t, want, rows, []string{"actor_kind", "user", "route", "session_id", "verb", "resource", "subresource", "namespace", "name",
			"code", "decision_policy", "decision_rule", "approval_id", "approvers", "audit_id"}, held)
		for _, r := range rows {
			assert.NotEqual(t, "never", r["name"], "a dry run changed nothing")
			assert.NotEqual(t, doomed, r["name"], "a denied deletion changed nothing")
		}
	})

	t.Run("secret-reads", func(t *testing.T) {
		reads := map[string]int{}
		byKey := map[string]map[string]string{}
		for _, c := range calls {
			if c.resource != "secrets" || c.verb != "get" || c.outcome != "succeeded" {
				continue
			}
			k := c.user + c.route
			reads[k]++
			byKey[k] = map[string]string{"user": c.user, "actor_kind": kind(c), "route": c.route, "session_id": sessionOf(c),
				"namespace": c.ns, "name": c.name, "verb": c.verb}
		}
		var want []map[string]string
		for k, r := range byKey {
			r["reads"] = strconv.Itoa(reads[k])
			want = append(want, r)
		}
		assertRows(t, want, mine(run(t, "secret-reads", sinceParams)),
			[]string{"user", "actor_kind", "route", "session_id", "namespace", "name", "verb", "reads"}, held)
	})

	t.Run("privileged-operations", func(t *testing.T) {
		var want []map[string]string
		for _, c := range calls {
			write := c.verb == "create" || c.verb == "update" || c.verb == "patch" || c.verb == "delete"
			if !(c.approval != nil || c.sub == "exec" || (c.resource == "secrets" && write) || (c.group == rbacv1.GroupName && write) || c.verb == "delete") {
				continue
			}
			id, state, approvers := approval(c)
			var reasons []string
			requesterReason, requester := "", ""
			if c.approval != nil {
				reasons, requesterReason, requester = c.approval.reasons, c.approval.requesterReason, c.approval.requester
			}
			r := map[string]string{"user": c.user, "session_id": sessionOf(c), "route": c.route, "outcome": c.outcome, "verb": c.verb,
				"resource": c.resource, "subresource": c.sub, "namespace": nsRow(c), "name": c.name, "code": strconv.Itoa(c.code),
				"approval_id": id, "approval_state": state, "approvers": list(approvers), "approval_reasons": list(reasons),
				"approval_requester_reason": requesterReason, "approval_requester": requester, "approval_original_user": "",
				"decision_policy": c.policy, "decision_rule": c.rule}
			want = append(want, r)
			if c.resent {
				h := maps(r)
				h["outcome"], h["code"] = "held", "403"
				want = append(want, h)
			}
		}
		assertRows(t, want, mine(run(t, "privileged-operations", sinceParams)), []string{"user", "session_id", "route", "outcome", "verb",
			"resource", "subresource", "namespace", "name", "code", "approval_id", "approval_state", "approvers", "approval_reasons",
			"approval_requester_reason", "approval_requester", "approval_original_user", "decision_policy", "decision_rule"}, held)
	})

	t.Run("denied-attempts", func(t *testing.T) {
		var want []map[string]string
		reasons := map[string]string{}
		for _, c := range calls {
			if c.outcome != "denied" {
				continue
			}
			deniedBy := "authorization"
			switch {
			case c.route == "gateway-only":
				deniedBy = "gateway"
			case c.action == "deny":
				deniedBy = "admission"
			case c.action == "requireApproval":
				deniedBy = "approval"
			}
			id, state, _ := approval(c)
			want = append(want, map[string]string{"user": c.user, "actor_kind": kind(c), "route": c.route, "session_id": sessionOf(c),
				"verb": c.verb, "resource": c.resource, "subresource": c.sub, "namespace": nsRow(c), "name": c.name, "code": strconv.Itoa(c.code),
				"denied_by": deniedBy, "decision_policy": c.policy, "decision_rule": c.rule, "approval_id": id, "approval_state": state})
			switch c.step {
			case "blocked-exec":
				reasons[c.name] = "The pod does not meet the Pod Security Standards' baseline level"
			case "held-denied":
				reasons[c.name] = "approval Denied"
			case "held-expired":
				reasons[c.name] = "still pending at the hold limit"
			}
		}
		rows := mine(run(t, "denied-attempts", sinceParams))
		assertRows(t, want, rows, []string{"user", "actor_kind", "route", "session_id", "verb", "resource", "subresource", "namespace", "name",
			"code", "denied_by", "decision_policy", "decision_rule", "approval_id", "approval_state"}, held)
		for _, r := range rows {
			if w, ok := reasons[r["name"]]; ok {
				assert.Contains(t, r["reason"], w, "the reason given for %s", r["name"])
			}
		}
	})

	t.Run("exec-sessions", func(t *testing.T) {
		var want []map[string]string
		for _, c := range calls {
			if c.sub != "exec" {
				continue
			}
			command := "echo truth"
			if c.route == "gateway-only" {
				command = "" // the gateway refused it before any URI was audited
			}
			want = append(want, map[string]string{"audit_id": c.auditID, "user": c.user, "session_id": sessionOf(c), "route": c.route,
				"namespace": c.ns, "pod": c.name, "subresource": c.sub, "command": command, "final_outcome": c.outcome,
				"code": strconv.Itoa(c.code)})
		}
		assertRows(t, want, mine(run(t, "exec-sessions", sinceParams)), []string{"audit_id", "user", "session_id", "route", "namespace",
			"pod", "subresource", "command", "final_outcome", "code"}, held)
	})

	t.Run("bypass-traffic", func(t *testing.T) {
		counts := map[string]int{}
		rowsBy := map[string]map[string]string{}
		for _, c := range calls {
			if c.via != "direct" {
				continue
			}
			k := strings.Join([]string{c.user, c.verb, c.resource, c.ns}, "/")
			counts[k]++
			rowsBy[k] = map[string]string{"user": c.user, "actor_kind": kind(c), "authenticated_user": c.user, "gateway_extras": "false",
				"verb": c.verb, "resource": c.resource, "namespace": c.ns}
		}
		var want []map[string]string
		for k, r := range rowsBy {
			r["requests"] = strconv.Itoa(counts[k])
			want = append(want, r)
		}
		assertRows(t, want, mine(run(t, "bypass-traffic", sinceParams)), []string{"user", "actor_kind", "authenticated_user",
			"gateway_extras", "verb", "resource", "namespace", "requests"}, held)
	})

	t.Run("per-identity-activity", func(t *testing.T) {
		type tally struct{ requests, changes, dry, denied, secrets int }
		by := map[string]*tally{}
		for _, c := range calls {
			tl := by[c.user]
			if tl == nil {
				tl = &tally{}
				by[c.user] = tl
			}
			tl.requests++
			if c.changed {
				tl.changes++
			}
			if c.outcome == "dry-run" {
				tl.dry++
			}
			if c.outcome == "denied" {
				tl.denied++
			}
			if c.resource == "secrets" {
				tl.secrets++
			}
		}
		var want []map[string]string
		for u, tl := range by {
			c := &truthCall{user: u}
			issuer, subject, sessions, bypassed := "", "", "0", "true"
			if u == agentUser {
				issuer, subject, sessions, bypassed = bed.issuer.URL, agentName, "1", "false"
			}
			want = append(want, map[string]string{"user": u, "actor_kind": kind(c), "issuer": issuer, "subject": subject,
				"requests": strconv.Itoa(tl.requests), "sessions": sessions, "changes": strconv.Itoa(tl.changes),
				"dry_runs": strconv.Itoa(tl.dry), "denied": strconv.Itoa(tl.denied), "secret_accesses": strconv.Itoa(tl.secrets),
				"bypassed_gateway": bypassed})
		}
		assertRows(t, want, mine(run(t, "per-identity-activity", sinceParams)), []string{"user", "actor_kind", "issuer", "subject",
			"requests", "sessions", "changes", "dry_runs", "denied", "secret_accesses", "bypassed_gateway"}, held)
	})

	t.Run("sessions-overview", func(t *testing.T) {
		var requests, changes, denied, secrets, execs int
		var ids []string
		for _, c := range calls {
			if c.via != "gateway" {
				continue
			}
			requests++
			if c.changed {
				changes++
			}
			if c.outcome == "denied" {
				denied++
			}
			if c.resource == "secrets" {
				secrets++
			}
			if c.sub == "exec" {
				execs++
			}
			if c.approval != nil {
				ids = append(ids, c.approval.id)
			}
		}
		sort.Strings(ids)
		want := []map[string]string{{"session_id": session, "user": agentUser, "label": label, "ended": "false",
			"requests": strconv.Itoa(requests), "changes": strconv.Itoa(changes), "denied": strconv.Itoa(denied),
			"secret_accesses": strconv.Itoa(secrets), "execs": strconv.Itoa(execs), "approvals": list(ids)}}
		var rows []map[string]string
		for _, r := range run(t, "sessions-overview", sinceParams) {
			if r["session_id"] == session {
				rows = append(rows, r)
			}
		}
		assertRows(t, want, rows, []string{"session_id", "user", "label", "ended", "requests", "changes", "denied", "secret_accesses",
			"execs", "approvals"}, held)
	})

	t.Run("audit-id", func(t *testing.T) {
		var heldID string
		for id := range held {
			heldID = id
		}
		for _, tc := range []struct {
			id   string
			want map[string]string
		}{
			{approved.auditID, map[string]string{"stage": "ResponseComplete", "route": "gateway", "attempt": "answered", "outcome": "succeeded",
				"changed": "true", "dry_run": "false", "user": agentUser, "session_id": session, "verb": "create", "resource": "secrets",
				"namespace": ns, "name": "approved", "code": "201", "decision_component": "validating-webhook", "decision_action": "requireApproval",
				"decision_policy": "gatehouse-approvals", "decision_rule": "secret-changes", "approval_id": approved.approval.id,
				"approval_state": "GrantUsed", "approval_requester": agentUser, "approval_requester_reason": reason,
				"approvers": list([]string{approverUser}), "approval_reasons": list(approved.approval.reasons), "held_audit_id": heldID,
				"gateway_code": "201", "actor_kind": "agent"}},
			{heldID, map[string]string{"stage": "ResponseComplete", "route": "gateway", "attempt": "held", "outcome": "held",
				"changed": "false", "dry_run": "false", "user": agentUser, "session_id": session, "verb": "create", "resource": "secrets",
				"namespace": ns, "name": "approved", "code": "403", "decision_component": "validating-webhook", "decision_action": "requireApproval",
				"decision_policy": "gatehouse-approvals", "decision_rule": "secret-changes", "approval_id": approved.approval.id,
				"approval_state": "GrantUsed", "approval_requester": agentUser, "approval_requester_reason": reason,
				"approvers": list([]string{approverUser}), "approval_reasons": list(approved.approval.reasons), "held_audit_id": heldID,
				"gateway_code": "201", "actor_kind": "agent"}},
			{dry.auditID, map[string]string{"stage": "ResponseComplete", "route": "gateway", "attempt": "answered", "outcome": "dry-run",
				"changed": "false", "dry_run": "true", "user": agentUser, "session_id": session, "verb": "create", "resource": "secrets",
				"namespace": ns, "name": "never", "code": "201", "decision_component": "validating-webhook", "decision_action": "requireApproval",
				"decision_policy": "gatehouse-approvals", "decision_rule": "secret-changes", "approval_id": "", "approval_state": "",
				"approval_requester": "", "approval_requester_reason": "", "approvers": list(nil), "approval_reasons": list(nil),
				"held_audit_id": "", "gateway_code": "201", "actor_kind": "agent"}},
		} {
			rows := run(t, "audit-id", map[string]string{"audit_id": tc.id})
			require.Len(t, rows, 1, tc.id)
			got := map[string]string{}
			for k := range tc.want {
				got[k] = rows[0][k]
			}
			assert.Equal(t, tc.want, got, tc.id)
			assert.NotEmpty(t, rows[0]["decision_id"], "the event names its decision")
			assert.NotEmpty(t, rows[0]["decision_message"], "joined with the decision record")
		}
	})

	t.Run("rbac-changes", func(t *testing.T) {
		var want []map[string]string
		for _, c := range calls {
			if c.group != rbacv1.GroupName || !c.changed {
				continue
			}
			want = append(want, map[string]string{"user": c.user, "actor_kind": kind(c), "route": c.route, "session_id": sessionOf(c),
				"verb": c.verb, "resource": c.resource, "namespace": c.ns, "name": c.name, "code": strconv.Itoa(c.code), "audit_id": c.auditID})
		}
		assertRows(t, want, mine(run(t, "rbac-changes", sinceParams)), []string{"user", "actor_kind", "route", "session_id", "verb",
			"resource", "namespace", "name", "code", "audit_id"}, held)
	})

	t.Run("approvals", func(t *testing.T) {
		var want []map[string]string
		for _, c := range calls {
			if c.approval == nil {
				continue
			}
			a := c.approval
			ops, done := "0", list(nil)
			if c.changed {
				ops, done = "1", list([]string{c.verb + " " + c.resource + " " + c.ns + "/" + c.name})
			}
			want = append(want, map[string]string{"approval_id": a.id, "state": a.state, "requester": a.requester, "original_user": "",
				"requester_reason": a.requesterReason, "rule": c.rule, "approvers": list(a.approvers), "reasons": list(a.reasons),
				"denied_by": list(a.deniedBy), "path": approvals.PathAdmission, "operations": ops, "done": done})
		}
		var rows []map[string]string
		for _, r := range run(t, "approvals", sinceParams) {
			if r["requester"] == agentUser {
				rows = append(rows, r)
			}
		}
		assertRows(t, want, rows, []string{"approval_id", "state", "requester", "original_user", "requester_reason", "rule", "approvers",
			"reasons", "denied_by", "path", "operations", "done"}, held)
	})

	t.Run("masked-values", func(t *testing.T) {
		events := map[string]int{}
		rowsBy := map[string]map[string]string{}
		for _, c := range calls {
			// Secret values are in what a Secret call carried: a create's object (held or not), a
			// successful read's answer; a refused read carried none.
			if c.resource != "secrets" || c.verb == "get" && c.code >= 400 {
				continue
			}
			k := strings.Join([]string{c.name, c.user, c.route}, "/")
			events[k] += len(c.stages)
			if c.resent {
				events[k]++
			}
			rowsBy[k] = map[string]string{"resource": c.resource, "namespace": c.ns, "name": c.name, "user": c.user, "route": c.route}
		}
		var want []map[string]string
		for k, r := range rowsBy {
			r["events"] = strconv.Itoa(events[k])
			want = append(want, r)
		}
		rows := mine(run(t, "masked-values", sinceParams))
		assertRows(t, want, rows, []string{"resource", "namespace", "name", "user", "route", "events"}, held)
		for _, r := range rows {
			n, err := strconv.Atoi(r["masked_values"])
			require.NoError(t, err)
			assert.Positive(t, n)
		}
	})

	t.Run("open-streams", func(t *testing.T) {
		var rows []map[string]string
		for _, r := range run(t, "open-streams", sinceParams) {
			if r["session_id"] == session {
				rows = append(rows, r)
			}
		}
		assertRows(t, []map[string]string{{"record_id": watching.auditID, "audit_id": watching.auditID, "session_id": session,
			"user": agentUser, "verb": "watch", "resource": "configmaps", "namespace": ns}}, rows,
			[]string{"record_id", "audit_id", "session_id", "user", "verb", "resource", "namespace"}, held)
	})

	for _, name := range []string{"unrecorded-gateway-traffic", "ingest-errors", "dead-letters"} {
		t.Run(name, func(t *testing.T) {
			assert.Empty(t, run(t, name, sinceParams), "should be empty")
		})
	}

	t.Run("gatehouse sql answers the same", func(t *testing.T) {
		bin, err := testbed.GatehouseBinary()
		require.NoError(t, err)
		out, err := exec.CommandContext(ctx, bin, "sql", "--clickhouse-addr", bed.clickhouse.NativeAddr, "--query", "who-changed-what",
			"--param", "since="+start.Format(time.RFC3339Nano), "--param", "namespace="+ns, "-o", "json").Output()
		require.NoError(t, err)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal(out, &rows))
		want := run(t, "who-changed-what", map[string]string{"since": since, "namespace": ns})
		require.Len(t, rows, len(want))
		for i, r := range rows {
			assert.Equal(t, want[i]["audit_id"], r["audit_id"])
			assert.Equal(t, want[i]["user"], r["user"])
		}
	})

	t.Run("every canned query is checked", func(t *testing.T) {
		qs, err := schema.Queries()
		require.NoError(t, err)
		checked := map[string]bool{"session-timeline": true, "who-changed-what": true, "secret-reads": true, "privileged-operations": true,
			"denied-attempts": true, "exec-sessions": true, "bypass-traffic": true, "per-identity-activity": true, "sessions-overview": true,
			"audit-id": true, "rbac-changes": true, "approvals": true, "masked-values": true, "open-streams": true,
			"unrecorded-gateway-traffic": true, "ingest-errors": true, "dead-letters": true}
		for _, q := range qs {
			assert.True(t, checked[q.Name], "canned query %s has no ground truth here", q.Name)
		}
	})
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func boolPtr(b bool) *bool { return &b }

func approverHTTP(t *testing.T, name string) *http.Client {
	t.Helper()
	hc, err := rest.HTTPClientFor(&rest.Config{Host: bed.consoleURL, BearerToken: token(name, approverGroup), TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}})
	require.NoError(t, err)
	return hc
}

// approvalIDOf reads the approval ID of a refusal.
func approvalIDOf(t *testing.T, err error) string {
	t.Helper()
	var st apierrors.APIStatus
	require.True(t, errors.As(err, &st), "%v", err)
	s := st.Status()
	id, ok := approvals.IDFromStatus(&s)
	require.True(t, ok, "the refusal names its approval request: %+v", s.Details)
	return id
}

// timelineColumns are the columns of session-timeline the test compares (time columns are
// checked to be in the test's window elsewhere).
var timelineColumns = []string{"stage", "route", "attempt", "outcome", "verb", "resource", "subresource", "namespace", "name", "code",
	"decision_action", "decision_policy", "decision_rule", "approval_id", "approval_state", "audit_id"}

// expectedTimeline returns the rows session-timeline must show for the gateway calls.
func expectedTimeline(calls []*truthCall) []map[string]string {
	var out []map[string]string
	for _, c := range calls {
		if c.via != "gateway" {
			continue
		}
		approvalID, approvalState := "", ""
		if c.approval != nil {
			approvalID, approvalState = c.approval.id, c.approval.state
		}
		for _, stage := range c.stages {
			r := map[string]string{"stage": stage, "route": c.route, "attempt": "answered", "outcome": c.outcome, "verb": c.verb,
				"resource": c.resource, "subresource": c.sub, "namespace": c.ns, "name": c.name, "code": strconv.Itoa(c.code),
				"decision_action": c.action, "decision_policy": c.policy, "decision_rule": c.rule,
				"approval_id": approvalID, "approval_state": approvalState, "audit_id": c.auditID}
			if stage == "ResponseStarted" {
				r["outcome"] = "started"
				if c.open {
					r["outcome"], r["attempt"] = "open", "open"
				}
			}
			if c.resource == "namespaces" {
				r["namespace"] = c.name
			}
			out = append(out, r)
		}
		if c.resent {
			out = append(out, map[string]string{"stage": "ResponseComplete", "route": "gateway", "attempt": "held", "outcome": "held",
				"verb": c.verb, "resource": c.resource, "subresource": c.sub, "namespace": c.ns, "name": c.name, "code": "403",
				"decision_action": c.action, "decision_policy": c.policy, "decision_rule": c.rule,
				"approval_id": approvalID, "approval_state": approvalState, "audit_id": "<held>"})
		}
	}
	return out
}

// heldIDs returns the Audit-IDs of the held attempts among rows.
func heldIDs(rows []map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, r := range rows {
		if r["attempt"] == "held" {
			out[r["audit_id"]] = true
		}
	}
	return out
}

// assertRows checks that rows, projected on columns, are exactly want (in any order). An
// audit_id of "<held>" in want matches one of the held attempts' IDs.
func assertRows(t *testing.T, want, rows []map[string]string, columns []string, held map[string]bool) {
	t.Helper()
	key := func(r map[string]string) string {
		parts := make([]string, len(columns))
		for i, c := range columns {
			v := r[c]
			if c == "audit_id" && held[v] {
				v = "<held>"
			}
			parts[i] = c + "=" + v
		}
		return strings.Join(parts, " ")
	}
	var w, g []string
	for _, r := range want {
		w = append(w, key(r))
	}
	for _, r := range rows {
		g = append(g, key(r))
	}
	sort.Strings(w)
	sort.Strings(g)
	if !slices.Equal(w, g) {
		var missing, extra []string
		for _, k := range w {
			if !slices.Contains(g, k) {
				missing = append(missing, k)
			}
		}
		for _, k := range g {
			if !slices.Contains(w, k) {
				extra = append(extra, k)
			}
		}
		t.Errorf("rows differ from the truth\nmissing (the session did this, the trail does not say so):\n  %s\nextra (the trail says this, the session did not do it):\n  %s",
			strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
	}
}
