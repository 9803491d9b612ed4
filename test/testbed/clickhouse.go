package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ClickHouse is a ClickHouse server run by `gatehouse clickhouse` in a child process.
type ClickHouse struct {
	// NativeAddr and HTTPAddr are the host:port of the native and the HTTP protocol.
	NativeAddr, HTTPAddr string
	// Dir holds the databases; it survives Stop, Kill and Start.
	Dir string

	bin, lib string
	log      *syncBuffer
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartClickHouse starts a ClickHouse server on free loopback ports and waits until it answers.
func StartClickHouse() (*ClickHouse, error) { return StartClickHouseWithConfig(nil) }

// StartClickHouseWithConfig starts a ClickHouse server whose configuration file (config.xml in
// its working directory, which the engine reads at start) is config(native port), e.g. macros
// and remote_servers.
func StartClickHouseWithConfig(config func(nativePort int) string) (*ClickHouse, error) {
	a, err := FindAssets()
	if err != nil {
		return nil, err
	}
	bin, err := GatehouseBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-clickhouse-")
	if err != nil {
		return nil, err
	}
	tcp, err := freePort()
	if err != nil {
		return nil, err
	}
	http, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &ClickHouse{
		NativeAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp)),
		HTTPAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(http)),
		Dir:        dir,
		bin:        bin,
		lib:        a.LibCHDB,
	}
	if config != nil {
		if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config(tcp)), 0o600); err != nil {
			return nil, err
		}
	}
	if err := c.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// Start starts the server process (again, after Stop or Kill) and waits until it answers.
func (c *ClickHouse) Start() error {
	_, tcp, _ := net.SplitHostPort(c.NativeAddr)
	_, http, _ := net.SplitHostPort(c.HTTPAddr)
	c.log = &syncBuffer{}
	c.cmd = exec.Command(c.bin, "clickhouse",
		"--library", c.lib,
		"--data-dir", filepath.Join(c.Dir, "data"),
		"--tcp-port", tcp,
		"--http-port", http,
		"--log-format", "text",
	)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.Dir = c.Dir
	// The server must not outlive a test binary that crashes or is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("testbed: start ClickHouse: %w", err)
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.exited) }()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if c.ping(ctx) == nil {
			logf("ClickHouse ready at %s (native) and %s (HTTP) in %s", c.NativeAddr, c.HTTPAddr, time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("testbed: ClickHouse exited during start-up: %s", c.log.tail(2000))
		case <-ctx.Done():
			c.Kill()
			return fmt.Errorf("testbed: ClickHouse not ready after 60s: %s", c.log.tail(2000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *ClickHouse) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.HTTPAddr+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("Ok.")) {
		return fmt.Errorf("ping: %s %q", resp.Status, body)
	}
	return nil
}

// Stop ends the server with SIGTERM and waits until it exited.
func (c *ClickHouse) Stop() error { return c.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits until it exited.
func (c *ClickHouse) Kill() error { return c.signal(syscall.SIGKILL) }

func (c *ClickHouse) signal(sig syscall.Signal) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return errors.New("testbed: ClickHouse not started")
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("testbed: ClickHouse ignored %s for 30s", sig)
	}
}

// Close stops the server and removes its data.
func (c *ClickHouse) Close() {
	_ = c.Stop()
	_ = os.RemoveAll(c.Dir)
}

// Log returns the server's output so far.
func (c *ClickHouse) Log() string { return c.log.String() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer safe for a child process and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
