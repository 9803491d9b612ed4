package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	crircmd "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// This file serves exec and attach (and so kubectl debug's attach) itself, rather than passing
// the connection through: the client is served with the kubelet's own server-side streaming code
// (k8s.io/cri-streaming for SPDY, the channel protocols of k8s.io/streaming for WebSocket, v5
// included, as kube-apiserver serves them), and the proxy opens its own stream to kube-apiserver
// with client-go's executors (WebSocket, falling back to SPDY), impersonating the client through
// setIdentityHeaders like every other request, and held for approval by holdTransport like them.
// Between the two it masks the command's output (recording.LiveMasker) and records the session
// (recording.Terminal).

// upgradeKind says what a protocol upgrade is for.
type upgradeKind int

const (
	// upgradeTerminal: exec and attach, served by the proxy.
	upgradeTerminal upgradeKind = iota + 1
	// upgradePortForward: port-forward, served by the proxy.
	upgradePortForward
	// upgradeWatchWS and upgradeLogWS: a watch or a pod log over WebSocket, forwarded with its
	// frames masked.
	upgradeWatchWS
	upgradeLogWS
	// upgradeOther: anything else (the proxy subresources, unknown protocols).
	upgradeOther
)

// classifyUpgrade says what an upgrade request is for.
func classifyUpgrade(r *http.Request, info *request.RequestInfo) upgradeKind {
	ws := wsstream.IsWebSocketRequest(r)
	if info.IsResourceRequest && info.APIGroup == "" && info.Resource == "pods" {
		switch info.Subresource {
		case "exec", "attach":
			return upgradeTerminal
		case "portforward":
			return upgradePortForward
		case "log":
			if ws {
				return upgradeLogWS
			}
			return upgradeOther
		}
	}
	if ws && info.IsResourceRequest && info.Subresource == "" {
		q := r.URL.Query()
		if info.Verb == "watch" || q.Get("watch") == "true" || q.Get("watch") == "1" {
			return upgradeWatchWS
		}
	}
	return upgradeOther
}

// termOptions are what an exec or attach request asks for.
type termOptions struct {
	stdin, stdout, stderr, tty bool
	container                  string
	command                    []string
}

