package devenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/devnode"
	"github.com/gatehouse-dev/gatehouse/devoidc"
	"github.com/gatehouse-dev/gatehouse/manifests"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/registration"
	"github.com/gatehouse-dev/gatehouse/serving"
)

// Identities are the demo identities of the dev issuer (CONVENTIONS: agents in group agents,
// approvers in gatehouse:approvers).
var Identities = []devoidc.Identity{
	{Name: "agent", Groups: []string{"agents"}, Description: "an AI coding agent; cluster-admin in RBAC, held to Gatehouse's policies"},
	{Name: "approver", Groups: []string{"gatehouse:approvers"}, Description: "approves or denies held operations"},
	{Name: "developer", Groups: []string{"developers"}, Description: "a person with read access"},
}

// The service accounts Gatehouse's components run as (manifests/*/rbac.yaml), and the
// controller that prepares the demo's objects: service accounts working directly are what the
// default policies leave to RBAC.
const (
	proxyUser   = "system:serviceaccount:gatehouse:gatehouse-proxy"
	webhookUser = "system:serviceaccount:gatehouse:gatehouse-webhook"
	setupUser   = "system:serviceaccount:gatehouse-dev:setup"
	audience    = "gatehouse"
	// userPrefix is what the proxy's AuthenticationConfiguration puts before a token's subject.
	userPrefix = "oidc:"
)

// Env is a running development environment.
type Env struct {
	o     Options
	sd    *stateDir
	out   io.Writer
	state State
	// stops run in reverse order of starting.
	stops []func()

	issuer *devoidc.Issuer
	kube   *envtest.Environment
	node   *devnode.Node
	admin  *rest.Config
	setup  *rest.Config

	proxyURL  string
	proxyCA   []byte
	chHTTP    string
	chNative  string
	manifests string
	// nats is the development NATS: its URL, its certificate's CA and the components' seeds.
	natsURL, natsCA, natsKeys string
	consoleURL                string
	enricherAddr              string
	enricherCA                []byte
	kubeletCA                 *clientCA
	// attachSteps are what the administrator of an attached cluster still has to do.
	attachSteps []string
	// stopping is set once Stop begins: children exiting then are expected.
	stopping atomic.Bool
}

// Files of the state directory a person uses.
const (
	AgentKubeconfig    = "agent.kubeconfig"
	ApproverKubeconfig = "approver.kubeconfig"
	AdminKubeconfig    = "admin.kubeconfig"
)

// Start brings up the whole system and returns once it enforces the default policies. Each
// step prints a progress line with its duration. On error, what was started is stopped.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if err := o.findAssets(); err != nil {
		return nil, err
	}
	if err := checkPort(o.ProxyAddress, "the proxy", "--proxy-address"); err != nil {
		return nil, err
	}
	if err := checkPort(o.IssuerAddress, "the OIDC issuer", "--issuer-address"); err != nil {
		return nil, err
	}
	if err := checkPort(o.ConsoleAddress, "the console", "--console-address"); err != nil {
		return nil, err
	}
	sd, err := openStateDir(o.Dir, o.Reset)
	if err != nil {
		return nil, err
	}
	e := &Env{o: o, sd: sd, out: o.Out}
	e.state = State{PID: os.Getpid(), Started: time.Now().UTC(), Audience: audience, Identities: Identities}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	total := time.Now()
	fmt.Fprintf(e.out, "Starting Gatehouse for development in %s\n", o.Dir)
	for _, s := range []struct {
		what string
		fn   func(context.Context) (string, error)
	}{
		{"manifests", e.extractManifests},
		{"NATS JetStream", e.startNATS},
		{"ClickHouse", e.startClickHouse},
		{"OIDC issuer", e.startIssuer},
		{"enricher", e.startEnricher},
		{"kube-apiserver + etcd", e.startKube},
		{"dev node", e.startNode},
		{"RBAC and demo objects", e.setupCluster},
		{"admission webhooks", e.startWebhook},
		{"proxy", e.startProxy},
		{"console", e.startConsole},
		{"default policies", e.applyPolicies},
		{"kubeconfigs", e.writeKubeconfigs},
	} {
		if o.Kubeconfig != "" && (s.what == "kube-apiserver + etcd" || s.what == "dev node") {
			continue
		}
		if err := e.step(ctx, s.what, s.fn); err != nil {
			return nil, err
		}
	}
	if err := e.sd.writeState(&e.state); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.out, "Gatehouse is up in %s.\n", time.Since(total).Round(100*time.Millisecond))
	return e, nil
}

