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

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/registration"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// webhookOptions are the flags of `gatehouse webhook`.
type webhookOptions struct {
	server     serverOptions
	kube       kubeOptions
	endpoint   endpointOptions
	masking    maskingOptions
	certDir    string
	policyFile string
	nats       natsbus.Options
	approvals  approvalGateOptions
	// approvalKey authenticates the approval requests the webhook makes and the decisions and
	// grant uses it reads; shared with the console only.
	approvalKey approvalKeyOptions
	// register is the registration of the webhook configurations once the webhook answers
	// (charts/gatehouse).
	register registration.Flags
	// recordsPerMessage packs the decisions of one session published together into a NATS
	// message (trail.PublisherOptions.MaxBatchRecords).
	recordsPerMessage int
}

// approvalGateOptions configure how the webhook holds direct calls for approval.
type approvalGateOptions struct {
	wait       time.Duration
	requestTTL time.Duration
	uiURL      string
}

func (o *webhookOptions) addFlags(fs *pflag.FlagSet) {
	o.server.addFlags(fs, "a self-signed serving certificate, an embedded NATS server without --nats-url, and random masking and approval keys when none are configured.")
	o.kube.addFlags(fs)
	o.endpoint.addFlags(fs, "the admission webhooks", 9443)
	o.masking.addFlags(fs)
	fs.StringVar(&o.certDir, "cert-dir", "", "Directory holding tls.crt and tls.key (a mounted cert-manager Secret); instead of --tls-cert-file and --tls-private-key-file.")
	fs.StringVar(&o.policyFile, "policy-file", "", "Read AccessPolicies from this multi-document YAML file (reloaded when it changes) instead of the cluster.")
	o.nats.AddFlags(fs)
	o.approvalKey.addFlags(fs)
	fs.DurationVar(&o.approvals.wait, "approval-wait", 3*time.Second, "How long a direct call that needs approval waits for a decision before it is denied with the approval request's ID. Keep it well under the webhook timeout (5s).")
	fs.DurationVar(&o.approvals.requestTTL, "approval-request-ttl", time.Hour, "How long an approval request made at admission waits for approvers.")
	fs.StringVar(&o.approvals.uiURL, "approvals-url", "", "URL of the approvers' web UI, linked in denials.")
	fs.IntVar(&o.recordsPerMessage, "trail-records-per-message", trail.PackedRecords, "Most decisions of one session published together that share a NATS message, which JetStream stores and acknowledges at the cost of one. A review kube-apiserver retries is then one row per attempt in ClickHouse, which the enricher's views show as one decision (decision_summary's attempts). Set 1 while an enricher older than this webhook reads the trail: it cannot read a message of several records, or its views show a retried review's decision once per attempt.")
	o.register.AddFlags(fs)
}

// Validate reports flags that cannot work together. It resolves --cert-dir into the certificate
// files.
func (o *webhookOptions) Validate() error {
	if o.certDir != "" {
		if o.endpoint.tls.CertFile != "" || o.endpoint.tls.KeyFile != "" {
			return errors.New("--cert-dir and --tls-cert-file/--tls-private-key-file are alternatives; set one")
		}
		o.endpoint.tls.CertFile = filepath.Join(o.certDir, "tls.crt")
		o.endpoint.tls.KeyFile = filepath.Join(o.certDir, "tls.key")
	}
	if o.endpoint.securePort < 1 || o.endpoint.securePort > 65535 {
		return fmt.Errorf("--secure-port must be between 1 and 65535, not %d", o.endpoint.securePort)
	}
	if o.recordsPerMessage < 1 {
		return fmt.Errorf("--trail-records-per-message must be at least 1, not %d", o.recordsPerMessage)
	}
	if o.policyFile != "" {
		if _, err := os.Stat(o.policyFile); err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
	}
	selfManaged := o.endpoint.selfManaged
	if err := o.register.Validate(selfManaged.Enabled()); err != nil {
		return err
	}
	if selfManaged.Enabled() {
		if o.endpoint.tls.CertFile != "" {
			return errors.New("--self-managed-ca-secret and --cert-dir/--tls-cert-file are alternatives; set one")
		}
		if !o.register.Enabled() && selfManaged.CAConfigMap == "" {
			return errors.New("--self-managed-ca-secret needs --webhook-configurations or --self-managed-ca-configmap: kube-apiserver must learn the CA")
		}
	}
	return errors.Join(o.endpoint.validate(o.server.dev, o.register.Enabled()), o.server.validateNATS(&o.nats), o.approvalKey.validate(o.server.dev))
}

