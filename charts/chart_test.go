package charts_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/charts"
	"github.com/gatehouse-dev/gatehouse/registration"
)

// TestManifestsMatchChart fails when manifests/ is not what the chart renders: edit the chart and
// run make generate.
func TestManifestsMatchChart(t *testing.T) {
	rendered, err := charts.Render(t.Context(), bed.helm, bed.root)
	require.NoError(t, err)
	changed, stale, err := charts.Diff(bed.root, rendered)
	require.NoError(t, err)
	assert.Empty(t, changed, "manifests differ from the chart: run make generate")
	assert.Empty(t, stale, "manifests the chart no longer renders: run make generate")
	for _, f := range []string{"manifests/crd/gatehouse.dev_accesspolicies.yaml", "manifests/namespace.yaml",
		"manifests/webhook/configurations.yaml", "manifests/policies/default.yaml",
		"manifests/audit/policy.yaml", "manifests/audit/webhook-kubeconfig.yaml"} {
		assert.Contains(t, rendered, f)
	}
}

// valuesSets are the values files the chart is linted and rendered with (charts/gatehouse/ci);
// "" is the defaults.
var valuesSets = []string{"", "manifests-values.yaml", "cert-manager-values.yaml", "byo-values.yaml", "minimal-values.yaml"}

func setName(values string) string {
	if values == "" {
		return "defaults"
	}
	return strings.TrimSuffix(values, "-values.yaml")
}

func TestLint(t *testing.T) {
	for _, v := range valuesSets {
		t.Run(setName(v), func(t *testing.T) {
			args := []string{"lint", "--strict", "--namespace", charts.Namespace, bed.root + "/" + charts.Chart}
			if v != "" {
				args = append(args, "--values", valuesFile(v))
			}
			out, err := exec.CommandContext(t.Context(), bed.helm, args...).CombinedOutput()
			require.NoError(t, err, "%s", out)
		})
	}
}

// rendered renders the chart with a values set and returns its objects.
func rendered(t *testing.T, values string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	var files []string
	if values != "" {
		files = []string{valuesFile(values)}
	}
	out, err := charts.Template(t.Context(), bed.helm, bed.root, files, set...)
	require.NoError(t, err)
	docs, err := charts.Split(out)
	require.NoError(t, err)
	var objs []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		require.NoError(t, yaml.Unmarshal([]byte(d.YAML), &u.Object), d.Source)
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	require.NotNil(t, u)
	data, err := yaml.Marshal(u.Object)
	require.NoError(t, err)
	v := new(T)
	require.NoError(t, yaml.UnmarshalStrict(data, v))
	return v
}

// TestTemplate renders every values set and checks what must hold in each: nothing registers
// webhooks before the webhook answers, every pod runs locked down, every component gets its
// certificate from exactly one place.
func TestTemplate(t *testing.T) {
	for _, v := range valuesSets {
		t.Run(setName(v), func(t *testing.T) {
			objs := rendered(t, v)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
					_, found, err := unstructured.NestedSlice(o.Object, "webhooks")
					require.NoError(t, err)
					assert.False(t, found, "%s is created empty: the webhook fills it once it answers", o.GetName())
				}
				if !slices.Contains([]string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "AccessPolicy",
					"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}, o.GetKind()) {
					assert.Equal(t, charts.Namespace, o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
				}
			}
			certManager := kinds["Certificate"] > 0
			for _, o := range objs {
				if o.GetKind() != "Deployment" {
					continue
				}
				d := convert[appsv1.Deployment](t, o)
				pod := d.Spec.Template.Spec
				require.NotNil(t, pod.SecurityContext.RunAsNonRoot, d.Name)
				assert.True(t, *pod.SecurityContext.RunAsNonRoot, d.Name)
				require.Len(t, pod.Containers, 1)
				c := pod.Containers[0]
				assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, d.Name)
				assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation, d.Name)
				assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop, d.Name)
				assert.NotNil(t, c.ReadinessProbe, d.Name)
				assert.NotNil(t, c.LivenessProbe, d.Name)
				assert.NotEmpty(t, c.Resources.Requests, d.Name)
				assert.Contains(t, c.Args, "--masking-key-file=/etc/gatehouse/masking/key", "%s: every component masks with the shared key", d.Name)
				selfManaged := slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--self-managed-ca-secret=") })
				files := slices.ContainsFunc(c.Args, func(a string) bool {
					return strings.HasPrefix(a, "--tls-cert-file=") || strings.HasPrefix(a, "--cert-dir=")
				})
				assert.True(t, selfManaged != files, "%s: exactly one source of its serving certificate", d.Name)
				if certManager && d.Name == "gatehouse-webhook" {
					assert.Contains(t, c.Args, "--webhook-ca-bundle-file=/etc/gatehouse/tls/ca.crt")
				}
				if d.Name == "gatehouse-webhook" {
					assert.Contains(t, c.Args, "--webhook-configurations=/etc/gatehouse/webhook-configurations/configurations.yaml")
				}
			}
			for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
				"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
				assert.NotZero(t, kinds[k], "no %s", k)
			}

			// The configurations the webhook registers, as it will read them.
			cm := convert[corev1.ConfigMap](t, find(objs, "ConfigMap", "gatehouse-webhook-configurations"))
			validating, mutating, err := registration.Parse([]byte(cm.Data["configurations.yaml"]))
			require.NoError(t, err)
			require.Len(t, validating, 1)
			require.Len(t, mutating, 1)
			for _, w := range validating[0].Webhooks {
				require.NotNil(t, w.ClientConfig.Service, w.Name)
				assert.Equal(t, "gatehouse-webhook", w.ClientConfig.Service.Name)
				assert.Equal(t, charts.Namespace, w.ClientConfig.Service.Namespace)
				assert.Empty(t, w.ClientConfig.CABundle, "the webhook sets the CA bundle")
			}
			inject := validating[0].Annotations["cert-manager.io/inject-ca-from"]
			if certManager {
				assert.Equal(t, "gatehouse/gatehouse-webhook", inject)
				assert.NotNil(t, find(objs, "Certificate", "gatehouse-webhook"))
			} else {
				assert.Empty(t, inject)
			}
		})
	}
}

// TestValuesSchema checks that values.schema.json refuses what would deploy something else than
// the administrator meant.
func TestValuesSchema(t *testing.T) {
	tests := []struct {
		name string
		set  string
	}{
		{"misspelt key", "webhook.replica=2"},
		{"unknown component", "dashboard.enabled=true"},
		{"console before it exists", "console.enabled=true"},
		{"anti-affinity typo", "proxy.antiAffinity=always"},
		{"webhook timeout above kube-apiserver's limit", "webhook.timeoutSeconds=31"},
		{"not a duration", "webhook.tls.caDuration=1y"},
		{"zero retention", "enricher.retentionDays=0"},
		{"unknown log level", "logging.level=verbose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := charts.Template(t.Context(), bed.helm, bed.root, nil, tc.set)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "values don't meet the specifications of the schema")
		})
	}
}
