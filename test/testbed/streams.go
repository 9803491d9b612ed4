package testbed

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// CheckLogsFollow runs `kubectl logs -f` for a pod of the stub kubelet whose container is named
// main and checks that lines appended to its log while the command runs stream through.
func CheckLogsFollow(t testing.TB, kl *Kubelet, kubectl, kubeconfig, namespace, pod string) {
	t.Helper()
	kl.AppendLog(namespace, pod, "main", "started\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", namespace, "logs", "-f", pod)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	for _, want := range []string{"started\n", "still running\n"} {
		if want != "started\n" {
			kl.AppendLog(namespace, pod, "main", want)
		}
		line := make([]byte, len(want))
		if _, err := io.ReadFull(stdout, line); err != nil {
			t.Fatalf("kubectl logs -f: %v", err)
		}
		if string(line) != want {
			t.Fatalf("kubectl logs -f printed %q, want %q: followed logs stream as they come", line, want)
		}
	}
}

// WarningCollector is a client-go rest.WarningHandler that keeps the warnings kube-apiserver
// sends a client.
type WarningCollector struct {
	mu       sync.Mutex
	warnings []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *WarningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// String returns the warnings so far, one a line.
func (w *WarningCollector) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.warnings, "\n")
}