// newWebhookCommand returns `gatehouse webhook`, which runs run with the validated options.
func newWebhookCommand(g *globals, run func(context.Context, *slog.Logger, *webhookOptions) error) *cobra.Command {
	o := &webhookOptions{nats: natsbus.Options{Role: natsbus.RoleWebhook}}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "webhook",
		Short: "Run the admission webhooks that enforce AccessPolicies on every path into the cluster",
		Long: `Run Gatehouse's validating and mutating admission webhooks on controller-runtime's webhook
server: /validate evaluates the AccessPolicies (the same rules the proxy evaluates) for every
write kube-apiserver sends it and records each decision in the trail; /mutate stamps objects
created or changed through the gateway with their session and approval IDs.

AccessPolicies are watched in the cluster and their status reports rules that do not compile.
With --policy-file they are read from a file instead.

The webhook configurations, RBAC and a Deployment are in manifests/webhook.`,
	})
	o.addFlags(cmd.Flags())
	return cmd
}

// runWebhook runs the admission webhooks until ctx ends.
func runWebhook(ctx context.Context, log *slog.Logger, o *webhookOptions) error {
	cfg, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	// The server presents the certificate of tlsCfg, read when it starts: a self-managed
	// certificate's configuration is made after the manager.
	var tlsCfg *tls.Config
	server := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host:    o.endpoint.bindAddress,
		Port:    o.endpoint.securePort,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { useCertificate(tlsCfg)(c) }},
	})
	lc, err := newLifecycle(o.server, lifecycleOptions{kube: cfg, webhook: server}, log)
	if err != nil {
		return err
	}
	// The manager runs the server it hands out.
	server = lc.mgr.GetWebhookServer()
	return lc.run(ctx, func() error {
		masker, fingerprints, err := o.masking.masker(o.server.dev, log)
		if err != nil {
			return err
		}
		approvalKey, err := o.approvalKey.key(log)
		if err != nil {
			return err
		}
		tc, err := openTrail(ctx, lc, o.nats, webhook.ComponentValidating, o.recordsPerMessage)
		if err != nil {
			return err
		}
		publisher := tc.pub
		engine, err := setupPolicies(ctx, lc.mgr, o.policyFile, false, log)
		if err != nil {
			return err
		}
		broker, err := approvals.New(tc.js, approvals.Options{Key: approvalKey, Recorder: publisher, Source: tc.source(), Logger: log})
		if err != nil {
			return err
		}
		gate := &webhook.Gate{Broker: broker, Masker: masker, Fingerprints: fingerprints, Wait: o.approvals.wait,
			Timeout: o.approvals.requestTTL, UIURL: o.approvals.uiURL, Logger: log}
		if err := webhook.Register(server, webhook.Options{Engine: engine, Approver: gate, Publisher: publisher, Logger: log}); err != nil {
			return err
		}
		started := func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/readyz", nil)
			return server.StartedChecker()(req)
		}
		// The configurations are registered once the webhook can decide.
		var publish []func(context.Context, []byte) error
		if o.register.Enabled() {
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			r, err := o.register.New(cs, log.With("part", "registration"), func(ctx context.Context) error {
				return errors.Join(started(ctx), engine.Ready(), publisher.Ready(), tc.ready(ctx), broker.Ready(ctx))
			})
			if err != nil {
				return err
			}
			if err := lc.mgr.Add(r); err != nil {
				return err
			}
			publish = append(publish, r.SetCABundle)
		}
		if tlsCfg, err = o.endpoint.tlsConfig(lc, publish...); err != nil {
			return err
		}
		lc.ready("webhook", started)
		lc.ready("policies", func(context.Context) error { return engine.Ready() })
		lc.ready("trail", func(context.Context) error { return publisher.Ready() })
		lc.ready("nats", func(ctx context.Context) error { return errors.Join(tc.ready(ctx), broker.Ready(ctx)) })
		log.Info("starting the admission webhooks", "address", o.endpoint.address(),
			"validate", webhook.PathValidate, "mutate", webhook.PathMutate)
		return nil
	})
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