// step runs one start-up step and prints its line: what, how long, and what came up.
func (e *Env) step(ctx context.Context, what string, fn func(context.Context) (string, error)) error {
	start := time.Now()
	detail, err := fn(ctx)
	took := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		fmt.Fprintf(e.out, "  ✗ %-24s %6s\n", what, took)
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(e.out, "  ✓ %-24s %6s  %s\n", what, took, detail)
	return nil
}

func (e *Env) onStop(f func()) { e.stops = append(e.stops, f) }

// startChild starts a component as a child process, to be stopped with grace at Stop, and
// reports it if it ends before that.
func (e *Env) startChild(name string, grace time.Duration, args ...string) (*child, error) {
	c, err := startChild(name, e.logFile(name), e.o.Gatehouse, args...)
	if err != nil {
		return nil, err
	}
	e.onStop(func() { c.stop(grace) })
	go func() {
		<-c.exited
		if !e.stopping.Load() {
			fmt.Fprintf(e.out, "! %s exited unexpectedly (%v); the last lines of %s:\n%s\n", name, c.err, c.logPath, c.tail(10))
		}
	}()
	return c, nil
}

func (e *Env) component(name string, pid int, addrs ...string) {
	e.state.Components = append(e.state.Components, Component{Name: name, PID: pid, Addresses: addrs})
}

// Stop stops every part in the reverse order of starting (the proxy first, NATS last, the
// enricher after kube-apiserver has sent its last audit events) and cleans the state
// directory, keeping the logs.
func (e *Env) Stop() {
	e.stopping.Store(true)
	start := time.Now()
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
	if e.sd != nil {
		_ = e.sd.clean()
		_ = e.sd.release()
		e.sd = nil
		fmt.Fprintf(e.out, "Stopped everything in %s; logs are in %s.\n", time.Since(start).Round(100*time.Millisecond), filepath.Join(e.o.Dir, logsDir))
	}
}

func (e *Env) file(name string) string { return e.sd.file(name) }

func (e *Env) logFile(name string) string { return filepath.Join(e.sd.path, logsDir, name+".log") }

// extractManifests writes the embedded manifests into the state directory, where envtest and
// kubectl read them.
func (e *Env) extractManifests(context.Context) (string, error) {
	e.manifests = e.file("manifests")
	n := 0
	err := fs.WalkDir(manifests.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(e.manifests, p)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := manifests.FS.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		return os.WriteFile(target, data, 0o600)
	})
	return fmt.Sprintf("%d shipped files", n), err
}

// startNATS starts NATS as deployed: TLS, an NKey for each component with its role's
// permissions, and the streams and the bucket provisioned by the administrator.
func (e *Env) startNATS(context.Context) (string, error) {
	e.natsKeys = e.file("nats-keys")
	users, err := natsbus.WriteKeys(e.natsKeys, natsbus.Roles)
	if err != nil {
		return "", err
	}
	certFile, keyFile, _, err := e.selfSigned("nats")
	if err != nil {
		return "", err
	}
	srv, err := natsbus.StartServer(natsbus.ServerOptions{StoreDir: e.file("nats"), Users: users,
		TLS: &natsbus.ServerTLS{CertFile: certFile, KeyFile: keyFile}, Provision: true})
	if err != nil {
		return "", err
	}
	e.onStop(srv.Shutdown)
	e.state.Components = append(e.state.Components, Component{Name: "nats", PID: os.Getpid(), Addresses: []string{strings.TrimPrefix(srv.URL(), "tls://")}})
	e.natsURL, e.natsCA = srv.URL(), certFile
	return srv.URL() + " (TLS; an NKey per component, keys in " + e.natsKeys + ")", nil
}

