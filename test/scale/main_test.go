// Package scale holds the scale-out tests: Gatehouse on clustered engines with replicated
// components, against the real components of the test bed. NATS is a JetStream cluster of three
// `gatehouse nats` servers (streams and the approvals bucket with three replicas); two enrichers
// share the audit intake's address and their durable consumers; two webhooks and two proxies
// each sit behind one address; one console serves the approvals API.
package scale

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

// bed holds what every test of the package shares.
var bed struct {
	root       string
	dir        string
	nats       *testbed.NATSCluster
	clickhouse *testbed.ClickHouse
	kube       *testbed.Kube
	issuer     *testbed.Issuer

	// gatehouse is Gatehouse as deployed, with replicas.
	gatehouse *testbed.Deployment
	// enricherMetrics are the enrichers' /metrics URLs.
	enricherMetrics []string
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Two enrichers share the audit intake's address, two webhooks the address they register,
	// two proxies the address clients reach.
	fronts := map[string]**front{"enricher": &bed.enricherFront, "webhook": &bed.webhookFront, "proxy": &bed.proxyFront}
	defer func() {
		for _, f := range fronts {
			if *f != nil {
				(*f).Close()
			}
		}
	}()
	if bed.gatehouse, err = testbed.NewDeployment(testbed.DeploymentOptions{
		Dir: bed.dir, NATS: bed.nats, ClickHouse: bed.clickhouse,
		Replicas: replicas,
		Front: func(component string, backends ...string) (string, error) {
			f, err := newFront(backends...)
			if err != nil {
				return "", err
			}
			*fronts[component] = f
			return f.Addr(), nil
		},
		EnricherArgs: []string{"--batch-max-wait", "200ms"},
		WebhookArgs:  []string{"--approval-request-ttl", "5m"},
		ReadyTimeout: 90 * time.Second,
	}); err != nil {
		return fail(err)
	}
	auditFlags, err := bed.gatehouse.StartEnrichers(ctx)
	defer bed.gatehouse.StopEnrichers()
	if err != nil {
		return fail(err)
	}
	for _, e := range bed.gatehouse.Enrichers {
		bed.enricherMetrics = append(bed.enricherMetrics, e.Metrics())
	}
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
	err = startGatehouse(ctx)
	defer bed.gatehouse.Stop()
	if err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 || os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		dumpLogs()
	}
	return code
}

// dumpLogs prints the last lines every process logged: they explain most failures.
func dumpLogs() {
	if bed.gatehouse != nil {
		bed.gatehouse.WriteLogs(os.Stderr, 60)
	}
	if bed.nats != nil {
		for i := range 3 {
			fmt.Fprintf(os.Stderr, "--- nats %s (last lines) ---\n%s\n", bed.nats.ServerName(i), testbed.LastLines(bed.nats.Output(i), 60))
		}
	}
}

// startGatehouse deploys the rest as manifests/ describe it (testbed.Deployment): two
// webhooks, one console, two proxies, then the default policies, with the test's identities
// bound to their roles.
func startGatehouse(ctx context.Context) error {
	if err := bed.kube.KubectlCreate("clusterrolebinding", "scale-agents", "--clusterrole=cluster-admin", "--group="+agentGroup); err != nil {
		return err
	}
	var err error
	if bed.direct, err = bed.kube.AddUser("direct-dev", "dev"); err != nil {
		return err
	}
	if err := bed.kube.KubectlCreate("clusterrolebinding", "scale-direct", "--clusterrole=cluster-admin", "--user=direct-dev"); err != nil {
		return err
	}
	g := bed.gatehouse
	if err := g.Start(ctx, bed.kube, bed.issuer); err != nil {
		return err
	}
	bed.consoleURL, bed.proxyURL, bed.proxyCA = g.ConsoleURL, g.ProxyURL, g.ProxyCA
	return g.WaitForPolicies(ctx, bed.direct, nil)
}
