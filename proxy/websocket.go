package proxy

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// This file masks the API data kube-apiserver sends over WebSocket: watches requested as a
// WebSocket upgrade (every event one message, as kube-apiserver's watch handler writes it) and
// pod logs (kube-apiserver's log streamer: binary messages, or base64 text messages under the
// base64.binary.k8s.io subprotocol). The frames from kube-apiserver are read, their messages
// masked as the HTTP stream would be (a watch event by event, a log line by line across message
// boundaries) and written to the client as new frames. Frames from the client pass unchanged.
// What cannot be masked ends the stream.

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA
)

// maxWSMessage bounds a message assembled from frames: the masker's bound on a watch event.
const maxWSMessage = masking.DefaultMaxEventBytes

// base64LogProtocol is the subprotocol of kube-apiserver's log streamer that base64-encodes data.
const base64LogProtocol = "base64.binary.k8s.io"

var errWSProtocol = errors.New("websocket protocol error")

type wsFrame struct {
	fin     bool
	rsv     byte
	opcode  byte
	payload []byte
}

// readFrame reads one frame, unmasking its payload if it is masked. A payload larger than limit
// is an error.
func readFrame(r *bufio.Reader, limit int, buf []byte) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, opcode: h[0] & 0x0f}
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > uint64(limit) {
		return f, fmt.Errorf("%w: a frame of %d bytes exceeds %d", masking.ErrTooLarge, n, limit)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	f.payload = buf[:n]
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= key[i%4]
		}
	}
	return f, nil
}

// appendFrame appends an unmasked (server to client) frame.
func appendFrame(dst []byte, fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	dst = append(dst, b0)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// wsMasked is the body of an upgraded response whose frames from kube-apiserver are masked:
// reads return the masked frames, writes (the client's frames) go to kube-apiserver unchanged.
type wsMasked struct {
	conn io.ReadWriteCloser
	out  *io.PipeReader
}

func (m *wsMasked) Read(p []byte) (int, error)  { return m.out.Read(p) }
func (m *wsMasked) Write(p []byte) (int, error) { return m.conn.Write(p) }
func (m *wsMasked) Close() error {
	_ = m.out.Close()
	return m.conn.Close()
}

// wsWriter writes frames to the client side, one frame at a time.
type wsWriter struct {
	mu  sync.Mutex
	w   *io.PipeWriter
	buf []byte
}

func (w *wsWriter) frame(fin bool, opcode byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = appendFrame(w.buf[:0], fin, opcode, payload)
	_, err := w.w.Write(w.buf)
	return err
}

// maskWebSocket replaces the body of a 101 response to a WebSocket watch or log request with
// one whose frames are masked.
func (p *Proxy) maskWebSocket(resp *http.Response, st *requestState) error {
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return fmt.Errorf("%w: the upgraded connection is not writable", masking.ErrUnmaskable)
	}
	if ext := resp.Header.Get("Sec-Websocket-Extensions"); ext != "" {
		// Compressed frames cannot be masked; the proxy does not offer extensions.
		return fmt.Errorf("%w: WebSocket extensions %q", masking.ErrUnmaskable, ext)
	}
	pr, pw := io.Pipe()
	resp.Body = &wsMasked{conn: conn, out: pr}
	w := &wsWriter{w: pw}
	br := bufio.NewReaderSize(conn, 32<<10)
	if st.upgradeKind == upgradeWatchWS {
		go p.maskWatchFrames(br, w, st)
	} else {
		b64 := strings.TrimSpace(resp.Header.Get("Sec-Websocket-Protocol")) == base64LogProtocol
		go p.maskLogFrames(br, w, st, b64)
	}
	return nil
}

// wsEnd ends the client side of a masked WebSocket stream: at the end of kube-apiserver's
// stream, or with the error that stopped the masking (the client's connection is then closed).
func (p *Proxy) wsEnd(w *wsWriter, st *requestState, err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) {
		_ = w.w.Close()
		return
	}
	if errors.Is(err, masking.ErrMalformed) || errors.Is(err, masking.ErrTooLarge) || errors.Is(err, masking.ErrUnmaskable) || errors.Is(err, errWSProtocol) {
		p.metrics.maskFailures.Inc()
		st.setErrReason("masking failed")
		p.log.Error("ending a WebSocket stream that could not be masked", "auditID", st.auditID, "err", err)
	}
	_ = w.w.CloseWithError(err)
}

