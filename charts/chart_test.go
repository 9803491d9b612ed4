package charts_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/charts"
	"github.com/gatehouse-dev/gatehouse/cmd/gatehouse/app"
	"github.com/gatehouse-dev/gatehouse/natsbus"
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
// natsCredentials are the NATS credentials Secrets the values sets name.
var natsCredentials = map[string]map[string]string{
	"byo": {"proxy": "gatehouse-proxy-nats", "webhook": "gatehouse-webhook-nats", "enricher": "gatehouse-enricher-nats", "console": "gatehouse-console-nats"},
}

func TestTemplate(t *testing.T) {
	for _, v := range valuesSets {
		v0 := v
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
			enricher := kinds["StatefulSet"] > 0
			for _, w := range workloads(t, objs) {
				pod, name := w.pod, w.name
				require.Len(t, pod.Containers, 1)
				c := pod.Containers[0]
				if w.kind == "DaemonSet" {
					// The backstop reads kube-apiserver's audit log, which only root may read:
					// root, but without any capability, and the log mounted read-only.
					assert.Equal(t, "gatehouse-enricher-backstop", name)
					require.NotNil(t, pod.SecurityContext.RunAsUser, name)
					assert.Zero(t, *pod.SecurityContext.RunAsUser, name)
					assert.Contains(t, c.Args, "--bind-address=127.0.0.1", "%s: its intake, which nothing sends to, is on loopback", name)
					assert.Contains(t, c.Args, "--audit-log-path=/var/log/kubernetes/audit/audit.log", name)
					for _, m := range c.VolumeMounts {
						if m.Name == "audit-log" {
							assert.True(t, m.ReadOnly, "%s: the audit log is mounted read-only", name)
						}
					}
				} else {
					require.NotNil(t, pod.SecurityContext.RunAsNonRoot, name)
					assert.True(t, *pod.SecurityContext.RunAsNonRoot, name)
				}
				assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type, name)
				assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, name)
				assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation, name)
				assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop, name)
				assert.Empty(t, c.SecurityContext.Capabilities.Add, name)
				assert.NotNil(t, c.ReadinessProbe, name)
				assert.NotNil(t, c.LivenessProbe, name)
				assert.NotEmpty(t, c.Resources.Requests, name)
				assert.Contains(t, c.Args, "--masking-key-file=/etc/gatehouse/masking/key", "%s: every component masks with the shared key", name)
				// Every component reaches NATS with its own identity, and only the webhook and
				// the console hold the approval key.
				assert.Contains(t, c.Args, "--nats-nkey-file=/etc/gatehouse/nats-creds/nkey", name)
				if c.Args[0] == "webhook" || c.Args[0] == "console" {
					assert.Contains(t, c.Args, "--approval-key-file=/etc/gatehouse/approval-key/key", name)
				} else {
					assert.NotContains(t, strings.Join(c.Args, " "), "approval-key", "%s holds no approval key", name)
				}
				role := map[string]string{"gatehouse-webhook": "webhook", "gatehouse-proxy": "proxy", "gatehouse-enricher": "enricher",
					"gatehouse-enricher-backstop": "enricher", "gatehouse-console": "console"}[name]
				require.NotEmpty(t, role, name)
				for _, v := range pod.Volumes {
					if v.Name == "nats-creds" {
						want := "gatehouse-" + role + "-nats"
						if s, ok := natsCredentials[setName(v0)][role]; ok {
							want = s
						}
						assert.Equal(t, want, v.Secret.SecretName, "%s: its own NATS credentials", name)
					}
				}
				selfManaged := slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--self-managed-ca-secret=") })
				files := slices.ContainsFunc(c.Args, func(a string) bool {
					return strings.HasPrefix(a, "--tls-cert-file=") || strings.HasPrefix(a, "--cert-dir=")
				})
				assert.True(t, selfManaged != files, "%s: exactly one source of its serving certificate", name)
				if certManager && name == "gatehouse-webhook" {
					assert.Contains(t, c.Args, "--webhook-ca-bundle-file=/etc/gatehouse/tls/ca.crt")
				}
				if name == "gatehouse-webhook" {
					assert.Contains(t, c.Args, "--webhook-configurations=/etc/gatehouse/webhook-configurations/configurations.yaml")
				}
				if c.Args[0] == "enricher" {
					assert.Contains(t, c.Args, "--client-ca-file=/etc/gatehouse/client-ca/ca.crt", "%s: the intake takes only kube-apiserver's client certificate", name)
					assert.True(t, slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--spool-dir=") }), "%s: a spool", name)
					assert.Contains(t, c.Args, "--memory-limit=auto", name)
					require.NotNil(t, c.Resources.Limits.Memory(), name)
					assert.False(t, c.Resources.Limits.Memory().IsZero(), "%s: --memory-limit=auto needs a memory limit", name)
				}
			}
			if enricher {
				sts := convert[appsv1.StatefulSet](t, find(objs, "StatefulSet", "gatehouse-enricher"))
				require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
				assert.Equal(t, "spool", sts.Spec.VolumeClaimTemplates[0].Name)
				assert.Contains(t, sts.Spec.Template.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "spool", MountPath: "/var/lib/gatehouse/spool"})
				assert.NotNil(t, find(objs, "DaemonSet", "gatehouse-enricher-backstop"), "the backstop is on by default")
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
			assert.Len(t, validating[0].Webhooks, 5)
			assert.Len(t, mutating[0].Webhooks, 2, "stamp and guard")
			// The proxy refuses what a rule holds for approval where admission cannot see it:
			// it must be told the namespaces every namespaceSelector leaves out.
			proxy := convert[appsv1.Deployment](t, find(objs, "Deployment", "gatehouse-proxy"))
			var skipped []string
			for _, a := range proxy.Spec.Template.Spec.Containers[0].Args {
				if v, ok := strings.CutPrefix(a, "--admission-skipped-namespaces="); ok {
					skipped = strings.Split(v, ",")
				}
			}
			require.NotEmpty(t, skipped, "the proxy is told the namespaces admission skips")
			selectors := 0
			for _, w := range validating[0].Webhooks {
				if w.NamespaceSelector != nil {
					selectors++
					require.Len(t, w.NamespaceSelector.MatchExpressions, 1, w.Name)
					assert.ElementsMatch(t, skipped, w.NamespaceSelector.MatchExpressions[0].Values, w.Name)
				}
			}
			assert.Equal(t, 3, selectors, "the privileged, held and general webhooks skip namespaces")
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

