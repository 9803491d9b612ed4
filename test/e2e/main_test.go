// Package e2e holds end-to-end tests that run Gatehouse as it is deployed: `gatehouse proxy`,
// `gatehouse webhook`, `gatehouse enricher` and `gatehouse console` as processes, each with its
// own NATS identity over mutual TLS, with the shipped manifests (CRD, webhook configurations,
// RBAC, default policies), against the real components of the test bed: kube-apiserver and
// etcd, a stub kubelet, NATS JetStream (secured as deployed), ClickHouse and an OIDC issuer.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"

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

	// gatehouse is Gatehouse as deployed: one replica of each component.
	gatehouse                         *testbed.Deployment
	webhook, proxy, enricher, console *testbed.Component
	// consoleURL is where the console serves the approvals API (and the web UI) with the
	// proxy's certificate, and what the proxy points `gatehouse approvals` to.
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
		if bed.gatehouse != nil {
			bed.gatehouse.WriteLogs(os.Stderr, 150)
		}
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if bed.gatehouse, err = testbed.NewDeployment(testbed.DeploymentOptions{
		Dir: bed.dir, NATS: bed.nats, ClickHouse: bed.clickhouse,
		EnricherArgs: []string{"--gateway-record-grace", "30s"},
		WebhookArgs:  []string{"--approval-request-ttl", "2m"},
		ProxyArgs:    []string{"--log-level", "debug", "--allow-client-impersonation"},
	}); err != nil {
		return fail(err)
	}
	// The enricher runs before kube-apiserver, whose audit webhook backend posts to it.
	auditFlags, err := bed.gatehouse.StartEnrichers(ctx)
	defer bed.gatehouse.StopEnrichers()
	if err != nil {
		return fail(err)
	}
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{
		CRDPaths:       []string{filepath.Join(bed.root, "manifests", "crd")},
		APIServerFlags: auditFlags,
	}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	if bed.kubelet, err = testbed.StartKubelet(ctx, bed.kube, "stub-node"); err != nil {
		return fail(err)
	}
	defer bed.kubelet.Close()
	if bed.issuer, err = testbed.StartIssuer(); err != nil {
		return fail(err)
	}
	defer bed.issuer.Close()
	err = startGatehouse(ctx)
	defer bed.gatehouse.Stop()
	if err != nil {
		return fail(err)
	}
	code := m.Run()
	bed.gatehouse.Stop()
	if code != 0 || os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		// What the components logged explains most failures.
		bed.gatehouse.WriteLogs(os.Stderr, 150)
	}
	return code
}

// startGatehouse deploys Gatehouse into the test cluster the way manifests/ describe
// (testbed.Deployment), with the test's identities bound to their roles.
func startGatehouse(ctx context.Context) error {
	for _, args := range [][]string{
		{"clusterrolebinding", "e2e-agents", "--clusterrole=cluster-admin", "--group=" + agentGroup},
		{"clusterrolebinding", "e2e-direct", "--clusterrole=cluster-admin", "--user=" + directUser},
		// A controller: a service account working directly, as in-cluster automation does.
		{"clusterrolebinding", "e2e-setup", "--clusterrole=cluster-admin", "--serviceaccount=" + setupServiceAccount},
	} {
		if err := bed.kube.KubectlCreate(args...); err != nil {
			return err
		}
	}
	var err error
	if bed.direct, err = bed.kube.AddUser(directUser, "dev"); err != nil {
		return err
	}
	g := bed.gatehouse
	if err := g.Start(ctx, bed.kube, bed.issuer); err != nil {
		return err
	}
	bed.webhook, bed.proxy, bed.enricher, bed.console = g.Webhooks[0], g.Proxies[0], g.Enrichers[0], g.Console
	bed.proxyURL, bed.proxyCA, bed.consoleURL = g.ProxyURL, g.ProxyCA, g.ConsoleURL
	bed.enricherURL, bed.enricherPKI = g.EnricherURL, g.EnricherPKI
	for _, c := range g.Components() {
		bed.readyz = append(bed.readyz, c.Readyz())
	}
	bed.natsReadyz = []string{bed.webhook.Readyz(), bed.proxy.Readyz()}
	return waitForPolicies(ctx)
}

// maskingKeyFile returns the placeholder key every component of the test shares.
func maskingKeyFile() string { return bed.gatehouse.MaskingKeyFile }

// approvalKeyFile returns the approval key the webhook and the consoles share.
func approvalKeyFile() string { return bed.gatehouse.ApprovalKeyFile }

func freeAddr() string {
	addr, err := testbed.FreeAddr()
	if err != nil {
		panic(err)
	}
	return addr
}
