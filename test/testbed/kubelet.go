package testbed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Kubelet is a stub kubelet registered as a Node. It serves the streaming endpoints kube-apiserver
// proxies to (exec, attach, port-forward, container logs) with the kubelet's own server-side
// protocol code, so exec, attach and port-forward work end to end over SPDY and WebSocket.
//
// A "container" is the local machine: exec runs real local processes, attach runs the
// container's command (default cat), port-forward connects to the port on 127.0.0.1 and logs
// are what the test appended with AppendLog.
type Kubelet struct {
	// NodeName is the name of the Node the stub is registered as.
	NodeName string

	kube *Kube
	srv  *httptest.Server

	mu   sync.Mutex
	logs map[string]*containerLog
}

// StartKubelet starts the stub and registers it as a Node named nodeName.
func StartKubelet(ctx context.Context, k *Kube, nodeName string) (*Kubelet, error) {
	kl := &Kubelet{NodeName: nodeName, kube: k, logs: map[string]*containerLog{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", kl.serveExec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", kl.serveAttach)
	mux.HandleFunc("/portForward/{ns}/{pod}", kl.servePortForward)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", kl.serveLogs)
	kl.srv = httptest.NewUnstartedServer(mux)
	kl.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	// Long-lived streams must not be cut by the server's own timeouts.
	kl.srv.Config.ReadHeaderTimeout = 10 * time.Second
	kl.srv.StartTLS()

	port := kl.srv.Listener.Addr().(*net.TCPAddr).Port
	node, err := k.Clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{"kubernetes.io/hostname": nodeName}},
	}, metav1.CreateOptions{})
	if err != nil {
		kl.srv.Close()
		return nil, fmt.Errorf("testbed: register node %s: %w", nodeName, err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	if _, err := k.Clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		kl.srv.Close()
		return nil, fmt.Errorf("testbed: set status of node %s: %w", nodeName, err)
	}
	return kl, nil
}

// Close stops the stub. The Node object stays.
func (kl *Kubelet) Close() {
	kl.mu.Lock()
	for _, l := range kl.logs {
		l.close()
	}
	kl.mu.Unlock()
	kl.srv.CloseClientConnections()
	kl.srv.Close()
}

// RunPod creates pod on this node and marks it Running with ready containers, as a kubelet
// would once the containers started.
func (kl *Kubelet) RunPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pod = pod.DeepCopy()
	pod.Spec.NodeName = kl.NodeName
	created, err := kl.kube.Clientset.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("testbed: create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	now := metav1.Now()
	created.Status.Phase = corev1.PodRunning
	created.Status.HostIP = "127.0.0.1"
	created.Status.PodIP = "127.0.0.1"
	created.Status.StartTime = &now
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	for _, c := range created.Spec.Containers {
		created.Status.ContainerStatuses = append(created.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	running, err := kl.kube.Clientset.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("testbed: set pod %s/%s running: %w", pod.Namespace, pod.Name, err)
	}
	return running, nil
}

func ptr[T any](v T) *T { return &v }

// AppendLog appends text to a container's log, waking followers (`kubectl logs -f`).
func (kl *Kubelet) AppendLog(namespace, pod, container, text string) {
	kl.log(namespace, pod, container).append([]byte(text))
}

func (kl *Kubelet) log(ns, pod, container string) *containerLog {
	kl.mu.Lock()
	defer kl.mu.Unlock()
	key := ns + "/" + pod + "/" + container
	l, ok := kl.logs[key]
	if !ok {
		l = &containerLog{changed: make(chan struct{})}
		kl.logs[key] = l
	}
	return l
}

const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

func (kl *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, localExecutor{}, r.PathValue("pod"), "", r.PathValue("container"),
		r.URL.Query()["command"], opts, streamIdleTimeout, streamCreationTimeout,
		remotecommand.SupportedStreamingProtocols)
}

func (kl *Kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("pod")
	pod, err := kl.kube.Clientset.CoreV1().Pods(ns).Get(r.Context(), name, metav1.GetOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	cmd := []string{"cat"}
	for _, c := range pod.Spec.Containers {
		if c.Name == r.PathValue("container") && len(c.Command) > 0 {
			cmd = append(append([]string{}, c.Command...), c.Args...)
		}
	}
	remotecommand.ServeAttach(w, r, localAttacher{cmd: cmd}, name, "", r.PathValue("container"), opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (kl *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, localForwarder{}, r.PathValue("pod"), "", opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

func (kl *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	l := kl.log(r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		// The headers go out at once, as a kubelet's do: kube-apiserver answers a WebSocket log
		// request only once the kubelet answered.
		flusher.Flush()
	}
	var off int
	for {
		data, changed, closed := l.since(off)
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return
			}
			off += len(data)
			if flusher != nil {
				flusher.Flush()
			}
		}
		if !follow || closed {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// containerLog is an append-only log with change notification.
type containerLog struct {
	mu      sync.Mutex
	data    []byte
	changed chan struct{}
	closed  bool
}

func (l *containerLog) append(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.data = append(l.data, p...)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *containerLog) since(off int) ([]byte, <-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.data[off:], l.changed, l.closed
}

func (l *containerLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// localExecutor runs exec commands as local processes.
type localExecutor struct{}

func (localExecutor) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return runLocal(ctx, cmd, in, out, errw, tty, resize)
}

// localAttacher attaches to a fresh local process running the container's command.
type localAttacher struct{ cmd []string }

func (a localAttacher) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return runLocal(ctx, a.cmd, in, out, errw, tty, resize)
}

func runLocal(ctx context.Context, argv []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	if tty {
		return runTTY(cmd, in, out, resize)
	}
	if out != nil {
		cmd.Stdout = out
	}
	if errw != nil {
		cmd.Stderr = errw
	}
	var stdin io.WriteCloser
	if in != nil {
		// A pipe and our own copy: with the stream as cmd.Stdin, Wait would block until the
		// client closes stdin even after the process exited.
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	return exitError(cmd.Wait())
}

func runTTY(cmd *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	f, err := pty.Start(cmd)
	if err != nil {
		return err
	}
	var mu sync.Mutex // Setsize must not race Close
	closed := false
	defer func() {
		mu.Lock()
		closed = true
		_ = f.Close()
		mu.Unlock()
	}()
	go func() {
		for size := range resize {
			mu.Lock()
			if !closed {
				_ = pty.Setsize(f, &pty.Winsize{Rows: size.Height, Cols: size.Width})
			}
			mu.Unlock()
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(f, in) }()
	}
	copied := make(chan struct{})
	go func() {
		if out != nil {
			_, _ = io.Copy(out, f)
		}
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	return exitError(err)
}

// exitError turns a process's exit status into the error type the streaming code reports as
// the remote exit code.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return utilexec.CodeExitError{Err: err, Code: ee.ExitCode()}
	}
	return err
}

// localForwarder connects a port-forward stream to the port on 127.0.0.1.
type localForwarder struct{}

func (localForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); _ = conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	<-done
	<-done
	return nil
}
