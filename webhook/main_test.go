package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// bed holds what every test of this package shares: kube-apiserver and etcd with the CRD, the
// chart's webhook configurations (manifests/webhook/configurations.yaml) and the default policies from
// manifests/policies installed; a stub kubelet; NATS JetStream; and the webhook itself, served
// by controller-runtime's webhook server with a manager running the AccessPolicy controller.
var bed struct {
	root string
	// auditLog is kube-apiserver's audit log (the shipped audit policy, JSON lines).
	auditLog string
	kube     *testbed.Kube
	kubelet  *testbed.Kubelet
	nats     *testbed.NATS
	// conn and js are the webhook's: its NATS identity, as deployed.
	conn *natsbus.Conn
	js   jetstream.JetStream
	// inspect reads what the webhook published, as the test's own identity.
	inspect jetstream.JetStream
	// console decides approval requests, with the console's identity.
	console   *approvals.Broker
	publisher *trail.Publisher
	engine    *policy.Engine
	client    client.Client
	server    *server
	log       *slog.Logger
}

// approvalKey is the approval key the tests' webhook and console share.
var approvalKey = []byte("webhook-test-approval-key-0123456789abcdef")

// Groups the test bed binds to roles. Agents and people have every permission, so that what
// stops them is Gatehouse and not RBAC.
const (
	groupAgents      = "e2e:agents"
	groupControllers = "e2e:controllers"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "webhook tests:", err)
		return 1
	}
	bed.log = slog.New(slog.DiscardHandler)
	if os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		bed.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// controller-runtime's webhook server logs through its global logger.
	ctrl.SetLogger(logr.FromSlogHandler(bed.log.Handler()))
	var err error
	if bed.root, err = testbed.RepoRoot(); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if bed.nats, err = testbed.StartNATS(); err != nil {
		return fail(err)
	}
	defer bed.nats.Stop()
	defer benchNATS.Stop()
	if bed.conn, err = natsbus.Connect(ctx, bed.nats.Options(natsbus.RoleWebhook)); err != nil {
		return fail(err)
	}
	defer bed.conn.Close()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := bed.conn.WaitReady(wctx); err != nil {
		return fail(err)
	}
	if bed.js, err = jetstream.New(bed.conn.Conn); err != nil {
		return fail(err)
	}
	if bed.publisher, err = trail.NewPublisher(bed.conn.Conn, trail.PublisherOptions{Source: "webhook-test", AckTimeout: time.Second}); err != nil {
		return fail(err)
	}
	inspect, err := bed.nats.Connect()
	if err != nil {
		return fail(err)
	}
	defer inspect.Close()
	if bed.inspect, err = jetstream.New(inspect); err != nil {
		return fail(err)
	}
	consoleConn, err := bed.nats.ConnectAs(natsbus.RoleConsole)
	if err != nil {
		return fail(err)
	}
	defer consoleConn.Close()
	consoleJS, err := jetstream.New(consoleConn)
	if err != nil {
		return fail(err)
	}
	consolePub, err := trail.NewPublisher(consoleConn, trail.PublisherOptions{Source: "console-test"})
	if err != nil {
		return fail(err)
	}
	if bed.console, err = approvals.New(consoleJS, approvals.Options{Key: approvalKey, Recorder: consolePub, Source: "console-test"}); err != nil {
		return fail(err)
	}

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return fail(err)
	}
	// The chart's configurations, as the webhook registers them; envtest points their service
	// references at the local server and sets their CA bundle.
	validating, mutating, err := testbed.ChartWebhookConfigurations()
	if err != nil {
		return fail(err)
	}
	auditDir, err := os.MkdirTemp("", "gatehouse-webhook-audit-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(auditDir)
	bed.auditLog = filepath.Join(auditDir, "audit.log")
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{
		// kube-apiserver's audit log, with the shipped audit policy: what the enricher stores.
		APIServerFlags: testbed.MergeFlags(testbed.AuditLog(bed.auditLog, 100),
			map[string][]string{"audit-policy-file": {filepath.Join(bed.root, "manifests", "audit", "policy.yaml")}}),
		CRDPaths: []string{filepath.Join(bed.root, "manifests", "crd")},
		Webhooks: envtest.WebhookInstallOptions{ValidatingWebhooks: validating, MutatingWebhooks: mutating},
		Scheme:   scheme,
	}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()

	mgr, err := ctrl.NewManager(bed.kube.Config, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(bed.log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fail(err)
	}
	bed.client = mgr.GetClient()
	bed.engine = policy.NewEngine(policy.EngineOptions{
		Lookup: policy.ClientLookup{Cached: mgr.GetClient(), Live: mgr.GetAPIReader()},
		Logger: bed.log,
	})
	if err := (&policy.Controller{Client: mgr.GetClient(), Engine: bed.engine, Logger: bed.log}).SetupWithManager(mgr); err != nil {
		return fail(err)
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-mgrDone
	}()
	if err := waitFor(ctx, 30*time.Second, bed.engine.Ready); err != nil {
		return fail(fmt.Errorf("the AccessPolicy controller did not load: %w", err))
	}

	wio := bed.kube.Env.WebhookInstallOptions
	bed.server = &server{host: wio.LocalServingHost, port: wio.LocalServingPort, certDir: wio.LocalServingCertDir}
	if err := bed.server.start(); err != nil {
		return fail(err)
	}
	defer bed.server.stop()

	if bed.kubelet, err = testbed.StartKubelet(ctx, bed.kube, "stub-node"); err != nil {
		return fail(err)
	}
	defer bed.kubelet.Close()
	if err := setupRBAC(ctx); err != nil {
		return fail(err)
	}
	if err := installDefaultPolicies(ctx); err != nil {
		return fail(err)
	}
	return m.Run()
}

// waitFor polls check until it returns nil or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	return testbed.WaitFor(ctx, timeout, func(context.Context) error { return check() })
}