func parseTermOptions(r *http.Request, subresource string) (termOptions, error) {
	q := r.URL.Query()
	flag := func(name string) (bool, error) {
		switch v := q.Get(name); v {
		case "", "false", "0":
			return false, nil
		case "true", "1":
			return true, nil
		default:
			return false, fmt.Errorf("%s must be true or false, not %q", name, v)
		}
	}
	var o termOptions
	var errs []error
	for _, f := range []struct {
		name string
		v    *bool
	}{{"stdin", &o.stdin}, {"stdout", &o.stdout}, {"stderr", &o.stderr}, {"tty", &o.tty}} {
		v, err := flag(f.name)
		errs = append(errs, err)
		*f.v = v
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	o.container = q.Get("container")
	if subresource == "exec" {
		o.command = q["command"]
		if len(o.command) == 0 {
			return o, errors.New("you must specify a command")
		}
	}
	if o.tty {
		o.stderr = false // a terminal has one output stream
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// terminal is one exec or attach session.
type terminal struct {
	p    *Proxy
	st   *requestState
	opts termOptions

	ctx    context.Context
	cancel context.CancelFunc

	rec    *recording.Terminal // nil when the session runs unrecorded (AllowUnrecorded)
	writer *recording.Writer
	masker *recording.Masker
	echo   *recording.Echo

	// The upstream side.
	stdinR   *io.PipeReader
	stdinW   *io.PipeWriter
	sizes    chan remotecommand.TerminalSize
	done     chan error // the executor's result
	up       *upstreamState
	attached chan struct{} // closed once the client's streams are there
	liveOut  *recording.LiveMasker
	liveErr  *recording.LiveMasker
	// liveOutW and liveErrW are the client's streams, set before attached is closed.
	liveOutW, liveErrW clientStream
}

// serveTerminal serves an exec or attach request.
func (p *Proxy) serveTerminal(r *http.Request, st *requestState) {
	opts, err := parseTermOptions(r, st.info.Subresource)
	if err != nil {
		st.errReason = "invalid exec or attach options"
		p.refuseUpgrade(st, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(r.Context()), stateKey{}, st))
	defer cancel()
	t := &terminal{
		p: p, st: st, opts: opts, ctx: ctx, cancel: cancel,
		echo:     &recording.Echo{},
		done:     make(chan error, 1),
		up:       &upstreamState{connected: make(chan struct{})},
		attached: make(chan struct{}),
	}
	t.masker = recording.NewMasker(p.opts.Masker, p.values.of(st.session))
	if err := t.startRecording(); err != nil {
		return
	}
	defer t.finishRecording()

	exec, err := p.sessionExecutor(r, st, t.up)
	if err != nil {
		st.errReason = "upstream session"
		p.log.Error("cannot build the upstream executor", "auditID", st.auditID, "err", err)
		p.refuseUpgrade(st, http.StatusInternalServerError, metav1.StatusReasonInternalError, "Gatehouse could not open a session to the API server.")
		return
	}
	sopts := remotecommand.StreamOptions{Tty: opts.tty}
	if opts.stdin {
		t.stdinR, t.stdinW = io.Pipe()
		sopts.Stdin = t.stdinR
	}
	if opts.stdout {
		sopts.Stdout = t.gate(func(p []byte) (int, error) { return t.liveOut.Write(p) })
	}
	if opts.stderr {
		sopts.Stderr = t.gate(func(p []byte) (int, error) { return t.liveErr.Write(p) })
	}
	if opts.tty {
		t.sizes = make(chan remotecommand.TerminalSize, 4)
		sopts.TerminalSizeQueue = sizeQueue{ctx: ctx, ch: t.sizes}
	}
	go func() { t.done <- exec.StreamWithContext(ctx, sopts) }()

	select {
	case <-t.up.connected:
	case err := <-t.done:
		t.failedBeforeStart(err)
		return
	}
	if t.writer != nil {
		t.writer.SetAuditID(st.auditID)
	}
	t.liveOut = recording.NewLiveMasker(t.masker, t.emitter(recording.CodeOutput, &t.liveOutW), recording.LiveOptions{Delay: p.opts.TerminalDelay, Echo: t.echo})
	t.liveErr = recording.NewLiveMasker(t.masker, t.emitter(recording.CodeStderr, &t.liveErrW), recording.LiveOptions{Delay: p.opts.TerminalDelay})
	go t.watchRecording()

	served := false
	if wsstream.IsWebSocketRequest(r) {
		served = t.serveWebSocket(r)
	} else {
		streamOpts := &crircmd.Options{Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr, TTY: opts.tty}
		crircmd.ServeExec(st.w, r, (*terminalExecutor)(t), st.info.Name, "", opts.container, opts.command, streamOpts,
			p.opts.StreamIdleTimeout, crircmd.DefaultStreamCreationTimeout, crircmd.SupportedStreamingProtocols)
		served = t.isAttached()
	}
	if !served {
		// The client's side never started: end the upstream session.
		st.errReason = "client stream not established"
		cancel()
		<-t.done
	}
	st.masking = t.masker.Stats()
}

// clientStream is one of the client's output streams.
type clientStream struct{ w io.Writer }

// gate returns a writer for the executor that waits until the client's streams are there.
func (t *terminal) gate(write func([]byte) (int, error)) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		select {
		case <-t.attached:
		case <-t.ctx.Done():
			return 0, t.ctx.Err()
		}
		return write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (t *terminal) isAttached() bool {
	select {
	case <-t.attached:
		return true
	default:
		return false
	}
}

// emitter returns the function a LiveMasker passes masked output to: the recording, then the
// client's stream.
func (t *terminal) emitter(code string, dst *clientStream) func([]byte, bool) error {
	return func(b []byte, whole bool) error {
		if t.rec != nil {
			if whole {
				t.rec.OutputMasked(code, b)
			} else {
				t.rec.Output(code, b)
			}
		}
		if dst.w == nil {
			return nil
		}
		if _, err := dst.w.Write(b); err != nil {
			t.cancel()
			return err
		}
		return nil
	}
}

// startRecording opens the session's recording: its first chunk is stored before anything is
// forwarded. A session that cannot be recorded is refused (RefuseUnrecorded).
func (t *terminal) startRecording() error {
	p, st := t.p, t.st
	id := st.auditID
	st.recordingID = id
	cmd := make([]string, len(t.opts.command))
	for i, a := range t.opts.command {
		cmd[i] = string(t.masker.Mask(nil, []byte(a)))
	}
	info := recording.Info{
		RecordingID: id, SessionID: st.session, AuditID: st.auditID, Format: trail.FormatAsciicast,
		Subresource: st.info.Subresource, Namespace: st.info.Namespace, Pod: st.info.Name,
		Container: t.opts.container, Command: cmd, User: st.id.User,
	}
	start := time.Now()
	hdr := recording.Header{
		Term:      recording.Term{Cols: 80, Rows: 24},
		Timestamp: start.Unix(),
		Command:   strings.Join(cmd, " "),
		Title:     fmt.Sprintf("%s %s %s/%s %s", st.id.User, st.info.Subresource, st.info.Namespace, st.info.Name, t.opts.container),
	}
	w, err := p.opts.Recordings.Open(t.ctx, info, recording.HeaderLine(hdr))
	if err != nil {
		p.metrics.unrecorded.Inc()
		if p.opts.Unrecorded == RefuseUnrecorded {
			st.errReason = "recording unavailable"
			p.log.Error("refusing a session that cannot be recorded", "auditID", st.auditID, "err", err)
			p.refuseUpgrade(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse cannot record this session right now (the trail is unavailable), so it does not start it. Retry shortly.")
			return errRefused
		}
		p.log.Error("starting a session that is not recorded", "auditID", st.auditID, "err", err)
		st.recordingID = ""
		return nil
	}
	t.writer = w
	t.rec = recording.NewTerminal(w, t.masker, start, recording.TerminalOptions{})
	return nil
}

// finishRecording closes the recording: its final chunk is stored.
func (t *terminal) finishRecording() {
	if t.rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.rec.Close(ctx); err != nil {
		t.p.metrics.unrecorded.Inc()
		t.st.setErrReason("recording incomplete")
		t.p.log.Error("the session's recording is incomplete", "auditID", t.st.auditID, "recording", t.st.recordingID, "err", err)
	}
}

// watchRecording ends the session when its recording breaks and unrecorded sessions are
// refused.
func (t *terminal) watchRecording() {
	if t.rec == nil || t.p.opts.Unrecorded != RefuseUnrecorded {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			if err := t.rec.Err(); err != nil {
				t.st.setErrReason("recording failed mid-session")
				t.p.log.Error("ending a session that can no longer be recorded", "auditID", t.st.auditID, "err", err)
				t.cancel()
				return
			}
		}
	}
}

// failedBeforeStart answers a client whose session never reached the container: with the API
// server's own answer when there is one (not found, forbidden, held for approval), else 502.
func (t *terminal) failedBeforeStart(err error) {
	p, st := t.p, t.st
	status := t.up.status()
	if status == nil {
		status = statusOf(err)
	}
	if t.rec != nil {
		msg := "session not started"
		if status != nil {
			msg += ": " + status.Message
		}
		t.rec.Marker(msg)
	}
	if status != nil {
		if st.errReason == "" {
			st.errReason = "upstream refused the session"
		}
		st.w.Header().Set("Connection", "close")
		serving.WriteStatus(st.w, status)
		return
	}
	if st.errReason == "" {
		st.errReason = "upstream unavailable"
	}
	p.metrics.upstreamErrors.Inc()
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	p.log.Error("session failed before it started", "auditID", st.auditID, "err", err)
	p.refuseUpgrade(st, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, "Gatehouse could not open the session with the Kubernetes API server.")
}

// refuseUpgrade answers an upgrade request with a Status and closes the connection after it.
func (p *Proxy) refuseUpgrade(st *requestState, code int, reason metav1.StatusReason, message string) {
	st.w.Header().Set("Connection", "close")
	p.refuse(st, code, reason, message)
}

// statusOf returns the API Status an executor's error carries, if any.
func statusOf(err error) *metav1.Status {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		s := se.ErrStatus
		return &s
	}
	var ue *httpstream.UpgradeFailureError
	if errors.As(err, &ue) && ue.Cause != nil {
		return statusOf(ue.Cause)
	}
	return nil
}

// terminalExecutor serves the client's streams for cri-streaming's ServeExec.
type terminalExecutor terminal

// ExecInContainer runs the session between the client's streams and the upstream one.
func (e *terminalExecutor) ExecInContainer(_ context.Context, _, _, _ string, _ []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan crircmd.TerminalSize, _ time.Duration) error {
	t := (*terminal)(e)
	var sizes <-chan remotecommand.TerminalSize
	if resize != nil {
		ch := make(chan remotecommand.TerminalSize)
		go func() {
			defer close(ch)
			for s := range resize {
				select {
				case ch <- remotecommand.TerminalSize{Width: s.Width, Height: s.Height}:
				case <-t.ctx.Done():
					return
				}
			}
		}()
		sizes = ch
	}
	return t.run(in, out, errw, sizes)
}

// run connects the client's streams to the session and waits for the session's end.
func (t *terminal) run(in io.Reader, out, errw io.Writer, resize <-chan remotecommand.TerminalSize) error {
	if out != nil {
		t.liveOutW.w = out
	}
	if errw != nil {
		t.liveErrW.w = errw
	}
	close(t.attached)
	if in != nil && t.stdinW != nil {
		go t.copyStdin(in)
	} else if t.stdinW != nil {
		_ = t.stdinW.Close()
	}
	if resize != nil {
		go func() {
			for s := range resize {
				if t.rec != nil {
					t.rec.Resize(s.Width, s.Height)
				}
				select {
				case t.sizes <- s:
				case <-t.ctx.Done():
					return
				}
			}
		}()
	}
	err := <-t.done
	_ = t.liveOut.Close()
	_ = t.liveErr.Close()
	if t.stdinW != nil {
		_ = t.stdinW.CloseWithError(io.EOF)
	}
	var exitErr clientexec.CodeExitError
	switch {
	case err == nil:
		if t.rec != nil {
			t.rec.Exit(0)
		}
		return nil
	case errors.As(err, &exitErr):
		if t.rec != nil {
			t.rec.Exit(exitErr.Code)
		}
		return exitErr
	}
	if t.ctx.Err() != nil && t.st.errReason != "" {
		err = fmt.Errorf("gatehouse ended the session: %s", t.st.errReason)
	}
	if t.rec != nil {
		t.rec.Marker("session failed: " + err.Error())
	}
	return err
}

// copyStdin passes what the client types to the upstream session, and records it.
func (t *terminal) copyStdin(in io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			t.echo.Input(buf[:n])
			if t.rec != nil {
				t.rec.Input(buf[:n])
			}
			if _, werr := t.stdinW.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				_ = t.stdinW.Close()
			} else {
				_ = t.stdinW.CloseWithError(err)
			}
			return
		}
	}
}

