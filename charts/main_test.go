package charts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds what the tests of this package share: the helm CLI, the repository root, and a
// kube-apiserver with cert-manager's CRDs installed from the cert-manager module.
var bed struct {
	helm string
	root string
	kube *testbed.Kube
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "chart tests:", err)
		return 1
	}
	var err error
	if bed.helm, err = testbed.Helm(); err != nil {
		return fail(err)
	}
	if bed.root, err = testbed.RepoRoot(); err != nil {
		return fail(err)
	}
	crds, err := certManagerCRDs()
	if err != nil {
		return fail(err)
	}
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{CRDPaths: []string{crds}}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	return m.Run()
}

// certManagerCRDs returns the directory of cert-manager's CRDs in the cert-manager module the
// project depends on (deploy/crds), so Certificates and Issuers are checked by the real schema.
func certManagerCRDs() (string, error) {
	cmd := exec.CommandContext(context.Background(), "go", "list", "-m", "-json", "github.com/cert-manager/cert-manager")
	cmd.Dir = bed.root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate the cert-manager module: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("the cert-manager module is not downloaded: run go mod download github.com/cert-manager/cert-manager")
	}
	dir := filepath.Join(mod.Dir, "deploy", "crds")
	if _, err := os.Stat(filepath.Join(dir, "cert-manager.io_certificates.yaml")); err != nil {
		return "", fmt.Errorf("cert-manager's CRDs: %w", err)
	}
	return dir, nil
}

// helm runs the helm CLI against the test cluster.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--kubeconfig", bed.kube.Kubeconfig)
	out, err := exec.CommandContext(t.Context(), bed.helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func valuesFile(name string) string {
	return filepath.Join(bed.root, "charts", "gatehouse", "ci", name)
}
