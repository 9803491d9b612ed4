package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
)

// serverOptions are the flags every long-running command shares.
type serverOptions struct {
	// dev is development mode, always explicit (--dev): it alone lets a command start an
	// embedded NATS server, serve a self-signed certificate or make up keys.
	dev           bool
	healthAddress string
	shutdownGrace time.Duration
}

func (o *serverOptions) addFlags(fs *pflag.FlagSet, dev string) {
	fs.BoolVar(&o.dev, "dev", false, "Development mode: "+dev+" Never in production.")
	fs.StringVar(&o.healthAddress, "health-bind-address", ":8081", "Address of /healthz, /readyz and /metrics (plain HTTP). Empty disables them.")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace-period", 30*time.Second, "How long requests in flight may finish at shutdown.")
}

// validateNATS is the rule of every command that uses NATS (natsbus.Options.Validate, in the
// command's development mode): outside --dev it needs --nats-url, credentials and TLS; an empty
// --nats-url never silently means an embedded server.
func (o *serverOptions) validateNATS(nats *natsbus.Options) error {
	nats.Dev = o.dev
	return nats.Validate()
}

// lifecycle runs a command: its long-running parts are Runnables of one controller-runtime
// Manager, which starts them (HTTP servers first, then caches, then everything else), stops them
// when the command's context ends and fails the command when one fails. One endpoint serves its
// health (serving.Health) and metrics: controller-runtime's registry and the command's own.
// What must happen after the parts stopped (flushing records, closing NATS) is registered with
// onStop.
type lifecycle struct {
	mgr     manager.Manager
	health  *serving.Health
	metrics *prometheus.Registry
	log     *slog.Logger
	o       serverOptions

	listeners []net.Listener // opened, closed by their servers once the manager runs
	stops     []func(context.Context) error
}

// lifecycleOptions are what differs between the commands' managers.
type lifecycleOptions struct {
	// kube is the cluster the manager's caches and clients reach; nil for a command that talks to
	// no API server.
	kube *rest.Config
	// webhook is the admission webhook server the manager runs, if any.
	webhook ctrlwebhook.Server
}

// noCluster is the manager's configuration in a command that talks to no API server: nothing
// may use its clients, and its .invalid host makes a mistake fail at once.
var noCluster = &rest.Config{Host: "https://no-kubernetes-api.invalid"}

func newLifecycle(o serverOptions, lo lifecycleOptions, log *slog.Logger) (*lifecycle, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	kube := lo.kube
	if kube == nil {
		kube = noCluster
	}
	grace := o.shutdownGrace + 5*time.Second
	mgr, err := ctrl.NewManager(kube, ctrl.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(log.Handler()),
		// Health and metrics are served by the lifecycle, for every command the same way.
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		WebhookServer:           lo.webhook,
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		GracefulShutdownTimeout: &grace,
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	return &lifecycle{mgr: mgr, health: serving.NewHealth(log), metrics: prometheus.NewRegistry(), log: log, o: o}, nil
}

// everyReplica is a part that runs in every replica (it needs no leader election): the manager
// starts it once its caches are synced.
type everyReplica struct{ manager.Runnable }

func (everyReplica) NeedLeaderElection() bool { return false }

// add runs start as a part of the command.
func (l *lifecycle) add(start func(context.Context) error) error {
	return l.mgr.Add(everyReplica{manager.RunnableFunc(start)})
}

// ready adds a readiness check.
func (l *lifecycle) ready(name string, check func(context.Context) error) {
	l.health.AddReadyCheck(name, check)
}

// onStop registers f to run after every part stopped; they run in the reverse order of
// registration, also when the command fails before it starts.
func (l *lifecycle) onStop(f func(context.Context) error) { l.stops = append(l.stops, f) }

// serve adds srv, served on addr (HTTPS with tlsCfg) by every replica. The listener is opened
// now, so an address in use is reported before anything starts.
func (l *lifecycle) serve(what, addr string, srv *http.Server, tlsCfg *tls.Config) error {
	ln, err := l.listen(addr)
	if err != nil {
		return err
	}
	l.log.Info("serving "+what, "address", ln.Addr().String())
	return l.mgr.Add(&serving.Server{Server: srv, Listener: ln, TLS: tlsCfg, ShutdownGrace: l.o.shutdownGrace})
}

func (l *lifecycle) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l.listeners = append(l.listeners, ln)
	return ln, nil
}

// run calls setup, which adds the command's parts, then runs them until ctx ends or one fails,
// then runs what onStop registered. The health address is taken first: a second instance on
// the same address fails before it connects to anything.
func (l *lifecycle) run(ctx context.Context, setup func() error) error {
	var err error
	if l.o.healthAddress != "" {
		var ln net.Listener
		if ln, err = l.listen(l.o.healthAddress); err == nil {
			err = l.mgr.Add(serving.Probes(ln, l.health, prometheus.Gatherers{ctrlmetrics.Registry, l.metrics}))
		}
	}
	if err == nil {
		err = setup()
	}
	if err == nil {
		err = l.mgr.Start(ctx)
	} else {
		for _, ln := range l.listeners {
			_ = ln.Close()
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, stop := range slices.Backward(l.stops) {
		err = errors.Join(err, stop(sctx))
	}
	return err
}
