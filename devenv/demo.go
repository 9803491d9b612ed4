package devenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The demo's objects.
const (
	demoNamespace    = "demo"
	scratchNamespace = "scratch"
	demoSecret       = "db-credentials"
	// DemoPassword is the demo Secret's password: it must never reach the agent.
	DemoPassword = "correct-horse-battery-staple"
)

// createDemoObjects prepares what the agent works on: a namespace with a Secret, a ConfigMap,
// an ordinary pod that uses both and a privileged pod; and a namespace to try to delete.
func createDemoObjects(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	create := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	for _, ns := range []string{demoNamespace, scratchNamespace} {
		if err := create(func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		}()); err != nil {
			return err
		}
	}
	privileged := true
	objects := []func() error{
		func() error {
			_, err := cs.CoreV1().Secrets(demoNamespace).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: demoSecret},
				StringData: map[string]string{"username": "app", "password": DemoPassword},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().ConfigMaps(demoNamespace).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
				Data:       map[string]string{"MODE": "production", "LOG_LEVEL": "info"},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Pods(demoNamespace).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "web", Image: "nginx:1.27",
						Ports:   []corev1.ContainerPort{{ContainerPort: 80}},
						EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
						Env: []corev1.EnvVar{{Name: "DB_USER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: demoSecret}, Key: "username"}}}},
						VolumeMounts: []corev1.VolumeMount{{Name: "db", MountPath: "/etc/db", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: demoSecret}}}},
				},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Pods(demoNamespace).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "node-debugger", Labels: map[string]string{"app": "debug"}},
				Spec: corev1.PodSpec{
					HostPID:    true,
					Containers: []corev1.Container{{Name: "debug", Image: "busybox:1.36", Command: []string{"sleep", "infinity"}, SecurityContext: &corev1.SecurityContext{Privileged: &privileged}}},
				},
			}, metav1.CreateOptions{})
			return err
		},
	}
	for _, f := range objects {
		if err := create(f()); err != nil {
			return err
		}
	}
	// The dev node binds and starts the pods; wait until they run.
	for _, name := range []string{"web", "node-debugger"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := cs.CoreV1().Pods(demoNamespace).Get(ctx, name, metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodRunning {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s/%s is not running after 30s", demoNamespace, name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// applyPolicies applies the default policy pack as the administrator and waits until both
// paths enforce it: a dry run of a cluster-admin binding is held through the proxy and, for a
// direct client, at admission.
func (e *Env) applyPolicies(ctx context.Context) (string, error) {
	if _, err := e.kubectl(ctx, e.adminKubeconfig(), "", "apply", "-f", filepath.Join(e.manifests, "policies", "default.yaml")); err != nil {
		return "", err
	}
	if e.kube == nil {
		return "applied; enforced at admission once the administrator registers the webhooks", nil
	}
	agentTok, err := e.issuer.Mint("agent")
	if err != nil {
		return "", err
	}
	// A held dry run is refused, or (when admission lets dry runs through) answered with a
	// warning that the operation itself will be held: either says the policies are enforced.
	proxyWarnings, directWarnings := &warnings{}, &warnings{}
	viaProxy, err := kubernetes.NewForConfig(&rest.Config{Host: e.proxyURL, BearerToken: agentTok, TLSClientConfig: rest.TLSClientConfig{CAData: e.proxyCA}, WarningHandler: proxyWarnings})
	if err != nil {
		return "", err
	}
	// The administrator, directly: not a service account, so held at admission like anyone.
	adminCfg := rest.CopyConfig(e.admin)
	adminCfg.WarningHandler = directWarnings
	direct, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		return "", err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-probe"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "nobody"}},
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, errProxy := viaProxy.RbacV1().ClusterRoleBindings().Create(ctx, crb, dry)
		_, errDirect := direct.RbacV1().ClusterRoleBindings().Create(ctx, crb, dry)
		if held(errProxy, proxyWarnings) && held(errDirect, directWarnings) {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the default policies are not enforced after 90s (proxy: %v; direct: %v)", errProxy, errDirect)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return "manifests/policies/default.yaml, enforced by the proxy and at admission", nil
}

// warnings collects the warnings kube-apiserver (or the proxy) returns.
type warnings struct {
	mu   sync.Mutex
	last []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = append(w.last, text)
}

// take returns and forgets the warnings so far.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.last
	w.last = nil
	return out
}

// held says whether a dry run was held for approval: refused saying so, or warned about it.
func held(err error, w *warnings) bool {
	if err != nil {
		return strings.Contains(err.Error(), "approval")
	}
	for _, text := range w.take() {
		if strings.Contains(text, "requires approval") {
			return true
		}
	}
	return false
}

// PrintTry prints what to try with the running system.
func (e *Env) PrintTry() {
	rel := func(name string) string {
		p := e.file(name)
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
				return r
			}
		}
		return p
	}
	w := e.out
	fmt.Fprintf(w, "\nWhat to try (state and logs in %s):\n\n", e.o.Dir)
	fmt.Fprintf(w, "  As the agent, through Gatehouse (group agents, cluster-admin in RBAC):\n")
	fmt.Fprintf(w, "    export KUBECONFIG=%s\n", rel(AgentKubeconfig))
	if e.kube != nil {
		fmt.Fprintf(w, "    kubectl get pods -n %s\n", demoNamespace)
		fmt.Fprintf(w, "    kubectl get secret %s -n %s -o yaml              # values masked\n", demoSecret, demoNamespace)
		fmt.Fprintf(w, "    kubectl exec -it web -n %s -- sh                          # the dev node's built-in shell\n", demoNamespace)
		fmt.Fprintf(w, "    kubectl exec node-debugger -n %s -- sh                    # denied: a privileged pod\n", demoNamespace)
	} else {
		fmt.Fprintf(w, "    kubectl get pods -A\n")
		fmt.Fprintf(w, "    kubectl get secrets -A -o yaml                             # values masked\n")
	}
	fmt.Fprintf(w, "    kubectl create clusterrolebinding me --clusterrole=cluster-admin --user=oidc:agent   # held for approval\n")
	fmt.Fprintf(w, "\n  As the approver, in another terminal:\n")
	fmt.Fprintf(w, "    gatehouse approvals list --watch --kubeconfig %s\n", rel(ApproverKubeconfig))
	fmt.Fprintf(w, "    gatehouse approvals approve ID --reason \"looks fine\" --kubeconfig %s\n", rel(ApproverKubeconfig))
	fmt.Fprintf(w, "\n  Straight to kube-apiserver, around the proxy (the trail calls it a bypass):\n")
	fmt.Fprintf(w, "    kubectl --kubeconfig %s get namespaces\n", rel(AdminKubeconfig))
	fmt.Fprintf(w, "\n  Tokens of the demo identities: gatehouse dev token agent|approver|developer --dir %s\n", e.o.Dir)
	fmt.Fprintf(w, "  Log in as a person (browser, or --device-code; --session NAME names a session): gatehouse login --server %s --issuer %s --certificate-authority %s --issuer-certificate-authority %s\n",
		e.proxyURL, e.issuer.URL, rel("proxy-ca.crt"), rel("issuer-ca.crt"))
	fmt.Fprintf(w, "  Approvers' console: %s (sign in as approver; the approvals API of gatehouse approvals is served there too)\n", e.consoleURL)
	fmt.Fprintf(w, "\n  The audit trail in ClickHouse, as an auditor reads it (gatehouse sql --list names the canned queries of docs/auditing.md):\n")
	fmt.Fprintf(w, "    gatehouse sql --clickhouse-addr %s --query who-changed-what --param since=1h\n", e.chNative)
	fmt.Fprintf(w, "    gatehouse sql --clickhouse-addr %s --query denied-attempts --param since=1h\n", e.chNative)
	fmt.Fprintf(w, "    gatehouse sql --clickhouse-addr %s \"SELECT time, route, user, verb, resource, namespace, name, code, decision_rule FROM gatehouse.trail ORDER BY time DESC LIMIT 20\"\n", e.chNative)
	for _, s := range e.attachSteps {
		fmt.Fprintf(w, "\n  Administrator's step: %s\n", s)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything.\n")
}
