package policy_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/gatehouse-dev/gatehouse/policy"
)

func TestRoleEscalations(t *testing.T) {
	r := func(groups, resources, verbs []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs, ResourceNames: names}
	}
	core := []string{""}
	tests := []struct {
		name        string
		rules       []rbacv1.PolicyRule
		clusterWide bool
		want        []string
	}{
		{"nothing", nil, true, nil},
		{"everything is said once", []rbacv1.PolicyRule{r([]string{"*"}, []string{"*"}, []string{"*"})}, true, []string{"every verb on every resource"}},
		{"every verb on core resources", []rbacv1.PolicyRule{r(core, []string{"*"}, []string{"*"})}, false,
			[]string{"impersonate users", "impersonate groups", "impersonate service accounts", "mint service account tokens", "reach the kubelet API (nodes/proxy)"}},
		{"impersonation limited to one name still counts", []rbacv1.PolicyRule{r(core, []string{"users"}, []string{"impersonate"}, "alice")}, false, []string{"impersonate users"}},
		{"escalate and bind", []rbacv1.PolicyRule{r([]string{"rbac.authorization.k8s.io"}, []string{"clusterroles"}, []string{"escalate", "bind"})}, false,
			[]string{"escalate cluster roles (grant permissions it does not hold)", "bind cluster roles it does not hold"}},
		{"subresource wildcard", []rbacv1.PolicyRule{r(core, []string{"*/proxy"}, []string{"create"})}, false, []string{"reach the kubelet API (nodes/proxy)"}},
		{"certificate approval", []rbacv1.PolicyRule{r([]string{"certificates.k8s.io"}, []string{"certificatesigningrequests/approval"}, []string{"update"}),
			r([]string{"certificates.k8s.io"}, []string{"signers"}, []string{"approve"})}, false,
			[]string{"approve certificate signing requests", "approve certificates for any signer"}},
		{"admission webhooks", []rbacv1.PolicyRule{r([]string{"admissionregistration.k8s.io"}, []string{"mutatingwebhookconfigurations"}, []string{"update"})}, false,
			[]string{"change mutating admission webhooks"}},
		{"Secret reads in one namespace", []rbacv1.PolicyRule{r(core, []string{"secrets"}, []string{"get", "list", "watch"})}, false, nil},
		{"Secret reads everywhere", []rbacv1.PolicyRule{r(core, []string{"secrets"}, []string{"list"})}, true, []string{"read Secrets in every namespace"}},
		{"ordinary work", []rbacv1.PolicyRule{r([]string{"apps"}, []string{"deployments", "deployments/scale"}, []string{"*"}),
			r(core, []string{"pods", "pods/log", "pods/exec"}, []string{"get", "list", "create"})}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, policy.RoleEscalations(tt.rules, tt.clusterWide))
		})
	}
}

func TestPodSecurityViolations(t *testing.T) {
	ps, err := policy.NewPodSecurity()
	require.NoError(t, err)
	caps := func(c ...corev1.Capability) *corev1.Pod {
		p := pod("shop", "p", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: c}}
		})
		return p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"ordinary pod", pod("shop", "p", nil), nil},
		{"CAP_ prefix", caps("CAP_SYS_ADMIN"), []string{`non-default capabilities (container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add)`}},
		{"lower case", caps("net_admin"), []string{`non-default capabilities (container "app" must not include "NET_ADMIN" in securityContext.capabilities.add)`}},
		{"harmless in any spelling", caps("cap_chown", "kill"), nil},
		{"host namespaces", pod("shop", "p", func(p *corev1.Pod) { p.Spec.HostPID = true }), []string{"host namespaces (hostPID=true)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.pod.DeepCopy()
			assert.Equal(t, tt.want, ps.Violations(tt.pod))
			assert.Equal(t, before, tt.pod, "the pod must not be modified")
		})
	}
}
