package devenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The component versions scripts/testbed.sh builds and caches; the paths below follow its
// layout. TestVersionsMatchTestbed keeps them in step.
const (
	KubeVersion   = "v1.36.3"
	EtcdVersion   = "v3.6.8"
	kubeRecipe    = "r1"
	CHDBVersion   = "26.7.3-stable.1"
	testbedScript = "scripts/testbed.sh"
)

// Options configure the development environment.
type Options struct {
	// Dir is the state directory: kubeconfigs, keys, logs and the components' data.
	// Default: ./.gatehouse-dev.
	Dir string
	// Kubeconfig attaches to an existing cluster instead of starting kube-apiserver, etcd and
	// the dev node. The cluster's administrator then registers the webhooks and the audit
	// backend (the steps are printed).
	Kubeconfig string
	// KubeAssets is the directory with kube-apiserver, etcd and kubectl. Default:
	// $KUBEBUILDER_ASSETS, then the test bed's cache (CacheDir).
	KubeAssets string
	// LibCHDB is the ClickHouse engine library. Default: $GATEHOUSE_LIBCHDB, then the cache.
	LibCHDB string
	// Gatehouse is the gatehouse binary the components run from. Default: this executable.
	Gatehouse string
	// ProxyAddress is where the proxy listens. Default: 127.0.0.1:8443.
	ProxyAddress string
	// IssuerAddress is where the dev OIDC issuer listens. Default: 127.0.0.1:8444.
	IssuerAddress string
	// ConsoleAddress is where gatehouse console (the approvers' web UI and the approvals API)
	// listens. Default: 127.0.0.1:8445.
	ConsoleAddress string
	// Reset discards a state directory left by a run that did not stop cleanly.
	Reset bool
	// ApprovalTimeout is how long the proxy holds a request for approval. Default: 10m.
	ApprovalTimeout time.Duration
	// Out receives the progress lines and what to try. Default: os.Stdout.
	Out io.Writer
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		o.Dir = ".gatehouse-dev"
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if o.ProxyAddress == "" {
		o.ProxyAddress = "127.0.0.1:8443"
	}
	if o.IssuerAddress == "" {
		o.IssuerAddress = "127.0.0.1:8444"
	}
	if o.ConsoleAddress == "" {
		o.ConsoleAddress = "127.0.0.1:8445"
	}
	if o.ApprovalTimeout == 0 {
		o.ApprovalTimeout = 10 * time.Minute
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Gatehouse == "" {
		if o.Gatehouse, err = os.Executable(); err != nil {
			return fmt.Errorf("path of the gatehouse binary: %w", err)
		}
	}
	if o.Kubeconfig != "" {
		if o.Kubeconfig, err = filepath.Abs(o.Kubeconfig); err != nil {
			return err
		}
	}
	return nil
}

// CacheDir is where scripts/testbed.sh caches the components: $GATEHOUSE_CACHE, else
// gatehouse in $XDG_CACHE_HOME or ~/.cache.
func CacheDir() string {
	if d := os.Getenv("GATEHOUSE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gatehouse")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gatehouse")
}

// ErrMissing is wrapped by the errors about a component that is not installed.
var ErrMissing = errors.New("component missing")

// findAssets resolves and checks the components' paths: flag, then environment, then cache.
func (o *Options) findAssets() error {
	if o.Kubeconfig == "" {
		if o.KubeAssets == "" {
			o.KubeAssets = os.Getenv("KUBEBUILDER_ASSETS")
		}
		if o.KubeAssets == "" {
			o.KubeAssets = filepath.Join(CacheDir(), "kube", KubeVersion+"-etcd"+EtcdVersion+"-"+kubeRecipe, "bin")
		}
		for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
			if _, err := os.Stat(filepath.Join(o.KubeAssets, bin)); err != nil {
				return fmt.Errorf("%w: %s not found in %s: run `%s kube` in a Gatehouse checkout to build kube-apiserver %s, etcd %s and kubectl (about 9 minutes the first time), or pass --kube-assets DIR",
					ErrMissing, bin, o.KubeAssets, testbedScript, KubeVersion, EtcdVersion)
			}
		}
	}
	if o.LibCHDB == "" {
		o.LibCHDB = os.Getenv("GATEHOUSE_LIBCHDB")
	}
	if o.LibCHDB == "" {
		o.LibCHDB = filepath.Join(CacheDir(), "clickhouse", CHDBVersion, "libchdb.so")
	}
	if _, err := os.Stat(o.LibCHDB); err != nil {
		return fmt.Errorf("%w: the ClickHouse engine %s is not found: run `%s clickhouse` in a Gatehouse checkout to fetch it (178 MB from npm), or pass --libchdb FILE",
			ErrMissing, o.LibCHDB, testbedScript)
	}
	return nil
}

// kubectl is the kubectl to drive the cluster with: the one built with kube-apiserver, else the
// one on $PATH.
func (o *Options) kubectl() string {
	if o.KubeAssets != "" {
		if p := filepath.Join(o.KubeAssets, "kubectl"); fileExists(p) {
			return p
		}
	}
	return "kubectl"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkPort reports an address already in use with what to do about it.
func checkPort(addr, what, flag string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use (%s needs it): stop what listens there or pass %s with another address", addr, what, flag)
	}
	return l.Close()
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func freePort() (int, error) {
	a, err := freeAddr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(a)
	var n int
	_, err = fmt.Sscanf(p, "%d", &n)
	return n, err
}
