package testbed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestKubectlReleases: the older kubectl releases the tests drive come from one variable, and
// anything short of a list of working kubectl binaries fails with the command that builds them.
func TestKubectlReleases(t *testing.T) {
	t.Run("the test bed lists 1.27 and 1.30", func(t *testing.T) {
		releases, err := testbed.KubectlReleases(t.Context())
		require.NoError(t, err)
		minors := map[string]bool{}
		for _, r := range releases {
			minors[strings.Join(strings.Split(r.Version, ".")[:2], ".")] = true
		}
		assert.True(t, minors["v1.27"], "no kubectl 1.27 (SPDY only) in %+v", releases)
		assert.True(t, minors["v1.30"], "no kubectl 1.30 (first on WebSocket by default) in %+v", releases)
	})

	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
		return p
	}
	good := script("kubectl-good", `echo '{"clientVersion":{"gitVersion":"v1.27.16","minor":"27"}}'`)
	placeholder := script("kubectl-placeholder", `echo '{"clientVersion":{"gitVersion":"v0.0.0-master+$Format:%H$"}}'`)
	broken := script("kubectl-broken", "exit 1")
	missing := filepath.Join(dir, "kubectl-missing")

	t.Run("a listed kubectl reports its release", func(t *testing.T) {
		t.Setenv(testbed.KubectlReleasesVariable, good)
		releases, err := testbed.KubectlReleases(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []testbed.KubectlRelease{{Path: good, Version: "v1.27.16"}}, releases)
		assert.Equal(t, "1-27-16", releases[0].Name())
	})
	for _, tc := range []struct {
		name, list string
	}{
		{"an empty list", ""},
		{"a list of nothing", ":"},
		{"a missing binary", missing},
		{"a missing binary beside a good one", good + ":" + missing},
		{"a binary that fails", good + ":" + broken},
		{"a binary that reports no release", placeholder},
	} {
		t.Run(tc.name+" fails", func(t *testing.T) {
			t.Setenv(testbed.KubectlReleasesVariable, tc.list)
			releases, err := testbed.KubectlReleases(t.Context())
			require.ErrorIs(t, err, testbed.ErrMissing)
			assert.Contains(t, err.Error(), "scripts/testbed.sh all")
			assert.Empty(t, releases)
		})
	}
}
