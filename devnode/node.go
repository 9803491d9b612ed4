package devnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/gatehouse-dev/gatehouse/serving"
)

// DefaultNodeName is the Node a dev node registers as unless told otherwise.
const DefaultNodeName = "gatehouse-dev-node"

// ForwardFunc connects a port-forward stream to port of a pod.
type ForwardFunc func(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error

// Options configure a Node.
type Options struct {
	// Client reaches kube-apiserver: it registers the Node, reads pods and the Secrets and
	// ConfigMaps their containers use, and updates pod status. Required.
	Client kubernetes.Interface
	// NodeName is the Node's name. Default: DefaultNodeName.
	NodeName string
	// Address is where the kubelet API listens. Default: 127.0.0.1 on a free port.
	Address string
	// ClientCAs, when set, make the kubelet API require a client certificate signed by them
	// (kube-apiserver's --kubelet-client-certificate), as a real kubelet does. Default: any
	// client that reaches Address may call it.
	ClientCAs *x509.CertPool
	// RunPods makes the node act as a one-node cluster's scheduler and kubelet: every pod
	// without a node is bound to it, pods bound to it are marked Running, and pods being
	// deleted are removed. Default: only pods created with RunPod run.
	RunPods bool
	// Forward connects port-forward streams. Default: an in-memory server per pod port that
	// answers HTTP requests with a page naming the pod and echoes anything else.
	Forward ForwardFunc
	// FSLimit caps each container's in-memory filesystem. Default: DefaultFSLimit.
	FSLimit int64
	// Logger reports what the node does. Default: discard.
	Logger *slog.Logger
}

// Node is a development node: a Node object backed by an HTTPS server that answers the kubelet
// API calls kube-apiserver makes for exec, attach, port-forward and container logs, with the
// kubelet's own server-side streaming code.
type Node struct {
	// Name is the Node's name.
	Name string

	o    Options
	log  *slog.Logger
	srv  *http.Server
	lis  net.Listener
	port int
	done chan struct{}

	mu         sync.Mutex
	logs       map[string]*containerLog
	containers map[string]*container
	stop       context.CancelFunc
}

// Start registers the node (ctx bounds those API calls) and serves its kubelet API until Close
// is called.
func Start(ctx context.Context, o Options) (*Node, error) {
	if o.Client == nil {
		return nil, errors.New("devnode: Options.Client is required")
	}
	if o.NodeName == "" {
		o.NodeName = DefaultNodeName
	}
	if o.Address == "" {
		o.Address = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Forward == nil {
		o.Forward = ServePodPort
	}
	n := &Node{Name: o.NodeName, o: o, log: o.Logger, done: make(chan struct{}),
		logs: map[string]*containerLog{}, containers: map[string]*container{}}
	cert, err := serving.SelfSignedCertificate("localhost", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if o.ClientCAs != nil {
		tlsCfg.ClientCAs = o.ClientCAs
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	n.lis, err = net.Listen("tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("devnode: listen on %s: %w", o.Address, err)
	}
	n.port = n.lis.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", n.serveExec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", n.serveAttach)
	mux.HandleFunc("/portForward/{ns}/{pod}", n.servePortForward)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", n.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	// Long-lived streams must not be cut by the server's own timeouts; only the header read
	// is bounded (slowloris).
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg}

	if err := n.register(ctx); err != nil {
		_ = n.lis.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = cancel
	go func() {
		defer close(n.done)
		err := n.srv.ServeTLS(n.lis, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("dev node server stopped", "err", err)
		}
	}()
	if o.RunPods {
		go n.runPods(runCtx)
	}
	n.log.Info("dev node serving the kubelet API", "node", n.Name, "address", n.lis.Addr().String())
	return n, nil
}

// Port is the kubelet API's port.
func (n *Node) Port() int { return n.port }

// Addr is the kubelet API's address.
func (n *Node) Addr() string { return n.lis.Addr().String() }

func (n *Node) register(ctx context.Context) error {
	nodes := n.o.Client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		node, err = nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux"}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("devnode: register node %s: %w", n.Name, err)
		}
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		// Only the loopback address: kube-apiserver prefers a Hostname address, which would send it
		// to DNS.
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.port)}},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "Gatehouse dev node",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		NodeInfo:    corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "gatehouse-devnode", ContainerRuntimeVersion: "gatehouse://builtin-shell"},
		Capacity:    corev1.ResourceList{corev1.ResourcePods: resourceQuantity("110")},
		Allocatable: corev1.ResourceList{corev1.ResourcePods: resourceQuantity("110")},
	}
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("devnode: set status of node %s: %w", n.Name, err)
	}
	return nil
}

