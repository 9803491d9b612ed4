package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// objects is a Lookup over fixed objects: the engine's lookups are pure functions of them.
type objects struct {
	pods         map[string]*corev1.Pod
	namespaces   map[string]*corev1.Namespace
	roles        map[string]*rbacv1.Role
	clusterRoles map[string]*rbacv1.ClusterRole
	err          error
	podCalls     int
}

func (o *objects) Pod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	o.podCalls++
	if o.err != nil {
		return nil, o.err
	}
	if p, ok := o.pods[namespace+"/"+name]; ok {
		return p, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

func (o *objects) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if o.err != nil {
		return nil, o.err
	}
	if ns, ok := o.namespaces[name]; ok {
		return ns, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
}

func (o *objects) Role(_ context.Context, namespace, name string) (*rbacv1.Role, error) {
	if o.err != nil {
		return nil, o.err
	}
	if r, ok := o.roles[namespace+"/"+name]; ok {
		return r, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: "roles"}, name)
}

func (o *objects) ClusterRole(_ context.Context, name string) (*rbacv1.ClusterRole, error) {
	if o.err != nil {
		return nil, o.err
	}
	if r, ok := o.clusterRoles[name]; ok {
		return r, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: "clusterroles"}, name)
}

func pod(ns, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// parsePolicies reads AccessPolicies from YAML in a test.
func parsePolicies(t testing.TB, docs ...string) []v1alpha1.AccessPolicy {
	t.Helper()
	var out []v1alpha1.AccessPolicy
	for _, d := range docs {
		var p v1alpha1.AccessPolicy
		require.NoError(t, yaml.UnmarshalStrict([]byte(d), &p))
		out = append(out, p)
	}
	return out
}

func newEngine(t testing.TB, lookup policy.Lookup, docs ...string) *policy.Engine {
	t.Helper()
	e := policy.NewEngine(policy.EngineOptions{Lookup: lookup})
	errs := e.SetPolicies(parsePolicies(t, docs...))
	require.Empty(t, errs)
	return e
}

func user(name string, groups ...string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name, Groups: groups}
}

func gatewayUser(name string, groups ...string) authenticationv1.UserInfo {
	u := user(name, groups...)
	u.Extra = map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {"s-1"}}
	return u
}