// natsFor is how the component of role reaches NATS.
func (e *Env) natsFor(role natsbus.Role) natsConn {
	return natsConn{url: e.natsURL, caFile: e.natsCA, nkeyFile: filepath.Join(e.natsKeys, natsbus.SeedFile(role))}
}

func (e *Env) startClickHouse(ctx context.Context) (string, error) {
	tcp, err := freePort()
	if err != nil {
		return "", err
	}
	httpPort, err := freePort()
	if err != nil {
		return "", err
	}
	c, err := e.startChild("clickhouse", 30*time.Second, clickhouseArgs(e.o.LibCHDB, e.file("clickhouse"), tcp, httpPort)...)
	if err != nil {
		return "", err
	}
	e.chHTTP = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	e.state.ClickHouseHTTP = e.chHTTP
	native := net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp))
	e.chNative = native
	e.component("clickhouse", c.pid(), native, e.chHTTP)
	if err := c.waitHTTP(ctx, "http://"+e.chHTTP+"/ping", 90*time.Second); err != nil {
		return "", err
	}
	return "native " + native + ", HTTP " + e.chHTTP, nil
}

func (e *Env) startIssuer(context.Context) (string, error) {
	iss, err := devoidc.Start(devoidc.Options{
		Address: e.o.IssuerAddress,
		// gatehouse login's loopback redirects, and the console's (a local web app on https).
		Clients: []devoidc.Client{{ID: devoidc.DefaultClientID, RedirectURIs: []string{
			"http://127.0.0.1/callback", "http://localhost/callback", "https://127.0.0.1/callback"}}},
		KeyFile:    e.file("issuer.key"),
		Identities: Identities,
		Audience:   audience,
		TokenTTL:   12 * time.Hour,
	})
	if err != nil {
		return "", err
	}
	e.onStop(iss.Close)
	e.issuer = iss
	e.state.IssuerURL = iss.URL
	e.component("oidc-issuer", os.Getpid(), strings.TrimPrefix(iss.URL, "https://"))
	return iss.URL + " (demo identities: agent, approver, developer)", nil
}

// maskingKey is the key every component masks with (random per run).
func (e *Env) maskingKey() (string, error) { return e.randomKey("masking.key") }

// approvalKey is the key the webhook and the console authenticate approval requests with.
func (e *Env) approvalKey() (string, error) { return e.randomKey("approval.key") }