// sizeQueue hands the client's terminal sizes to the upstream executor.
type sizeQueue struct {
	ctx context.Context
	ch  <-chan remotecommand.TerminalSize
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s, ok := <-q.ch:
		if !ok {
			return nil
		}
		return &s
	case <-q.ctx.Done():
		return nil
	}
}

// upstreamState is what the session's transport learned about the upstream connection.
type upstreamState struct {
	connected chan struct{}
	once      sync.Once

	mu sync.Mutex
	// last is the API server's Status when it did not upgrade; final when that answer is not
	// one the SPDY fallback would change (anything but a 400).
	last  *metav1.Status
	final bool
}

func (u *upstreamState) status() *metav1.Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func (u *upstreamState) isFinal() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.final
}

// sessionExecutor returns the executor of a session's upstream stream: WebSocket (v5), falling
// back to SPDY when kube-apiserver cannot upgrade to WebSocket. Its transport impersonates the
// client with setIdentityHeaders and holds the session for approval with holdTransport.
func (p *Proxy) sessionExecutor(r *http.Request, st *requestState, up *upstreamState) (remotecommand.Executor, error) {
	cfg := rest.CopyConfig(p.opts.Upstream)
	cfg.UserAgent = st.client
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &sessionTransport{next: rt, p: p, up: up, st: st}
	})
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, &u)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return !up.isFinal() && (httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err))
	})
}

