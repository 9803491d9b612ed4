package testbed_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"testing"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds the components the test bed's own tests run against, started once in TestMain.
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
		fmt.Fprintln(os.Stderr, "testbed tests:", err)
		return 1
	}
	var err error
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if bed.kubelet, err = testbed.StartKubelet(ctx, bed.kube, "smoke-node"); err != nil {
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
