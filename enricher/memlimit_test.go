package enricher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		cgroup  string            // /proc/self/cgroup
		files   map[string]string // under the cgroup root
		want    int64
		wantErr bool
	}{
		{"v2 own cgroup", "0::/kubepods/pod1/c1\n", map[string]string{"kubepods/pod1/c1/memory.max": "1073741824\n"}, 1 << 30, false},
		{"v2 namespaced", "0::/\n", map[string]string{"memory.max": "536870912\n"}, 512 << 20, false},
		{"v2 unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0, false},
		{"v1", "12:cpu,cpuacct:/x\n11:memory:/kubepods/c2\n", map[string]string{"memory/kubepods/c2/memory.limit_in_bytes": "268435456\n"}, 256 << 20, false},
		{"v1 unlimited", "11:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"none", "", nil, 0, false},
		{"garbage", "0::/\n", map[string]string{"memory.max": "lots\n"}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup")
			for name, content := range tc.files {
				p := filepath.Join(root, name)
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
			}
			self := filepath.Join(dir, "self-cgroup")
			require.NoError(t, os.WriteFile(self, []byte(tc.cgroup), 0o644))
			got, err := CgroupMemoryLimit(self, root)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
