// Package scale holds the scale-out tests: Gatehouse on clustered engines with replicated
// components, against the real components of the test bed. NATS is a JetStream cluster of three
// `gatehouse nats` servers (streams and the approvals bucket with three replicas); two enrichers
// share the audit intake's address and their durable consumers; two webhooks and two proxies
// each sit behind one address; one console serves the approvals API.
package scale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds what every test of the package shares.
var bed struct {
	root       string
	dir        string
	nats       *testbed.NATSCluster
	clickhouse *testbed.ClickHouse
	kube       *testbed.Kube
	issuer     *testbed.Issuer

	enrichers, webhooks, proxies []*testbed.Process
	// enricherMetrics are the enrichers' /metrics URLs.
	enricherMetrics []string
	console         *testbed.Process
	consoleURL      string
	// The fronts: one address for each component's replicas.
	enricherFront, webhookFront, proxyFront *front
	proxyURL                                string
	proxyCA                                 []byte
	direct                                  *rest.Config
}

const (
	agentGroup    = "agents"
	approverGroup = "gatehouse:approvers"
	replicas      = 2
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "scale:", err)
		dumpLogs()
		return 1
	}
	var err error
	if bed.root, err = testbed.RepoRoot(); err != nil {
		return fail(err)
	}
	if bed.dir, err = os.MkdirTemp("", "gatehouse-scale-"); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(bed.dir)
	if bed.nats, err = testbed.StartNATSCluster(3); err != nil {
		return fail(err)
	}
	defer bed.nats.Stop()
	if bed.clickhouse, err = testbed.StartClickHouse(); err != nil {
		return fail(err)
	}
	defer bed.clickhouse.Close()
	auditFlags, err := startEnrichers()
	if err != nil {
		return fail(err)
	}
	defer stopAll(bed.enrichers)
	defer bed.enricherFront.Close()
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{
		CRDPaths:       []string{filepath.Join(bed.root, "manifests", "crd")},
		APIServerFlags: auditFlags,
	}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	if bed.issuer, err = testbed.StartIssuer(); err != nil {
		return fail(err)
	}
	defer bed.issuer.Close()
	err = startGatehouse()
	defer func() {
		stopAll(bed.proxies)
		stopAll(bed.webhooks)
		if bed.console != nil {
			_ = bed.console.Stop()
		}
	}()
	if err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 || os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		dumpLogs()
	}
	return code
}

func stopAll(ps []*testbed.Process) {
	for _, p := range ps {
		_ = p.Stop()
	}
}