// sessionTransport is the innermost round tripper of a session's executors (client-go adds the
// proxy's credential around it): it sets the client's identity and the attempt's Audit-ID, lets
// holdTransport hold the session when admission holds it for approval, notes the API server's
// answer, and signals when the connection is upgraded.
type sessionTransport struct {
	next http.RoundTripper
	p    *Proxy
	up   *upstreamState
	st   *requestState
}

func (t *sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := t.st
	// Not every dialer passes a context on; the hold needs the request's state in it.
	out := req.Clone(context.WithValue(req.Context(), stateKey{}, st))
	for name := range out.Header {
		if isImpersonation(name) {
			delete(out.Header, name)
		}
	}
	t.p.setIdentityHeaders(out.Header, st)
	setAttempt(out.Header, st.auditID, "")
	ws := out.Header.Get(httpstream.HeaderProtocolVersion) == ""
	hold := &holdTransport{next: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return t.attempt(r, ws)
	}), p: t.p}
	resp, err := hold.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.up.once.Do(func() { close(t.up.connected) })
		return resp, nil
	}
	// Not upgraded: keep the API server's Status for the client.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	_ = resp.Body.Close()
	var status metav1.Status
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" {
		t.up.mu.Lock()
		t.up.last = &status
		t.up.final = status.Code != http.StatusBadRequest || st.approvalID != ""
		t.up.mu.Unlock()
	}
	if ws {
		cause := error(fmt.Errorf("unexpected response %s", resp.Status))
		if status.Kind == "Status" {
			cause = &apierrors.StatusError{ErrStatus: status}
		}
		return nil, &httpstream.UpgradeFailureError{Cause: cause}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// attempt sends one upstream attempt. A WebSocket handshake the API server refused comes back
// from client-go's dialer as an error; it is turned into the response it was, so that
// holdTransport sees a hold for approval whichever protocol is used.
func (t *sessionTransport) attempt(r *http.Request, ws bool) (*http.Response, error) {
	// The WebSocket round tripper consumes headers of the request it is given.
	resp, err := t.next.RoundTrip(r.Clone(r.Context()))
	if err == nil || !ws {
		return resp, err
	}
	status := statusOf(err)
	if status == nil {
		return nil, err
	}
	st := serving.EncodeStatus(status)
	return &http.Response{
		Status: strconv.Itoa(int(status.Code)) + " " + http.StatusText(int(status.Code)), StatusCode: int(status.Code),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(st)),
		ContentLength: int64(len(st)),
		Request:       r,
	}, nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
