// Package e2e holds end-to-end tests that run Gatehouse as it is deployed: `gatehouse proxy`,
// `gatehouse webhook`, `gatehouse enricher` and `gatehouse console` as processes, each with its
// own NATS identity over mutual TLS, with the shipped manifests (CRD, webhook configurations,
// RBAC, default policies), against the real components of the test bed: kube-apiserver and
// etcd, a stub kubelet, NATS JetStream (secured as deployed), ClickHouse and an OIDC issuer.
package e2e

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

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds the components every test of this package shares.
var bed struct {
	root       string
	dir        string
	kube       *testbed.Kube
	kubelet    *testbed.Kubelet
	nats       *testbed.NATS
	clickhouse *testbed.ClickHouse
	issuer     *testbed.Issuer

	webhook *testbed.Process
	proxy   *testbed.Process
	// webhookArgs start the webhook again (startWebhook) after a test stopped it.
	webhookArgs   []string
	webhookHealth string
	enricher      *testbed.Process
	// console serves the approvals API (and the web UI) with the proxy's certificate; consoleURL
	// is where, and what the proxy points `gatehouse approvals` to.
	console    *testbed.Process
	consoleURL string
	// enricherURL is the audit intake; enricherPKI its CA and kube-apiserver's client certificate.
	enricherURL string
	enricherPKI *testbed.PKI
	// readyz are the readiness endpoints of the Gatehouse processes; natsReadyz those of the
	// processes that are not ready without NATS (the webhook and the proxy).
	readyz, natsReadyz []string
	// proxyURL is where clients reach Gatehouse; proxyCA its certificate.
	proxyURL string
	proxyCA  []byte
	// direct is a client that bypasses Gatehouse: a cluster-admin user with its own certificate.
	direct *rest.Config
}