// TestNATSAuthorization: the chart renders the authorization block of an external nats-server
// from the permissions natsbus defines (files/nats-permissions.json, which make generate writes),
// and nats-server reads it as natsbus.Permissions: each identity gets exactly its role's.
func TestNATSAuthorization(t *testing.T) {
	want, err := natsbus.PermissionsJSON()
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(bed.root, charts.PermissionsFile))
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "%s is not natsbus's permissions: run make generate", charts.PermissionsFile)

	users, err := natsbus.WriteKeys(t.TempDir(), natsbus.Roles)
	require.NoError(t, err)
	var set []string
	for _, u := range users {
		set = append(set, fmt.Sprintf("nats.users.%s[0]=%s", u.Role, u.NKey))
	}
	cm := convert[corev1.ConfigMap](t, find(rendered(t, "", set...), "ConfigMap", "gatehouse-nats-authorization"))
	dir := t.TempDir()
	file := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(file, []byte("port: -1\njetstream: {store_dir: "+dir+"}\n"+cm.Data["authorization.conf"]), 0o600))
	opts, err := server.ProcessConfigFile(file)
	require.NoError(t, err)
	require.Len(t, opts.Nkeys, len(users))
	byKey := map[string]*server.NkeyUser{}
	for _, u := range opts.Nkeys {
		byKey[u.Nkey] = u
	}
	for _, u := range users {
		perms, err := natsbus.Permissions(u.Role)
		require.NoError(t, err)
		got := byKey[u.NKey]
		require.NotNil(t, got, u.Role)
		require.NotNil(t, got.Permissions, u.Role)
		assert.Equal(t, perms.Publish.Allow, got.Permissions.Publish.Allow, "%s publishes", u.Role)
		assert.Equal(t, perms.Subscribe.Allow, got.Permissions.Subscribe.Allow, "%s subscribes", u.Role)
	}
	assert.Nil(t, find(rendered(t, ""), "ConfigMap", "gatehouse-nats-authorization"), "no users, no block")
}

