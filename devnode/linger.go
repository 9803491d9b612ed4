package devnode

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// closeLinger bounds how long a closed exec or attach connection waits for its peer to close
// its side. A peer that got everything closes at once; the bound only frees the connection of
// one that never does.
const closeLinger = 5 * time.Second

// lingerWriter is a ResponseWriter whose hijacked connection closes gracefully (lingerConn).
type lingerWriter struct {
	http.ResponseWriter
}

func (w lingerWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("devnode: connection cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &lingerConn{Conn: conn, linger: closeLinger}, rw, nil
}

// lingerConn is the connection of an exec or attach stream. When the command ended, the
// streaming code writes the exit status and closes the connection at once, while the client's
// last frames (the close of an empty stdin, `kubectl exec -i`) may still be on their way or
// unread. Closing a TCP socket with unread input makes the kernel answer with a reset, and
// kube-apiserver, which relays SPDY between kubectl and the kubelet byte for byte, stops
// relaying as soon as one direction fails: kubectl loses the tail of the output and the exit
// status, and exits 0 (the symptom of kubernetes/kubernetes#124571; kube-apiserver logs "Error
// proxying data from client to backend: ... broken pipe"). Close therefore only half-closes: it
// sends everything written and then the end of the stream, reads and discards what the peer
// still sends until the peer closes its side in turn (kube-apiserver does once it relayed the
// end), and only then closes the socket. linger bounds the wait.
type lingerConn struct {
	net.Conn
	linger time.Duration
	once   sync.Once
	err    error
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		hc, ok := c.Conn.(interface{ CloseWrite() error })
		if !ok || hc.CloseWrite() != nil {
			c.err = c.Conn.Close()
			return
		}
		// The peer's close ends the drain; the deadline bounds it.
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.linger))
		_, _ = io.Copy(io.Discard, c.Conn)
		c.err = c.Conn.Close()
	})
	return c.err
}
