package webhook_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// documents reads every YAML document of the files matching pattern under manifests/.
func documents(t *testing.T, pattern string) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(bed.root, "manifests", pattern))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := rd.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			u := &unstructured.Unstructured{}
			require.NoError(t, yaml.Unmarshal(doc, &u.Object), f)
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out
}

// TestManifestsApply applies every shipped manifest to the test cluster (server-side apply,
// dry run), so a field the API does not know or a value it refuses fails here. The webhook
// configurations, which the webhook registers itself from a ConfigMap, are applied the same way
// under other names.
func TestManifestsApply(t *testing.T) {
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gatehouse"}}
	if err := bed.kube.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	var docs []*unstructured.Unstructured
	for _, pattern := range []string{"webhook/*.yaml", "policies/*.yaml", "crd/*.yaml"} {
		docs = append(docs, documents(t, pattern)...)
	}
	validating, mutating, err := testbed.ChartWebhookConfigurations()
	require.NoError(t, err)
	for _, c := range validating {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		require.NoError(t, err)
		docs = append(docs, &unstructured.Unstructured{Object: u})
	}
	for _, c := range mutating {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		require.NoError(t, err)
		docs = append(docs, &unstructured.Unstructured{Object: u})
	}
	kinds := map[string]int{}
	for _, u := range docs {
		kinds[u.GetKind()]++
		if strings.HasSuffix(u.GetKind(), "WebhookConfiguration") {
			// The installed copies point at the local server (clientConfig.url); a dry run of
			// the shipped ones under another name applies them as they are.
			u.SetName(u.GetName() + "-as-shipped")
			u.SetAPIVersion("admissionregistration.k8s.io/v1")
		}
		err := bed.kube.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.DryRunAll, client.FieldOwner("gatehouse-manifests-test"), client.ForceOwnership)
		require.NoError(t, err, "%s %s", u.GetKind(), u.GetName())
	}
	for _, k := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ServiceAccount",
		"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget",
		"NetworkPolicy", "ConfigMap", "Secret", "AccessPolicy", "CustomResourceDefinition"} {
		assert.NotZero(t, kinds[k], "no %s in manifests/", k)
	}
}

// covers reports whether an admission rule selects a request, with kube-apiserver's resource
// semantics ("*", "pods/*", "*/scale").
func covers(r admissionregistrationv1.RuleWithOperations, op, group, resource, sub string) bool {
	if !slices.Contains(r.Operations, admissionregistrationv1.OperationAll) && !slices.Contains(r.Operations, admissionregistrationv1.OperationType(op)) {
		return false
	}
	if !slices.Contains(r.APIGroups, "*") && !slices.Contains(r.APIGroups, group) {
		return false
	}
	for _, res := range r.Resources {
		rr, rs, hasSub := strings.Cut(res, "/")
		if rr != "*" && rr != resource {
			continue
		}
		if (!hasSub && sub == "") || (hasSub && (rs == sub || (rs == "*" && sub != ""))) {
			return true
		}
	}
	return false
}

