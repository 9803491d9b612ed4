package devenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersionsMatchTestbed keeps the cache paths `gatehouse dev` looks in equal to those
// scripts/testbed.sh writes.
func TestVersionsMatchTestbed(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", testbedScript))
	require.NoError(t, err)
	for name, want := range map[string]string{
		"KUBE_VERSION": KubeVersion, "ETCD_VERSION": EtcdVersion, "CHDB_VERSION": CHDBVersion, "RECIPE": kubeRecipe,
	} {
		m := regexp.MustCompile(`(?m)^` + name + `=(?:"\$\{` + name + `:-)?([^}"\s]+)`).FindSubmatch(script)
		require.NotNil(t, m, "%s in %s", name, testbedScript)
		assert.Equal(t, want, string(m[1]), name)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("GATEHOUSE_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	assert.Equal(t, "/xdg/gatehouse", CacheDir())
	t.Setenv("GATEHOUSE_CACHE", "/explicit")
	assert.Equal(t, "/explicit", CacheDir())
}

func TestStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sd, err := openStateDir(dir, false)
	require.NoError(t, err)
	require.NoError(t, sd.writeState(&State{PID: os.Getpid()}))

	_, err = openStateDir(dir, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already running in "+dir)

	// A run that dies without stopping leaves its state behind.
	require.NoError(t, sd.release())
	_, err = openStateDir(dir, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not stop cleanly")
	assert.Contains(t, err.Error(), "--reset")

	sd, err = openStateDir(dir, true)
	require.NoError(t, err, "--reset takes it over")
	_, err = ReadState(dir)
	assert.ErrorContains(t, err, "not running")
	require.NoError(t, sd.release())

	// A clean stop leaves a directory the next run takes without asking.
	sd, err = openStateDir(dir, false)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sd.file("agent.kubeconfig"), []byte("x"), 0o600))
	require.NoError(t, sd.clean())
	require.NoError(t, sd.release())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{markerFile, lockFile, logsDir}, names)

	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "notes"), nil, 0o600))
	_, err = openStateDir(other, true)
	require.Error(t, err, "not even --reset touches a directory that is not ours")
	assert.True(t, strings.Contains(err.Error(), "not a gatehouse dev state directory"))
}

func TestCheckPort(t *testing.T) {
	addr, err := freeAddr()
	require.NoError(t, err)
	require.NoError(t, checkPort(addr, "the proxy", "--proxy-address"))
}