// TestNATSProvisioning: with nats.provision, a Helm hook runs gatehouse nats provision before
// install and upgrade, with the administrator's credentials; plain nats:// URLs without a CA are
// refused when rendering.
func TestNATSProvisioning(t *testing.T) {
	job := find(rendered(t, "", "nats.provision.enabled=true"), "Job", "gatehouse-nats-provision")
	require.NotNil(t, job)
	assert.Equal(t, "pre-install,pre-upgrade", job.GetAnnotations()["helm.sh/hook"])
	pod := convert[batchv1.Job](t, job).Spec.Template.Spec
	assert.Equal(t, []string{"nats", "provision"}, pod.Containers[0].Args[:2])
	assert.Contains(t, pod.Containers[0].Args, "--nats-nkey-file=/etc/gatehouse/nats-creds/nkey")
	assert.Equal(t, "gatehouse-admin-nats", pod.Volumes[0].Secret.SecretName)
	assert.Nil(t, find(rendered(t, ""), "Job", "gatehouse-nats-provision"), "off by default: gatehouse nats provisions itself")

	_, err := charts.Template(t.Context(), bed.helm, bed.root, nil, "nats.url=nats://nats:4222")
	require.ErrorContains(t, err, "TLS only")
	_, err = charts.Template(t.Context(), bed.helm, bed.root, nil, "nats.url=nats://nats:4222", "nats.caSecret=nats-ca")
	require.NoError(t, err, "a nats:// URL with a CA is TLS")
}

// workload is the pod template of a Deployment, StatefulSet, DaemonSet or Job.
type workload struct {
	kind, name string
	pod        corev1.PodSpec
}

func workloads(t *testing.T, objs []*unstructured.Unstructured) []workload {
	t.Helper()
	var out []workload
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			out = append(out, workload{o.GetKind(), o.GetName(), convert[appsv1.Deployment](t, o).Spec.Template.Spec})
		case "StatefulSet":
			out = append(out, workload{o.GetKind(), o.GetName(), convert[appsv1.StatefulSet](t, o).Spec.Template.Spec})
		case "DaemonSet":
			out = append(out, workload{o.GetKind(), o.GetName(), convert[appsv1.DaemonSet](t, o).Spec.Template.Spec})
		case "Job":
			out = append(out, workload{o.GetKind(), o.GetName(), convert[batchv1.Job](t, o).Spec.Template.Spec})
		}
	}
	return out
}

// TestArgsAreFlagsOfTheCommands parses every container's arguments, in every values set and
// with the optional parts switched on, with the gatehouse command they run: a flag the command
// does not have (renamed, removed, misspelt) fails here, not in a crash-looping pod.
func TestArgsAreFlagsOfTheCommands(t *testing.T) {
	type set struct {
		values string
		set    []string
	}
	sets := []set{{values: ""}, {values: "byo-values.yaml"}, {values: "cert-manager-values.yaml"}, {values: "minimal-values.yaml"}, {values: "manifests-values.yaml"},
		{set: []string{"masking.config.kind=MaskingConfig", "webhook.approvals.url=https://console.example.com", "enricher.clickhouse.tls.enabled=true",
			"enricher.clickhouse.tls.caSecret=ch-ca", "nats.caSecret=nats-ca", "nats.credentialsSecrets.enricher=e", "nats.credentialsSecrets.proxy=p",
			"nats.credentialsSecrets.webhook=w", "proxy.allowClientImpersonation=true", "enricher.gatewayUsers={a,b}",
			"nats.provision.enabled=true", "nats.clientCertificateSecrets.proxy=pc", "nats.credentialsType=creds", "enricher.clickhouse.cluster=gatehouse"}}}
	for _, s := range sets {
		objs := rendered(t, s.values, s.set...)
		ws := workloads(t, objs)
		require.NotEmpty(t, ws)
		for _, w := range ws {
			for _, c := range w.pod.Containers {
				require.NotEmpty(t, c.Args, w.name)
				root := app.NewCommand(io.Discard, io.Discard)
				cmd, rest, err := root.Find(c.Args)
				require.NoError(t, err, "%s: %v", w.name, c.Args)
				require.NotEqual(t, root, cmd, "%s runs no gatehouse command: %v", w.name, c.Args)
				assert.NoError(t, cmd.ParseFlags(rest), "%s (%s %v): gatehouse %s", w.name, s.values, s.set, c.Args[0])
			}
		}
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
		{"the console without its address and client", "console.enabled=true"},
		{"the console at a plain http address", "console.enabled=true,console.externalURL=http://console.example.com,console.oidc.clientID=gatehouse-console"},
		{"anti-affinity typo", "proxy.antiAffinity=always"},
		{"webhook timeout above kube-apiserver's limit", "webhook.timeoutSeconds=31"},
		{"not a duration", "webhook.tls.caDuration=1y"},
		{"zero retention", "enricher.retentionDays=0"},
		{"an intake without client certificates", "enricher.clientCAConfigMap="},
		{"a relative audit log path", "enricher.backstop.auditLogPath=audit.log"},
		{"unrecorded requests typo", "proxy.unrecordedRequests=allow"},
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
