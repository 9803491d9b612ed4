package proxy

import (
	"bytes"
	"fmt"
	"io"
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
// response sees what an earlier one left in a buffer. Beyond that, a buffer that held a body as
// it was read (the Secrets' values) is cleared before it goes back, so that those values do not
// stay in memory for as long as the buffer is pooled. Masked output is not cleared: it is what a
// client was sent, but for bytes past its end that a masker starting an object over wrote and
// dropped, as the masker's own pooled scratch space holds values it worked on.
type bodyBuffers struct{ pool sync.Pool }

// maxPooledBody is the largest buffer kept: larger bodies are rare, and the pool must not keep
// their memory.
const maxPooledBody = 8 << 20

// get returns an empty buffer, with the capacity of an earlier body when there is one.
func (b *bodyBuffers) get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return (*buf)[:0]
	}
	return nil
}

// put keeps buf, a buffer of masked output, for a later body.
func (b *bodyBuffers) put(buf []byte) {
	if cap(buf) == 0 || cap(buf) > maxPooledBody {
		return
	}
	buf = buf[:0]
	b.pool.Put(&buf)
}

// putRead clears body, a body as it was read, and keeps its buffer for a later body.
func (b *bodyBuffers) putRead(body []byte) {
	if cap(body) == 0 || cap(body) > maxPooledBody {
		return
	}
	// Every body is read into the buffer from its start, so the bytes past len(body) were
	// cleared when an earlier body went back, or never written.
	clear(body)
	b.put(body)
}

// reader returns masked, the body the client is sent, as a body that gives the buffers back
// when it is closed: body, as it was read; out, the buffer masked was to be written into; and
// masked, which may be either of them (body when nothing was masked) or a buffer of its own.
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
	if !sameBuffer(p.masked, p.body) {
		p.buffers.put(p.masked)
	}
	if !sameBuffer(p.out, p.masked) && !sameBuffer(p.out, p.body) {
		p.buffers.put(p.out)
	}
	p.buffers.putRead(p.body)
	p.body, p.out, p.masked = nil, nil, nil
	return nil
}

// sameBuffer reports whether a and b share their underlying array (one ends where the other
// does).
func sameBuffer(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
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
	lr := io.LimitReader(r, limit+1)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(len(b), 64<<10))
		}
		n, err := lr.Read(b[len(b):cap(b)])
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
