package testbed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Process is a component running in a child process: a gatehouse subcommand as it runs in
// production (StartGatehouse), the ClickHouse server, Dex.
type Process struct {
	what     string
	cmd      *exec.Cmd
	out      *SyncBuffer
	exited   chan struct{} // closed once the process exited and its output is complete
	stopping atomic.Bool   // Stop or Kill was called: the exit is the test's doing
}

// StartGatehouse runs the gatehouse binary (GatehouseBinary) with args. The child dies with
// the test binary.
func StartGatehouse(args ...string) (*Process, error) {
	bin, err := GatehouseBinary()
	if err != nil {
		return nil, err
	}
	return startProcess("gatehouse", bin, "", args...)
}

// startProcess runs bin with args in dir (the current directory when empty). The child dies
// with the test binary. When it exits by itself, how it ended and its last output go to
// stderr.
func startProcess(what, bin, dir string, args ...string) (*Process, error) {
	return startProcessReporting(os.Stderr, what, bin, dir, args...)
}

// startProcessReporting is startProcess writing the report of an exit nobody asked for to
// report.
func startProcessReporting(report io.Writer, what, bin, dir string, args ...string) (*Process, error) {
	p := &Process{what: what, out: &SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A child of the component (a shell's command) can outlive it holding its output: once
	// the component exited, its output is not waited for longer than this.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start %s %v: %w", what, args, err)
	}
	go func() {
		err := p.cmd.Wait()
		if !p.stopping.Load() {
			// A component that dies under a test is the cause of whatever fails next (a
			// refused connection): say how it ended and what it said last. Only the
			// subcommand is named: the other arguments can hold credentials.
			if err == nil {
				err = errors.New("exit status 0")
			}
			sub := ""
			if len(args) > 0 {
				sub = " " + args[0]
			}
			fmt.Fprintf(report, "testbed: %s%s (pid %d) exited by itself: %v; its last output:\n%s\n",
				what, sub, p.cmd.Process.Pid, err, p.out.tail(8000))
		}
		close(p.exited)
	}()
	return p, nil
}

// WaitReady polls url (plain HTTP or HTTPS without verification) until it answers 200, and
// fails early when the process exits.
func (p *Process) WaitReady(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness only
	defer client.CloseIdleConnections()
	var exited bool
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
		}
		select {
		case <-p.exited:
			exited = true
			return false, errors.New("exited")
		default:
			return false, nil
		}
	})
	switch {
	case exited:
		return fmt.Errorf("testbed: %s exited before %s was ready: %s", p.what, url, p.out.tail(4000))
	case err != nil:
		return fmt.Errorf("testbed: %s not ready after %s: %s", url, timeout, p.out.tail(4000))
	}
	return nil
}

// ExitCode returns the exit code of the process once it exited (Stop, Kill), and -1 before or
// when a signal ended it.
func (p *Process) ExitCode() int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Exited reports whether the process exited, by itself or through Stop or Kill.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop ends the process with SIGTERM and waits for it.
func (p *Process) Stop() error { return p.signal(syscall.SIGTERM) }

// Kill ends the process with SIGKILL and waits for it.
func (p *Process) Kill() error { return p.signal(syscall.SIGKILL) }

func (p *Process) signal(sig syscall.Signal) error {
	p.stopping.Store(true)
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("testbed: %s ignored %s for 30s", p.what, sig)
	}
}

// PeakRSS returns the process's peak resident set size (VmHWM), in bytes.
func (p *Process) PeakRSS() (int64, error) {
	return procStatus(p.cmd.Process.Pid, "VmHWM")
}

// RSS returns the process's resident set size (VmRSS), in bytes.
func (p *Process) RSS() (int64, error) {
	return procStatus(p.cmd.Process.Pid, "VmRSS")
}

// CPUTime returns the CPU time (user and system) the process used so far.
func (p *Process) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("testbed: %w", err)
	}
	// The fields after the command (in parentheses, which may hold spaces): utime and stime
	// are the 12th and 13th, in clock ticks, which /proc counts at 100 per second.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("testbed: /proc/%d/stat: unexpected format", p.cmd.Process.Pid)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("testbed: /proc/%d/stat: %w", p.cmd.Process.Pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procStatus reads a size field (in kB) of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("testbed: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("testbed: /proc/%d/status: %s: %w", pid, field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("testbed: /proc/%d/status has no %s", pid, field)
}

// Output returns what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }
