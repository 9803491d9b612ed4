package devnode

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// TestExecOverRelayDeliversAllOutput runs what `kubectl exec -i` runs (client-go's SPDY
// executor) with an empty stdin many times through a relay that behaves like kube-apiserver's (it copies bytes both ways and
// closes both sides as soon as one direction ends), and requires every run to deliver all of
// stdout, stderr and the exit status. A node that closes its socket while the client's close
// of stdin is still unread resets the connection, the relay stops, and the client sees its
// output cut short and no exit status.
func TestExecOverRelayDeliversAllOutput(t *testing.T) {
	ctx := t.Context()
	n, err := Start(ctx, Options{Client: fake.NewClientset(), NodeName: "n1"})
	require.NoError(t, err)
	defer n.Close()
	_, err = n.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}})
	require.NoError(t, err)
	relay := startRelay(t, n.Addr())

	script := "echo line-one; echo line-two; echo export TOKEN=abcdefghijklmnopqrstuvwxyz; echo to-stderr >&2; exit 3"
	u := &url.URL{Scheme: "https", Host: relay, Path: "/exec/shop/web/main",
		RawQuery: url.Values{"command": {"sh", "-c", script}, "input": {"1"}, "output": {"1"}, "error": {"1"}}.Encode()}
	cfg := &rest.Config{Host: "https://" + relay, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	const runs = 200
	deadline := time.Now().Add(15 * time.Second)
	failures := 0
	i := 0
	for ; i < runs && time.Now().Before(deadline); i++ {
		exec, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
		require.NoError(t, err)
		var stdout, stderr bytes.Buffer
		err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
		var exitErr utilexec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 ||
			stdout.String() != "line-one\nline-two\nexport TOKEN=abcdefghijklmnopqrstuvwxyz\n" || stderr.String() != "to-stderr\n" {
			failures++
			t.Logf("run %d: err=%v stdout=%q stderr=%q", i, err, stdout.String(), stderr.String())
		}
	}
	assert.Zero(t, failures, "runs that lost output or the exit status, of %d", i)
}

// startRelay relays TCP connections to target as kube-apiserver relays an upgraded exec
// connection to the kubelet (k8s.io/apimachinery/pkg/util/proxy.UpgradeAwareHandler): byte for
// byte, both sides closed once either direction ends, the node's output relayed a little late.
func startRelay(t *testing.T, target string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = lis.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer client.Close()
				backend, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer backend.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(backend, client); done <- struct{}{} }()
				go func() { _, _ = io.Copy(client, slowReader{backend}); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return lis.Addr().String()
}

const relayDelay = 300 * time.Microsecond

// slowReader relays like kube-apiserver, which decrypts and encrypts again what it relays: a
// little late. Without the delay the race is rare in-process; with it, a node that resets the
// connection loses output in several runs of a hundred.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(relayDelay)
	return s.r.Read(p)
}

func TestLingerConnClose(t *testing.T) {
	tests := []struct {
		name       string
		peerCloses bool
		linger     time.Duration
		maxWait    time.Duration
	}{
		{"the peer's close ends the wait", true, time.Minute, 5 * time.Second},
		{"a peer that never closes is waited for linger only", false, 100 * time.Millisecond, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer lis.Close()
			peer, err := net.Dial("tcp", lis.Addr().String())
			require.NoError(t, err)
			defer peer.Close()
			raw, err := lis.Accept()
			require.NoError(t, err)
			conn := &lingerConn{Conn: raw, linger: tt.linger}

			// The peer sent something the node never read, as the close of an empty stdin.
			_, err = peer.Write([]byte("late frame"))
			require.NoError(t, err)
			_, err = conn.Write([]byte("output"))
			require.NoError(t, err)
			closed := make(chan error, 1)
			start := time.Now()
			go func() { closed <- conn.Close() }()

			require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, err := io.ReadAll(peer)
			require.NoError(t, err, "the peer reads the output and then the end of the stream, not a reset")
			assert.Equal(t, "output", string(got))
			// The peer may still write (kube-apiserver relays kubectl's last frames): the node
			// keeps reading until the peer closed.
			for range 3 {
				_, err = peer.Write([]byte("more"))
				require.NoError(t, err)
				time.Sleep(20 * time.Millisecond)
			}
			if tt.peerCloses {
				require.NoError(t, peer.Close())
			}
			select {
			case err := <-closed:
				require.NoError(t, err)
			case <-time.After(tt.maxWait):
				t.Fatal("Close did not return")
			}
			assert.GreaterOrEqual(t, time.Since(start), min(tt.linger, 60*time.Millisecond))
		})
	}
}