// maskWatchFrames masks a WebSocket watch: each message is one watch event.
func (p *Proxy) maskWatchFrames(br *bufio.Reader, w *wsWriter, st *requestState) {
	var msg, buf []byte
	var op byte
	target := st.target
	target.Watch = true
	err := func() error {
		for {
			f, err := readFrame(br, maxWSMessage, buf)
			if err != nil {
				return err
			}
			buf = f.payload[:0]
			if f.rsv != 0 {
				return fmt.Errorf("%w: reserved bits set (compressed frame)", errWSProtocol)
			}
			if f.opcode >= wsClose {
				if err := w.frame(true, f.opcode, f.payload); err != nil {
					return err
				}
				continue
			}
			if f.opcode != wsContinuation {
				op, msg = f.opcode, msg[:0]
			}
			if len(msg)+len(f.payload) > maxWSMessage {
				return fmt.Errorf("%w: a message exceeds %d bytes", masking.ErrTooLarge, maxWSMessage)
			}
			msg = append(msg, f.payload...)
			if !f.fin {
				continue
			}
			if op == wsBinary && !isJSON(msg) {
				return fmt.Errorf("%w: a binary watch event that is not JSON", masking.ErrUnmaskable)
			}
			// A hook per message, as the session's set of values may be replaced while the
			// connection lasts.
			target.SecretValue = p.values.hook(st)
			masked, stats, err := p.opts.Masker.Body("application/json", "", msg, target)
			if err != nil {
				return err
			}
			st.addMasking(stats)
			if err := w.frame(true, op, masked); err != nil {
				return err
			}
		}
	}()
	p.wsEnd(w, st, err)
}

func isJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// maskLogFrames masks a WebSocket log stream: the data of all messages is one text stream,
// masked line by line as `kubectl logs -f` over HTTP is.
func (p *Proxy) maskLogFrames(br *bufio.Reader, w *wsWriter, st *requestState, b64 bool) {
	lr, lw := io.Pipe()
	rd, err := p.opts.Masker.Stream("text/plain", "", lr, st.target)
	if err != nil {
		_ = lr.Close()
		p.wsEnd(w, st, err)
		return
	}
	op := byte(wsBinary)
	if b64 {
		op = wsText
	}
	// The masked text goes out as messages as it comes.
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 32<<10)
		var enc []byte
		for {
			n, err := rd.Read(chunk)
			if n > 0 {
				data := chunk[:n]
				if b64 {
					enc = base64.StdEncoding.AppendEncode(enc[:0], data)
					data = enc
				}
				if werr := w.frame(true, op, data); werr != nil {
					_ = lr.CloseWithError(werr)
					done <- werr
					return
				}
			}
			if err != nil {
				st.addMasking(rd.Stats())
				if err == io.EOF {
					err = nil
				}
				_ = lr.CloseWithError(io.ErrClosedPipe)
				done <- err
				return
			}
		}
	}()
	var msg, buf, dec []byte
	var closeFrame []byte
	err = func() error {
		for {
			f, err := readFrame(br, maxWSMessage, buf)
			if err != nil {
				return err
			}
			buf = f.payload[:0]
			if f.rsv != 0 {
				return fmt.Errorf("%w: reserved bits set (compressed frame)", errWSProtocol)
			}
			switch {
			case f.opcode == wsClose:
				closeFrame = append([]byte{}, f.payload...)
				return nil
			case f.opcode >= wsClose:
				if err := w.frame(true, f.opcode, f.payload); err != nil {
					return err
				}
				continue
			case !b64:
				if _, err := lw.Write(f.payload); err != nil {
					return err
				}
				continue
			}
			if f.opcode != wsContinuation {
				msg = msg[:0]
			}
			if len(msg)+len(f.payload) > maxWSMessage {
				return fmt.Errorf("%w: a message exceeds %d bytes", masking.ErrTooLarge, maxWSMessage)
			}
			msg = append(msg, f.payload...)
			if !f.fin {
				continue
			}
			dec, err = base64.StdEncoding.AppendDecode(dec[:0], msg)
			if err != nil {
				return fmt.Errorf("%w: a base64 log message: %w", masking.ErrMalformed, err)
			}
			if _, err := lw.Write(dec); err != nil {
				return err
			}
		}
	}()
	if err != nil && !errors.Is(err, io.EOF) {
		_ = lw.CloseWithError(err)
		<-done
		p.wsEnd(w, st, err)
		return
	}
	// The end of the log: what is held back goes out, then the close frame.
	_ = lw.Close()
	if err := <-done; err != nil {
		p.wsEnd(w, st, err)
		return
	}
	if closeFrame != nil {
		if err := w.frame(true, wsClose, closeFrame); err != nil {
			p.wsEnd(w, st, err)
			return
		}
	}
	p.wsEnd(w, st, nil)
}
