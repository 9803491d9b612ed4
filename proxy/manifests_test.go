package proxy_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestManifestsApply applies manifests/proxy to the test cluster (server-side, dry run): the
// Deployment, Service, ConfigMap and agent example as they ship.
func TestManifestsApply(t *testing.T) {
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "manifests", "proxy", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		out, err := exec.Command(env.kube.Kubectl, "--kubeconfig", env.kube.Kubeconfig, "apply", "--dry-run=server", "-f", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", filepath.Base(f), out)
	}
}