// Close stops the server and ends every stream. The Node object stays.
func (n *Node) Close() {
	n.mu.Lock()
	for _, l := range n.logs {
		l.close()
	}
	stop := n.stop
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		_ = n.srv.Close()
	}
	<-n.done
}

// RunPod creates pod on this node and marks it Running with ready containers, as a kubelet
// would once the containers started.
func (n *Node) RunPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pod = pod.DeepCopy()
	pod.Spec.NodeName = n.Name
	created, err := n.o.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("devnode: create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return n.setRunning(ctx, created)
}

func (n *Node) setRunning(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pod = pod.DeepCopy()
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	pod.Status.PodIP = "127.0.0.1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	pod.Status.StartTime = &now
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := true
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	running, err := n.o.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("devnode: set pod %s/%s running: %w", pod.Namespace, pod.Name, err)
	}
	return running, nil
}

// AppendLog appends text to a container's log, waking followers (`kubectl logs -f`).
func (n *Node) AppendLog(namespace, pod, container, text string) {
	n.log1(namespace, pod, container).append([]byte(text))
}

// LogSent returns how many bytes of a container's log every follower being served (kube-apiserver,
// for `kubectl logs -f`) has been sent so far; 0 when none is.
func (n *Node) LogSent(namespace, pod, container string) int {
	l := n.log1(namespace, pod, container)
	l.mu.Lock()
	defer l.mu.Unlock()
	sent := -1
	for off := range l.followers {
		if sent < 0 || *off < sent {
			sent = *off
		}
	}
	return max(sent, 0)
}

func (n *Node) log1(ns, pod, container string) *containerLog {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := ns + "/" + pod + "/" + container
	l, ok := n.logs[key]
	if !ok {
		l = &containerLog{changed: make(chan struct{})}
		n.logs[key] = l
	}
	return l
}

const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

// podRef is how the node names a pod to the streaming code, which passes it back.
func podRef(r *http.Request) string { return r.PathValue("ns") + "/" + r.PathValue("pod") }

func (n *Node) serveExec(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(lingerWriter{w}, r, executor{n}, podRef(r), "", r.PathValue("container"),
		r.URL.Query()["command"], opts, streamIdleTimeout, streamCreationTimeout,
		remotecommand.SupportedStreamingProtocols)
}

func (n *Node) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(lingerWriter{w}, r, executor{n}, podRef(r), "", r.PathValue("container"), opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (n *Node) servePortForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, executor{n}, podRef(r), "", opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

func (n *Node) serveLogs(w http.ResponseWriter, r *http.Request) {
	l := n.log1(r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	off := new(int)
	l.follow(off)
	defer l.unfollow(off)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		// The headers go out at once, as a kubelet's do: kube-apiserver answers a WebSocket log
		// request only once the kubelet answered.
		flusher.Flush()
	}
	for {
		data, changed, closed := l.since(*off)
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			l.sent(off, len(data))
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
	// followers are the offsets up to which each follower being served was sent the log.
	followers map[*int]struct{}
}

func (l *containerLog) follow(off *int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.followers == nil {
		l.followers = map[*int]struct{}{}
	}
	l.followers[off] = struct{}{}
}

func (l *containerLog) unfollow(off *int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.followers, off)
}

// sent records that the follower at off was sent n more bytes.
func (l *containerLog) sent(off *int, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*off += n
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

// executor is the node as the streaming code's Executor, Attacher and PortForwarder.
type executor struct{ n *Node }

func splitRef(ref string) (ns, pod string) {
	ns, pod, _ = strings.Cut(ref, "/")
	return ns, pod
}

func (e executor) ExecInContainer(ctx context.Context, ref, _, name string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	ns, pod := splitRef(ref)
	c, err := e.n.container(ctx, ns, pod, name)
	if err != nil {
		return err
	}
	return streamResult(runStreams(ctx, c, cmd, in, out, errw, tty, resize))
}

func (e executor) AttachContainer(ctx context.Context, ref, _, name string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ns, pod := splitRef(ref)
	c, err := e.n.container(ctx, ns, pod, name)
	if err != nil {
		return err
	}
	cmd := c.command
	if len(cmd) == 0 {
		// No command: attach echoes what it is sent, as a container running cat would.
		cmd = []string{"cat"}
	}
	return streamResult(runStreams(ctx, c, cmd, in, out, errw, tty, resize))
}

func (e executor) PortForward(ctx context.Context, ref, _ string, port int32, stream io.ReadWriteCloser) error {
	ns, pod := splitRef(ref)
	return e.n.o.Forward(ctx, ns, pod, port, stream)
}

// streamResult turns an exit code into the error type the streaming code reports as the
// remote exit code.
func streamResult(err error) error {
	var code ExitCode
	if errors.As(err, &code) {
		return utilexec.CodeExitError{Err: err, Code: int(code)}
	}
	return err
}