// Test identities. The agent and the direct user may do anything RBAC allows, so what stops
// them is Gatehouse; approvers are in the default pack's approver group.
const (
	agentGroup    = "agents"
	approverGroup = "gatehouse:approvers"
	directUser    = "direct-dev"
	// setupServiceAccount is namespace:name of the controller that prepares test objects.
	setupServiceAccount = "e2e:setup"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	var err error
	if bed.root, err = testbed.RepoRoot(); err != nil {
		return fail(err)
	}
	if bed.dir, err = os.MkdirTemp("", "gatehouse-e2e-"); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(bed.dir)
	if bed.nats, err = testbed.StartNATS(); err != nil {
		return fail(err)
	}
	defer bed.nats.Stop()
	if bed.clickhouse, err = testbed.StartClickHouse(); err != nil {
		return fail(err)
	}
	defer bed.clickhouse.Close()
	// The enricher runs before kube-apiserver, whose audit webhook backend posts to it.
	auditFlags, err := startEnricher()
	if err != nil {
		return fail(err)
	}
	defer func() { _ = bed.enricher.Stop() }()
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{
		CRDPaths:       []string{filepath.Join(bed.root, "manifests", "crd")},
		APIServerFlags: auditFlags,
	}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if bed.kubelet, err = testbed.StartKubelet(ctx, bed.kube, "stub-node"); err != nil {
		return fail(err)
	}
	defer bed.kubelet.Close()
	if bed.issuer, err = testbed.StartIssuer(); err != nil {
		return fail(err)
	}
	defer bed.issuer.Close()
	if err := startGatehouse(); err != nil {
		return fail(err)
	}
	code := m.Run()
	_ = bed.console.Stop()
	_ = bed.proxy.Stop()
	_ = bed.webhook.Stop()
	if code != 0 || os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		// What the components logged explains most failures.
		for _, c := range []struct {
			name string
			p    *testbed.Process
		}{{"webhook", bed.webhook}, {"proxy", bed.proxy}, {"enricher", bed.enricher}, {"console", bed.console}} {
			fmt.Fprintf(os.Stderr, "--- gatehouse %s (last lines) ---\n%s\n", c.name, lastLines(c.p.Output(), 150))
		}
	}
	return code
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startGatehouse deploys Gatehouse into the test cluster the way manifests/ describe: the RBAC
// of its service accounts, the webhook and the proxy running as those accounts, then the
// default policies.
func startGatehouse() error {
	admin := func(args ...string) error {
		out, err := exec.Command(bed.kube.Kubectl, append([]string{"--kubeconfig", bed.kube.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// As the chart deploys them (rendered in manifests/): the namespace, the webhook's objects
	// (RBAC, its empty CA Secret, its empty webhook configurations and the ConfigMap of their
	// webhooks) and the proxy's RBAC.
	for _, f := range []string{"namespace.yaml", "webhook", "proxy/rbac.yaml"} {
		if err := admin("apply", "-f", filepath.Join(bed.root, "manifests", f)); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"create", "clusterrolebinding", "e2e-agents", "--clusterrole=cluster-admin", "--group=" + agentGroup},
		{"create", "clusterrolebinding", "e2e-direct", "--clusterrole=cluster-admin", "--user=" + directUser},
		// A controller: a service account working directly, as in-cluster automation does.
		{"create", "clusterrolebinding", "e2e-setup", "--clusterrole=cluster-admin", "--serviceaccount=" + setupServiceAccount},
	} {
		if err := admin(args...); err != nil {
			return err
		}
	}
	var err error
	if bed.direct, err = bed.kube.AddUser(directUser, "dev"); err != nil {
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
	keyFile := maskingKeyFile()

	// The webhook as the chart runs it: it issues its own serving certificate from a CA it keeps
	// in its Secret, and registers the chart's webhook configurations, pointed at its address,
	// with that CA once it answers. kube-apiserver then calls it over that certificate.
	configurations, err := testbed.ChartWebhookConfigurationsYAML()
	if err != nil {
		return err
	}
	configurationsFile := filepath.Join(bed.dir, "webhook-configurations.yaml")
	if err := os.WriteFile(configurationsFile, []byte(configurations), 0o600); err != nil {
		return err
	}
	bed.consoleURL = "https://" + freeAddr()
	webhookAddr, webhookHealth := freeAddr(), freeAddr()
	webhookHost, webhookPort, _ := net.SplitHostPort(webhookAddr)
	bed.webhookArgs = append([]string{"webhook", "--log-format", "text",
		"--kubeconfig", webhookKubeconfig,
		"--bind-address", webhookHost, "--secure-port", webhookPort,
		"--self-managed-ca-secret", "gatehouse/gatehouse-webhook-ca", "--self-managed-dns-names", "localhost",
		"--webhook-configurations", configurationsFile, "--webhook-url", "https://localhost:" + webhookPort,
		"--masking-key-file", keyFile,
		"--approval-key-file", approvalKeyFile(),
		"--approvals-url", bed.consoleURL,
		"--approval-wait", "2s", "--approval-request-ttl", "2m",
		"--health-bind-address", webhookHealth,
	}, bed.nats.Args(natsbus.RoleWebhook)...)
	bed.webhookHealth = webhookHealth
	if err := startWebhook(); err != nil {
		return err
	}

	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	bed.proxyCA = certPEM
	certFile, keyPEMFile := filepath.Join(bed.dir, "proxy.crt"), filepath.Join(bed.dir, "proxy.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyPEMFile, keyPEM, 0o600); err != nil {
		return err
	}
	authConfig := filepath.Join(bed.dir, "authentication-config.yaml")
	if err := os.WriteFile(authConfig, []byte(bed.issuer.AuthenticationConfig("gatehouse")), 0o600); err != nil {
		return err
	}
	proxyAddr, proxyHealth := freeAddr(), freeAddr()
	host, port, _ := net.SplitHostPort(proxyAddr)
	bed.proxyURL = "https://" + proxyAddr
	if bed.proxy, err = testbed.StartGatehouse(append([]string{"proxy", "--log-format", "text", "--log-level", "debug",
		"--kubeconfig", proxyKubeconfig,
		"--authentication-config", authConfig,
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyPEMFile,
		"--masking-key-file", keyFile,
		"--approval-timeout", "20s",
		"--allow-client-impersonation",
		"--console-url", bed.consoleURL,
		"--health-bind-address", proxyHealth,
	}, bed.nats.Args(natsbus.RoleProxy)...)...); err != nil {
		return err
	}
	if err := bed.proxy.WaitReady("http://"+proxyHealth+"/healthz", 60*time.Second); err != nil {
		return err
	}

	// The console serves the approvals API: bearer tokens of the proxy's issuer, the proxy's
	// certificate (the same loopback host), the console's NATS identity and the approval key.
	consoleHost, consolePort, _ := net.SplitHostPort(strings.TrimPrefix(bed.consoleURL, "https://"))
	sessionKey := filepath.Join(bed.dir, "api-console-session.key")
	if err := os.WriteFile(sessionKey, []byte("e2e-api-console-session-key-0123456789abcdef"), 0o600); err != nil {
		return err
	}
	consoleHealth := freeAddr()
	if bed.console, err = testbed.StartGatehouse(append([]string{"console", "--log-format", "text",
		"--authentication-config", authConfig,
		"--oidc-client-id", "gatehouse",
		"--external-url", bed.consoleURL,
		"--bind-address", consoleHost, "--secure-port", consolePort,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyPEMFile,
		"--session-key-file", sessionKey,
		"--masking-key-file", keyFile,
		"--approval-key-file", approvalKeyFile(),
		"--health-bind-address", consoleHealth,
	}, bed.nats.Args(natsbus.RoleConsole)...)...); err != nil {
		return err
	}
	if err := bed.console.WaitReady("http://"+consoleHealth+"/readyz", 60*time.Second); err != nil {
		return err
	}
	bed.readyz = append(bed.readyz, "http://"+consoleHealth+"/readyz")

	// The default policies, applied as an administrator: Gatehouse's own rules let only
	// administrators change them, and only directly.
	if err := admin("apply", "-f", filepath.Join(bed.root, "manifests", "policies", "default.yaml")); err != nil {
		return err
	}
	bed.natsReadyz = []string{"http://" + webhookHealth + "/readyz", "http://" + proxyHealth + "/readyz"}
	bed.readyz = append(bed.readyz, bed.natsReadyz...)
	for _, url := range []string{"http://" + webhookHealth + "/readyz", "http://" + proxyHealth + "/readyz"} {
		p := bed.webhook
		if strings.Contains(url, proxyHealth) {
			p = bed.proxy
		}
		if err := p.WaitReady(url, 60*time.Second); err != nil {
			return err
		}
	}
	return waitForPolicies()
}

// maskingKeyFile returns the placeholder key every component of the test shares.
func maskingKeyFile() string {
	f := filepath.Join(bed.dir, "masking.key")
	if _, err := os.Stat(f); err != nil {
		if err := os.WriteFile(f, []byte("e2e-masking-key-0123456789abcdef"), 0o600); err != nil {
			panic(err)
		}
	}
	return f
}

// approvalKeyFile returns the approval key the webhook and the consoles share.
func approvalKeyFile() string {
	f := filepath.Join(bed.dir, "approval.key")
	if _, err := os.Stat(f); err != nil {
		if err := os.WriteFile(f, approvalKey, 0o600); err != nil {
			panic(err)
		}
	}
	return f
}

// approvalKey is the approval key of the test's webhook and consoles.
var approvalKey = []byte("e2e-approval-key-0123456789abcdef0123")

// startEnricher runs `gatehouse enricher` as deployed (mutual TLS: kube-apiserver presents a
// client certificate the intake requires; a spool directory) and returns the kube-apiserver
// flags that send audit events to it with the shipped audit policy.
func startEnricher() (map[string][]string, error) {
	dir := filepath.Join(bed.dir, "enricher")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pki, err := testbed.NewPKI(dir)
	if err != nil {
		return nil, err
	}
	bed.enricherPKI = pki
	addr, health := freeAddr(), freeAddr()
	bed.enricherURL = "https://" + addr + "/audit"
	host, port, _ := net.SplitHostPort(addr)
	if bed.enricher, err = testbed.StartGatehouse(append([]string{"enricher", "--log-format", "text",
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", pki.ServerCertFile, "--tls-private-key-file", pki.ServerKeyFile,
		"--client-ca-file", pki.CAFile,
		"--spool-dir", filepath.Join(dir, "spool"),
		"--clickhouse-addr", bed.clickhouse.NativeAddr,
		"--masking-key-file", maskingKeyFile(),
		"--gateway-record-grace", "30s",
		"--health-bind-address", health,
	}, bed.nats.Args(natsbus.RoleEnricher)...)...); err != nil {
		return nil, err
	}
	if err := bed.enricher.WaitReady("http://"+health+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	bed.readyz = append(bed.readyz, "http://"+health+"/readyz")
	kubeconfig := filepath.Join(bed.dir, "audit-webhook.kubeconfig")
	if err := pki.WriteAuditWebhookKubeconfig(kubeconfig, bed.enricherURL); err != nil {
		return nil, err
	}
	return testbed.AuditWebhook(filepath.Join(bed.root, "manifests", "audit", "policy.yaml"), kubeconfig), nil
}

// startWebhook starts `gatehouse webhook` as the chart runs it: it issues its own serving
// certificate from a CA it keeps in its Secret, and registers the chart's webhook
// configurations, pointed at its address, with that CA once it answers. kube-apiserver then
// calls it over that certificate.
func startWebhook() error {
	var err error
	if bed.webhook, err = testbed.StartGatehouse(bed.webhookArgs...); err != nil {
		return err
	}
	if err := bed.webhook.WaitReady("http://"+bed.webhookHealth+"/readyz", 60*time.Second); err != nil {
		return err
	}
	return waitForRegistration()
}

// waitForRegistration waits until the webhook has registered its configurations, and checks
// that they trust exactly the CA in its Secret.
func waitForRegistration() error {
	ctx := context.Background()
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	err := testbed.WaitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		var err error
		vwc, err = bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "gatehouse-validating", metav1.GetOptions{})
		if err == nil && len(vwc.Webhooks) == 0 {
			err = errors.New("its webhooks are not registered yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("the webhook did not register its configurations: %w", err)
	}
	ca, err := bed.kube.Clientset.CoreV1().Secrets("gatehouse").Get(ctx, "gatehouse-webhook-ca", metav1.GetOptions{})
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

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
