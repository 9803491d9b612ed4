package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
)

// NATSIdentities gives each Gatehouse component the flags of its own NATS identity: a NATS
// server (StartNATS) or a cluster (StartNATSCluster).
type NATSIdentities interface {
	Args(role natsbus.Role) []string
}

var (
	_ NATSIdentities = (*NATS)(nil)
	_ NATSIdentities = (*NATSCluster)(nil)
)

// DeploymentOptions configure a Deployment.
type DeploymentOptions struct {
	// Dir holds the deployment's files: keys, certificates, kubeconfigs, spool directories.
	// Required.
	Dir string
	// NATS gives each component its NATS identity. Required.
	NATS NATSIdentities
	// ClickHouse is the enrichers' database. Required.
	ClickHouse *ClickHouse
	// Replicas is how many enrichers, webhooks and proxies run; the console runs once.
	// Default 1.
	Replicas int
	// Front, when set, is called with the serving addresses of a component's replicas
	// ("enricher", "webhook" or "proxy") before they start, and returns the one address
	// (host:port) that reaches them, as a Service does. Default: the address of the only
	// replica (Replicas must then be 1).
	Front func(component string, replicas ...string) (string, error)
	// EnricherArgs, WebhookArgs, ProxyArgs and ConsoleArgs are added to the flags the chart
	// gives every replica of that component (a test's own tuning: timeouts, log levels).
	EnricherArgs, WebhookArgs, ProxyArgs, ConsoleArgs []string
	// ReadyTimeout is how long a component may take to become ready. Default 60s.
	ReadyTimeout time.Duration
}

// Component is one replica of a Gatehouse component run as a process (StartGatehouse).
type Component struct {
	*Process
	// Name is the subcommand and the replica's index, e.g. "proxy 0".
	Name string
	// Addr is where it serves (host:port); Health where it serves /healthz, /readyz and
	// /metrics.
	Addr, Health string

	args    []string
	timeout time.Duration
	// ready is what Start waits for besides /readyz.
	ready func(context.Context) error
}

// Readyz is the URL of the component's readiness endpoint.
func (c *Component) Readyz() string { return "http://" + c.Health + "/readyz" }

// Metrics is the URL of the component's metrics.
func (c *Component) Metrics() string { return "http://" + c.Health + "/metrics" }

// Start runs the component, again after Stop or Kill with the same flags, and waits until it
// is ready (the webhook: until it has also registered its configurations).
func (c *Component) Start(ctx context.Context) error {
	p, err := StartGatehouse(c.args...)
	if err != nil {
		return err
	}
	c.Process = p
	if err := p.WaitReady(c.Readyz(), c.timeout); err != nil {
		return err
	}
	if c.ready != nil {
		return c.ready(ctx)
	}
	return nil
}

// Deployment is Gatehouse deployed into a test bed as the chart runs it (rendered in
// manifests/): `gatehouse enricher`, `gatehouse webhook`, `gatehouse console` and `gatehouse
// proxy` as processes, each with its own NATS identity and the chart's flags, the webhook and
// the proxy as their service accounts with the shipped RBAC, and the default policies.
//
// StartEnrichers runs before kube-apiserver (its audit webhook backend posts to them); Start
// deploys the rest once kube-apiserver and the OIDC issuer run; Stop ends them.
type Deployment struct {
	opts DeploymentOptions
	kube *Kube

	Enrichers, Webhooks, Proxies []*Component
	Console                      *Component

	// EnricherURL is the audit intake; EnricherPKI its CA, serving certificate and
	// kube-apiserver's client certificate.
	EnricherURL string
	EnricherPKI *PKI
	// ProxyURL is where clients reach Gatehouse; ProxyCA its certificate (the console's too).
	ProxyURL string
	ProxyCA  []byte
	// ConsoleURL is where the console serves the approvals API and the web UI.
	ConsoleURL string
	// MaskingKeyFile holds the masking key every component shares; ApprovalKeyFile the
	// approval key (ApprovalKey) of the webhooks and the console.
	MaskingKeyFile, ApprovalKeyFile string
	ApprovalKey                     []byte
}

