package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// The chart the Helm tests install: a Secret from the values, a ConfigMap, notes.
var helmChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: shop\nversion: 0.1.0\nappVersion: \"1.0\"\n",
	"values.yaml": "mode: production\nreplicas: 1\ndb:\n  user: shop\n  password: \"\"\n",
	"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
type: Opaque
data:
  password: {{ .Values.db.password | b64enc | quote }}
  user: {{ .Values.db.user | b64enc | quote }}
`,
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  mode: {{ .Values.mode | quote }}
  replicas: {{ .Values.replicas | quote }}
`,
	"templates/NOTES.txt": "The database password is in the Secret {{ .Release.Name }}-db.\n",
}

const helmCanary = "canary-helm-db-password-7d41"

// helmCLI runs one helm binary as a user through Gatehouse.
type helmCLI struct {
	bin, kubeconfig, namespace, driver, home string
}

func newHelmCLI(t *testing.T, bin, kubeconfig, namespace, driver string) *helmCLI {
	t.Helper()
	return &helmCLI{bin: bin, kubeconfig: kubeconfig, namespace: namespace, driver: driver, home: t.TempDir()}
}

func (h *helmCLI) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--kubeconfig", h.kubeconfig, "-n", h.namespace}, args...)...)
	cmd.Env = append(os.Environ(),
		"HELM_DRIVER="+h.driver,
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func writeChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	for name, content := range helmChart {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

// autoApprover approves, as an approver, every pending request of one requester in one
// namespace, and counts them. It grants the scope a request's rule offers, if any.
type autoApprover struct {
	client    *approvals.Client
	requester string
	namespace string
	scoped    bool

	mu       sync.Mutex
	approved []*approvals.Request
}

func startAutoApprover(t *testing.T, approver user, requester, namespace string, scoped bool) *autoApprover {
	t.Helper()
	hc, err := rest.HTTPClientFor(&rest.Config{Host: bed.proxyURL, BearerToken: approver.token, TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}})
	require.NoError(t, err)
	a := &autoApprover{client: &approvals.Client{BaseURL: bed.consoleURL, HTTP: hc}, requester: requester, namespace: namespace, scoped: scoped}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			items, err := a.client.List(ctx, approvals.StatePending)
			if err == nil {
				for _, r := range items {
					if r.Requester.User != requester || r.Operation.Namespace != namespace {
						continue
					}
					var choice *approvals.ScopeChoice
					if a.scoped && r.ScopeOffer != nil {
						choice = &approvals.ScopeChoice{}
					}
					if got, err := a.client.DecideScoped(ctx, r.ID, approvals.Approve, "e2e: helm", choice); err == nil {
						a.mu.Lock()
						a.approved = append(a.approved, got)
						a.mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return a
}

// count returns the number of requests approved so far.
func (a *autoApprover) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.approved)
}

// helmRecords returns the releases Helm stored for release in ns, decoded, read directly.
func helmRecords(t *testing.T, ns, release, driver string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "owner=helm,name=" + release}
	var payloads []string
	if driver == "configmap" {
		list, err := bed.kube.Clientset.CoreV1().ConfigMaps(ns).List(ctx, sel)
		require.NoError(t, err)
		for _, cm := range list.Items {
			payloads = append(payloads, cm.Data["release"])
		}
	} else {
		list, err := bed.kube.Clientset.CoreV1().Secrets(ns).List(ctx, sel)
		require.NoError(t, err)
		for _, s := range list.Items {
			assert.Equal(t, masking.HelmReleaseType, string(s.Type))
			payloads = append(payloads, string(s.Data["release"]))
		}
	}
	var out []map[string]any
	for _, p := range payloads {
		doc, ok := masking.DecodeHelmRelease([]byte(p))
		require.True(t, ok, "a stored release decodes")
		require.False(t, masking.ContainsPlaceholder(doc), "no placeholder was stored in a release record")
		var rel map[string]any
		require.NoError(t, json.Unmarshal(doc, &rel))
		out = append(out, rel)
	}
	return out
}

// TestHelmThroughTheGateway: Helm 3 and 4, with the Secret and the ConfigMap storage drivers,
// install, list, inspect, upgrade, roll back and uninstall a release through Gatehouse as an
// agent. What Helm reads is masked (values, manifests), what it writes back keeps the stored
// secrets, and the Secret writes are held for approval: with exact grants one approval per
// write, with the scope the default pack offers one approval per command (each command runs in
// a session of its own here).
func TestHelmThroughTheGateway(t *testing.T) {
	helm4, err := testbed.Helm()
	require.NoError(t, err)
	helm3, err := testbed.Helm3()
	require.NoError(t, err)
	chart := writeChart(t)
	var report []string
	for _, tc := range []struct {
		name, bin, driver string
		scoped            bool
	}{
		{"helm4-secret", helm4, "secret", true},
		{"helm4-configmap", helm4, "configmap", true},
		{"helm3-secret", helm3, "secret", true},
		{"helm3-configmap", helm3, "configmap", true},
		{"helm4-secret-exact", helm4, "secret", false},
		{"helm3-secret-exact", helm3, "secret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			ns := bed.kube.Namespace(t, tc.name)
			agent := newUser("agent-"+tc.name, agentGroup)
			approver := newUser("approver-"+tc.name, approverGroup)
			approved := startAutoApprover(t, approver, agent.user, ns, tc.scoped)
			steps := []string{}
			step := func(name string, args ...string) string {
				t.Helper()
				// Each command in a session of its own: a scope granted for one does not carry over.
				session := strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(name)
				h := newHelmCLI(t, tc.bin, agent.withOptions("session="+tc.name+"-"+session).kubeconfig, ns, tc.driver)
				before := approved.count()
				start := time.Now()
				out, err := h.run(ctx, args...)
				require.NoError(t, err, "helm %s: %s", strings.Join(args, " "), out)
				assert.NotContains(t, out, helmCanary, "helm %s shows no secret", name)
				assert.NotContains(t, out, base64.StdEncoding.EncodeToString([]byte(helmCanary)), "helm %s shows no secret", name)
				assert.NotContains(t, out, "Gatehouse masked the values", "helm %s is spared the warning meant for kubectl describe", name)
				steps = append(steps, fmt.Sprintf("%-22s %2d approval(s)  %5.1fs", name, approved.count()-before, time.Since(start).Seconds()))
				return out
			}
			secretValue := func() string {
				s, err := bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "shop-db", metav1.GetOptions{})
				require.NoError(t, err)
				return string(s.Data["password"])
			}
			mode := func() string {
				cm, err := bed.kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "shop-config", metav1.GetOptions{})
				require.NoError(t, err)
				return cm.Data["mode"]
			}

			step("install", "install", "shop", chart, "--set", "db.password="+helmCanary)
			assert.Equal(t, helmCanary, secretValue())
			recs := helmRecords(t, ns, "shop", tc.driver)
			require.Len(t, recs, 1)
			assert.Equal(t, helmCanary, recs[0]["config"].(map[string]any)["db"].(map[string]any)["password"])

			out := step("list", "list")
			assert.Contains(t, out, "shop")
			assert.Contains(t, out, "deployed")
			out = step("status", "status", "shop")
			assert.Contains(t, out, "STATUS: deployed")
			out = step("get values", "get", "values", "shop")
			assert.Contains(t, out, "password: gatehouse:masked:", "the values are masked")
			out = step("get manifest", "get", "manifest", "shop")
			assert.Contains(t, out, "kind: Secret")
			assert.Contains(t, out, "# Source: shop/templates/secret.yaml")
			assert.Contains(t, out, `mode: "production"`)

			step("upgrade (reuse values)", "upgrade", "shop", chart, "--reuse-values", "--set", "mode=staging")
			assert.Equal(t, helmCanary, secretValue(), "the upgrade kept the secret it could not see")
			assert.Equal(t, "staging", mode())
			out = step("history", "history", "shop")
			assert.Contains(t, out, "superseded")
			assert.Contains(t, out, "deployed")
			recs = helmRecords(t, ns, "shop", tc.driver)
			require.Len(t, recs, 2)
			for _, rel := range recs {
				assert.Equal(t, helmCanary, rel["config"].(map[string]any)["db"].(map[string]any)["password"], "every revision keeps its values")
			}

			step("rollback", "rollback", "shop", "1")
			assert.Equal(t, helmCanary, secretValue())
			assert.Equal(t, "production", mode())
			require.Len(t, helmRecords(t, ns, "shop", tc.driver), 3)

			step("uninstall", "uninstall", "shop")
			assert.Empty(t, helmRecords(t, ns, "shop", tc.driver))
			_, err := bed.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "shop-db", metav1.GetOptions{})
			assert.True(t, isNotFound(err), "uninstall removed the chart's objects")
			report = append(report, fmt.Sprintf("%s through Gatehouse:\n  %s", tc.name, strings.Join(steps, "\n  ")))
		})
	}
	t.Log("\n" + strings.Join(report, "\n"))
}