// randomKey returns the file of a random key of the run, made on first use.
func (e *Env) randomKey(name string) (string, error) {
	f := e.file(name)
	if fileExists(f) {
		return f, nil
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return f, os.WriteFile(f, []byte(hex.EncodeToString(b)), 0o600)
}

// selfSigned writes a serving certificate for loopback and returns its files and PEM.
func (e *Env) selfSigned(name string) (certFile, keyFile string, certPEM []byte, err error) {
	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = e.file(name+".crt"), e.file(name+".key")
	return certFile, keyFile, certPEM, errors.Join(os.WriteFile(certFile, certPEM, 0o600), os.WriteFile(keyFile, keyPEM, 0o600))
}

func (e *Env) startEnricher(ctx context.Context) (string, error) {
	key, err := e.maskingKey()
	if err != nil {
		return "", err
	}
	certFile, keyFile, certPEM, err := e.selfSigned("enricher")
	if err != nil {
		return "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	health, err := freeAddr()
	if err != nil {
		return "", err
	}
	var chNative string
	for _, c := range e.state.Components {
		if c.Name == "clickhouse" {
			chNative = c.Addresses[0]
		}
	}
	// The intake accepts audit events only from kube-apiserver's client certificate.
	audit, err := newClientCA("kube-apiserver-audit-client")
	if err != nil {
		return "", err
	}
	clientCAFile := e.file("audit-client-ca.crt")
	if err := os.WriteFile(clientCAFile, audit.caPEM, 0o600); err != nil {
		return "", err
	}
	c, err := e.startChild("enricher", 30*time.Second, enricherArgs(enricherParams{
		addr: addr, health: health, certFile: certFile, keyFile: keyFile,
		clientCAFile: clientCAFile, spoolDir: e.file("enricher-spool"),
		nats: e.natsFor(natsbus.RoleEnricher), clickhouseAddr: chNative, maskingKeyFile: key, gatewayUser: proxyUser,
	})...)
	if err != nil {
		return "", err
	}
	e.component("enricher", c.pid(), addr, health)
	e.enricherAddr, e.enricherCA = addr, certPEM
	if err := c.waitHTTP(ctx, "http://"+health+"/readyz", 90*time.Second); err != nil {
		return "", err
	}
	auditKubeconfig := e.file("audit-webhook.kubeconfig")
	if err := os.WriteFile(auditKubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gatehouse-enricher
  cluster:
    server: https://%s/audit
    certificate-authority-data: %s
contexts:
- name: default
  context: {cluster: gatehouse-enricher, user: kube-apiserver}
current-context: default
users:
- name: kube-apiserver
  user:
    client-certificate-data: %s
    client-key-data: %s
`, e.enricherAddr, base64.StdEncoding.EncodeToString(e.enricherCA),
		base64.StdEncoding.EncodeToString(audit.certPEM), base64.StdEncoding.EncodeToString(audit.keyPEM))), 0o600); err != nil {
		return "", err
	}
	if e.o.Kubeconfig != "" {
		e.attachSteps = append(e.attachSteps, fmt.Sprintf("Send kube-apiserver's audit events to the enricher: run it with --audit-policy-file=%s --audit-webhook-config-file=%s --audit-webhook-mode=batch (it must reach %s).",
			filepath.Join(e.manifests, "audit", "policy.yaml"), auditKubeconfig, addr))
	}
	return "audit intake https://" + addr + "/audit", nil
}

func (e *Env) startKube(context.Context) (string, error) {
	auditKubeconfig := e.file("audit-webhook.kubeconfig")
	ca, err := newClientCA("kube-apiserver-kubelet-client")
	if err != nil {
		return "", err
	}
	kubeletCert, kubeletKey := e.file("kubelet-client.crt"), e.file("kubelet-client.key")
	if err := errors.Join(os.WriteFile(kubeletCert, ca.certPEM, 0o600), os.WriteFile(kubeletKey, ca.keyPEM, 0o600)); err != nil {
		return "", err
	}
	e.kubeletCA = ca
	logf, err := os.OpenFile(e.logFile("kube-apiserver"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	etcdLog, err := os.OpenFile(e.logFile("etcd"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    e.o.KubeAssets,
		CRDDirectoryPaths:        []string{filepath.Join(e.manifests, "crd")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: e.file("etcd"), Out: etcdLog, Err: etcdLog}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = e.file("kube-apiserver")
	api.Out, api.Err = logf, logf
	if err := os.MkdirAll(api.CertDir, 0o700); err != nil {
		return "", err
	}
	args := api.Configure()
	args.Set("advertise-address", "127.0.0.1")
	for k, v := range auditFlags(filepath.Join(e.manifests, "audit", "policy.yaml"), auditKubeconfig) {
		args.Set(k, v...)
	}
	args.Set("kubelet-client-certificate", kubeletCert)
	args.Set("kubelet-client-key", kubeletKey)
	cfg, err := env.Start()
	if err != nil {
		_ = logf.Close()
		_ = etcdLog.Close()
		return "", fmt.Errorf("%w (log %s)", err, e.logFile("kube-apiserver"))
	}
	e.kube = env
	e.onStop(func() {
		_ = env.Stop()
		_ = logf.Close()
		_ = etcdLog.Close()
	})
	admin, err := env.AddUser(envtest.User{Name: "gatehouse-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	e.admin = admin.Config()
	e.state.APIServer = cfg.Host
	e.component("kube-apiserver", 0, strings.TrimPrefix(cfg.Host, "https://"))
	e.component("etcd", 0, strings.TrimPrefix(env.ControlPlane.Etcd.URL.String(), "http://"))
	return fmt.Sprintf("%s (Kubernetes %s, etcd %s, audit webhook to the enricher)", cfg.Host, KubeVersion, EtcdVersion), nil
}

func (e *Env) startNode(ctx context.Context) (string, error) {
	cs, err := kubernetes.NewForConfig(e.admin)
	if err != nil {
		return "", err
	}
	n, err := devnode.Start(ctx, devnode.Options{Client: cs, RunPods: true, ClientCAs: e.kubeletCA.pool})
	if err != nil {
		return "", err
	}
	e.node = n
	e.onStop(n.Close)
	e.component("dev-node", os.Getpid(), n.Addr())
	return fmt.Sprintf("node %s, kubelet API %s (exec: built-in shell)", n.Name, n.Addr()), nil
}

// kubectl runs the test bed's kubectl with kubeconfig.
func (e *Env) kubectl(ctx context.Context, kubeconfig, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.o.kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// adminKubeconfig is the kubeconfig of the cluster's administrator: the one attached to, or
// admin.kubeconfig.
func (e *Env) adminKubeconfig() string {
	if e.o.Kubeconfig != "" {
		return e.o.Kubeconfig
	}
	return e.file(AdminKubeconfig)
}

// setupCluster installs Gatehouse's RBAC, the demo identities' bindings and the demo's objects,
// before the policies exist (a deployment orders it the same way).
func (e *Env) setupCluster(ctx context.Context) (string, error) {
	if e.o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", e.o.Kubeconfig)
		if err != nil {
			return "", err
		}
		e.admin = cfg
	} else if err := writeKubeconfig(e.file(AdminKubeconfig), e.admin, "gatehouse-dev-admin"); err != nil {
		return "", err
	}
	admin := e.adminKubeconfig()
	for _, f := range []string{"namespace.yaml", "proxy/rbac.yaml", "webhook/rbac.yaml"} {
		if _, err := e.kubectl(ctx, admin, "", "apply", "-f", filepath.Join(e.manifests, f)); err != nil {
			return "", err
		}
	}
	if e.o.Kubeconfig != "" {
		if _, err := e.kubectl(ctx, admin, "", "apply", "-f", filepath.Join(e.manifests, "crd")); err != nil {
			return "", err
		}
	}
	cs, err := kubernetes.NewForConfig(e.admin)
	if err != nil {
		return "", err
	}
	// The aggregated roles (view, edit) stay empty without kube-controller-manager; readers
	// get a role of their own.
	reader := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "gatehouse-dev-reader", Labels: map[string]string{"app.kubernetes.io/part-of": "gatehouse-dev"}},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, reader, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	bindings := []struct{ name, role, kind, subject string }{
		{"gatehouse-dev-agents", "cluster-admin", rbacv1.GroupKind, "agents"},
		{"gatehouse-dev-developers", reader.Name, rbacv1.GroupKind, "developers"},
		{"gatehouse-dev-approvers", reader.Name, rbacv1.GroupKind, "gatehouse:approvers"},
		{"gatehouse-dev-setup", "cluster-admin", rbacv1.UserKind, setupUser},
	}
	for _, b := range bindings {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: b.name, Labels: map[string]string{"app.kubernetes.io/part-of": "gatehouse-dev"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: b.kind, Name: b.subject}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			return "", err
		}
	}
	if e.kube == nil {
		return "Gatehouse RBAC applied; no demo objects on an attached cluster", nil
	}
	setup, err := e.kube.AddUser(envtest.User{Name: setupUser}, nil)
	if err != nil {
		return "", err
	}
	e.setup = setup.Config()
	if err := createDemoObjects(ctx, e.setup); err != nil {
		return "", err
	}
	return "agents: cluster-admin; approvers, developers: read-only; namespaces demo and scratch", nil
}

func (e *Env) startWebhook(ctx context.Context) (string, error) {
	key, err := e.maskingKey()
	if err != nil {
		return "", err
	}
	approvalKey, err := e.approvalKey()
	if err != nil {
		return "", err
	}
	kubeconfig := e.adminKubeconfig()
	if e.kube != nil {
		u, err := e.kube.AddUser(envtest.User{Name: webhookUser}, nil)
		if err != nil {
			return "", err
		}
		kubeconfig = e.file("webhook.kubeconfig")
		if err := writeKubeconfig(kubeconfig, u.Config(), "gatehouse-webhook"); err != nil {
			return "", err
		}
	}
	// The configurations the webhook registers itself when deployed (the ConfigMap of
	// webhook/configurations.yaml); envtest points them at this webhook with its CA.
	configurations, err := manifests.WebhookConfigurations()
	if err != nil {
		return "", err
	}
	validating, mutating, err := registration.Parse(configurations)
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifests.WebhookConfigurationsFile, err)
	}
	wio := &envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1"}
	for i := range validating {
		wio.ValidatingWebhooks = append(wio.ValidatingWebhooks, &validating[i])
	}
	for i := range mutating {
		wio.MutatingWebhooks = append(wio.MutatingWebhooks, &mutating[i])
	}
	if err := wio.PrepWithoutInstalling(); err != nil {
		return "", err
	}
	e.onStop(func() { _ = wio.Cleanup() })
	health, err := freeAddr()
	if err != nil {
		return "", err
	}
	c, err := e.startChild("webhook", 15*time.Second, webhookArgs(webhookParams{
		kubeconfig: kubeconfig, host: wio.LocalServingHost, port: wio.LocalServingPort, certDir: wio.LocalServingCertDir,
		nats: e.natsFor(natsbus.RoleWebhook), maskingKeyFile: key, approvalKeyFile: approvalKey, health: health,
		consoleURL: "https://" + e.o.ConsoleAddress,
	})...)
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	e.component("webhook", c.pid(), addr, health)
	if err := c.waitHTTP(ctx, "http://"+health+"/readyz", 90*time.Second); err != nil {
		return "", err
	}
	if e.kube == nil {
		// The shipped configurations, pointed at this webhook with its CA, ready to apply.
		var docs []string
		for _, obj := range wio.ValidatingWebhooks {
			obj.APIVersion, obj.Kind = "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"
			b, err := yaml.Marshal(obj)
			if err != nil {
				return "", err
			}
			docs = append(docs, string(b))
		}
		for _, obj := range wio.MutatingWebhooks {
			obj.APIVersion, obj.Kind = "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"
			b, err := yaml.Marshal(obj)
			if err != nil {
				return "", err
			}
			docs = append(docs, string(b))
		}
		file := e.file("webhook-configurations.yaml")
		if err := os.WriteFile(file, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
			return "", err
		}
		e.attachSteps = append(e.attachSteps, fmt.Sprintf("Register the admission webhooks (kube-apiserver must reach %s, so this works when it runs on this machine): kubectl --kubeconfig %s apply -f %s",
			addr, e.o.Kubeconfig, file))
		return "https://" + addr + " (registration is the administrator's step, printed below)", nil
	}
	if err := wio.Install(e.admin); err != nil {
		return "", fmt.Errorf("register the webhook configurations: %w", err)
	}
	return "https://" + addr + " registered with the shipped configurations", nil
}

func (e *Env) startProxy(ctx context.Context) (string, error) {
	key, err := e.maskingKey()
	if err != nil {
		return "", err
	}
	kubeconfig := e.adminKubeconfig()
	if e.kube != nil {
		u, err := e.kube.AddUser(envtest.User{Name: proxyUser}, nil)
		if err != nil {
			return "", err
		}
		kubeconfig = e.file("proxy.kubeconfig")
		if err := writeKubeconfig(kubeconfig, u.Config(), "gatehouse-proxy"); err != nil {
			return "", err
		}
	}
	certFile, keyFile, certPEM, err := e.selfSigned("proxy")
	if err != nil {
		return "", err
	}
	e.proxyCA = certPEM
	authConfig := e.file("authentication-config.yaml")
	if err := os.WriteFile(authConfig, []byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: [%q]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: %q}
    groups: {claim: groups, prefix: ""}
`, e.issuer.URL, audience, strings.ReplaceAll(strings.TrimSpace(string(e.issuer.CAPEM)), "\n", "\n      "), userPrefix)), 0o600); err != nil {
		return "", err
	}
	health, err := freeAddr()
	if err != nil {
		return "", err
	}
	c, err := e.startChild("proxy", 15*time.Second, proxyArgs(proxyParams{
		kubeconfig: kubeconfig, authConfig: authConfig, addr: e.o.ProxyAddress, health: health,
		certFile: certFile, keyFile: keyFile, nats: e.natsFor(natsbus.RoleProxy), maskingKeyFile: key,
		approvalTimeout: e.o.ApprovalTimeout.String(), consoleURL: "https://" + e.o.ConsoleAddress,
	})...)
	if err != nil {
		return "", err
	}
	e.proxyURL = "https://" + e.o.ProxyAddress
	e.state.ProxyURL = e.proxyURL
	e.component("proxy", c.pid(), e.o.ProxyAddress, health)
	if err := c.waitHTTP(ctx, "http://"+health+"/readyz", 90*time.Second); err != nil {
		return "", err
	}
	return e.proxyURL + " (trusts the dev issuer; users are oidc:<name>)", nil
}

