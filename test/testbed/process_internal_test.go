package testbed

import (
	"testing"

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
	}{
		{"exit status", "echo disk full; exit 3", false, []string{"test-component -c (pid ", "exit status 3", "disk full"}},
		{"signal", "echo going; kill -9 $$", false, []string{"signal: killed", "going"}},
		{"clean exit", "exit 0", false, []string{"exit status 0"}},
		{"stopped by the test", "echo waiting; sleep 60", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var report SyncBuffer
			p, err := startProcessReporting(&report, "test-component", "/bin/sh", "", "-c", tt.script)
			require.NoError(t, err)
			if tt.stop {
				require.NoError(t, p.Stop())
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
