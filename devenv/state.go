package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/devoidc"
)

// Files of the state directory.
const (
	markerFile = ".gatehouse-dev"
	lockFile   = ".lock"
	stateFile  = "state.json"
	// logsDir survives a clean stop, for a look at what happened.
	logsDir = "logs"
)

// State is what a running `gatehouse dev` writes to state.json: where its parts listen and
// which processes it runs. `gatehouse dev token` and the tests read it.
type State struct {
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	ProxyURL string    `json:"proxyURL"`
	// ConsoleURL is gatehouse console: the approvers' web UI and the approvals API.
	ConsoleURL string             `json:"consoleURL,omitempty"`
	IssuerURL  string             `json:"issuerURL"`
	APIServer  string             `json:"apiServer,omitempty"`
	Audience   string             `json:"audience"`
	Identities []devoidc.Identity `json:"identities"`
	// ClickHouseHTTP is ClickHouse's HTTP interface (host:port).
	ClickHouseHTTP string `json:"clickhouseHTTP"`
	// Components are the parts with their processes and addresses.
	Components []Component `json:"components"`
}

// Component is one running part.
type Component struct {
	Name string `json:"name"`
	// PID is its process; `gatehouse dev` itself for the parts it runs in-process.
	PID       int      `json:"pid"`
	Addresses []string `json:"addresses,omitempty"`
}

// ReadState reads the state of the `gatehouse dev` running in dir.
func ReadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("gatehouse dev is not running in %s: start it with `gatehouse dev --dir %s`", dir, dir)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// stateDir is the locked state directory of this run.
type stateDir struct {
	path string
	lock *os.File
}

// openStateDir creates or takes over dir for this run, refusing one that another run holds, one
// a run left behind without stopping (unless reset), and one that is not a state directory.
func openStateDir(dir string, reset bool) (*stateDir, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case len(entries) > 0 && !fileExists(filepath.Join(dir, markerFile)):
		return nil, fmt.Errorf("%s exists and is not a gatehouse dev state directory: pass --dir with a new or empty directory", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, markerFile), []byte("gatehouse dev state directory\n"), 0o600); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		pid := "?"
		if s, err := ReadState(dir); err == nil {
			pid = strconv.Itoa(s.PID)
		}
		return nil, fmt.Errorf("gatehouse dev is already running in %s (pid %s): stop it with Ctrl-C in its terminal, or pass another --dir", dir, pid)
	}
	sd := &stateDir{path: dir, lock: lock}
	if prev, err := ReadState(dir); err == nil {
		if !reset {
			_ = sd.release()
			return nil, fmt.Errorf("%s holds a run that did not stop cleanly (pid %d, started %s): run again with --reset to stop what it left and start fresh, or pass another --dir",
				dir, prev.PID, prev.Started.Format(time.RFC3339))
		}
	}
	if reset {
		killLeftovers(dir)
	}
	// Every run starts from a clean directory; only the logs of earlier runs stay.
	if err := sd.clean(); err != nil {
		_ = sd.release()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, logsDir), 0o700); err != nil {
		_ = sd.release()
		return nil, err
	}
	return sd, nil
}

func (sd *stateDir) file(name string) string { return filepath.Join(sd.path, name) }

func (sd *stateDir) writeState(s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := sd.file(stateFile + ".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, sd.file(stateFile))
}

// clean removes everything but the marker, the lock and the logs.
func (sd *stateDir) clean() error {
	entries, err := os.ReadDir(sd.path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch e.Name() {
		case markerFile, lockFile, logsDir:
			continue
		}
		if err := os.RemoveAll(filepath.Join(sd.path, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (sd *stateDir) release() error {
	return sd.lock.Close()
}

// killLeftovers ends the processes a crashed run left behind: every process whose command line
// names the state directory (kube-apiserver's certificates, etcd's data, the components' files).
func killLeftovers(dir string) {
	for _, pid := range processesUsing(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesUsing lists the processes (other than this one) whose command line mentions dir.
func processesUsing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessesUsing lists the processes whose command line names the state directory dir: after a
// clean stop there are none.
func ProcessesUsing(dir string) []int {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	return processesUsing(abs)
}

// IssuerKeyFile is the development issuer's signing key file in the state directory dir.
func IssuerKeyFile(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return filepath.Join(abs, "issuer.key")
}