// startConsole runs gatehouse console: the approvers' web UI (sign-in at the dev issuer, as the
// OAuth client the proxy's tokens are for) and the approvals API, with the proxy's certificate
// (both on loopback), so the approver's kubeconfig trusts it too.
func (e *Env) startConsole(ctx context.Context) (string, error) {
	maskingKey, err := e.maskingKey()
	if err != nil {
		return "", err
	}
	approvalKey, err := e.approvalKey()
	if err != nil {
		return "", err
	}
	sessionKey, err := e.randomKey("console-session.key")
	if err != nil {
		return "", err
	}
	health, err := freeAddr()
	if err != nil {
		return "", err
	}
	e.consoleURL = "https://" + e.o.ConsoleAddress
	c, err := e.startChild("console", 15*time.Second, consoleArgs(consoleParams{
		authConfig: e.file("authentication-config.yaml"), clientID: devoidc.DefaultClientID, externalURL: e.consoleURL,
		addr: e.o.ConsoleAddress, health: health, certFile: e.file("proxy.crt"), keyFile: e.file("proxy.key"),
		nats: e.natsFor(natsbus.RoleConsole), maskingKeyFile: maskingKey, approvalKeyFile: approvalKey, sessionKeyFile: sessionKey,
		clickhouseAddr: e.chNative,
	})...)
	if err != nil {
		return "", err
	}
	e.state.ConsoleURL = e.consoleURL
	e.component("console", c.pid(), e.o.ConsoleAddress, health)
	if err := c.waitHTTP(ctx, "http://"+health+"/readyz", 90*time.Second); err != nil {
		return "", err
	}
	return e.consoleURL + " (approvers sign in at the dev issuer; the approvals API of gatehouse approvals)", nil
}

func writeKubeconfig(path string, cfg *rest.Config, user string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["gatehouse-dev"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "gatehouse-dev", AuthInfo: user}
	kc.CurrentContext = user
	return clientcmd.WriteToFile(*kc, path)
}

// writeKubeconfigs writes the kubeconfigs of the demo identities (through the proxy, with a
// token valid for 12 hours) next to the administrator's.
func (e *Env) writeKubeconfigs(context.Context) (string, error) {
	for _, k := range []struct{ file, identity string }{{AgentKubeconfig, "agent"}, {ApproverKubeconfig, "approver"}} {
		tok, err := e.issuer.Mint(k.identity)
		if err != nil {
			return "", err
		}
		if err := writeKubeconfig(e.file(k.file), &rest.Config{Host: e.proxyURL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: e.proxyCA}}, k.identity); err != nil {
			return "", err
		}
	}
	if e.o.Kubeconfig != "" {
		data, err := os.ReadFile(e.o.Kubeconfig)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(e.file(AdminKubeconfig), data, 0o600); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(e.file("proxy-ca.crt"), e.proxyCA, 0o600); err != nil {
		return "", err
	}
	return strings.Join([]string{AgentKubeconfig, ApproverKubeconfig, AdminKubeconfig}, ", "), nil
}