func TestDefaultPack(t *testing.T) {
	policies, err := policy.LoadFile("../manifests/policies/default.yaml")
	require.NoError(t, err)
	require.Len(t, policies, 3)

	lookup := &objects{pods: map[string]*corev1.Pod{}}
	for _, p := range []*corev1.Pod{
		pod("shop", "web", nil),
		pod("shop", "priv", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		}),
		pod("shop", "hostpid", func(p *corev1.Pod) { p.Spec.HostPID = true }),
		pod("shop", "hostnet", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		pod("shop", "hostpath", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}),
		pod("shop", "sysadmin", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", SecurityContext: &corev1.SecurityContext{
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}}}
		}),
		pod("shop", "ephemeral", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
		}),
		pod("shop", "netbind", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
		}),
		pod("kube-system", "coredns", nil),
	} {
		lookup.pods[p.Namespace+"/"+p.Name] = p
	}
	// Capabilities in every spelling runtimes accept, and ones missing from any deny-list.
	withCaps := func(name string, caps ...corev1.Capability) *corev1.Pod {
		return pod("shop", name, func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: caps}}
		})
	}
	for _, p := range []*corev1.Pod{
		withCaps("cap-prefixed", "CAP_SYS_ADMIN"),
		withCaps("lower-case", "sys_admin"),
		withCaps("dac-read-search", "DAC_READ_SEARCH"),
		withCaps("sys-rawio", "SYS_RAWIO"),
		withCaps("bpf", "BPF"),
		withCaps("all", "all"),
		withCaps("harmless-lower-case", "chown", "CAP_NET_BIND_SERVICE"),
		pod("shop", "host-port", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
		}),
		pod("shop", "unconfined", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		}),
	} {
		lookup.pods[p.Namespace+"/"+p.Name] = p
	}
	// What kubectl debug's profiles add to a pod.
	debugged := func(profile *corev1.SecurityContext) []byte {
		p := pod("shop", "web", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debugger", Image: "busybox", SecurityContext: profile}}}
		})
		return mustJSON(t, p)
	}
	rule := func(groups, resources, verbs []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs}
	}
	lookup.clusterRoles = map[string]*rbacv1.ClusterRole{
		"super":         {ObjectMeta: metav1.ObjectMeta{Name: "super"}, Rules: []rbacv1.PolicyRule{rule([]string{"*"}, []string{"*"}, []string{"*"})}},
		"reader":        {ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Rules: []rbacv1.PolicyRule{rule([]string{"", "apps"}, []string{"pods", "deployments"}, []string{"get", "list", "watch"})}},
		"secret-reader": {ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"}, Rules: []rbacv1.PolicyRule{rule([]string{""}, []string{"secrets"}, []string{"get", "list"})}},
		"aggregated": {ObjectMeta: metav1.ObjectMeta{Name: "aggregated"}, AggregationRule: &rbacv1.AggregationRule{
			ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "a"}}}}},
	}
	lookup.roles = map[string]*rbacv1.Role{
		"shop/impersonator": {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "impersonator"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"deployer"}}}},
		"shop/editor": {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "editor"}, Rules: []rbacv1.PolicyRule{
			rule([]string{"apps"}, []string{"deployments", "deployments/scale"}, []string{"*"})}},
	}
	bindingTo := func(kind, role string) []byte {
		return mustJSON(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "b"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: kind, Name: role},
		})
	}
	roleWith := func(rules ...rbacv1.PolicyRule) []byte {
		return mustJSON(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Rules: rules})
	}
	breakGlass := user("oncall", "gatehouse:break-glass")
	e := policy.NewEngine(policy.EngineOptions{Lookup: lookup})
	require.Empty(t, e.SetPolicies(policies))

	agent := gatewayUser("agent@example.com", "agents")
	admin := user("admin", "system:masters")
	controller := user("system:serviceaccount:argocd:argocd-application-controller")
	exec := func(ns, name string, u authenticationv1.UserInfo) policy.Attributes {
		return policy.Attributes{Operation: "CONNECT", Version: "v1", Resource: "pods", Subresource: "exec",
			Namespace: ns, Name: name, User: u, ViaGateway: identity.FromExtra(u.Extra).ViaGateway()}
	}
	binding := func(kind, role string) []byte {
		return mustJSON(t, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "b"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: kind, Name: role},
		})
	}
	write := func(op, group, resource, ns, name string, u authenticationv1.UserInfo, obj []byte) policy.Attributes {
		return policy.Attributes{Operation: op, Group: group, Version: "v1", Resource: resource,
			Namespace: ns, Name: name, User: u, ViaGateway: identity.FromExtra(u.Extra).ViaGateway(), Object: obj}
	}

	tests := []struct {
		name         string
		attrs        policy.Attributes
		action       policy.Action
		policy, rule string
	}{
		{"exec into ordinary pod", exec("shop", "web", agent), policy.ActionAllow, "", ""},
		{"exec into privileged pod", exec("shop", "priv", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into hostPID pod", exec("shop", "hostpid", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into hostNetwork pod", exec("shop", "hostnet", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into hostPath pod", exec("shop", "hostpath", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod with SYS_ADMIN init container", exec("shop", "sysadmin", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod with privileged ephemeral container", exec("shop", "ephemeral", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod with a harmless capability", exec("shop", "netbind", agent), policy.ActionAllow, "", ""},
		{"exec into missing pod", exec("shop", "gone", agent), policy.ActionAllow, "", ""},
		{"exec into pod adding CAP_SYS_ADMIN", exec("shop", "cap-prefixed", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding sys_admin", exec("shop", "lower-case", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding DAC_READ_SEARCH", exec("shop", "dac-read-search", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding SYS_RAWIO", exec("shop", "sys-rawio", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding BPF", exec("shop", "bpf", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding all", exec("shop", "all", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod adding harmless capabilities in other spellings", exec("shop", "harmless-lower-case", agent), policy.ActionAllow, "", ""},
		{"exec into pod with a host port", exec("shop", "host-port", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into pod without seccomp confinement", exec("shop", "unconfined", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec into kube-system", exec("kube-system", "coredns", agent), policy.ActionDeny, "gatehouse-exec", "no-exec-into-kube-system"},
		{"exec by admin directly is held too", exec("shop", "priv", admin), policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"attach into privileged pod", func() policy.Attributes { a := exec("shop", "priv", agent); a.Subresource = "attach"; return a }(),
			policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"port-forward into privileged pod", func() policy.Attributes { a := exec("shop", "priv", agent); a.Subresource = "portforward"; return a }(),
			policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"exec via the proxy's verb", policy.Attributes{Verb: "create", Version: "v1", Resource: "pods", Subresource: "exec",
			Namespace: "shop", Name: "priv", User: agent, ViaGateway: true}, policy.ActionDeny, "gatehouse-exec", "no-exec-into-privileged-pods"},
		{"privileged debug container", policy.Attributes{Operation: "UPDATE", Version: "v1", Resource: "pods", Subresource: "ephemeralcontainers",
			Namespace: "shop", Name: "web", User: agent, ViaGateway: true, Object: mustJSON(t, lookup.pods["shop/ephemeral"])},
			policy.ActionDeny, "gatehouse-exec", "no-privileged-debug-containers"},
		{"restricted debug container", policy.Attributes{Operation: "UPDATE", Version: "v1", Resource: "pods", Subresource: "ephemeralcontainers",
			Namespace: "shop", Name: "web", User: agent, ViaGateway: true, Object: mustJSON(t, lookup.pods["shop/web"])},
			policy.ActionAllow, "", ""},
		{"debug container, kubectl's general profile (SYS_PTRACE)", policy.Attributes{Operation: "UPDATE", Version: "v1", Resource: "pods", Subresource: "ephemeralcontainers",
			Namespace: "shop", Name: "web", User: agent, ViaGateway: true,
			Object: debugged(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}}})},
			policy.ActionDeny, "gatehouse-exec", "no-privileged-debug-containers"},
		{"debug container, kubectl's restricted profile", policy.Attributes{Operation: "UPDATE", Version: "v1", Resource: "pods", Subresource: "ephemeralcontainers",
			Namespace: "shop", Name: "web", User: agent, ViaGateway: true,
			Object: debugged(&corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}})},
			policy.ActionAllow, "", ""},
		{"debug container, kubectl's baseline profile", policy.Attributes{Operation: "UPDATE", Version: "v1", Resource: "pods", Subresource: "ephemeralcontainers",
			Namespace: "shop", Name: "web", User: agent, ViaGateway: true, Object: debugged(nil)},
			policy.ActionAllow, "", ""},
		{"node proxy", policy.Attributes{Operation: "CONNECT", Version: "v1", Resource: "nodes", Subresource: "proxy", Name: "n1", User: agent},
			policy.ActionDeny, "gatehouse-exec", "no-node-proxy"},
		{"cluster-admin binding", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, binding("ClusterRole", "cluster-admin")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"cluster-admin role binding", write("CREATE", "rbac.authorization.k8s.io", "rolebindings", "shop", "b", admin, binding("ClusterRole", "cluster-admin")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"binding of a wildcard role under another name", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, bindingTo("ClusterRole", "super")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"namespaced binding of a wildcard cluster role", write("CREATE", "rbac.authorization.k8s.io", "rolebindings", "shop", "b", agent, bindingTo("ClusterRole", "super")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"binding of a role that impersonates one named service account", write("UPDATE", "rbac.authorization.k8s.io", "rolebindings", "shop", "b", agent, bindingTo("Role", "impersonator")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"binding of an aggregated role is judged by the rules it aggregated", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, bindingTo("ClusterRole", "aggregated")),
			policy.ActionAllow, "", ""},
		{"cluster-wide binding of a Secret reader", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, bindingTo("ClusterRole", "secret-reader")),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-bindings"},
		{"namespaced binding of a Secret reader", write("CREATE", "rbac.authorization.k8s.io", "rolebindings", "shop", "b", agent, bindingTo("ClusterRole", "secret-reader")),
			policy.ActionAllow, "", ""},
		{"binding of an ordinary role", write("CREATE", "rbac.authorization.k8s.io", "rolebindings", "shop", "b", agent, bindingTo("Role", "editor")),
			policy.ActionAllow, "", ""},
		{"cluster-wide binding of a reader", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, bindingTo("ClusterRole", "reader")),
			policy.ActionAllow, "", ""},
		{"binding of a role that does not exist yet", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, bindingTo("ClusterRole", "later")),
			policy.ActionAllow, "", ""},
		{"wildcard role", write("CREATE", "rbac.authorization.k8s.io", "clusterroles", "", "r", agent, roleWith(rule([]string{"*"}, []string{"*"}, []string{"*"}))),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"role with every verb on RBAC", write("CREATE", "rbac.authorization.k8s.io", "roles", "shop", "r", agent, roleWith(rule([]string{"rbac.authorization.k8s.io"}, []string{"*"}, []string{"*"}))),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"role that impersonates", write("UPDATE", "rbac.authorization.k8s.io", "clusterroles", "", "r", agent, roleWith(rule([]string{""}, []string{"users", "groups"}, []string{"impersonate"}))),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"role that mints tokens", write("CREATE", "rbac.authorization.k8s.io", "roles", "shop", "r", agent, roleWith(rule([]string{""}, []string{"serviceaccounts/token"}, []string{"create"}))),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"role that reaches the kubelet", write("CREATE", "rbac.authorization.k8s.io", "clusterroles", "", "r", agent, roleWith(rule([]string{""}, []string{"*/proxy"}, []string{"get"}))),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"aggregating role", write("CREATE", "rbac.authorization.k8s.io", "clusterroles", "", "r", agent, mustJSON(t, lookup.clusterRoles["aggregated"])),
			policy.ActionRequireApproval, "gatehouse-approvals", "escalating-roles"},
		{"ordinary role", write("CREATE", "rbac.authorization.k8s.io", "roles", "shop", "r", agent, roleWith(rule([]string{"apps"}, []string{"deployments"}, []string{"*"}), rule([]string{""}, []string{"secrets"}, []string{"get"}))),
			policy.ActionAllow, "", ""},
		{"break glass, directly", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", breakGlass, binding("ClusterRole", "cluster-admin")),
			policy.ActionAllow, "gatehouse-approvals", "break-glass"},
		{"break glass through the gateway is held like anyone", write("CREATE", "", "secrets", "shop", "s", gatewayUser("oncall", "gatehouse:break-glass"), nil),
			policy.ActionRequireApproval, "gatehouse-approvals", "secret-changes"},
		{"view binding", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", agent, binding("ClusterRole", "view")),
			policy.ActionAllow, "", ""},
		{"cluster-admin binding by automation", write("CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", "b", controller, binding("ClusterRole", "cluster-admin")),
			policy.ActionAllow, "", ""},
		{"namespace deletion", write("DELETE", "", "namespaces", "shop", "shop", agent, nil), policy.ActionRequireApproval, "gatehouse-approvals", "namespace-deletion"},
		{"namespace creation", write("CREATE", "", "namespaces", "", "new", agent, nil), policy.ActionAllow, "", ""},
		{"secret creation", write("CREATE", "", "secrets", "shop", "s", agent, nil), policy.ActionRequireApproval, "gatehouse-approvals", "secret-changes"},
		{"secret deletion by a human directly", write("DELETE", "", "secrets", "shop", "s", admin, nil), policy.ActionRequireApproval, "gatehouse-approvals", "secret-changes"},
		{"secret update by automation", write("UPDATE", "", "secrets", "shop", "s", controller, nil), policy.ActionAllow, "", ""},
		{"configmap creation", write("CREATE", "", "configmaps", "shop", "c", agent, nil), policy.ActionAllow, "", ""},
		{"webhook configuration change", write("UPDATE", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "other", agent, nil),
			policy.ActionRequireApproval, "gatehouse-approvals", "admission-configuration-changes"},
		{"CRD creation", write("CREATE", "apiextensions.k8s.io", "customresourcedefinitions", "", "things.example.com", agent, nil),
			policy.ActionRequireApproval, "gatehouse-approvals", "crd-changes"},
		{"AccessPolicy change through the gateway", write("UPDATE", "gatehouse.dev", "accesspolicies", "", "gatehouse-exec", gatewayUser("root", "system:masters"), nil),
			policy.ActionDeny, "gatehouse-self-protection", "gatehouse-policies"},
		{"AccessPolicy change by an administrator directly", write("UPDATE", "gatehouse.dev", "accesspolicies", "", "gatehouse-exec", admin, nil),
			policy.ActionAllow, "gatehouse-self-protection", "administrators-manage-policies"},
		{"AccessPolicy deletion by automation", write("DELETE", "gatehouse.dev", "accesspolicies", "", "gatehouse-exec", controller, nil),
			policy.ActionDeny, "gatehouse-self-protection", "gatehouse-policies"},
		{"Gatehouse CRD change", write("UPDATE", "apiextensions.k8s.io", "customresourcedefinitions", "", "accesspolicies.gatehouse.dev", agent, nil),
			policy.ActionDeny, "gatehouse-self-protection", "gatehouse-definitions"},
		{"Gatehouse CRD upgrade by an administrator", write("UPDATE", "apiextensions.k8s.io", "customresourcedefinitions", "", "accesspolicies.gatehouse.dev", admin, nil),
			policy.ActionAllow, "gatehouse-self-protection", "administrators-manage-gatehouse"},
		{"Gatehouse cluster role", write("UPDATE", "rbac.authorization.k8s.io", "clusterroles", "", "gatehouse-webhook", agent, nil),
			policy.ActionDeny, "gatehouse-self-protection", "gatehouse-definitions"},
		{"gatehouse namespace deletion", write("DELETE", "", "namespaces", "gatehouse", "gatehouse", admin, nil),
			policy.ActionDeny, "gatehouse-self-protection", "gatehouse-namespace"},
		{"exec into Gatehouse", exec("gatehouse", "gatehouse-proxy-0", agent), policy.ActionDeny, "gatehouse-self-protection", "gatehouse-namespace"},
		{"reads pass", policy.Attributes{Verb: "list", Version: "v1", Resource: "secrets", Namespace: "shop", User: agent, ViaGateway: true},
			policy.ActionAllow, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Evaluate(t.Context(), tt.attrs)
			require.NoError(t, err)
			assert.Equal(t, tt.action, d.Action, d.Message)
			assert.Equal(t, tt.policy, d.Policy)
			assert.Equal(t, tt.rule, d.Rule)
			assert.NotEmpty(t, d.Message)
			if d.Action == policy.ActionRequireApproval {
				require.NotNil(t, d.Approval)
				assert.Equal(t, []string{"gatehouse:approvers"}, d.Approval.ApproverGroups)
				assert.Equal(t, 1, d.Approval.Approvals)
				assert.Equal(t, 15*time.Minute, d.Approval.GrantTTL)
			} else {
				assert.Nil(t, d.Approval)
			}
		})
	}
}

