package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHeldWritesFailClosedWithoutTheWebhook: a custom requireApproval rule on a resource the
// privileged (fail-closed) webhooks do not select, ConfigMaps here, is enforced by the general
// webhook, which fails open. A write through the gateway that the proxy's own evaluation holds
// carries the extra gatehouse.dev/hold, which selects a fail-closed twin of the general webhook:
// while the webhook is down such a write is refused, not let through unapproved, and ordinary
// writes still pass.
func TestHeldWritesFailClosedWithoutTheWebhook(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "held-down")
	policy := fmt.Sprintf(`apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: e2e-held-configmaps-%s
spec:
  priority: 150
  rules:
  - name: held-configmaps
    match:
      operations: [CREATE, UPDATE, DELETE]
      apiGroups: [""]
      resources: [configmaps]
      namespaces: [%s]
      names: ["held-*"]
    action: requireApproval
    message: ConfigMaps named held-* are reviewed.
    approval:
      approverGroups: ["gatehouse:approvers"]
`, ns, ns)
	file := filepath.Join(bed.dir, "policy-"+ns+".yaml")
	require.NoError(t, os.WriteFile(file, []byte(policy), 0o600))
	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bed.kube.Kubectl, append([]string{"--kubeconfig", bed.kube.Kubeconfig}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	admin("apply", "-f", file)
	t.Cleanup(func() {
		_ = exec.Command(bed.kube.Kubectl, "--kubeconfig", bed.kube.Kubeconfig, "delete", "-f", file).Run()
	})

	agent := newUser("agent-held-down", agentGroup).withOptions("hold=refuse")
	require.Eventually(t, func() bool {
		out, _ := agent.kubectl(ctx, "", "create", "configmap", "held-probe", "-n", ns, "--dry-run=server")
		return strings.Contains(out, "held-* are reviewed")
	}, 60*time.Second, 250*time.Millisecond, "the proxy and the webhook enforce the rule")
	out, err := agent.kubectl(ctx, "", "create", "configmap", "held-1", "-n", ns)
	require.Error(t, err, "held for approval while the webhook is up")
	assert.Contains(t, out, "gatehouse approvals approve ap-")

	// The webhook goes down. Its mutating webhook for gateway writes (failurePolicy Fail) would
	// stop every write through the gateway too; without it, the held webhook holds on its own.
	mutating, err := bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "gatehouse-mutating", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, bed.webhook.Stop())
	require.Eventually(t, func() bool {
		resp, err := http.Get(bed.webhook.Readyz())
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	}, 30*time.Second, 100*time.Millisecond, "the webhook stopped")
	require.NoError(t, bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "gatehouse-mutating", metav1.DeleteOptions{}))
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		mutating.ResourceVersion, mutating.UID, mutating.CreationTimestamp, mutating.ManagedFields = "", "", metav1.Time{}, nil
		// Also from t.Cleanup, when the test's context is already done.
		_, err := bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), mutating, metav1.CreateOptions{})
		require.NoError(t, err)
		require.NoError(t, bed.webhook.Start(context.Background()))
	}
	t.Cleanup(restart)

	plain := newUser("agent-held-down", agentGroup)
	out, err = plain.kubectl(ctx, "", "create", "configmap", "held-2", "-n", ns)
	require.Error(t, err, "a held write is refused while the webhook is down: %s", out)
	assert.Contains(t, out, "held.validate.gatehouse.dev")
	out, err = plain.kubectl(ctx, "", "create", "configmap", "ordinary", "-n", ns)
	require.NoError(t, err, "ordinary writes go on: %s", out)
	_, err = bed.kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "held-2", metav1.GetOptions{})
	assert.True(t, isNotFound(err), "nothing was written unapproved")

	restart()
	require.Eventually(t, func() bool {
		out, _ := agent.kubectl(ctx, "", "create", "configmap", "held-3", "-n", ns)
		return strings.Contains(out, "gatehouse approvals approve ap-")
	}, 60*time.Second, 250*time.Millisecond, "held for approval again once the webhook is back")
}
