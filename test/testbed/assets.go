package testbed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrMissing is wrapped by every error about a component that is not installed.
var ErrMissing = errors.New("testbed: component missing")

// Assets are the paths of the prebuilt components.
type Assets struct {
	// KubeDir holds kube-apiserver, etcd and kubectl ($KUBEBUILDER_ASSETS).
	KubeDir string
	// LibCHDB is the ClickHouse engine library ($GATEHOUSE_LIBCHDB).
	LibCHDB string
}

// Kubectl returns the path of the kubectl built from the same release as the API server.
func (a Assets) Kubectl() string { return filepath.Join(a.KubeDir, "kubectl") }

var (
	assetsOnce sync.Once
	assets     Assets
	assetsErr  error
)

// FindAssets returns the components' paths from the environment, falling back to what
// scripts/testbed.sh reports for the cache, and checks that they exist.
func FindAssets() (Assets, error) {
	assetsOnce.Do(func() { assets, assetsErr = findAssets() })
	return assets, assetsErr
}

func findAssets() (Assets, error) {
	a := Assets{KubeDir: os.Getenv("KUBEBUILDER_ASSETS"), LibCHDB: os.Getenv("GATEHOUSE_LIBCHDB")}
	if a.KubeDir == "" || a.LibCHDB == "" {
		env, err := testbedEnv()
		if err != nil {
			return a, err
		}
		if a.KubeDir == "" {
			a.KubeDir = env["KUBEBUILDER_ASSETS"]
		}
		if a.LibCHDB == "" {
			a.LibCHDB = env["GATEHOUSE_LIBCHDB"]
		}
	}
	for _, f := range []string{
		filepath.Join(a.KubeDir, "kube-apiserver"),
		filepath.Join(a.KubeDir, "etcd"),
		a.Kubectl(),
		a.LibCHDB,
	} {
		if _, err := os.Stat(f); err != nil {
			return a, fmt.Errorf("%w: %s not found; run 'make testbed' (scripts/testbed.sh) to build and cache it", ErrMissing, f)
		}
	}
	return a, nil
}

// testbedEnv runs `scripts/testbed.sh env`, the one place that knows where the cache is.
func testbedEnv() (map[string]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "testbed.sh"), "env").Output()
	if err != nil {
		return nil, fmt.Errorf("testbed: scripts/testbed.sh env: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env, nil
}

// RepoRoot returns the directory holding the module's go.mod, searching upwards from the
// working directory (a test's working directory is its package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbed: go.mod not found above the working directory")
		}
		dir = parent
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// GatehouseBinary returns the path of a gatehouse binary: $GATEHOUSE_BIN when set (make test
// builds it once), else one built from this checkout into a directory of this process's
// (binDir).
func GatehouseBinary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("GATEHOUSE_BIN"); p != "" {
			binPath, binErr = p, nil
			if _, err := os.Stat(p); err != nil {
				binErr = fmt.Errorf("%w: GATEHOUSE_BIN=%s: %w", ErrMissing, p, err)
			}
			return
		}
		root, err := RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		dir, err := binDir()
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gatehouse")
		cmd.Dir = root
		// Static, as make build and the image build it.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("testbed: go build ./cmd/gatehouse: %w\n%s", err, out)
		}
	})
	return binPath, binErr
}

// binDir returns the directory this process builds its gatehouse binary into, under the
// system's temporary directory and named by its process ID, and removes those of processes
// that have exited: a test process cannot remove its own as it exits, and each binary is over
// a hundred megabytes.
func binDir() (string, error) {
	parent := filepath.Join(os.TempDir(), "gatehouse-bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // running
		}
		_ = os.RemoveAll(filepath.Join(parent, e.Name()))
	}
	dir := filepath.Join(parent, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	return dir, nil
}