// TestFailurePolicySplit checks that the webhooks with failurePolicy Fail select exactly what
// policy.Privileged calls privileged, and that the Ignore webhook leaves those to them.
func TestFailurePolicySplit(t *testing.T) {
	configs, _, err := testbed.ChartWebhookConfigurations()
	require.NoError(t, err)
	require.Len(t, configs, 1)
	cfg := configs[0]

	type request struct{ op, group, resource, sub string }
	requests := []request{
		{"CONNECT", "", "pods", "exec"}, {"CONNECT", "", "pods", "attach"}, {"CONNECT", "", "pods", "portforward"},
		{"CONNECT", "", "pods", "proxy"}, {"CONNECT", "", "services", "proxy"}, {"CONNECT", "", "nodes", "proxy"},
		{"CREATE", "", "secrets", ""}, {"UPDATE", "", "secrets", ""}, {"DELETE", "", "secrets", ""},
		{"CREATE", "rbac.authorization.k8s.io", "rolebindings", ""}, {"UPDATE", "rbac.authorization.k8s.io", "clusterrolebindings", ""},
		{"DELETE", "rbac.authorization.k8s.io", "rolebindings", ""},
		{"DELETE", "", "namespaces", ""}, {"CREATE", "", "namespaces", ""}, {"UPDATE", "", "namespaces", ""},
		{"CREATE", "apiextensions.k8s.io", "customresourcedefinitions", ""}, {"DELETE", "apiextensions.k8s.io", "customresourcedefinitions", ""},
		{"CREATE", "gatehouse.dev", "accesspolicies", ""}, {"DELETE", "gatehouse.dev", "accesspolicies", ""},
		{"CREATE", "", "configmaps", ""}, {"UPDATE", "apps", "deployments", ""}, {"UPDATE", "apps", "deployments", "scale"},
		{"DELETE", "", "pods", ""}, {"UPDATE", "", "pods", "ephemeralcontainers"}, {"CREATE", "rbac.authorization.k8s.io", "clusterroles", ""},
		{"UPDATE", "rbac.authorization.k8s.io", "roles", ""}, {"DELETE", "rbac.authorization.k8s.io", "clusterroles", ""},
	}
	// The held webhook is the Fail twin of the general one, called only for writes the proxy
	// marked held (its matchCondition on the extra gatehouse.dev/hold): it has the general
	// webhook's rules and is left out of the split by rules below.
	var general, held *admissionregistrationv1.ValidatingWebhook
	for i, w := range cfg.Webhooks {
		switch w.Name {
		case "general.validate.gatehouse.dev":
			general = &cfg.Webhooks[i]
		case "held.validate.gatehouse.dev":
			held = &cfg.Webhooks[i]
		}
	}
	require.NotNil(t, general)
	require.NotNil(t, held)
	assert.Equal(t, admissionregistrationv1.Fail, *held.FailurePolicy)
	assert.Equal(t, general.Rules, held.Rules)
	assert.Equal(t, general.NamespaceSelector, held.NamespaceSelector)
	conditions := func(w *admissionregistrationv1.ValidatingWebhook) map[string]string {
		m := map[string]string{}
		for _, c := range w.MatchConditions {
			m[c.Name] = c.Expression
		}
		return m
	}
	assert.Contains(t, conditions(held)["held-by-the-gateway"], "'gatehouse.dev/hold' in request.userInfo.extra")
	assert.Contains(t, conditions(general)["not-held-by-the-gateway"], "!('gatehouse.dev/hold' in request.userInfo.extra)")
	assert.Equal(t, conditions(general)["not-handled-by-a-privileged-webhook"], conditions(held)["not-handled-by-a-privileged-webhook"])

	for _, r := range requests {
		var fail, ignore []string
		for _, w := range cfg.Webhooks {
			if w.Name == held.Name {
				continue
			}
			for _, rule := range w.Rules {
				if covers(rule, r.op, r.group, r.resource, r.sub) {
					if *w.FailurePolicy == admissionregistrationv1.Fail {
						fail = append(fail, w.Name)
					} else {
						ignore = append(ignore, w.Name)
					}
					break
				}
			}
		}
		privileged := policy.Privileged(policy.Attributes{Operation: r.op, Group: r.group, Resource: r.resource, Subresource: r.sub})
		if privileged {
			assert.Len(t, fail, 1, "%v is privileged: exactly one Fail webhook must select it", r)
		} else {
			assert.Empty(t, fail, "%v is not privileged: no Fail webhook may select it", r)
		}
		// The Ignore webhook selects privileged requests by its rules too; its matchCondition
		// leaves them to the Fail webhooks (TestEachRequestIsDecidedOnce shows it in the
		// cluster). Everything else must reach it.
		if !privileged && r.op != "CONNECT" {
			assert.Len(t, ignore, 1, "%v must be selected by the general webhook", r)
		}
	}
	for _, w := range cfg.Webhooks {
		assert.LessOrEqual(t, *w.TimeoutSeconds, int32(5), w.Name)
		assert.NotEmpty(t, w.MatchConditions, "%s must skip system components", w.Name)
	}
}