func setupRBAC(ctx context.Context) error {
	c := bed.kube.Client
	everything := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-everything"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
			{NonResourceURLs: []string{"*"}, Verbs: []string{"*"}},
		},
	}
	if err := c.Create(ctx, everything); err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	for _, g := range []string{groupAgents, groupControllers} {
		if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + sanitize(g)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: everything.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: g}},
		}); err != nil {
			return fmt.Errorf("bind %s: %w", g, err)
		}
	}
	return nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

// installDefaultPolicies applies manifests/policies/default.yaml as the cluster administrator
// would, through the webhooks, and waits until the engine and kube-apiserver use them.
func installDefaultPolicies(ctx context.Context) error {
	policies, err := policy.LoadFile(filepath.Join(bed.root, "manifests", "policies", "default.yaml"))
	if err != nil {
		return err
	}
	for i := range policies {
		if err := bed.kube.Client.Create(ctx, &policies[i]); err != nil {
			return fmt.Errorf("create AccessPolicy %s: %w", policies[i].Name, err)
		}
	}
	if err := waitFor(ctx, 30*time.Second, func() error {
		for _, p := range policies {
			if _, _, ok := bed.engine.InForce(p.Name); !ok {
				return fmt.Errorf("AccessPolicy %s not in force", p.Name)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// kube-apiserver loads webhook configurations through an informer: wait until a dry run
	// that the default policies deny is refused.
	cfg := rest.CopyConfig(bed.kube.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "e2e-probe", Groups: []string{groupAgents}}
	probe, err := client.New(cfg, client.Options{Scheme: bed.kube.Client.Scheme()})
	if err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, func() error {
		err := probe.Create(ctx, validPolicy("e2e-probe"), client.DryRunAll)
		if err == nil {
			return errors.New("the webhook is not called yet")
		}
		return nil
	})
}

// server runs the webhook on controller-runtime's webhook server, on the port the webhook
// configurations point at, and can stop, restart and slow it down.
type server struct {
	host    string
	port    int
	certDir string
	delay   atomic.Int64 // nanoseconds every review is held before it is handled
	reviews atomic.Int64 // reviews received at webhook.PathValidate

	cancel context.CancelFunc
	done   chan error
}

// delayed is a webhook server whose handlers wait delay before they run, and which counts the
// validation reviews it receives.
type delayed struct {
	ctrlwebhook.Server
	delay, reviews *atomic.Int64
}

func (d delayed) Register(path string, h http.Handler) {
	d.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path == webhook.PathValidate {
			d.reviews.Add(1)
		}
		if wait := time.Duration(d.delay.Load()); wait > 0 {
			select {
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
}

func (s *server) start() error {
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: s.host, Port: s.port, CertDir: s.certDir})
	if err := webhook.Register(delayed{Server: srv, delay: &s.delay, reviews: &s.reviews}, webhook.Options{
		Engine:    bed.engine,
		Publisher: bed.publisher,
		Logger:    bed.log,
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- srv.Start(ctx) }()
	started := srv.StartedChecker()
	return waitFor(ctx, 10*time.Second, func() error { return started(nil) })
}

func (s *server) stop() {
	s.cancel()
	<-s.done
}

// validPolicy is an AccessPolicy the API server accepts, for requests that only the webhook may
// refuse.
func validPolicy(name string) *v1alpha1.AccessPolicy {
	return &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.AccessPolicySpec{Rules: []v1alpha1.Rule{{
			Name: "r", Match: v1alpha1.Match{Resources: []string{"configmaps"}}, Action: v1alpha1.ActionDeny, Message: "Test.",
		}}},
	}
}
