package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// CheckPortForward runs `kubectl port-forward` to port 8080 of pod (on the dev node, whose pod
// ports are in-memory echo servers) over SPDY or WebSocket and checks a round trip through it.
func CheckPortForward(t testing.TB, kubectl, kubeconfig, namespace, pod string, websockets bool) {
	t.Helper()
	local, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", namespace, "port-forward", "pod/"+pod,
		fmt.Sprintf("%d:%d", local, 8080))
	cmd.Env = append(os.Environ(), "KUBECTL_PORT_FORWARD_WEBSOCKETS="+strconv.FormatBool(websockets))
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	var conn net.Conn
	if err := WaitFor(ctx, 20*time.Second, func(context.Context) error {
		conn, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
		return err
	}); err != nil {
		t.Fatalf("kubectl port-forward did not listen: %v: %s", err, out.String())
	}
	defer conn.Close()
	msg := []byte("ping through port-forward\n")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, len(msg))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatalf("no reply through port-forward: %v; kubectl: %s", err, out.String())
	}
	if !bytes.Equal(reply, msg) {
		t.Fatalf("port-forward returned %q, want %q", reply, msg)
	}
}
