package scale

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// front is the one address in front of a component's replicas, as a Service or a load balancer
// is: it passes TCP connections (TLS and all) to the replicas in turn. Only takes replicas out
// of rotation and cuts their open connections, as a rolling update or a failed probe does.
type front struct {
	l        net.Listener
	backends []string

	mu     sync.Mutex
	next   int
	only   int // -1: every backend
	conns  map[net.Conn]int
	served []int   // connections each backend got
	bytes  []int64 // bytes each backend received
}

func newFront(backends ...string) (*front, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{l: l, backends: backends, only: -1, conns: map[net.Conn]int{}, served: make([]int, len(backends)), bytes: make([]int64, len(backends))}
	go f.serve()
	return f, nil
}

// Addr is the front's address.
func (f *front) Addr() string { return f.l.Addr().String() }

// Only sends new connections to backend i alone (-1: to every backend in turn) and closes the
// open connections to the others.
func (f *front) Only(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.only = i
	for c, b := range f.conns {
		if i >= 0 && b != i {
			_ = c.Close()
			delete(f.conns, c)
		}
	}
}

// Served returns how many connections each backend got so far.
func (f *front) Served() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.served...)
}

// Received returns how many bytes each backend received so far: what a backend served, even
// over a connection it had before.
func (f *front) Received() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.bytes...)
}

func (f *front) Close() { _ = f.l.Close() }

func (f *front) pick() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.only
	if b < 0 {
		b = f.next % len(f.backends)
		f.next++
	}
	f.served[b]++
	return b
}

func (f *front) serve() {
	for {
		in, err := f.l.Accept()
		if err != nil {
			return
		}
		go f.pass(in)
	}
}

func (f *front) pass(in net.Conn) {
	b := f.pick()
	out, err := net.Dial("tcp", f.backends[b])
	if err != nil {
		_ = in.Close()
		return
	}
	f.mu.Lock()
	f.conns[in], f.conns[out] = b, b
	f.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(&counter{f: f, b: b, w: out}, in)
	go cp(in, out)
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, in)
	delete(f.conns, out)
	f.mu.Unlock()
}

// counter counts the bytes written to backend b.
type counter struct {
	f *front
	b int
	w io.Writer
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.f.mu.Lock()
	c.f.bytes[c.b] += int64(n)
	c.f.mu.Unlock()
	return n, err
}

func (f *front) String() string { return fmt.Sprintf("front %s -> %v", f.Addr(), f.backends) }