// dumpLogs prints the last lines every process logged: they explain most failures.
func dumpLogs() {
	show := func(name string, out string) {
		lines := strings.Split(out, "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		fmt.Fprintf(os.Stderr, "--- %s (last lines) ---\n%s\n", name, strings.Join(lines, "\n"))
	}
	for _, c := range []struct {
		name string
		ps   []*testbed.Process
	}{{"enricher", bed.enrichers}, {"webhook", bed.webhooks}, {"proxy", bed.proxies}, {"console", []*testbed.Process{bed.console}}} {
		for i, p := range c.ps {
			if p != nil {
				show(fmt.Sprintf("gatehouse %s %d", c.name, i), p.Output())
			}
		}
	}
	if bed.nats != nil {
		for i := range 3 {
			show("nats "+bed.nats.ServerName(i), bed.nats.Output(i))
		}
	}
}

// startEnrichers runs two enrichers behind one intake address and returns the kube-apiserver
// flags that send audit events there.
func startEnrichers() (map[string][]string, error) {
	dir := filepath.Join(bed.dir, "enricher")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pki, err := testbed.NewPKI(dir)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := range replicas {
		addr, health := freeAddr(), freeAddr()
		host, port, _ := net.SplitHostPort(addr)
		p, err := testbed.StartGatehouse(append([]string{"enricher", "--log-format", "text",
			"--bind-address", host, "--secure-port", port,
			"--tls-cert-file", pki.ServerCertFile, "--tls-private-key-file", pki.ServerKeyFile,
			"--client-ca-file", pki.CAFile,
			"--spool-dir", filepath.Join(dir, fmt.Sprintf("spool-%d", i)),
			"--clickhouse-addr", bed.clickhouse.NativeAddr,
			"--masking-key-file", maskingKeyFile(),
			"--batch-max-wait", "200ms",
			"--health-bind-address", health,
		}, bed.nats.Args(natsbus.RoleEnricher)...)...)
		if err != nil {
			return nil, err
		}
		bed.enrichers = append(bed.enrichers, p)
		if err := p.WaitReady("http://"+health+"/readyz", 90*time.Second); err != nil {
			return nil, err
		}
		bed.enricherMetrics = append(bed.enricherMetrics, "http://"+health+"/metrics")
		addrs = append(addrs, addr)
	}
	if bed.enricherFront, err = newFront(addrs...); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(bed.enricherFront.Addr())
	kubeconfig := filepath.Join(bed.dir, "audit-webhook.kubeconfig")
	if err := pki.WriteAuditWebhookKubeconfig(kubeconfig, "https://localhost:"+port+"/audit"); err != nil {
		return nil, err
	}
	return testbed.AuditWebhook(filepath.Join(bed.root, "manifests", "audit", "policy.yaml"), kubeconfig), nil
}

// startGatehouse deploys the rest as manifests/ describe it: two webhooks, one console, two
// proxies, then the default policies.
func startGatehouse() error {
	admin := func(args ...string) error {
		out, err := exec.Command(bed.kube.Kubectl, append([]string{"--kubeconfig", bed.kube.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, f := range []string{"namespace.yaml", "webhook", "proxy/rbac.yaml"} {
		if err := admin("apply", "-f", filepath.Join(bed.root, "manifests", f)); err != nil {
			return err
		}
	}
	if err := admin("create", "clusterrolebinding", "scale-agents", "--clusterrole=cluster-admin", "--group="+agentGroup); err != nil {
		return err
	}
	var err error
	if bed.direct, err = bed.kube.AddUser("direct-dev", "dev"); err != nil {
		return err
	}
	if err := admin("create", "clusterrolebinding", "scale-direct", "--clusterrole=cluster-admin", "--user=direct-dev"); err != nil {
		return err
	}
	kubeconfigAs := func(user string) (string, error) {
		cfg, err := bed.kube.AddUser(user)
		if err != nil {
			return "", err
		}
		return testbed.WriteKubeconfig(bed.dir, cfg)
	}
	webhookKubeconfig, err := kubeconfigAs("system:serviceaccount:gatehouse:gatehouse-webhook")
	if err != nil {
		return err
	}
	proxyKubeconfig, err := kubeconfigAs("system:serviceaccount:gatehouse:gatehouse-proxy")
	if err != nil {
		return err
	}
	configurations, err := testbed.ChartWebhookConfigurationsYAML()
	if err != nil {
		return err
	}
	configurationsFile := filepath.Join(bed.dir, "webhook-configurations.yaml")
	if err := os.WriteFile(configurationsFile, []byte(configurations), 0o600); err != nil {
		return err
	}
	bed.consoleURL = "https://" + freeAddr()

	// Two webhooks behind one address, the one they register: each issues its serving
	// certificate from the CA they share in their Secret.
	var webhookAddrs, webhookReady []string
	for range replicas {
		webhookAddrs = append(webhookAddrs, freeAddr())
	}
	if bed.webhookFront, err = newFront(webhookAddrs...); err != nil {
		return err
	}
	_, frontPort, _ := net.SplitHostPort(bed.webhookFront.Addr())
	for _, addr := range webhookAddrs {
		health := freeAddr()
		host, port, _ := net.SplitHostPort(addr)
		p, err := testbed.StartGatehouse(append([]string{"webhook", "--log-format", "text",
			"--kubeconfig", webhookKubeconfig,
			"--bind-address", host, "--secure-port", port,
			"--self-managed-ca-secret", "gatehouse/gatehouse-webhook-ca", "--self-managed-dns-names", "localhost",
			"--webhook-configurations", configurationsFile, "--webhook-url", "https://localhost:" + frontPort,
			"--masking-key-file", maskingKeyFile(),
			"--approval-key-file", approvalKeyFile(),
			"--approvals-url", bed.consoleURL,
			"--approval-wait", "2s", "--approval-request-ttl", "5m",
			"--health-bind-address", health,
		}, bed.nats.Args(natsbus.RoleWebhook)...)...)
		if err != nil {
			return err
		}
		bed.webhooks = append(bed.webhooks, p)
		webhookReady = append(webhookReady, "http://"+health+"/readyz")
	}
	for i, p := range bed.webhooks {
		if err := p.WaitReady(webhookReady[i], 90*time.Second); err != nil {
			return err
		}
	}

	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	bed.proxyCA = certPEM
	certFile, keyFile := filepath.Join(bed.dir, "proxy.crt"), filepath.Join(bed.dir, "proxy.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	authConfig := filepath.Join(bed.dir, "authentication-config.yaml")
	if err := os.WriteFile(authConfig, []byte(bed.issuer.AuthenticationConfig("gatehouse")), 0o600); err != nil {
		return err
	}

	consoleHost, consolePort, _ := net.SplitHostPort(strings.TrimPrefix(bed.consoleURL, "https://"))
	sessionKey := filepath.Join(bed.dir, "console-session.key")
	if err := os.WriteFile(sessionKey, []byte("scale-console-session-key-0123456789abcdef"), 0o600); err != nil {
		return err
	}
	consoleHealth := freeAddr()
	if bed.console, err = testbed.StartGatehouse(append([]string{"console", "--log-format", "text",
		"--authentication-config", authConfig,
		"--oidc-client-id", "gatehouse",
		"--external-url", bed.consoleURL,
		"--bind-address", consoleHost, "--secure-port", consolePort,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--session-key-file", sessionKey,
		"--masking-key-file", maskingKeyFile(),
		"--approval-key-file", approvalKeyFile(),
		"--health-bind-address", consoleHealth,
	}, bed.nats.Args(natsbus.RoleConsole)...)...); err != nil {
		return err
	}
	if err := bed.console.WaitReady("http://"+consoleHealth+"/readyz", 90*time.Second); err != nil {
		return err
	}

	var proxyAddrs []string
	for range replicas {
		addr, health := freeAddr(), freeAddr()
		host, port, _ := net.SplitHostPort(addr)
		p, err := testbed.StartGatehouse(append([]string{"proxy", "--log-format", "text",
			"--kubeconfig", proxyKubeconfig,
			"--authentication-config", authConfig,
			"--bind-address", host, "--secure-port", port,
			"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
			"--masking-key-file", maskingKeyFile(),
			"--approval-timeout", "20s",
			"--console-url", bed.consoleURL,
			"--health-bind-address", health,
		}, bed.nats.Args(natsbus.RoleProxy)...)...)
		if err != nil {
			return err
		}
		bed.proxies = append(bed.proxies, p)
		if err := p.WaitReady("http://"+health+"/readyz", 90*time.Second); err != nil {
			return err
		}
		proxyAddrs = append(proxyAddrs, addr)
	}
	if bed.proxyFront, err = newFront(proxyAddrs...); err != nil {
		return err
	}
	bed.proxyURL = "https://" + bed.proxyFront.Addr()

	if err := admin("apply", "-f", filepath.Join(bed.root, "manifests", "policies", "default.yaml")); err != nil {
		return err
	}
	return waitForPolicies()
}

// waitForPolicies waits until kube-apiserver calls the webhooks and they enforce the default
// policies: a dry run of a cluster-admin binding is allowed with the warning that the binding
// itself needs approval.
func waitForPolicies() error {
	warnings := &testbed.WarningCollector{}
	cfg := rest.CopyConfig(bed.direct)
	cfg.WarningHandler = warnings
	direct, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crb := clusterAdminBinding("scale-policy-probe", "nobody")
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := direct.RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && strings.Contains(warnings.String(), "requires approval") {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("the default policies are not enforced after 90s: %s", warnings), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// maskingKeyFile returns the placeholder key every component shares.
func maskingKeyFile() string {
	return keyFile("masking.key", "scale-masking-key-0123456789abcdef")
}

// approvalKeyFile returns the approval key the webhooks and the console share.
func approvalKeyFile() string {
	return keyFile("approval.key", "scale-approval-key-0123456789abcdef0123")
}

func keyFile(name, key string) string {
	f := filepath.Join(bed.dir, name)
	if _, err := os.Stat(f); err != nil {
		if err := os.WriteFile(f, []byte(key), 0o600); err != nil {
			panic(err)
		}
	}
	return f
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
