package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	criportforward "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// This file serves port-forward itself, as terminal.go serves exec: the client is served with
// the kubelet's port-forward code (k8s.io/cri-streaming: SPDY, and the kubelet's WebSocket
// protocol), and SPDY tunnelled through WebSocket (kubectl's KUBECTL_PORT_FORWARD_WEBSOCKETS)
// with kube-apiserver's own tunnelling handler; upstream, the proxy dials one connection per
// session with client-go's dialers (SPDY over WebSocket, falling back to SPDY) through the same
// impersonating, approval-holding transport as exec. Each forwarded connection is recorded when
// it opens and when it closes, with its port and byte counts; the bytes themselves are neither
// read nor recorded.

// errSessionUnrecorded ends what a session would forward once its recording broke.
var errSessionUnrecorded = errors.New("the session can no longer be recorded: Gatehouse ends it")

// portForwardEvent is one line of a port-forward recording (trail.FormatPortForward).
type portForwardEvent struct {
	Time       time.Time `json:"time"`
	Event      string    `json:"event"` // start, open, close, end
	Connection int64     `json:"connection,omitempty"`
	Port       int32     `json:"port,omitempty"`
	// BytesToPod and BytesFromPod count what crossed a connection.
	BytesToPod   int64  `json:"bytesToPod,omitempty"`
	BytesFromPod int64  `json:"bytesFromPod,omitempty"`
	Error        string `json:"error,omitempty"`
}

// portForwardSession is one port-forward request.
type portForwardSession struct {
	p      *Proxy
	st     *requestState
	ctx    context.Context
	conn   httpstream.Connection
	writer *recording.Writer
	nextID atomic.Int64
	// active counts the connections being forwarded: the recording ends after them.
	active sync.WaitGroup
}

func (s *portForwardSession) event(ev portForwardEvent) {
	if s.writer == nil {
		return
	}
	ev.Time = time.Now().UTC()
	b, _ := json.Marshal(ev)
	_ = s.writer.Append(ev.Time, append(b, '\n'))
}

// servePortForward serves a port-forward request.
func (p *Proxy) servePortForward(r *http.Request, st *requestState) {
	ctx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(r.Context()), stateKey{}, st))
	defer cancel()
	s := &portForwardSession{p: p, st: st, ctx: ctx}
	if err := s.startRecording(); err != nil {
		return
	}
	defer s.finishRecording()

	up := &upstreamState{connected: make(chan struct{})}
	dialer, err := p.portForwardDialer(r, st, up)
	if err == nil {
		s.conn, _, err = dialer.Dial(criportforward.ProtocolV1Name)
	}
	if err != nil {
		t := &terminal{p: p, st: st, up: up}
		s.event(portForwardEvent{Event: "end", Error: "not started"})
		t.failedBeforeStart(err)
		return
	}
	defer s.conn.Close()
	if s.writer != nil {
		s.writer.SetAuditID(st.auditID)
	}
	go func() {
		select {
		case <-s.conn.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	}()
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		opts, err := criportforward.NewV4Options(req)
		if err != nil {
			p.refuseUpgrade(st, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		criportforward.ServePortForward(w, req, s, st.info.Name, "", opts, p.opts.StreamIdleTimeout, 30*time.Second, criportforward.SupportedProtocols)
	})
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		inner := handler
		handler = apiproxy.NewTunnelingHandler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			inner.ServeHTTP(&rawUpgradeWriter{ResponseWriter: w}, req)
		}))
	}
	handler.ServeHTTP(st.w, r)
	// The client is gone: end its connections, then the recording (deferred).
	cancel()
	s.active.Wait()
}

// startRecording opens the session's recording before anything is forwarded.
func (s *portForwardSession) startRecording() error {
	p, st := s.p, s.st
	st.recordingID = st.auditID
	info := recording.Info{
		RecordingID: st.auditID, SessionID: st.session, AuditID: st.auditID, Format: trail.FormatPortForward,
		Subresource: "portforward", Namespace: st.info.Namespace, Pod: st.info.Name, User: st.id.User,
	}
	first, _ := json.Marshal(portForwardEvent{Time: time.Now().UTC(), Event: "start"})
	w, err := p.opts.Recordings.Open(s.ctx, info, append(first, '\n'))
	if err != nil {
		p.metrics.unrecorded.Inc()
		if p.opts.Unrecorded == RefuseUnrecorded {
			st.errReason = "recording unavailable"
			p.log.Error("refusing a port-forward that cannot be recorded", "auditID", st.auditID, "err", err)
			p.refuseUpgrade(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse cannot record this session right now (the trail is unavailable), so it does not start it. Retry shortly.")
			return errRefused
		}
		st.recordingID = ""
		return nil
	}
	s.writer = w
	return nil
}

func (s *portForwardSession) finishRecording() {
	if s.writer == nil {
		return
	}
	s.event(portForwardEvent{Event: "end"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.writer.Close(ctx); err != nil {
		s.p.metrics.unrecorded.Inc()
		s.st.setErrReason("recording incomplete")
		s.p.log.Error("the port-forward's recording is incomplete", "auditID", s.st.auditID, "err", err)
	}
}

// PortForward forwards one of the client's connections to port over the upstream connection, as
// client-go's port forwarder does, counting the bytes.
func (s *portForwardSession) PortForward(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	if w := s.writer; w != nil && w.Err() != nil && s.p.opts.Unrecorded == RefuseUnrecorded {
		return errSessionUnrecorded
	}
	s.active.Add(1)
	defer s.active.Done()
	id := s.nextID.Add(1)
	s.event(portForwardEvent{Event: "open", Connection: id, Port: port})
	var toPod, fromPod int64
	err := s.forward(id, port, stream, &toPod, &fromPod)
	ev := portForwardEvent{Event: "close", Connection: id, Port: port, BytesToPod: atomic.LoadInt64(&toPod), BytesFromPod: atomic.LoadInt64(&fromPod)}
	if err != nil {
		ev.Error = err.Error()
	}
	s.event(ev)
	return err
}

func (s *portForwardSession) forward(id int64, port int32, stream io.ReadWriteCloser, toPod, fromPod *int64) error {
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, strconv.FormatInt(id, 10))
	errorStream, err := s.conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("opening the connection to port %d: %w", port, err)
	}
	_ = errorStream.Close()
	defer s.conn.RemoveStreams(errorStream)
	errc := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errorStream)
		switch {
		case err != nil:
			errc <- err
		case len(msg) > 0:
			errc <- errors.New(string(msg))
		default:
			errc <- nil
		}
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := s.conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("opening the connection to port %d: %w", port, err)
	}
	defer s.conn.RemoveStreams(data)
	remoteDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(countingWriter{stream, fromPod}, data)
		close(remoteDone)
	}()
	localErr := make(chan struct{})
	go func() {
		defer data.Close()
		_, err := io.Copy(countingWriter{data, toPod}, stream)
		if err != nil && !strings.Contains(strings.ToLower(err.Error()), "use of closed network connection") {
			close(localErr)
		}
	}()
	select {
	case <-remoteDone:
	case <-localErr:
	case <-s.ctx.Done():
	}
	_ = data.Reset()
	select {
	case err := <-errc:
		return err
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// portForwardDialer returns the dialer of a port-forward session's upstream connection: SPDY
// tunnelled through WebSocket, falling back to SPDY.
func (p *Proxy) portForwardDialer(r *http.Request, st *requestState, up *upstreamState) (httpstream.Dialer, error) {
	cfg := rest.CopyConfig(p.opts.Upstream)
	cfg.UserAgent = st.client
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &sessionTransport{next: rt, p: p, up: up, st: st}
	})
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = ""
	tunnel, err := portforward.NewSPDYOverWebsocketDialerForStreaming(&u, cfg)
	if err != nil {
		return nil, err
	}
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	direct := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: rt}, http.MethodPost, &u)
	return portforward.NewFallbackDialerForStreaming(tunnel, direct, func(err error) bool {
		return !up.isFinal() && (httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err))
	}), nil
}

// rawUpgradeWriter lets the SPDY upgrader, which answers 101 with WriteHeader and then hijacks
// the connection, run behind kube-apiserver's WebSocket tunnelling writer, which takes the 101
// only as raw bytes on the hijacked connection (as kube-apiserver's own upgrade proxy writes it).
type rawUpgradeWriter struct {
	http.ResponseWriter
	upgrade bool
}

func (w *rawUpgradeWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		w.upgrade = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rawUpgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, _, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if w.upgrade {
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		_ = w.Header().Write(&b)
		b.WriteString("\r\n")
		if _, err := conn.Write(b.Bytes()); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)), nil
}

// countingWriter counts what is written through it.
type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	atomic.AddInt64(c.n, int64(n))
	return n, err
}