// NewDeployment checks opts and writes the keys the components share into opts.Dir.
func NewDeployment(opts DeploymentOptions) (*Deployment, error) {
	if opts.Dir == "" || opts.NATS == nil || opts.ClickHouse == nil {
		return nil, errors.New("testbed: a deployment needs Dir, NATS and ClickHouse")
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Replicas > 1 && opts.Front == nil {
		return nil, errors.New("testbed: replicas need a Front")
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	d := &Deployment{
		opts:            opts,
		MaskingKeyFile:  filepath.Join(opts.Dir, "masking.key"),
		ApprovalKeyFile: filepath.Join(opts.Dir, "approval.key"),
		ApprovalKey:     []byte("testbed-approval-key-0123456789abcdef0123"),
	}
	if err := os.WriteFile(d.MaskingKeyFile, []byte("testbed-masking-key-0123456789abcdef"), 0o600); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := os.WriteFile(d.ApprovalKeyFile, d.ApprovalKey, 0o600); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	return d, nil
}

// replicas picks a serving address for each replica of component and returns them with the
// address that reaches them.
func (d *Deployment) replicas(component string) (addrs []string, front string, err error) {
	for range d.opts.Replicas {
		addr, err := FreeAddr()
		if err != nil {
			return nil, "", err
		}
		addrs = append(addrs, addr)
	}
	if d.opts.Front == nil {
		return addrs, addrs[0], nil
	}
	front, err = d.opts.Front(component, addrs...)
	return addrs, front, err
}

// start runs the replicas of component, each with args (its address, its health address
// and its NATS identity added), and waits until they are all ready, then for ready. The
// replicas start together: one behind a front may wait for its peers to answer there.
func (d *Deployment) start(ctx context.Context, component string, addrs []string, role natsbus.Role, args func(i int) []string, ready func(context.Context) error) ([]*Component, error) {
	var cs []*Component
	for i, addr := range addrs {
		health, err := FreeAddr()
		if err != nil {
			return cs, err
		}
		host, port, _ := net.SplitHostPort(addr)
		c := &Component{
			Name: fmt.Sprintf("%s %d", component, i), Addr: addr, Health: health,
			args: append(append(append([]string{component, "--log-format", "text",
				"--bind-address", host, "--secure-port", port,
				"--health-bind-address", health,
			}, args(i)...), d.opts.NATS.Args(role)...), d.extraArgs(component)...),
			timeout: d.opts.ReadyTimeout,
			ready:   ready,
		}
		if c.Process, err = StartGatehouse(c.args...); err != nil {
			return cs, err
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := c.WaitReady(c.Readyz(), c.timeout); err != nil {
			return cs, fmt.Errorf("testbed: gatehouse %s: %w", c.Name, err)
		}
	}
	if ready != nil {
		if err := ready(ctx); err != nil {
			return cs, fmt.Errorf("testbed: gatehouse %s: %w", component, err)
		}
	}
	return cs, nil
}

func (d *Deployment) extraArgs(component string) []string {
	switch component {
	case "enricher":
		return d.opts.EnricherArgs
	case "webhook":
		return d.opts.WebhookArgs
	case "proxy":
		return d.opts.ProxyArgs
	default:
		return d.opts.ConsoleArgs
	}
}

// StartEnrichers runs the enrichers as deployed (mutual TLS: kube-apiserver presents a client
// certificate the intake requires; a spool directory each) and returns the kube-apiserver
// flags that send audit events to them with the shipped audit policy.
func (d *Deployment) StartEnrichers(ctx context.Context) (map[string][]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(d.opts.Dir, "enricher")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if d.EnricherPKI, err = NewPKI(dir); err != nil {
		return nil, err
	}
	addrs, front, err := d.replicas("enricher")
	if err != nil {
		return nil, err
	}
	pki := d.EnricherPKI
	d.Enrichers, err = d.start(ctx, "enricher", addrs, natsbus.RoleEnricher, func(i int) []string {
		return []string{
			"--tls-cert-file", pki.ServerCertFile, "--tls-private-key-file", pki.ServerKeyFile,
			"--client-ca-file", pki.CAFile,
			"--spool-dir", filepath.Join(dir, fmt.Sprintf("spool-%d", i)),
			"--clickhouse-addr", d.opts.ClickHouse.NativeAddr,
			"--masking-key-file", d.MaskingKeyFile,
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(front)
	d.EnricherURL = "https://localhost:" + port + "/audit"
	kubeconfig := filepath.Join(d.opts.Dir, "audit-webhook.kubeconfig")
	if err := pki.WriteAuditWebhookKubeconfig(kubeconfig, d.EnricherURL); err != nil {
		return nil, err
	}
	return AuditWebhook(filepath.Join(root, "manifests", "audit", "policy.yaml"), kubeconfig), nil
}

// Start deploys the rest into kube as manifests/ describe it: the namespace, the webhook's
// objects (RBAC, its empty CA Secret, its empty webhook configurations and the ConfigMap of
// their webhooks) and the proxy's RBAC; the webhooks, the console and the proxies, the webhook
// and the proxy as their service accounts, the proxy and the console trusting issuer's tokens;
// then the default policies. It returns once every component is ready; WaitForPolicies waits
// until the policies are enforced.
func (d *Deployment) Start(ctx context.Context, kube *Kube, issuer *Issuer) error {
	d.kube = kube
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	manifest := func(name string) string { return filepath.Join(root, "manifests", filepath.FromSlash(name)) }
	if _, err := kube.KubectlApply(manifest("namespace.yaml"), manifest("webhook"), manifest("proxy/rbac.yaml")); err != nil {
		return err
	}
	kubeconfigAs := func(user string) (string, error) {
		cfg, err := kube.AddUser(user)
		if err != nil {
			return "", err
		}
		return WriteKubeconfig(d.opts.Dir, cfg)
	}
	webhookKubeconfig, err := kubeconfigAs("system:serviceaccount:gatehouse:gatehouse-webhook")
	if err != nil {
		return err
	}
	proxyKubeconfig, err := kubeconfigAs("system:serviceaccount:gatehouse:gatehouse-proxy")
	if err != nil {
		return err
	}
	consoleAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	d.ConsoleURL = "https://" + consoleAddr

	// The webhooks as the chart runs them: each issues its serving certificate from the CA
	// they keep in their Secret, and registers the chart's webhook configurations, pointed at
	// their address, with that CA once it answers. kube-apiserver then calls them over that
	// certificate.
	configurations, err := ChartWebhookConfigurationsYAML()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"webhook-configurations.yaml": []byte(configurations),
		"authentication-config.yaml":  []byte(issuer.AuthenticationConfig("gatehouse")),
		"api-console-session.key":     []byte("testbed-api-console-session-key-0123456789abcdef"),
	}
	if d.ProxyCA, files["proxy.key"], err = serving.SelfSignedPEM("localhost", "127.0.0.1"); err != nil {
		return err
	}
	files["proxy.crt"] = d.ProxyCA
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d.opts.Dir, name), content, 0o600); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	f := func(name string) string { return filepath.Join(d.opts.Dir, name) }

	addrs, front, err := d.replicas("webhook")
	if err != nil {
		return err
	}
	_, frontPort, _ := net.SplitHostPort(front)
	if d.Webhooks, err = d.start(ctx, "webhook", addrs, natsbus.RoleWebhook, func(int) []string {
		return []string{
			"--kubeconfig", webhookKubeconfig,
			"--self-managed-ca-secret", "gatehouse/gatehouse-webhook-ca", "--self-managed-dns-names", "localhost",
			"--webhook-configurations", f("webhook-configurations.yaml"), "--webhook-url", "https://localhost:" + frontPort,
			"--masking-key-file", d.MaskingKeyFile,
			"--approval-key-file", d.ApprovalKeyFile,
			"--approvals-url", d.ConsoleURL,
			"--approval-wait", "2s",
		}
	}, d.waitForRegistration); err != nil {
		return err
	}

	// The console serves the approvals API: bearer tokens of the proxy's issuer, the proxy's
	// certificate (the same loopback host), the console's NATS identity and the approval key.
	consoles, err := d.start(ctx, "console", []string{consoleAddr}, natsbus.RoleConsole, func(int) []string {
		return []string{
			"--authentication-config", f("authentication-config.yaml"),
			"--oidc-client-id", "gatehouse",
			"--external-url", d.ConsoleURL,
			"--tls-cert-file", f("proxy.crt"), "--tls-private-key-file", f("proxy.key"),
			"--session-key-file", f("api-console-session.key"),
			"--masking-key-file", d.MaskingKeyFile,
			"--approval-key-file", d.ApprovalKeyFile,
		}
	}, nil)
	if len(consoles) > 0 {
		d.Console = consoles[0]
	}
	if err != nil {
		return err
	}

	if addrs, front, err = d.replicas("proxy"); err != nil {
		return err
	}
	d.ProxyURL = "https://" + front
	if d.Proxies, err = d.start(ctx, "proxy", addrs, natsbus.RoleProxy, func(int) []string {
		return []string{
			"--kubeconfig", proxyKubeconfig,
			"--authentication-config", f("authentication-config.yaml"),
			"--tls-cert-file", f("proxy.crt"), "--tls-private-key-file", f("proxy.key"),
			"--masking-key-file", d.MaskingKeyFile,
			"--approval-timeout", "20s",
			"--console-url", d.ConsoleURL,
		}
	}, nil); err != nil {
		return err
	}

	// The default policies, applied as an administrator: Gatehouse's own rules let only
	// administrators change them, and only directly.
	_, err = kube.KubectlApply(manifest("policies/default.yaml"))
	return err
}

// waitForRegistration waits until the webhooks have registered their configurations, and
// checks that they trust exactly the CA in their Secret.
func (d *Deployment) waitForRegistration(ctx context.Context) error {
	clients := d.kube.Clientset.AdmissionregistrationV1()
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	err := WaitFor(ctx, d.opts.ReadyTimeout, func(ctx context.Context) error {
		var err error
		vwc, err = clients.ValidatingWebhookConfigurations().Get(ctx, "gatehouse-validating", metav1.GetOptions{})
		if err == nil && len(vwc.Webhooks) == 0 {
			err = errors.New("its webhooks are not registered yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("the webhook did not register its configurations: %w", err)
	}
	ca, err := d.kube.Clientset.CoreV1().Secrets("gatehouse").Get(ctx, "gatehouse-webhook-ca", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, w := range vwc.Webhooks {
		if string(w.ClientConfig.CABundle) != string(ca.Data["ca.crt"]) {
			return fmt.Errorf("webhook %s: the registered CA bundle is not the webhook's CA", w.Name)
		}
	}
	return nil
}

// WaitForPolicies waits until kube-apiserver calls the webhooks and they enforce the default
// policies: a dry run of a cluster-admin binding by direct (never held) is allowed with the
// warning that the binding itself needs approval. also, when set, is a further condition
// (the same through the proxy, say) waited for with it.
func (d *Deployment) WaitForPolicies(ctx context.Context, direct *rest.Config, also func(context.Context) error) error {
	warnings := &WarningCollector{}
	cfg := rest.CopyConfig(direct)
	cfg.WarningHandler = warnings
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crb := ClusterAdminBinding("testbed-policy-probe", "nobody")
	err = WaitFor(ctx, d.opts.ReadyTimeout, func(ctx context.Context) error {
		_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && !strings.Contains(warnings.String(), "requires approval") {
			err = fmt.Errorf("no approval warning: %s", warnings)
		}
		if err == nil && also != nil {
			err = also(ctx)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("the default policies are not enforced: %w", err)
	}
	return nil
}

// ClusterAdminBinding is a binding of user to cluster-admin: what the default policies hold for
// approval.
func ClusterAdminBinding(name, user string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
}

// Components returns every component that runs, in the order they started.
func (d *Deployment) Components() []*Component {
	var cs []*Component
	cs = append(cs, d.Enrichers...)
	cs = append(cs, d.Webhooks...)
	if d.Console != nil {
		cs = append(cs, d.Console)
	}
	return append(cs, d.Proxies...)
}

// Stop ends the proxies, the console and the webhooks. The enrichers run on (StopEnrichers):
// kube-apiserver sends them its last audit events when it stops.
func (d *Deployment) Stop() {
	cs := d.Components()[len(d.Enrichers):]
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Process != nil {
			_ = cs[i].Stop()
		}
	}
}

// StopEnrichers ends the enrichers.
func (d *Deployment) StopEnrichers() {
	for _, c := range d.Enrichers {
		if c.Process != nil {
			_ = c.Stop()
		}
	}
}

// WriteLogs writes the last n lines every component logged to w: they explain most failures.
func (d *Deployment) WriteLogs(w io.Writer, n int) {
	for _, c := range d.Components() {
		if c.Process != nil {
			fmt.Fprintf(w, "--- gatehouse %s (last lines) ---\n%s\n", c.Name, LastLines(c.Output(), n))
		}
	}
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreeAddr returns a loopback address (127.0.0.1:port) no one listens on now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
