// Package e2e holds end-to-end tests that run Gatehouse against the real components of the test
// bed: kube-apiserver and etcd, a stub kubelet, NATS JetStream, ClickHouse and an OIDC issuer.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds the components every test of this package shares.
var bed struct {
	kube       *testbed.Kube
	kubelet    *testbed.Kubelet
	nats       *testbed.NATS
	clickhouse *testbed.ClickHouse
	issuer     *testbed.Issuer
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	var err error
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if bed.kubelet, err = testbed.StartKubelet(ctx, bed.kube, "stub-node"); err != nil {
		return fail(err)
	}
	defer bed.kubelet.Close()
	if bed.nats, err = testbed.StartNATS(); err != nil {
		return fail(err)
	}
	defer bed.nats.Stop()
	if bed.clickhouse, err = testbed.StartClickHouse(); err != nil {
		return fail(err)
	}
	defer bed.clickhouse.Close()
	if bed.issuer, err = testbed.StartIssuer(); err != nil {
		return fail(err)
	}
	defer bed.issuer.Close()
	return m.Run()
}
