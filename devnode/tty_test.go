package devnode

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) Close() error { return nil }
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(l.String(), s) }, 10*time.Second, 10*time.Millisecond,
		"no %q in %q", s, stringer(l.String))
}

// TestTerminal drives `kubectl exec -it ... -- sh` as the streaming code does: a prompt, echo,
// \r\n, Ctrl-C interrupting a command without ending the shell, and the exit code.
func TestTerminal(t *testing.T) {
	c := testContainer(t)
	in, typed := io.Pipe()
	out := &lockedBuffer{}
	resize := make(chan remotecommand.TerminalSize, 1)
	resize <- remotecommand.TerminalSize{Width: 100, Height: 30}
	done := make(chan error, 1)
	go func() { done <- runStreams(t.Context(), c, []string{"sh"}, in, out, nil, true, resize) }()

	out.waitFor(t, "web-0:/$ ")
	_, _ = io.WriteString(typed, "echo hello $GREETING\r")
	out.waitFor(t, "hello hello\r\n")
	_, _ = io.WriteString(typed, "sleep 60\r")
	out.waitFor(t, "sleep 60\r\n")
	_, _ = io.WriteString(typed, "\x03")
	_, _ = io.WriteString(typed, "echo after-interrupt\r")
	out.waitFor(t, "after-interrupt\r\n")
	_, _ = io.WriteString(typed, "exit 7\r")
	select {
	case err := <-done:
		var code ExitCode
		require.True(t, errors.As(err, &code), "%v", err)
		assert.Equal(t, 7, int(code))
	case <-time.After(10 * time.Second):
		t.Fatalf("the shell did not exit: %q", out.String())
	}
	close(resize)
}

// stringer prints as what its function returns when a failure message is formatted.
type stringer func() string

func (s stringer) String() string { return s() }
