package testbed

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProcessReportsItsOwnExit checks that a component dying under a test says how it ended and
// what it said last, and that one the test stops says nothing.
func TestProcessReportsItsOwnExit(t *testing.T) {
	tests := []struct {
		name   string
		script string
		stop   bool
		want   []string
		// wait is output to wait for before stopping.
		wait string
	}{
		{"exit status", "echo disk full; exit 3", false, []string{"test-component -c (pid ", "exit status 3", "disk full"}, ""},
		{"signal", "echo going; kill -9 $$", false, []string{"signal: killed", "going"}, ""},
		{"clean exit", "exit 0", false, []string{"exit status 0"}, ""},
		{"stopped by the test", "echo waiting; exec sleep 60", true, nil, ""},
		// The shell dies on SIGTERM; its child keeps the output open until it ends.
		{"stopped while its child holds the output", "sleep 20 & echo started; wait", true, nil, "started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var report SyncBuffer
			p, err := startProcessReporting(&report, "test-component", "/bin/sh", "", "-c", tt.script)
			require.NoError(t, err)
			if tt.stop {
				require.Eventually(t, func() bool { return strings.Contains(p.out.String(), tt.wait) },
					10*time.Second, 10*time.Millisecond)
				start := time.Now()
				require.NoError(t, p.Stop())
				assert.Less(t, time.Since(start), 15*time.Second, "a child holding the output does not hold Stop")
				assert.Empty(t, report.String(), "an exit the test asked for is not reported")
				return
			}
			<-p.exited
			for _, w := range tt.want {
				assert.Contains(t, report.String(), w)
			}
			assert.NotContains(t, report.String(), tt.script, "arguments beyond the subcommand are not shown")
		})
	}
}

// TestBinDirRemovesThoseOfExitedProcesses: each process builds its gatehouse binary into a
// directory of its own, and removes those of processes that have exited, never a running one's.
func TestBinDirRemovesThoseOfExitedProcesses(t *testing.T) {
	parent := filepath.Join(os.TempDir(), "gatehouse-bin")
	exited := filepath.Join(parent, "999999999") // above any pid_max
	running := filepath.Join(parent, "1")        // init
	for _, d := range []string{exited, running} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	t.Cleanup(func() { _ = os.RemoveAll(running) })

	dir, err := binDir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(parent, strconv.Itoa(os.Getpid())), dir)
	assert.DirExists(t, dir)
	assert.NoDirExists(t, exited)
	assert.DirExists(t, running)
}
