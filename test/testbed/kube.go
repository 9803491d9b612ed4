package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeOptions configures StartKube.
type KubeOptions struct {
	// APIServerFlags are kube-apiserver flags set in addition to envtest's defaults, without the
	// leading dashes: {"audit-webhook-mode": {"batch"}}. AuditWebhook builds the
	// audit webhook backend's.
	APIServerFlags map[string][]string
	// CRDPaths are directories or files of CustomResourceDefinitions to install.
	CRDPaths []string
	// Webhooks are admission webhook configurations to install, pointed at a local server;
	// Webhooks.LocalServingPort and LocalServingCertDir tell where that server must listen.
	Webhooks envtest.WebhookInstallOptions
	// Scheme is the client's scheme. Default: client-go's scheme.
	Scheme *runtime.Scheme
	// Output receives kube-apiserver's and etcd's output. Default: discarded, unless
	// GATEHOUSE_TESTBED_VERBOSE is set, in which case os.Stderr.
	Output io.Writer
}

// Kube is a running kube-apiserver with etcd.
type Kube struct {
	// Env is the underlying envtest environment.
	Env *envtest.Environment
	// Config authenticates as a cluster administrator (system:masters).
	Config *rest.Config
	// Client and Clientset use Config.
	Client    client.Client
	Clientset kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig file for Config, for kubectl.
	Kubeconfig string
	// Kubectl is the path of the kubectl built from the API server's release.
	Kubectl string
	// Dir holds the files written for this instance (kubeconfig, flag files).
	Dir string
}

// StartKube starts etcd and kube-apiserver and waits until the API server serves.
func StartKube(o KubeOptions) (*Kube, error) {
	a, err := FindAssets()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-kube-")
	if err != nil {
		return nil, err
	}
	if o.Scheme == nil {
		o.Scheme = clientgoscheme.Scheme
	}
	out := o.Output
	if out == nil && os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		out = os.Stderr
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    a.KubeDir,
		CRDDirectoryPaths:        o.CRDPaths,
		ErrorIfCRDPathMissing:    true,
		WebhookInstallOptions:    o.Webhooks,
		Scheme:                   o.Scheme,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	api := env.ControlPlane.GetAPIServer()
	// Otherwise the API server advertises the machine's external address, which the tests
	// cannot rely on.
	api.Configure().Set("advertise-address", "127.0.0.1")
	for k, vs := range o.APIServerFlags {
		api.Configure().Set(k, vs...)
	}
	if out != nil {
		api.Out, api.Err = out, out
		env.ControlPlane.Etcd = &envtest.Etcd{Out: out, Err: out}
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed: start kube-apiserver and etcd from %s: %w", a.KubeDir, err)
	}
	k := &Kube{Env: env, Config: cfg, Kubectl: a.Kubectl(), Dir: dir}
	if err := k.init(); err != nil {
		k.Stop()
		return nil, err
	}
	logf("kube-apiserver ready at %s in %s", cfg.Host, time.Since(start).Round(time.Millisecond))
	return k, nil
}

func (k *Kube) init() error {
	var err error
	if k.Client, err = client.New(k.Config, client.Options{Scheme: k.Env.Scheme}); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if k.Clientset, err = kubernetes.NewForConfig(k.Config); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	admin, err := k.Env.AddUser(envtest.User{Name: "gatehouse-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("testbed: provision admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("testbed: admin kubeconfig: %w", err)
	}
	k.Kubeconfig = filepath.Join(k.Dir, "admin.kubeconfig")
	return os.WriteFile(k.Kubeconfig, kubeconfig, 0o600)
}

// Stop stops the API server and etcd and removes their files.
func (k *Kube) Stop() {
	if err := k.Env.Stop(); err != nil {
		logf("stopping kube-apiserver: %v", err)
	}
	_ = os.RemoveAll(k.Dir)
}

// Namespace creates a namespace with a generated name for one test and deletes it when the
// test ends.
func (k *Kube) Namespace(t TB, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := k.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = k.Clientset.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// TB is the part of testing.TB the helpers need.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// AddUser returns a rest.Config authenticating as a user with the given groups, through a
// client certificate. Grant it RBAC as the test needs.
func (k *Kube) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := k.Env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("testbed: add user %s: %w", name, err)
	}
	return u.Config(), nil
}

// Kubeconfig writes a kubeconfig file for cfg into dir and returns its path.
func WriteKubeconfig(dir string, cfg *rest.Config) (string, error) {
	return writeKubeconfig(dir, cfg)
}

func logf(format string, args ...any) {
	if os.Getenv("GATEHOUSE_TESTBED_QUIET") == "" {
		fmt.Fprintf(os.Stderr, "testbed: "+format+"\n", args...)
	}
}
