package testbed

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ClickHouse is a ClickHouse server run by `gatehouse clickhouse` in a child process.
type ClickHouse struct {
	// NativeAddr and HTTPAddr are the host:port of the native and the HTTP protocol.
	NativeAddr, HTTPAddr string
	// Dir holds the databases; it survives Stop, Kill and Start.
	Dir string

	bin, lib string
	config   string // the configuration file, when users or a configuration are given

	mu sync.Mutex
	p  *Process // the last process started
}

// StartClickHouse starts a ClickHouse server on free loopback ports and waits until it answers.
func StartClickHouse() (*ClickHouse, error) { return startClickHouse(nil, "") }

// StartClickHouseWithUsers starts a ClickHouse server whose users, passwords, grants and roles
// are usersXML (a ClickHouse users configuration document; "" for the engine's default user
// only), and waits until it answers. The default user must be able to connect without a
// password from 127.0.0.1 for the server to be seen as ready.
func StartClickHouseWithUsers(usersXML string) (*ClickHouse, error) {
	return startClickHouse(nil, usersXML)
}

// StartClickHouseWithConfig starts a ClickHouse server whose configuration file is
// config(native port), e.g. macros and remote_servers.
func StartClickHouseWithConfig(config func(nativePort int) string) (*ClickHouse, error) {
	return startClickHouse(config, "")
}

func startClickHouse(config func(nativePort int) string, usersXML string) (*ClickHouse, error) {
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
	switch {
	case usersXML != "":
		users := filepath.Join(dir, "users.xml")
		c.config = filepath.Join(dir, "config.xml")
		if err := os.WriteFile(users, []byte(usersXML), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.config, []byte("<clickhouse><users_config>"+users+"</users_config></clickhouse>\n"), 0o600); err != nil {
			return nil, err
		}
	case config != nil:
		c.config = filepath.Join(dir, "config.xml")
		if err := os.WriteFile(c.config, []byte(config(tcp)), 0o600); err != nil {
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
	start := time.Now()
	args := []string{"clickhouse",
		"--library", c.lib,
		"--data-dir", filepath.Join(c.Dir, "data"),
		"--tcp-port", tcp,
		"--http-port", http,
		"--log-format", "text",
	}
	if c.config != "" {
		args = append(args, "--config-file", c.config)
	}
	p, err := startProcess("ClickHouse", c.bin, c.Dir, args...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.p = p
	c.mu.Unlock()
	// The HTTP interface listens after the native one.
	if err := p.WaitReady("http://"+c.HTTPAddr+"/ping", 60*time.Second); err != nil {
		_ = p.Kill()
		return err
	}
	logf("ClickHouse ready at %s (native) and %s (HTTP) in %s", c.NativeAddr, c.HTTPAddr, time.Since(start).Round(time.Millisecond))
	return nil
}

// proc returns the last process started, or nil.
func (c *ClickHouse) proc() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}

// Stop ends the server with SIGTERM and waits until it exited.
func (c *ClickHouse) Stop() error {
	p := c.proc()
	if p == nil {
		return errors.New("testbed: ClickHouse not started")
	}
	return p.Stop()
}

// Exited reports whether the server, once started, exited: by itself (reported on stderr
// with its last output) or through Stop or Kill. Start starts it again.
func (c *ClickHouse) Exited() bool {
	p := c.proc()
	return p != nil && p.Exited()
}

// Kill ends the server with SIGKILL and waits until it exited.
func (c *ClickHouse) Kill() error {
	p := c.proc()
	if p == nil {
		return errors.New("testbed: ClickHouse not started")
	}
	return p.Kill()
}

// Supervise starts the server again, on its ports and with its databases, each time it exits
// by itself, as a service manager would, until the returned function is called; an exit
// through Stop or Kill is left alone. logf gets a line for each start. The engine (libchdb)
// aborts (std::terminate on an uncaught NetException) when a client resets its native-protocol
// connection, as the kernel does for a client killed with data unread: a test that kills a
// component ClickHouse serves then sees a short outage of it rather than a server gone for good.
func (c *ClickHouse) Supervise(logf func(format string, args ...any)) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			p := c.proc()
			select {
			case <-done:
				return
			case <-p.exited:
			}
			if p.stopping.Load() {
				// The test's doing: watch whatever it starts next.
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			logf("testbed: ClickHouse exited by itself (see its report); starting it again on the same data")
			if err := c.Start(); err != nil {
				logf("testbed: ClickHouse did not start again: %v", err)
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// CPUTime returns the CPU time the server process used since its last start: inserts, merges
// and queries.
func (c *ClickHouse) CPUTime() (time.Duration, error) {
	p := c.proc()
	if p == nil {
		return 0, errors.New("testbed: ClickHouse not started")
	}
	return p.CPUTime()
}

// Close stops the server and removes its data.
func (c *ClickHouse) Close() {
	_ = c.Stop()
	_ = os.RemoveAll(c.Dir)
}

// Log returns the output of the server's last start so far.
func (c *ClickHouse) Log() string {
	p := c.proc()
	if p == nil {
		return ""
	}
	return p.Output()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SyncBuffer is a bytes.Buffer that writers (a child process, a logger's goroutines) and a
// reader may use at once.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *SyncBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
