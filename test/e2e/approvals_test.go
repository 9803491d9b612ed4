package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// heldCall runs a kubectl command through Gatehouse in the background.
type heldCall struct {
	done chan struct{}
	out  string
	err  error
	at   time.Time // when it returned
}

func hold(ctx context.Context, id user, stdin string, args ...string) *heldCall {
	c := &heldCall{done: make(chan struct{})}
	go func() {
		c.out, c.err = id.kubectl(ctx, stdin, args...)
		c.at = time.Now()
		close(c.done)
	}()
	return c
}

func (c *heldCall) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the held call did not return")
	}
}

func (c *heldCall) returned() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// TestApprovalThroughTheProxy: an agent creates a cluster-admin binding through Gatehouse; the
// call is held until an approver approves with the CLI, then completes, and the object carries
// its approval.
func TestApprovalThroughTheProxy(t *testing.T) {
	ctx := t.Context()
	agent := newUser("agent-1", agentGroup)
	approver := newUser("approver-1", approverGroup)

	call := hold(ctx, agent, "", "create", "clusterrolebinding", "agent-1-admin", "--clusterrole=cluster-admin", "--user=agent-1")
	req := approver.pending(t, forName("clusterrolebindings", "agent-1-admin"))
	assert.Equal(t, approvals.PathAdmission, req.Path)
	assert.Equal(t, "oidc:agent-1", req.Requester.User)
	assert.Equal(t, "gatehouse-approvals", req.Policy.Policy)
	assert.Equal(t, "escalating-bindings", req.Policy.Rule)
	assert.Contains(t, string(req.Object), `"cluster-admin"`, "approvers see the object as admission sees it")
	assert.False(t, call.returned(), "the call is held while the request is pending")

	show, err := approver.approvals(t, "show", req.ID)
	require.NoError(t, err)
	assert.Contains(t, show, "create clusterrolebindings.rbac.authorization.k8s.io agent-1-admin")

	decided := time.Now()
	out, err := approver.approvals(t, "approve", req.ID, "--reason", "change 4711")
	require.NoError(t, err)
	assert.Contains(t, out, "Approved")
	call.wait(t)
	require.NoError(t, call.err, call.out)
	t.Logf("approve command to held call done: %s (includes kubectl's own exit and the CLI's process start)", call.at.Sub(decided))

	crb, err := bed.kube.Clientset.RbacV1().ClusterRoleBindings().Get(ctx, "agent-1-admin", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, req.ID, crb.Annotations[identity.AnnotationApprovalID], "the object shows the approval it was created under")
	assert.NotEmpty(t, crb.Annotations[identity.AnnotationSessionID])

	got, err := approver.approvals(t, "show", req.ID, "-o", "json")
	require.NoError(t, err)
	assert.Contains(t, got, `"state": "Used"`)
}

func TestApprovalDeniedThroughTheProxy(t *testing.T) {
	ctx := t.Context()
	agent := newUser("agent-2", agentGroup)
	approver := newUser("approver-2", approverGroup)
	ns := bed.kube.Namespace(t, "deny")

	call := hold(ctx, agent, "", "create", "secret", "generic", "db", "-n", ns, "--from-literal=password=hunter2")
	req := approver.pending(t, forName("secrets", "db"))
	assert.NotContains(t, string(req.Object), "hunter2", "approvers never see secret values")
	assert.NotContains(t, string(req.Object), "aHVudGVyMg", "nor their base64")
	_, err := approver.approvals(t, "deny", req.ID, "--reason", "use the vault")
	require.NoError(t, err)
	call.wait(t)
	require.Error(t, call.err)
	assert.Contains(t, call.out, "denied by oidc:approver-2: use the vault")
	assert.Contains(t, call.out, `rule "secret-changes"`, "the denial names the rule")
	assert.Contains(t, call.out, approverGroup, "and the approvers")
	_, err = bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	assert.True(t, isNotFound(err), "a denied operation does not run")
}

func TestSelfApprovalIsRefused(t *testing.T) {
	ctx := t.Context()
	// An agent that is also an approver still cannot approve its own request.
	agent := newUser("agent-3", agentGroup, approverGroup)
	call := hold(ctx, agent, "", "create", "clusterrolebinding", "agent-3-admin", "--clusterrole=cluster-admin", "--user=agent-3")
	req := agent.pending(t, forName("clusterrolebindings", "agent-3-admin"))
	out, err := agent.approvals(t, "approve", req.ID)
	require.Error(t, err)
	assert.Contains(t, out, "cannot decide their own")
	outsider := newUser("outsider", "dev")
	out, err = outsider.approvals(t, "approve", req.ID)
	require.Error(t, err)
	assert.Contains(t, out, "only members of")
	_, err = newUser("approver-3", approverGroup).approvals(t, "deny", req.ID)
	require.NoError(t, err)
	call.wait(t)
}

