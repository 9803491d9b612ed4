package proxy

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// bodyBuffers pools the buffers a response read whole passes through: the body as
// kube-apiserver sent it, and the masked body the client is sent. A 1 MB list otherwise has two
// buffers of its size allocated, and cleared page by page, for every read, which costs more
// than masking the list's Secrets.
//
// Every body is written into a buffer from its start and read back only to its length, so no
// response sees what an earlier one left in a buffer. Beyond that, the two kinds are pooled
// apart: a buffer that held a body as it was read (the Secrets' values) is cleared to its
// length before it goes back, so that those values do not stay in memory while it is pooled,
// and is only ever used again to read a body. A buffer of masked output is not cleared: it
// holds what a client was sent, but for bytes past its end that a masker starting an object
// over wrote and dropped, as the masker's own pooled scratch space holds values it worked on.
// Bodies are not cleared that are dropped instead of pooled: larger than maxPooledBody, the
// buffer a growing read left behind, a read that failed.
type bodyBuffers struct{ read, masked sync.Pool }

// maxPooledBody is the largest buffer kept: larger bodies are rare, and the pool must not keep
// their memory.
const maxPooledBody = 8 << 20

// getRead returns an empty buffer to read a body into, cleared, with the capacity of an earlier
// body when there is one.
func (b *bodyBuffers) getRead() []byte { return get(&b.read) }

// getMasked returns an empty buffer for masked output, with the capacity of an earlier one when
// there is one.
func (b *bodyBuffers) getMasked() []byte { return get(&b.masked) }

func get(p *sync.Pool) []byte {
	if buf, ok := p.Get().(*[]byte); ok {
		return (*buf)[:0]
	}
	return nil
}

func put(p *sync.Pool, buf []byte) {
	if cap(buf) == 0 || cap(buf) > maxPooledBody {
		return
	}
	buf = buf[:0]
	p.Put(&buf)
}

// putMasked keeps buf, a buffer of masked output, for a later body.
func (b *bodyBuffers) putMasked(buf []byte) { put(&b.masked, buf) }

// putRead clears body, a body as it was read into a buffer from getRead, and keeps the buffer
// to read a later body into.
func (b *bodyBuffers) putRead(body []byte) {
	if cap(body) == 0 || cap(body) > maxPooledBody {
		return
	}
	// The body was read into the buffer from its start, and the buffer was all zero before
	// (new, or cleared like this when it last came back), so this leaves it all zero.
	clear(body)
	put(&b.read, body)
}

// reader returns masked, the body the client is sent, as a body that gives the buffers back
// when it is closed: body, as it was read; out, the buffer masked was to be written into; and
// masked, which is one of them (body when nothing was masked) or a buffer of its own.
func (b *bodyBuffers) reader(body, out, masked []byte) io.ReadCloser {
	return &pooledBody{Reader: bytes.NewReader(masked), buffers: b, body: body, out: out, masked: masked}
}

// pooledBody is a masked response body that gives its buffers back once closed.
type pooledBody struct {
	*bytes.Reader
	buffers           *bodyBuffers
	body, out, masked []byte
	closed            bool
}

// Close gives the buffers back. The ReverseProxy closes the body once, after its last read,
// whether the copy to the client finished or failed; a second Close does nothing.
func (p *pooledBody) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.Reader.Reset(nil)
	read, masked := p.giveBack()
	for _, buf := range masked {
		p.buffers.putMasked(buf)
	}
	p.buffers.putRead(read)
	p.body, p.out, p.masked = nil, nil, nil
	return nil
}

// giveBack returns the buffers Close gives back, each once: the body as read, and those of
// masked output (out, and the masked body's when it has one of its own).
func (p *pooledBody) giveBack() (read []byte, masked [][]byte) {
	masked = [][]byte{p.out}
	if !sameBuffer(p.masked, p.out) && !sameBuffer(p.masked, p.body) {
		masked = append(masked, p.masked)
	}
	return p.body, masked
}

// sameBuffer reports whether a and b share their underlying array, as slices of one buffer
// that start or end where the other does (s, s[:n], s[:n:n], s[k:]) do.
func sameBuffer(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	return &a[:1][0] == &b[:1][0] || &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
}

// readBody reads a response body whole into buf's capacity, growing it as needed, and fails
// with masking.ErrTooLarge past limit bytes. Without a buffer large enough, the first is sized
// by the Content-Length when there is one and it is not large (a Content-Length is never
// trusted further: the body is read to its end whatever it says).
func readBody(buf []byte, r io.Reader, contentLength, limit int64) ([]byte, error) {
	b := buf[:0]
	if contentLength >= 0 && contentLength < min(limit, 1<<20) && int64(cap(b)) <= contentLength {
		b = make([]byte, 0, contentLength+1) // one byte more, to see the end
	}
	if cap(b) == 0 {
		b = make([]byte, 0, 4<<10)
	}
	if limit < math.MaxInt64 {
		r = io.LimitReader(r, limit+1)
	}
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(len(b), 64<<10))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read response: %w", err)
		}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: response larger than %d bytes", masking.ErrTooLarge, limit)
	}
	return b, nil
}