// TestAdmissionSeesMatchesTheConfiguration: policy.AdmissionSees, by which the proxy refuses what
// needs approval where admission cannot hold it, says exactly which requests the validating
// webhooks are called for.
func TestAdmissionSeesMatchesTheConfiguration(t *testing.T) {
	configs, _, err := testbed.ChartWebhookConfigurations()
	require.NoError(t, err)
	require.Len(t, configs, 1)
	cfg := configs[0]
	// Every namespaceSelector leaves out exactly policy.AdmissionSkipsNamespaces (the proxy's
	// default --admission-skipped-namespaces).
	for _, w := range cfg.Webhooks {
		if w.NamespaceSelector == nil {
			continue
		}
		require.Len(t, w.NamespaceSelector.MatchExpressions, 1, w.Name)
		e := w.NamespaceSelector.MatchExpressions[0]
		assert.Equal(t, "kubernetes.io/metadata.name", e.Key, w.Name)
		assert.Equal(t, metav1.LabelSelectorOpNotIn, e.Operator, w.Name)
		assert.ElementsMatch(t, policy.AdmissionSkipsNamespaces, e.Values, w.Name)
	}
	// kube-apiserver never sends these to webhooks, whatever the rules say.
	exempt := []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies",
		"validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"}
	type request struct{ op, group, resource, sub, namespace, name string }
	var requests []request
	for _, ns := range []string{"shop", "kube-system", "gatehouse"} {
		for _, r := range []request{
			{op: "CREATE", resource: "secrets"}, {op: "UPDATE", resource: "configmaps"}, {op: "DELETE", group: "apps", resource: "deployments"},
			{op: "UPDATE", group: "apps", resource: "deployments", sub: "scale"}, {op: "UPDATE", resource: "pods", sub: "status"},
			{op: "UPDATE", resource: "pods", sub: "ephemeralcontainers"}, {op: "CREATE", resource: "pods", sub: "eviction"},
			{op: "CONNECT", resource: "pods", sub: "exec"}, {op: "CONNECT", resource: "pods", sub: "portforward"},
			{op: "CREATE", group: "rbac.authorization.k8s.io", resource: "rolebindings"}, {op: "CREATE", group: "gatehouse.dev", resource: "things"},
		} {
			r.namespace = ns
			requests = append(requests, r)
		}
		// A Namespace object is judged by its own labels.
		for _, op := range []string{"CREATE", "UPDATE", "DELETE"} {
			requests = append(requests, request{op: op, resource: "namespaces", name: ns})
		}
	}
	// Cluster-scoped resources: a namespaceSelector never skips them.
	requests = append(requests, []request{
		{op: "CONNECT", resource: "nodes", sub: "proxy"}, {op: "CREATE", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		{op: "CREATE", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		{op: "CREATE", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
		{op: "UPDATE", group: "admissionregistration.k8s.io", resource: "mutatingadmissionpolicies"},
		{op: "CREATE", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"}, {op: "DELETE", group: "gatehouse.dev", resource: "accesspolicies"},
	}...)
	for _, r := range requests {
		selectorNamespace := r.namespace
		if r.resource == "namespaces" {
			selectorNamespace = r.name
		}
		called := false
		for _, w := range cfg.Webhooks {
			if w.NamespaceSelector != nil && slices.Contains(policy.AdmissionSkipsNamespaces, selectorNamespace) {
				continue
			}
			for _, rule := range w.Rules {
				if covers(rule, r.op, r.group, r.resource, r.sub) && !(r.group == "admissionregistration.k8s.io" && slices.Contains(exempt, r.resource)) {
					called = true
				}
			}
		}
		a := policy.Attributes{Operation: r.op, Group: r.group, Resource: r.resource, Subresource: r.sub, Namespace: r.namespace, Name: r.name}
		assert.Equal(t, called, policy.AdmissionSees(a), "%+v", r)
	}
}