// TestApprovalExpires: a call is held no longer than the proxy's limit (--approval-timeout), and
// then told which request it waited for, by which rule, for whom, and how to go on.
func TestApprovalExpires(t *testing.T) {
	ctx := t.Context()
	agent := newUser("agent-4", agentGroup)
	ns := bed.kube.Namespace(t, "expire")
	start := time.Now()
	call := hold(ctx, agent.withOptions("hold=1h"), "", "create", "secret", "generic", "late", "-n", ns, "--from-literal=a=b")
	call.wait(t)
	require.Error(t, call.err)
	held := time.Since(start)
	assert.GreaterOrEqual(t, held, 19*time.Second, "held for the proxy's --approval-timeout")
	assert.Less(t, held, 50*time.Second, "a client's hold of an hour cannot exceed the proxy's limit")
	id := approvalID(t, call.out)
	for _, want := range []string{"held this request for 20s and nobody decided it", `rule "secret-changes"`, approverGroup,
		"gatehouse approvals approve " + id} {
		assert.Contains(t, call.out, want)
	}
}

// TestDirectPathBackstop: a client that bypasses the proxy is stopped by the webhook, which
// creates the approval request and names it; after approval the same call is admitted once.
func TestDirectPathBackstop(t *testing.T) {
	ctx := t.Context()
	direct, err := kubernetes.NewForConfig(bed.direct)
	require.NoError(t, err)
	approver := newUser("approver-5", approverGroup)
	crb := testbed.ClusterAdminBinding("direct-admin", "alice")

	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	require.Error(t, err)
	id := approvalID(t, err.Error())
	assert.Contains(t, err.Error(), "gatehouse approvals approve "+id, "the denial says how to approve")
	assert.Contains(t, err.Error(), `rule "escalating-bindings"`)

	// Approving "bind alice" does not admit "bind agent": the grant is bound to the content.
	_, err = approver.approvals(t, "approve", id, "--reason", "alice is on call")
	require.NoError(t, err)
	swapped := testbed.ClusterAdminBinding("direct-admin", "agent")
	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, swapped, metav1.CreateOptions{})
	require.Error(t, err, "a content swap after approval is denied")
	assert.NotContains(t, err.Error(), id)

	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	require.NoError(t, err, "the approved call is admitted on retry")
	got, err := direct.RbacV1().ClusterRoleBindings().Get(ctx, "direct-admin", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subjects[0].Name)

	// The grant is used up: the same call again needs a new approval.
	again := testbed.ClusterAdminBinding("direct-admin-2", "alice")
	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, again, metav1.CreateOptions{})
	require.Error(t, err)
	first := approvalID(t, err.Error())
	_, err = approver.approvals(t, "approve", first)
	require.NoError(t, err)
	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, again, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, direct.RbacV1().ClusterRoleBindings().Delete(ctx, "direct-admin-2", metav1.DeleteOptions{}))
	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, again, metav1.CreateOptions{})
	require.Error(t, err, "a second retry after the grant was used is denied")
	assert.NotEqual(t, first, approvalID(t, err.Error()), "and asks for a new approval")
}

// TestNATSDownFailsClosed: without NATS, operations that need approval (or a record) are denied
// with that reason, and ordinary work goes on.
func TestNATSDownFailsClosed(t *testing.T) {
	ctx := t.Context()
	direct, err := kubernetes.NewForConfig(bed.direct)
	require.NoError(t, err)
	ns := bed.kube.Namespace(t, "nats-down")
	approver := newUser("approver-6", approverGroup)

	// A pending request made before the outage survives it.
	_, err = direct.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{})
	require.Error(t, err)
	pendingID := approvalID(t, err.Error())

	bed.nats.Shutdown()
	restarted := false
	defer func() {
		if !restarted {
			require.NoError(t, bed.nats.Start())
		}
	}()
	// The webhook and the proxy notice: they are not ready.
	for _, url := range bed.natsReadyz {
		require.Eventually(t, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusServiceUnavailable
		}, 30*time.Second, 20*time.Millisecond, "%s still ready without NATS", url)
	}

	_, err = direct.RbacV1().ClusterRoleBindings().Create(ctx, testbed.ClusterAdminBinding("nats-down", "alice"), metav1.CreateOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NATS", "the denial gives the reason")

	_, err = direct.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ordinary"}}, metav1.CreateOptions{})
	require.NoError(t, err, "ordinary writes go on")
	_, err = direct.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err, "reads go on")

	agent := newUser("agent-6", agentGroup)
	out, err := agent.kubectl(ctx, "", "get", "configmaps", "-n", ns)
	require.Error(t, err, "the proxy refuses what it cannot record")
	assert.Contains(t, out, "ServiceUnavailable")

	require.NoError(t, bed.nats.Start())
	restarted = true
	// Every component reconnects and is ready again on its own.
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
	require.Eventually(t, func() bool {
		_, err := approver.approvals(t, "approve", pendingID, "--reason", "after the outage")
		return err == nil
	}, 30*time.Second, 250*time.Millisecond, "the request pending before the outage is decided after it")
	_, err = direct.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// approvalID extracts "ap-..." from a denial message.
func approvalID(t *testing.T, msg string) string {
	t.Helper()
	i := strings.Index(msg, "ap-")
	require.GreaterOrEqual(t, i, 0, "no approval ID in %q", msg)
	id := msg[i : i+19]
	require.Len(t, id, 19, msg)
	return id
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not found")
}
