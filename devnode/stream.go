package devnode

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// runStreams runs cmd in c with the streams of an exec or attach call. On a terminal the shell
// gets a pseudo-terminal of its own (line editing, echo, \r\n, window size), with no process
// behind it; Ctrl-C interrupts the running command.
func runStreams(ctx context.Context, c *container, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if out == nil {
		out = nopCloser{io.Discard}
	}
	if errw == nil {
		errw = nopCloser{io.Discard}
	}
	if !tty {
		return c.run(ctx, cmd, in, out, errw, false)
	}
	ptmx, tty1, err := pty.Open()
	if err != nil {
		return fmt.Errorf("pseudo-terminal: %w", err)
	}
	var mu sync.Mutex // Setsize must not race Close
	closed := false
	defer func() {
		mu.Lock()
		closed = true
		_ = tty1.Close()
		_ = ptmx.Close()
		mu.Unlock()
	}()
	go func() {
		for size := range resize {
			mu.Lock()
			if !closed {
				_ = pty.Setsize(ptmx, &pty.Winsize{Rows: size.Height, Cols: size.Width})
			}
			mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	intr := &interrupter{}
	if in != nil {
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if bytes.IndexByte(buf[:n], 0x03) >= 0 {
						intr.interrupt()
					}
					if _, werr := ptmx.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					// The client closed stdin: end the session as a terminal hang-up would.
					cancel()
					return
				}
			}
		}()
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, ptmx)
		close(copied)
	}()
	err = c.runInterruptible(ctx, cmd, tty1, intr)
	// Let the last output through the pseudo-terminal before it is closed.
	_ = tty1.Close()
	select {
	case <-copied:
	case <-time.After(500 * time.Millisecond):
	}
	return err
}

// interrupter cancels the command running when Ctrl-C arrives.
type interrupter struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	input  *os.File
}

func (i *interrupter) interrupt() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cancel != nil {
		i.cancel()
		// Unblock a command reading the terminal.
		if i.input != nil {
			_ = i.input.SetReadDeadline(time.Now())
		}
	}
}

// start returns the context of one command and the function that ends it.
func (i *interrupter) start(ctx context.Context, input *os.File) (context.Context, func()) {
	cctx, cancel := context.WithCancel(ctx)
	i.mu.Lock()
	i.cancel, i.input = cancel, input
	i.mu.Unlock()
	return cctx, func() {
		i.mu.Lock()
		i.cancel, i.input = nil, nil
		i.mu.Unlock()
		cancel()
		if input != nil {
			_ = input.SetReadDeadline(time.Time{})
		}
	}
}

// ServePodPort is the default port-forward target: an in-memory server for the pod's port. It
// answers HTTP requests with a small page naming the pod and port, and echoes any other bytes
// back. It never connects anywhere: forwarding to the machine's own ports would let a client
// reach every loopback service (etcd, ClickHouse, NATS) around the gateway.
func ServePodPort(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	br := bufio.NewReader(stream)
	head, err := br.Peek(4)
	if err != nil {
		return nil
	}
	switch string(head) {
	case "GET ", "HEAD", "POST", "PUT ", "DELE", "OPTI", "PATC":
		for ctx.Err() == nil {
			req, err := http.ReadRequest(br)
			if err != nil {
				return nil
			}
			_, _ = io.Copy(io.Discard, req.Body)
			body := fmt.Sprintf("<!doctype html><title>%[1]s</title><h1>Hello from %[1]s</h1><p>Port %[2]d of pod %[1]s, served by the Gatehouse dev node (no image runs here). You asked for %[3]s.</p>\n",
				html.EscapeString(namespace+"/"+pod), port, html.EscapeString(req.Method+" "+req.URL.RequestURI()))
			resp := &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Request: req,
				Header:        http.Header{"Content-Type": {"text/html; charset=utf-8"}},
				ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader([]byte(body)))}
			if err := resp.Write(stream); err != nil || req.Close {
				return nil
			}
		}
		return nil
	}
	_, _ = io.Copy(stream, br)
	return nil
}
