package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/certs"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/registration"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// webhookOptions are the flags of `gatehouse webhook`.
type webhookOptions struct {
	kube        kubeOptions
	masking     maskingOptions
	bindAddress string
	securePort  int
	certDir     string
	tls         serving.TLSOptions
	policyFile  string
	metricsAddr string
	healthAddr  string
	nats        natsbus.Options
	approvals   approvalGateOptions
	approvalKey approvalKeyOptions
	dev         bool
	// selfManaged and register: the serving certificate the webhook issues itself, and the
	// registration of its configurations once it answers (charts/gatehouse).
	selfManaged certs.Flags
	register    registration.Flags
}

// approvalGateOptions configure how the webhook holds direct calls for approval.
type approvalGateOptions struct {
	wait       time.Duration
	requestTTL time.Duration
	uiURL      string
}

func (o *webhookOptions) addFlags(fs *pflag.FlagSet) {
	o.kube.addFlags(fs)
	o.masking.addFlags(fs)
	fs.StringVar(&o.bindAddress, "bind-address", "0.0.0.0", "IP address the webhook server listens on.")
	fs.IntVar(&o.securePort, "secure-port", 9443, "Port the webhook server serves HTTPS on.")
	fs.StringVar(&o.certDir, "cert-dir", "", "Directory holding tls.crt and tls.key (a mounted cert-manager Secret); instead of --tls-cert-file and --tls-private-key-file.")
	o.tls.AddFlags(fs)
	fs.StringVar(&o.policyFile, "policy-file", "", "Development mode: read AccessPolicies from this multi-document YAML file (reloaded when it changes) instead of the cluster, and allow a self-signed serving certificate.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus /metrics endpoint listens on; 0 disables it.")
	fs.StringVar(&o.healthAddr, "health-probe-bind-address", ":8081", "Address /healthz and /readyz listen on; 0 disables them.")
	o.nats.AddFlags(fs)
	o.approvalKey.addFlags(fs)
	fs.BoolVar(&o.dev, "dev", false, "Development mode: an embedded NATS server without --nats-url, and a random approval key without --approval-key-file. Never in production.")
	fs.DurationVar(&o.approvals.wait, "approval-wait", 3*time.Second, "How long a direct call that needs approval waits for a decision before it is denied with the approval request's ID. Keep it well under the webhook timeout (5s).")
	fs.DurationVar(&o.approvals.requestTTL, "approval-request-ttl", time.Hour, "How long an approval request made at admission waits for approvers.")
	fs.StringVar(&o.approvals.uiURL, "approvals-url", "", "URL of the approvers' web UI, linked in denials.")
	o.selfManaged.AddFlags(fs)
	o.register.AddFlags(fs)
}

func (o *webhookOptions) validate() error {
	if o.certDir != "" {
		if o.tls.CertFile != "" || o.tls.KeyFile != "" {
			return errors.New("--cert-dir and --tls-cert-file/--tls-private-key-file are alternatives; set one")
		}
		o.tls.CertFile = filepath.Join(o.certDir, "tls.crt")
		o.tls.KeyFile = filepath.Join(o.certDir, "tls.key")
	}
	o.tls.SelfSigned = o.policyFile != ""
	if o.securePort < 1 || o.securePort > 65535 {
		return fmt.Errorf("--secure-port must be between 1 and 65535, not %d", o.securePort)
	}
	if o.policyFile != "" {
		if _, err := os.Stat(o.policyFile); err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
	}
	if err := o.validateCertificates(); err != nil {
		return err
	}
	o.nats.Dev = o.dev
	return errors.Join(o.nats.Validate(), o.approvalKey.validate(o.dev))
}

func newWebhookCommand(g *globals) *cobra.Command {
	o := &webhookOptions{nats: natsbus.Options{Role: natsbus.RoleWebhook}}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the admission webhooks that enforce AccessPolicies on every path into the cluster",
		Long: `Run Gatehouse's validating and mutating admission webhooks on controller-runtime's webhook
server: /validate evaluates the AccessPolicies (the same rules the proxy evaluates) for every
write kube-apiserver sends it and records each decision in the trail; /mutate stamps objects
created or changed through the gateway with their session and approval IDs.

AccessPolicies are watched in the cluster and their status reports rules that do not compile.
With --policy-file they are read from a file instead (development mode).

The webhook configurations, RBAC and a Deployment are in manifests/webhook.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWebhook(cmd.Context(), g.logger, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func runWebhook(ctx context.Context, log *slog.Logger, o *webhookOptions) error {
	cfg, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	masker, fingerprints, err := o.masking.masker(o.policyFile != "", log)
	if err != nil {
		return err
	}
	approvalKey, err := o.approvalKey.key(log)
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if !o.selfManaged.Enabled() {
		if tlsCfg, err = o.tls.Config(ctx, log, "localhost", "127.0.0.1"); err != nil {
			return err
		}
	}
	scheme, err := newScheme()
	if err != nil {
		return err
	}

	tc, err := openTrail(ctx, o.nats, webhook.ComponentValidating, log)
	if err != nil {
		return err
	}
	defer func() { _ = tc.close(ctx) }()
	publisher := tc.pub

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.healthAddr,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: o.bindAddress,
			Port: o.securePort,
			// Read when the server starts: a self-managed certificate's tlsCfg is set below.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { useCertificate(tlsCfg)(c) }},
		}),
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	engine, err := setupPolicies(ctx, mgr, o.policyFile, false, log)
	if err != nil {
		return err
	}
	broker, err := approvals.New(tc.js, approvals.Options{Key: approvalKey, Recorder: publisher, Source: tc.source(), Logger: log})
	if err != nil {
		return err
	}
	gate := &webhook.Gate{Broker: broker, Masker: masker, Fingerprints: fingerprints, Wait: o.approvals.wait,
		Timeout: o.approvals.requestTTL, UIURL: o.approvals.uiURL, Logger: log}
	if err := webhook.Register(mgr.GetWebhookServer(), webhook.Options{Engine: engine, Approver: gate, Publisher: publisher, Logger: log}); err != nil {
		return err
	}
	if err := setupWebhookCertificates(mgr, cfg, o, log, &tlsCfg, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/readyz", nil)
		return errors.Join(mgr.GetWebhookServer().StartedChecker()(req), engine.Ready(), publisher.Ready(), tc.ready(ctx), broker.Ready(ctx))
	}); err != nil {
		return err
	}
	if err := errors.Join(
		mgr.AddHealthzCheck("ping", healthz.Ping),
		mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()),
		mgr.AddReadyzCheck("policies", func(*http.Request) error { return engine.Ready() }),
		mgr.AddReadyzCheck("trail", func(*http.Request) error { return publisher.Ready() }),
		mgr.AddReadyzCheck("nats", func(r *http.Request) error { return errors.Join(tc.ready(r.Context()), broker.Ready(r.Context())) }),
	); err != nil {
		return err
	}
	log.Info("starting the admission webhooks", "address", o.bindAddress, "port", o.securePort,
		"validate", webhook.PathValidate, "mutate", webhook.PathMutate)
	return mgr.Start(ctx)
}

// useCertificate makes the webhook server present the certificate of cfg (reloaded from files,
// self-managed, or self-signed in development mode).
func useCertificate(cfg *tls.Config) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if cfg.GetCertificate != nil {
			c.GetCertificate = cfg.GetCertificate
			return
		}
		cert := cfg.Certificates[0]
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	}
}