// TestHelmDirectWithScopedApproval: a person using Helm directly, with their own credentials,
// is stopped by the webhook (each of Helm's retries writes a record with new timestamps, so an
// exact approval would never match); an approver grants their session a scope, and from then on
// install, upgrade, rollback and uninstall pass without another approval.
func TestHelmDirectWithScopedApproval(t *testing.T) {
	helm4, err := testbed.Helm()
	require.NoError(t, err)
	helm3, err := testbed.Helm3()
	require.NoError(t, err)
	chart := writeChart(t)
	kubeconfig, err := testbed.WriteKubeconfig(bed.dir, bed.direct)
	require.NoError(t, err)
	for _, tc := range []struct{ name, bin string }{{"direct-helm4", helm4}, {"direct-helm3", helm3}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			ns := bed.kube.Namespace(t, tc.name)
			approver := newUser("approver-"+tc.name, approverGroup)
			h := newHelmCLI(t, tc.bin, kubeconfig, ns, "secret")

			out, err := h.run(ctx, "install", "shop", chart, "--set", "db.password="+helmCanary)
			require.Error(t, err, "the first install is held by the webhook: %s", out)
			id := approvalID(t, out)
			assert.Contains(t, out, "gatehouse approvals approve "+id, "the denial says how to approve")
			show, err := approver.approvals(t, "show", id)
			require.NoError(t, err)
			assert.Contains(t, show, "Scope offered:", "the rule offers a scope")
			got, err := approver.approvals(t, "approve", id, "--scope", "--scope-duration", "10m", "--reason", "e2e: direct helm")
			require.NoError(t, err)
			assert.Contains(t, got, "Granted: create, update, patch, delete on secrets in namespace "+ns)

			for _, args := range [][]string{
				{"install", "shop", chart, "--set", "db.password=" + helmCanary},
				{"upgrade", "shop", chart, "--reuse-values", "--set", "mode=staging"},
				{"rollback", "shop", "1"},
				{"uninstall", "shop"},
			} {
				out, err := h.run(ctx, args...)
				require.NoError(t, err, "helm %s within the scope: %s", args[0], out)
			}
			list, err := approver.approvals(t, "list", "--all", "-o", "json")
			require.NoError(t, err)
			var all approvals.ListResponse
			require.NoError(t, json.Unmarshal([]byte(list), &all))
			n := 0
			for _, r := range all.Items {
				if r.Operation.Namespace == ns {
					n++
				}
			}
			assert.Equal(t, 1, n, "one approval for the whole session")
		})
	}
}