func TestDenialMessage(t *testing.T) {
	e := newEngine(t, &objects{pods: map[string]*corev1.Pod{"shop/web": pod("shop", "web", func(p *corev1.Pod) { p.Spec.HostPID = true })}}, `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: exec}
spec:
  rules:
  - name: host-pid
    match: {operations: [CONNECT], resources: [pods/exec]}
    condition: pod.spec.?hostPID.orValue(false)
    action: deny
    message: Use kubectl logs instead.
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    message: Secrets hold credentials
    approval: {approverGroups: [sre, security], approvals: 2, grantTTL: 1h}
`)
	d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CONNECT", Resource: "pods", Subresource: "exec", Namespace: "shop", Name: "web"})
	require.NoError(t, err)
	assert.Equal(t, `Gatehouse denied CONNECT pods/exec "web" in namespace "shop": Use kubectl logs instead. [AccessPolicy "exec", rule "host-pid"]`, d.Message)

	d, err = e.Evaluate(t.Context(), policy.Attributes{Operation: "DELETE", Resource: "secrets", Namespace: "shop", Name: "db"})
	require.NoError(t, err)
	assert.Equal(t, `DELETE secrets "db" in namespace "shop" requires approval: Secrets hold credentials. `+
		`Approvers: members of sre, security; 2 approval(s) needed; an approval is valid for 1h0m0s. [AccessPolicy "exec", rule "approve-secrets"]`, d.Message)
	assert.Equal(t, &policy.Approval{ApproverGroups: []string{"sre", "security"}, Approvals: 2, GrantTTL: time.Hour}, d.Approval)

	d, err = e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Group: "apps", Resource: "deployments", Namespace: "shop", Name: "web"})
	require.NoError(t, err)
	assert.Equal(t, policy.Decision{Action: policy.ActionAllow, Message: `Gatehouse allowed CREATE deployments.apps "web" in namespace "shop": no AccessPolicy rule matched`}, d)
}

