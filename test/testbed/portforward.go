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

// CheckPortForward runs `kubectl port-forward` to pod (on the stub kubelet, whose pods' ports are
// loopback ports) over SPDY or WebSocket and checks a round trip through it to an echo server.
func CheckPortForward(t testing.TB, kubectl, kubeconfig, namespace, pod string, websockets bool) {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	local, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", namespace, "port-forward", "pod/"+pod,
		fmt.Sprintf("%d:%d", local, echo.Addr().(*net.TCPAddr).Port))
	cmd.Env = append(os.Environ(), "KUBECTL_PORT_FORWARD_WEBSOCKETS="+strconv.FormatBool(websockets))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	var conn net.Conn
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if conn, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local))); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl port-forward did not listen: %s", out.String())
		}
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
