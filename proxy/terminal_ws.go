package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// WebSocket subprotocols of remote command execution the proxy serves: v5 (kubectl 1.29 and
// later; it adds the close signal that ends stdin), and the protocols the kubelet's WebSocket
// server has always served (v4 with a JSON status, the legacy channel protocols), binary or
// base64.
const (
	wsProtocolV5       = "v5.channel.k8s.io"
	wsProtocolV4       = "v4.channel.k8s.io"
	wsProtocolV4Base64 = "v4.base64.channel.k8s.io"
)

// Channels of the remote command protocols.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

// writeStatusDeadline bounds writing the final status to a client.
const writeStatusDeadline = 10 * time.Second

// serveWebSocket serves the client's side of a session over WebSocket. It reports whether the
// client's streams were established.
func (t *terminal) serveWebSocket(r *http.Request) bool {
	o := t.opts
	channels := make([]wsstream.ChannelType, 5)
	channels[chanStdin] = channelType(o.stdin, wsstream.ReadChannel)
	channels[chanStdout] = channelType(o.stdout, wsstream.WriteChannel)
	channels[chanStderr] = channelType(o.stderr, wsstream.WriteChannel)
	channels[chanError] = wsstream.WriteChannel
	channels[chanResize] = wsstream.ReadChannel
	binary := wsstream.ChannelProtocolConfig{Binary: true, Channels: channels}
	b64 := wsstream.ChannelProtocolConfig{Binary: false, Channels: channels}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		wsProtocolV5:                            binary,
		wsProtocolV4:                            binary,
		wsProtocolV4Base64:                      b64,
		wsstream.ChannelWebSocketProtocol:       binary,
		wsstream.Base64ChannelWebSocketProtocol: b64,
		"":                                      binary,
	})
	conn.SetIdleTimeout(t.p.opts.StreamIdleTimeout)
	protocol, streams, err := conn.Open(t.st.w, r)
	if err != nil {
		t.p.log.Info("WebSocket session not established", "auditID", t.st.auditID, "err", err)
		return false
	}
	defer conn.Close()
	// An empty message on the lowest writable channel tells the client the session is there.
	switch {
	case o.stdout:
		_, err = streams[chanStdout].Write(nil)
	case o.stderr:
		_, err = streams[chanStderr].Write(nil)
	default:
		_, err = streams[chanError].Write(nil)
	}
	if err != nil {
		return false
	}
	var in io.Reader
	if o.stdin {
		in = streams[chanStdin]
	}
	var out, errw io.Writer
	if o.stdout {
		out = streams[chanStdout]
	}
	if o.stderr {
		errw = streams[chanStderr]
	}
	var sizes chan remotecommand.TerminalSize
	if o.tty {
		sizes = make(chan remotecommand.TerminalSize)
		go func() {
			defer close(sizes)
			dec := json.NewDecoder(streams[chanResize])
			for {
				var s remotecommand.TerminalSize
				if dec.Decode(&s) != nil {
					return
				}
				select {
				case sizes <- s:
				case <-t.ctx.Done():
					return
				}
			}
		}()
	}
	runErr := t.run(in, out, errw, sizes)
	conn.SetWriteDeadline(writeStatusDeadline)
	_ = writeWSStatus(streams[chanError], protocol, runErr)
	return true
}

func channelType(open bool, t wsstream.ChannelType) wsstream.ChannelType {
	if open {
		return t
	}
	return wsstream.IgnoreChannel
}

// writeWSStatus writes the session's outcome to the error channel: a JSON Status for v4 and v5,
// the error's text (and nothing on success) for the older protocols.
func writeWSStatus(w io.Writer, protocol string, err error) error {
	if protocol != wsProtocolV5 && protocol != wsProtocolV4 && protocol != wsProtocolV4Base64 {
		if err == nil {
			return nil
		}
		_, werr := w.Write([]byte(err.Error()))
		return werr
	}
	status := metav1.Status{Status: metav1.StatusSuccess}
	var exitErr clientexec.CodeExitError
	var se *apierrors.StatusError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		status = metav1.Status{
			Status: metav1.StatusFailure,
			Reason: "NonZeroExitCode",
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: "ExitCode", Message: fmt.Sprintf("%d", exitErr.Code),
			}}},
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
		}
	case errors.As(err, &se):
		status = se.ErrStatus
	default:
		status = apierrors.NewInternalError(err).ErrStatus
	}
	b, merr := json.Marshal(status)
	if merr != nil {
		return merr
	}
	_, werr := w.Write(b)
	return werr
}