func TestMatch(t *testing.T) {
	lookup := &objects{namespaces: map[string]*corev1.Namespace{
		"prod": namespace("prod", map[string]string{"env": "prod"}),
		"dev":  namespace("dev", map[string]string{"env": "dev"}),
	}}
	base := policy.Attributes{Operation: "CREATE", Group: "apps", Version: "v1", Resource: "deployments",
		Namespace: "prod", Name: "web-1", User: user("alice", "team-a")}
	with := func(f func(*policy.Attributes)) policy.Attributes {
		a := base
		f(&a)
		return a
	}
	tests := []struct {
		name  string
		match string
		attrs policy.Attributes
		want  bool
	}{
		{"empty match selects everything", `{}`, base, true},
		{"operation", `{operations: [CREATE]}`, base, true},
		{"other operation", `{operations: [UPDATE, DELETE]}`, base, false},
		{"any operation", `{operations: ["*"]}`, base, true},
		{"patch is UPDATE", `{operations: [UPDATE]}`, with(func(a *policy.Attributes) { a.Operation, a.Verb = "", "patch" }), true},
		{"deletecollection is DELETE", `{operations: [DELETE]}`, with(func(a *policy.Attributes) { a.Operation, a.Verb = "", "deletecollection" }), true},
		{"reads", `{operations: [GET, LIST, WATCH]}`, with(func(a *policy.Attributes) { a.Operation, a.Verb = "", "watch" }), true},
		{"api group", `{apiGroups: [apps]}`, base, true},
		{"core group", `{apiGroups: [""]}`, base, false},
		{"any group", `{apiGroups: ["*"]}`, base, true},
		{"resource", `{resources: [deployments]}`, base, true},
		{"resource does not match its subresource", `{resources: [deployments]}`, with(func(a *policy.Attributes) { a.Subresource = "scale" }), false},
		{"subresource", `{resources: [deployments/scale]}`, with(func(a *policy.Attributes) { a.Subresource = "scale" }), true},
		{"any subresource", `{resources: ["deployments/*"]}`, with(func(a *policy.Attributes) { a.Subresource = "status" }), true},
		{"any subresource excludes the resource", `{resources: ["deployments/*"]}`, base, false},
		{"any resource", `{resources: ["*"]}`, base, true},
		{"any resource excludes subresources", `{resources: ["*"]}`, with(func(a *policy.Attributes) { a.Subresource = "status" }), false},
		{"scale of any resource", `{resources: ["*/scale"]}`, with(func(a *policy.Attributes) { a.Subresource = "scale" }), true},
		{"everything", `{resources: ["*/*"]}`, with(func(a *policy.Attributes) { a.Subresource = "status" }), true},
		{"namespace", `{namespaces: [prod]}`, base, true},
		{"namespace prefix", `{namespaces: ["pr*"]}`, base, true},
		{"namespace suffix", `{namespaces: ["*od"]}`, base, true},
		{"other namespace", `{namespaces: [dev]}`, base, false},
		{"cluster-scoped never matches namespaces", `{namespaces: ["*"]}`, with(func(a *policy.Attributes) { a.Namespace = "" }), false},
		{"namespace selector", `{namespaceSelector: {matchLabels: {env: prod}}}`, base, true},
		{"namespace selector mismatch", `{namespaceSelector: {matchLabels: {env: prod}}}`, with(func(a *policy.Attributes) { a.Namespace = "dev" }), false},
		{"namespace selector expression", `{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [dev]}]}}`, base, true},
		{"namespace selector on a missing namespace", `{namespaceSelector: {}}`, with(func(a *policy.Attributes) { a.Namespace = "gone" }), false},
		{"namespace selector on cluster-scoped", `{namespaceSelector: {}}`, with(func(a *policy.Attributes) { a.Namespace = "" }), false},
		{"namespace selector on a Namespace object uses its labels", `{namespaceSelector: {matchLabels: {env: staging}}}`,
			policy.Attributes{Operation: "CREATE", Resource: "namespaces", Name: "stg",
				Object: []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"stg","labels":{"env":"staging"}}}`)}, true},
		{"namespace selector on a deleted Namespace looks it up", `{namespaceSelector: {matchLabels: {env: dev}}}`,
			policy.Attributes{Operation: "DELETE", Resource: "namespaces", Namespace: "dev", Name: "dev"}, true},
		{"name", `{names: [web-1]}`, base, true},
		{"name prefix", `{names: ["web-*"]}`, base, true},
		{"other name", `{names: [api]}`, base, false},
		{"user", `{users: [alice]}`, base, true},
		{"user prefix", `{users: ["al*"]}`, base, true},
		{"group", `{groups: [team-a]}`, base, true},
		{"subjects are alternatives", `{users: [bob], groups: [team-a]}`, base, true},
		{"no subject matches", `{users: [bob], groups: [team-b], serviceAccounts: ["prod/ci"]}`, base, false},
		{"service account", `{serviceAccounts: ["ci/deployer"]}`, with(func(a *policy.Attributes) { a.User = user("system:serviceaccount:ci:deployer") }), true},
		{"service accounts of a namespace", `{serviceAccounts: ["ci/*"]}`, with(func(a *policy.Attributes) { a.User = user("system:serviceaccount:ci:other") }), true},
		{"service account of another namespace", `{serviceAccounts: ["ci/*"]}`, with(func(a *policy.Attributes) { a.User = user("system:serviceaccount:cix:other") }), false},
		{"via gateway", `{viaGateway: true}`, with(func(a *policy.Attributes) { a.ViaGateway = true }), true},
		{"not via gateway", `{viaGateway: true}`, base, false},
		{"direct only", `{viaGateway: false}`, base, true},
		{"fields are ANDed", `{operations: [CREATE], apiGroups: [apps], resources: [deployments], namespaces: [prod], names: [web-1], users: [alice], viaGateway: false}`, base, true},
		{"one field fails the match", `{operations: [CREATE], apiGroups: [apps], resources: [deployments], namespaces: [dev]}`, base, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, lookup, fmt.Sprintf(`
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: r
    match: %s
    action: deny
`, tt.match))
			d, err := e.Evaluate(t.Context(), tt.attrs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.Action == policy.ActionDeny, d.Message)
		})
	}
}

func TestExclude(t *testing.T) {
	e := newEngine(t, nil, `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: r
    match: {resources: [secrets]}
    exclude: {users: ["system:serviceaccount:*"], viaGateway: false}
    action: deny
`)
	for _, tt := range []struct {
		user    authenticationv1.UserInfo
		gateway bool
		denied  bool
	}{
		{user("alice"), false, true},
		{user("system:serviceaccount:ns:ctrl"), false, false},
		{user("system:serviceaccount:ns:ctrl"), true, true},
	} {
		d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Resource: "secrets", Namespace: "n", User: tt.user, ViaGateway: tt.gateway})
		require.NoError(t, err)
		assert.Equal(t, tt.denied, d.Action == policy.ActionDeny, "%s via gateway %v", tt.user.Username, tt.gateway)
	}
}

func TestEvaluationOrder(t *testing.T) {
	rule := func(name, action, resource string) string {
		return fmt.Sprintf("  - name: %s\n    match: {resources: [%s]}\n    action: %s\n", name, resource, action)
	}
	doc := func(name string, priority int, rules ...string) string {
		s := fmt.Sprintf("apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: %s}\nspec:\n  priority: %d\n  rules:\n", name, priority)
		for _, r := range rules {
			s += r
		}
		return s
	}
	e := newEngine(t, nil,
		// Listed out of order on purpose: the engine sorts.
		doc("b-late", 10, rule("deny-all-configmaps", "deny", "configmaps"), rule("deny-secrets", "deny", "secrets")),
		doc("z-early", -5, rule("allow-secrets", "allow", "secrets")),
		doc("a-late", 10, rule("first", "deny", "configmaps"), rule("second", "allow", "configmaps")),
		doc("m-default", 0, rule("deny-pods", "deny", "pods"), rule("allow-pods", "allow", "pods")),
	)
	for _, tt := range []struct {
		resource, policy, rule string
		action                 policy.Action
	}{
		// Negative priority runs first: the allow is an exception to b-late's later deny.
		{"secrets", "z-early", "allow-secrets", policy.ActionAllow},
		// Equal priority: name order, a-late before b-late.
		{"configmaps", "a-late", "first", policy.ActionDeny},
		// Rule order within a policy: the first match wins over the later allow.
		{"pods", "m-default", "deny-pods", policy.ActionDeny},
		// No rule matches: allowed by default, naming no policy.
		{"services", "", "", policy.ActionAllow},
	} {
		d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Resource: tt.resource, Namespace: "n"})
		require.NoError(t, err)
		assert.Equal(t, tt.action, d.Action, tt.resource)
		assert.Equal(t, tt.policy, d.Policy, tt.resource)
		assert.Equal(t, tt.rule, d.Rule, tt.resource)
	}
}

// TestEvaluationOrderAcrossResources checks that rules about specific groups and resources and
// rules about any of them keep their order, whichever resource a request is for.
func TestEvaluationOrderAcrossResources(t *testing.T) {
	e := newEngine(t, nil, `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - {name: alice-deployments, match: {apiGroups: [apps], resources: [deployments], users: [alice]}, action: allow}
  - {name: alice-anything, match: {resources: ["*"], users: [alice]}, action: deny}
  - {name: deployments-any-group, match: {apiGroups: ["*"], resources: [deployments]}, action: deny}
  - {name: core, match: {apiGroups: [""]}, action: allow}
  - {name: pods, match: {resources: [pods]}, action: deny}
`)
	for _, tt := range []struct {
		user, group, resource, rule string
		action                      policy.Action
	}{
		{"alice", "apps", "deployments", "alice-deployments", policy.ActionAllow},
		{"bob", "apps", "deployments", "deployments-any-group", policy.ActionDeny},
		{"bob", "example.dev", "deployments", "deployments-any-group", policy.ActionDeny},
		{"alice", "", "pods", "alice-anything", policy.ActionDeny},
		{"bob", "", "pods", "core", policy.ActionAllow},
		{"bob", "batch", "pods", "pods", policy.ActionDeny},
		{"alice", "example.dev", "widgets", "alice-anything", policy.ActionDeny},
		{"bob", "example.dev", "widgets", "", policy.ActionAllow},
	} {
		d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Group: tt.group, Resource: tt.resource, Namespace: "n", User: user(tt.user)})
		require.NoError(t, err)
		assert.Equal(t, tt.rule, d.Rule, "%s %s/%s", tt.user, tt.group, tt.resource)
		assert.Equal(t, tt.action, d.Action, "%s %s/%s", tt.user, tt.group, tt.resource)
	}
}
