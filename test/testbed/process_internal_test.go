package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

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
				assert.False(t, p.Exited())
				start := time.Now()
				require.NoError(t, p.Stop())
				assert.True(t, p.Exited())
				assert.Less(t, time.Since(start), 15*time.Second, "a child holding the output does not hold Stop")
				assert.Empty(t, report.String(), "an exit the test asked for is not reported")
				return
			}
			<-p.exited
			assert.True(t, p.Exited())
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

// TestClickHouseStartsAgainAfterAnAbort: a server whose engine aborted (as libchdb has been
// seen to now and then) says it exited, and Start brings it back with its databases.
func TestClickHouseStartsAgainAfterAnAbort(t *testing.T) {
	c, err := StartClickHouse()
	require.NoError(t, err)
	t.Cleanup(c.Close)
	query := func(ctx context.Context, q string) (uint64, error) {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.NativeAddr}})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		var n uint64
		if strings.HasPrefix(q, "SELECT") {
			err = conn.QueryRow(ctx, q).Scan(&n)
		} else {
			err = conn.Exec(ctx, q)
		}
		return n, err
	}
	for _, q := range []string{
		"CREATE TABLE kept (id UInt64) ENGINE = MergeTree ORDER BY id",
		"INSERT INTO kept SELECT number FROM numbers(10)",
	} {
		_, err := query(t.Context(), q)
		require.NoError(t, err, q)
	}
	assert.False(t, c.Exited())

	require.NoError(t, c.p.cmd.Process.Signal(syscall.SIGABRT))
	require.Eventually(t, c.Exited, 30*time.Second, 50*time.Millisecond)
	_, err = query(t.Context(), "SELECT 1")
	require.Error(t, err, "the server is gone")

	require.NoError(t, c.Start())
	assert.False(t, c.Exited())
	n, err := query(t.Context(), "SELECT count() FROM kept")
	require.NoError(t, err)
	assert.Equal(t, uint64(10), n, "the table and its rows survive")

	// Supervised, it starts again by itself, and not after Stop.
	var mu sync.Mutex
	var lines []string
	stop := c.Supervise(func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	defer stop()
	first := c.proc()
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGABRT))
	require.Eventually(t, func() bool {
		n, err := query(t.Context(), "SELECT count() FROM kept")
		return err == nil && n == 10 && c.proc() != first
	}, 60*time.Second, 100*time.Millisecond, "started again on the same data")
	mu.Lock()
	assert.Len(t, lines, 1)
	mu.Unlock()
	require.NoError(t, c.Stop())
	time.Sleep(time.Second)
	assert.True(t, c.Exited(), "a server stopped stays stopped")
}

// TestClickHouseSurvivesResetConnections resets a native-protocol connection (SO_LINGER 0, as
// the kernel does for a client killed with data unread): the engine alone aborts on it; behind
// chserver's relay the server goes on serving.
func TestClickHouseSurvivesResetConnections(t *testing.T) {
	c, err := StartClickHouse()
	require.NoError(t, err)
	t.Cleanup(c.Close)
	for range 3 {
		var raw *net.TCPConn
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.NativeAddr}, MaxOpenConns: 1,
			DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
				var d net.Dialer
				nc, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					raw = nc.(*net.TCPConn)
				}
				return nc, err
			}})
		require.NoError(t, err)
		require.NoError(t, conn.Exec(t.Context(), "SELECT 1"))
		require.NotNil(t, raw)
		require.NoError(t, raw.SetLinger(0))
		require.NoError(t, raw.Close())
	}
	// The engine notices a reset connection within about two seconds.
	time.Sleep(4 * time.Second)
	require.False(t, c.Exited(), "the server aborted on a reset connection:\n%s", c.Log())
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.NativeAddr}})
	require.NoError(t, err)
	defer conn.Close()
	assert.NoError(t, conn.Exec(t.Context(), "SELECT 1"))
}
