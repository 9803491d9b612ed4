package authn_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestExampleAuthenticationConfigs parses the AuthenticationConfigurations the manifests ship
// as kube-apiserver would, CEL included.
func TestExampleAuthenticationConfigs(t *testing.T) {
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	cfg, err := authn.LoadAuthenticationConfig(filepath.Join(root, "manifests", "proxy", "config", "authentication-config.yaml"))
	require.NoError(t, err)
	require.Len(t, cfg.JWT, 2)

	// The one embedded in the Deployment's ConfigMap.
	data, err := os.ReadFile(filepath.Join(root, "manifests", "proxy", "deployment.yaml"))
	require.NoError(t, err)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, yaml.Unmarshal(firstDocument(data), &cm))
	_, err = authn.ParseAuthenticationConfig([]byte(cm.Data["authentication-config.yaml"]))
	require.NoError(t, err)
}

func firstDocument(b []byte) []byte {
	for i := 0; i+4 <= len(b); i++ {
		if string(b[i:i+4]) == "\n---" {
			return b[:i]
		}
	}
	return b
}
