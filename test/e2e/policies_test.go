package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestDefaultPackAlternativesWork checks that what each denial of the default pack suggests
// instead works through Gatehouse: a message that recommends something the pack itself refuses
// leaves an agent with nothing to do.
func TestDefaultPackAlternativesWork(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "alternatives")
	run := func(name string, mutate func(*corev1.Pod)) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		}
		if mutate != nil {
			mutate(p)
		}
		_, err := bed.kubelet.RunPod(ctx, p)
		require.NoError(t, err)
		bed.kubelet.AppendLog(ns, name, "app", "started\n")
	}
	run("web", nil)
	run("priv", func(p *corev1.Pod) {
		// Spelled as a runtime accepts it, not as a deny-list would.
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"cap_sys_admin"}}}
	})
	agent := newUser("alternatives-agent", agentGroup)

	kubectl := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		return agent.kubectl(ctx, "", args...)
	}
	tests := []struct {
		name string
		// denied is refused with a message that suggests each of alternatives.
		denied       []string
		rule         string
		suggestions  []string
		alternatives [][]string
	}{
		{
			name:         "exec into a privileged pod",
			denied:       []string{"exec", "-n", ns, "priv", "--", "echo", "hi"},
			rule:         "no-exec-into-privileged-pods",
			suggestions:  []string{"kubectl logs", "kubectl describe pod"},
			alternatives: [][]string{{"logs", "-n", ns, "priv"}, {"describe", "pod", "-n", ns, "priv"}},
		},
		{
			name:        "a debug container with kubectl's general profile",
			denied:      []string{"debug", "-n", ns, "web", "--image=busybox", "--profile=general"},
			rule:        "no-privileged-debug-containers",
			suggestions: []string{"--profile=baseline", "--profile=restricted"},
			alternatives: [][]string{
				{"debug", "-n", ns, "web", "--image=busybox", "--profile=baseline"},
				{"debug", "-n", ns, "web", "--image=busybox", "--profile=restricted"},
			},
		},
		{
			name:         "the node proxy",
			denied:       []string{"get", "--raw", "/api/v1/nodes/" + bed.kubelet.NodeName + "/proxy/healthz"},
			rule:         "no-node-proxy",
			suggestions:  []string{"kubectl logs", "kubectl describe node"},
			alternatives: [][]string{{"logs", "-n", ns, "web"}, {"describe", "node", bed.kubelet.NodeName}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := kubectl(t, tt.denied...)
			require.Error(t, err, out)
			assert.Contains(t, out, `rule "`+tt.rule+`"`)
			for _, s := range tt.suggestions {
				assert.Contains(t, out, s, "the denial suggests it")
			}
			for _, alt := range tt.alternatives {
				out, err := kubectl(t, alt...)
				assert.NoError(t, err, "kubectl %v, suggested by the denial, must work: %s", alt, out)
			}
		})
	}

	t.Run("a restricted debug container was added", func(t *testing.T) {
		var p corev1.Pod
		require.NoError(t, bed.kube.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, &p))
		require.NotEmpty(t, p.Spec.EphemeralContainers)
		restricted := false
		for _, c := range p.Spec.EphemeralContainers {
			if sc := c.SecurityContext; sc != nil && ptr.Deref(sc.RunAsNonRoot, false) {
				restricted = true
			}
		}
		assert.True(t, restricted, "kubectl debug --profile=restricted ran through Gatehouse")
	})
}
