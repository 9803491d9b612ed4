package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// setupClient acts directly as a controller (a service account the default pack does not hold
// for approval) to prepare objects.
func setupClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg, err := bed.kube.AddUser("system:serviceaccount:" + setupServiceAccount)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// approveWhenPending approves the pending request matching match as approver, once it appears.
func approveWhenPending(t *testing.T, approver user, match func(*approvals.Request) bool) *approvals.Request {
	t.Helper()
	req := approver.pending(t, match)
	_, err := approver.approvals(t, "approve", req.ID, "--reason", "e2e")
	require.NoError(t, err)
	return req
}

// TestHeldWritesOfEveryKind: a write held for approval through the proxy is held alike whatever
// its verb and body: merge, strategic and JSON patches, server-side apply, YAML and protobuf
// bodies. Admission fingerprints the final object, the proxy waits and re-sends once approved.
func TestHeldWritesOfEveryKind(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "held-kinds")
	agent := newUser("agent-kinds", agentGroup)
	approver := newUser("approver-kinds", approverGroup)
	setup := setupClient(t)
	for _, name := range []string{"merge", "strategic", "json", "apply"} {
		_, err := setup.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: map[string]string{"mode": "old"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	agentCfg := &rest.Config{Host: bed.proxyURL, BearerToken: agent.token, TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}}

	tests := []struct {
		name, resource, object string
		run                    func() error
	}{
		{"merge patch", "secrets", "merge", func() error {
			out, err := agent.kubectl(ctx, "", "-n", ns, "patch", "secret", "merge", "--type=merge", "-p", `{"stringData":{"mode":"merged"}}`)
			return withOutput(err, out)
		}},
		{"strategic merge patch", "secrets", "strategic", func() error {
			out, err := agent.kubectl(ctx, "", "-n", ns, "patch", "secret", "strategic", "-p", `{"stringData":{"mode":"strategic"}}`)
			return withOutput(err, out)
		}},
		{"JSON patch", "secrets", "json", func() error {
			out, err := agent.kubectl(ctx, "", "-n", ns, "patch", "secret", "json", "--type=json", "-p", `[{"op":"add","path":"/metadata/labels","value":{"patched":"json"}}]`)
			return withOutput(err, out)
		}},
		{"server-side apply", "secrets", "apply", func() error {
			out, err := agent.kubectl(ctx, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: apply\n  labels: {applied: server-side}\n", "-n", ns,
				"apply", "--server-side", "--force-conflicts", "-f", "-")
			return withOutput(err, out)
		}},
		{"YAML body", "secrets", "yaml-body", func() error {
			return rawCreate(ctx, agent, "/api/v1/namespaces/"+ns+"/secrets", "application/yaml",
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: yaml-body\nstringData:\n  mode: yaml\n")
		}},
		{"protobuf body and protobuf answers", "clusterrolebindings", "e2e-held-protobuf", func() error {
			cfg := rest.CopyConfig(agentCfg)
			cfg.ContentType = runtime.ContentTypeProtobuf
			cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, testbed.ClusterAdminBinding("e2e-held-protobuf", "nobody"), metav1.CreateOptions{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tt.run() }()
			req := approveWhenPending(t, approver, forName(tt.resource, tt.object))
			assert.Equal(t, agent.user, req.Requester.User)
			select {
			case err := <-done:
				require.NoError(t, err, "the held write completes once approved")
			case <-time.After(60 * time.Second):
				t.Fatal("the held write did not return")
			}
			got, err := approver.approvals(t, "show", req.ID, "-o", "json")
			require.NoError(t, err)
			assert.Contains(t, got, `"state": "Used"`, "the grant was used by the re-sent call")
		})
	}
	s, err := setup.CoreV1().Secrets(ns).Get(ctx, "merge", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "merged", string(s.Data["mode"]))
	s, err = setup.CoreV1().Secrets(ns).Get(ctx, "json", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "json", s.Labels["patched"])
	s, err = setup.CoreV1().Secrets(ns).Get(ctx, "apply", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "server-side", s.Labels["applied"])
	s, err = setup.CoreV1().Secrets(ns).Get(ctx, "yaml-body", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "yaml", string(s.Data["mode"]))
	assert.NotEmpty(t, s.Annotations[identity.AnnotationApprovalID], "the object shows the approval it was written under")
}

func withOutput(err error, out string) error {
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// rawCreate POSTs body with contentType through the proxy as id.
func rawCreate(ctx context.Context, id user, path, contentType, body string) error {
	hc, err := rest.HTTPClientFor(&rest.Config{Host: bed.proxyURL, BearerToken: id.token, TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bed.proxyURL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s", resp.Status, data)
	}
	return nil
}

// TestDryRunsThroughTheProxy: a dry run changes nothing, so it is never held: kubectl diff and
// apply --dry-run=server on a manifest set with a Secret succeed, with a warning that the change
// itself needs approval, and no approval request is made.
func TestDryRunsThroughTheProxy(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "dry-run")
	agent := newUser("agent-dry", agentGroup)
	manifests := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: %[1]s}
data: {mode: safe}
---
apiVersion: v1
kind: Secret
metadata: {name: credentials, namespace: %[1]s}
stringData: {password: dry-run-canary}
`, ns)
	out, err := agent.kubectl(ctx, manifests, "apply", "--dry-run=server", "-f", "-")
	require.NoError(t, err, out)
	assert.Contains(t, out, "secret/credentials created (server dry run)")
	assert.Contains(t, out, "requires approval", "the warning says the change itself needs approval")
	assert.Contains(t, out, "This was a dry run")

	out, err = agent.kubectl(ctx, manifests, "diff", "-f", "-")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out)
	assert.Equal(t, 1, exit.ExitCode(), "kubectl diff found differences, and nothing failed: %s", out)
	assert.Contains(t, out, "credentials")
	assert.NotContains(t, out, "dry-run-canary", "the diff of a Secret shows no secret value")

	_, err = bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "credentials", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a dry run created nothing")
	list, err := newUser("approver-dry", approverGroup).approvals(t, "list", "--all", "-o", "json")
	require.NoError(t, err)
	assert.NotContains(t, list, ns, "a dry run makes no approval request")

	// A deny rule applies to a dry run.
	out, err = agent.kubectl(ctx, "", "create", "configmap", "x", "-n", "gatehouse", "--dry-run=server")
	require.Error(t, err)
	assert.Contains(t, out, "gatehouse-namespace")
}

// TestClientOptionsInTheServerURL: a kubeconfig whose server URL carries client options works for
// everyday kubectl (get, apply, exec, logs -f, port-forward); with hold=refuse a held call answers
// at once with the approval ID, rule, approvers and the commands, and its retry passes once
// approved.
func TestClientOptionsInTheServerURL(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "url-options")
	agent := newUser("agent-url", agentGroup).withOptions("session=url-run,hold=refuse,reason=" + urlEscape("rotate the leaked key, ticket 42"))
	approver := newUser("approver-url", approverGroup)
	_, err := bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "work", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
	require.NoError(t, err)

	k := func(t *testing.T, env []string, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bed.kube.Kubectl, append([]string{"--kubeconfig", agent.kubeconfig, "-n", ns}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "kubectl %v: %s", args, stderr.String())
		return string(out)
	}
	t.Run("get and apply", func(t *testing.T) {
		k(t, nil, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: safe\n", "apply", "-f", "-")
		assert.Equal(t, "safe", k(t, nil, "", "get", "configmap", "settings", "-o", "jsonpath={.data.mode}"))
	})
	for _, ws := range []string{"false", "true"} {
		t.Run("exec websockets="+ws, func(t *testing.T) {
			assert.Equal(t, "THROUGH THE URL\n", k(t, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}, "through the url\n", "exec", "-i", "work", "--", "tr", "a-z", "A-Z"))
		})
		t.Run("port-forward websockets="+ws, func(t *testing.T) {
			testbed.CheckPortForward(t, bed.kube.Kubectl, agent.kubeconfig, ns, "work", ws == "true")
		})
	}
	t.Run("logs -f", func(t *testing.T) {
		testbed.CheckLogsFollow(t, bed.kubelet, bed.kube.Kubectl, agent.kubeconfig, ns, "work")
	})
	t.Run("hold=refuse, approve, retry", func(t *testing.T) {
		start := time.Now()
		out, err := agent.kubectl(ctx, "", "-n", ns, "create", "secret", "generic", "db", "--from-literal=password=url-canary")
		require.Error(t, err)
		assert.Less(t, time.Since(start), 15*time.Second, "answered at once")
		id := approvalID(t, out)
		for _, want := range []string{`rule "secret-changes"`, approverGroup, "gatehouse approvals approve " + id, "send the same request again",
			`"rotate the leaked key, ticket 42"`} {
			assert.Contains(t, out, want)
		}
		req, err := approver.approvals(t, "show", id)
		require.NoError(t, err)
		assert.Contains(t, req, "rotate the leaked key, ticket 42", "approvers see the reason")
		assert.NotContains(t, req, "url-canary")

		_, err = approver.approvals(t, "approve", id)
		require.NoError(t, err)
		out, err = agent.kubectl(ctx, "", "-n", ns, "create", "secret", "generic", "db", "--from-literal=password=url-canary")
		require.NoError(t, err, "the retry passes once approved: %s", out)
		shown, err := approver.approvals(t, "show", id, "-o", "json")
		require.NoError(t, err)
		assert.Contains(t, shown, `"state": "Used"`)
	})
}

func urlEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", ",", "%2C", "/", "%2F").Replace(s)
}

// TestExecHeldForApproval: a protocol upgrade admission holds is held and re-sent like any call;
// the exec runs once approved, over SPDY and WebSocket.
func TestExecHeldForApproval(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "held-exec")
	for _, name := range []string{"db-0", "db-probe"} {
		_, err := bed.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
		require.NoError(t, err)
	}
	policy := fmt.Sprintf(`apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-held-exec}
spec:
  priority: 150
  rules:
  - name: exec-into-databases
    match: {operations: [CONNECT], resources: [pods/exec], namespaces: [%s]}
    action: requireApproval
    message: A shell in a database pod is reviewed.
    approval: {approverGroups: ["gatehouse:approvers"], approvals: 1, grantTTL: 5m}
`, ns)
	admin := func(stdin string, args ...string) {
		cmd := exec.Command(bed.kube.Kubectl, append([]string{"--kubeconfig", bed.kube.Kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	admin(policy, "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = exec.Command(bed.kube.Kubectl, "--kubeconfig", bed.kube.Kubeconfig, "delete", "accesspolicy", "e2e-held-exec").CombinedOutput()
	})
	agent := newUser("agent-exec", agentGroup)
	approver := newUser("approver-exec", approverGroup)
	// The webhook and the proxy load the policy: wait until an exec (into another pod, so that
	// the held execs below make requests of their own) is held.
	require.Eventually(t, func() bool {
		out, err := agent.withOptions("hold=refuse").kubectl(ctx, "", "-n", ns, "exec", "db-probe", "--", "true")
		return err != nil && strings.Contains(out, "exec-into-databases")
	}, 30*time.Second, 250*time.Millisecond)
	for _, ws := range []string{"false", "true"} {
		t.Run("websockets="+ws, func(t *testing.T) {
			done := make(chan error, 1)
			var out string
			go func() {
				cmd := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", agent.kubeconfig, "-n", ns, "exec", "-i", "db-0", "--", "tr", "a-z", "A-Z")
				cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
				cmd.Stdin = strings.NewReader("held exec\n")
				b, err := cmd.CombinedOutput()
				out = string(b)
				done <- err
			}()
			approveWhenPending(t, approver, func(r *approvals.Request) bool {
				return r.Operation.Subresource == "exec" && r.Operation.Name == "db-0" && r.State == approvals.StatePending && r.Requester.User == agent.user
			})
			select {
			case err := <-done:
				require.NoError(t, err, out)
				assert.Equal(t, "HELD EXEC\n", out)
			case <-time.After(60 * time.Second):
				t.Fatal("the held exec did not return")
			}
		})
	}
}

// TestSelfApprovalThroughImpersonation: Alice, an approver, sends an operation as bob (kubectl
// --as, which RBAC lets her do); she cannot approve it, and the request names her.
func TestSelfApprovalThroughImpersonation(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "self-approve")
	admin := setupClient(t)
	_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-impersonate-bob"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"oidc:bob-imp"}},
			{APIGroups: []string{""}, Resources: []string{"groups"}, Verbs: []string{"impersonate"}, ResourceNames: []string{agentGroup}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-alice-impersonates-bob"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "e2e-impersonate-bob"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "oidc:alice-imp"}}}, metav1.CreateOptions{})
	require.NoError(t, err)

	alice := newUser("alice-imp", approverGroup)
	out, err := alice.withOptions("hold=refuse").kubectl(ctx, "", "--as", "oidc:bob-imp", "--as-group", agentGroup,
		"-n", ns, "create", "secret", "generic", "db", "--from-literal=a=b")
	require.Error(t, err, out)
	id := approvalID(t, out)
	shown, err := alice.approvals(t, "show", id, "-o", "json")
	require.NoError(t, err, "alice sees the request she sent")
	var req approvals.Request
	require.NoError(t, json.Unmarshal([]byte(shown), &req))
	assert.Equal(t, "oidc:bob-imp", req.Requester.User)
	assert.Equal(t, "oidc:alice-imp", req.OriginalUser, "the verified user is stored")

	out, err = alice.approvals(t, "approve", id)
	require.Error(t, err, "Alice approving what she sent as bob")
	assert.Contains(t, out, "cannot decide their own")
	_, err = newUser("approver-imp", approverGroup).approvals(t, "approve", id)
	require.NoError(t, err)
	out, err = alice.kubectl(ctx, "", "--as", "oidc:bob-imp", "--as-group", agentGroup, "-n", ns, "create", "secret", "generic", "db", "--from-literal=a=b")
	require.NoError(t, err, "approved by someone else, it runs: %s", out)
}

// TestAgentsSeeOnlyTheirOwnRequests: an agent cannot list, watch or read other identities'
// approval requests (and their objects).
func TestAgentsSeeOnlyTheirOwnRequests(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "visibility")
	owner := newUser("agent-owner", agentGroup)
	other := newUser("agent-other", agentGroup)
	out, err := owner.withOptions("hold=refuse").kubectl(ctx, "", "-n", ns, "create", "secret", "generic", "private", "--from-literal=a=b")
	require.Error(t, err)
	id := approvalID(t, out)

	list, err := other.approvals(t, "list", "--all", "-o", "json")
	require.NoError(t, err)
	assert.NotContains(t, list, id, "another agent does not list it")
	out, err = other.approvals(t, "show", id)
	require.Error(t, err)
	assert.Contains(t, out, "not found")
	list, err = owner.approvals(t, "list", "-o", "json")
	require.NoError(t, err)
	assert.Contains(t, list, id, "its requester does")
	list, err = newUser("approver-vis", approverGroup).approvals(t, "list", "-o", "json")
	require.NoError(t, err)
	assert.Contains(t, list, id, "and its approvers")
}

// TestWebhookStatusDetailsReachTheClient: kube-apiserver passes the webhook's Status details
// through to a direct client, so any client can read the approval ID.
func TestWebhookStatusDetailsReachTheClient(t *testing.T) {
	direct, err := kubernetes.NewForConfig(bed.direct)
	require.NoError(t, err)
	_, err = direct.RbacV1().ClusterRoleBindings().Create(t.Context(), testbed.ClusterAdminBinding("e2e-details", "alice"), metav1.CreateOptions{})
	require.Error(t, err)
	var status apierrors.APIStatus
	require.True(t, errors.As(err, &status), "%v", err)
	st := status.Status()
	assert.Equal(t, int32(http.StatusForbidden), st.Code)
	id, ok := approvals.IDFromStatus(&st)
	require.True(t, ok, "details: %+v", st.Details)
	assert.Equal(t, approvalID(t, err.Error()), id)
}
