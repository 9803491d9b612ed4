package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/trail"
)

type proxyOptions struct {
	server              serverOptions
	kube                kubeOptions
	endpoint            endpointOptions
	nats                natsbus.Options
	masking             maskingOptions
	authConfig          string
	kubernetesIssuer    string
	systemPrefixes      []string
	unrecorded          string
	maxHeaderBytes      int
	policyFile          string
	approvalTimeout     time.Duration
	clientImpersonation bool
	admissionSkipped    []string
	writeRecordTimeout  time.Duration
	recordingFlush      time.Duration
	recordingChunkBytes int
	recordsPerMessage   int
	terminalDelay       time.Duration
	consoleURL          string
}

// newProxyCommand returns `gatehouse proxy`, which runs run with the validated options.
func newProxyCommand(g *globals, run func(context.Context, *slog.Logger, *proxyOptions) error) *cobra.Command {
	o := &proxyOptions{nats: natsbus.Options{Role: natsbus.RoleProxy}}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "proxy",
		Short: "Run the authenticating front proxy for kube-apiserver",
		Long: `Run the front proxy. Clients send Kubernetes API requests with an OIDC bearer token;
the proxy verifies it, forwards the request with its own credentials impersonating the verified
identity, masks secrets in responses and records every request to the trail (NATS JetStream).

The token issuers and claim mappings come from --authentication-config, the same
AuthenticationConfiguration file kube-apiserver reads.`,
	})
	fs := cmd.Flags()
	o.server.addFlags(fs, "a self-signed serving certificate, an embedded NATS server without --nats-url and a random masking key when none are configured.")
	o.kube.addFlags(fs)
	o.endpoint.addFlags(fs, "the proxy", 8443)
	o.nats.AddFlags(fs)
	o.masking.addFlags(fs)
	fs.StringVar(&o.authConfig, "authentication-config", "", "AuthenticationConfiguration file (apiserver.config.k8s.io) with the jwt issuers to trust. Required.")
	fs.StringVar(&o.kubernetesIssuer, "kubernetes-issuer", "", "Issuer URL of the cluster's service-account tokens, when listed in --authentication-config: its discovery and keys are fetched through kube-apiserver with the proxy's credentials.")
	fs.StringSliceVar(&o.systemPrefixes, "allowed-system-prefixes", nil, "system: user and group name prefixes tokens may map to, e.g. system:serviceaccount:,system:serviceaccounts. system:masters is always refused.")
	fs.StringVar(&o.unrecorded, "unrecorded-requests", string(proxy.RefuseUnrecorded), "What to do when the trail cannot record a request, or an exec, attach or port-forward session: Refuse (answer 503, end the session) or Allow.")
	fs.DurationVar(&o.writeRecordTimeout, "write-record-timeout", 10*time.Second, "How long the answer to a write waits for its trail record to be stored (a NATS blip is waited out) before the client gets an error instead of the answer.")
	fs.DurationVar(&o.recordingFlush, "recording-flush-interval", time.Second, "Longest time a session recording's chunk is filled before it is published: what a proxy that stops loses of a session at most.")
	fs.IntVar(&o.recordingChunkBytes, "recording-chunk-bytes", 256<<10, "Size at which a session recording's chunk is published.")
	fs.IntVar(&o.recordsPerMessage, "trail-records-per-message", trail.PackedRecords, "Most trail records of one session published together that share a NATS message, which JetStream stores and acknowledges at the cost of one. Set 1 while an enricher older than this proxy reads the trail: it cannot read a message of several records.")
	fs.DurationVar(&o.terminalDelay, "terminal-output-delay", 10*time.Millisecond, "How long a partial line of exec or attach output is held back so that a secret cut by a frame boundary is masked whole.")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 64<<10, "Largest request header block accepted; larger ones get 431.")
	fs.StringVar(&o.policyFile, "policy-file", "", "Read AccessPolicies from this multi-document YAML file (reloaded when it changes) instead of the cluster (development mode).")
	fs.DurationVar(&o.approvalTimeout, "approval-timeout", 10*time.Minute, "The longest a request that admission holds for approval is kept open waiting for approvers; a client's own hold duration (Gatehouse-Hold) cannot exceed it. Clients may ask not to be held (hold=refuse).")
	fs.StringSliceVar(&o.admissionSkipped, "admission-skipped-namespaces", policy.AdmissionSkipsNamespaces, "Namespaces the validating webhook configurations leave out (namespaceSelector): admission cannot hold writes there for approval, so the proxy refuses those a rule holds. Keep it equal to the configurations' list (the chart passes it).")
	fs.StringVar(&o.consoleURL, "console-url", "", "URL of gatehouse console, which serves the approvals API and the approvers' web UI: the proxy answers calls of the approvals API with it (gatehouse approvals follows it), and says where to approve in held calls' answers.")
	fs.BoolVar(&o.clientImpersonation, "allow-client-impersonation", false, "Let clients impersonate (kubectl --as) whom a SubjectAccessReview says their verified identity may impersonate; the verified user is kept in the extra gatehouse.dev/original-user. Default: every Impersonate-* header is refused.")
	return cmd
}

// Validate reports flags that cannot work together.
func (o *proxyOptions) Validate() error {
	var errs []error
	if o.authConfig == "" {
		errs = append(errs, errors.New("--authentication-config is required"))
	}
	errs = append(errs, o.endpoint.validate(o.server.dev, false), o.server.validateNATS(&o.nats))
	if o.recordsPerMessage < 1 {
		errs = append(errs, fmt.Errorf("--trail-records-per-message must be at least 1, not %d", o.recordsPerMessage))
	}
	switch proxy.UnrecordedPolicy(o.unrecorded) {
	case proxy.RefuseUnrecorded, proxy.AllowUnrecorded:
	default:
		errs = append(errs, fmt.Errorf("--unrecorded-requests must be Refuse or Allow, not %q", o.unrecorded))
	}
	return errors.Join(errs...)
}

// runProxy runs the proxy until ctx ends.
func runProxy(ctx context.Context, log *slog.Logger, o *proxyOptions) error {
	log = log.With("component", "proxy")
	upstream, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	lc, err := newLifecycle(o.server, lifecycleOptions{kube: upstream}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		authCfg, err := authn.LoadAuthenticationConfig(o.authConfig)
		if err != nil {
			return err
		}
		masker, _, err := o.masking.masker(o.server.dev, log)
		if err != nil {
			return err
		}
		tc, err := openTrail(ctx, lc, o.nats, "proxy", o.recordsPerMessage)
		if err != nil {
			return err
		}
		pub := tc.pub
		recordings, err := recording.NewPublisher(tc.conn.Conn, recording.PublisherOptions{
			Source: tc.source(), ChunkBytes: o.recordingChunkBytes, FlushInterval: o.recordingFlush, Logger: log,
		})
		if err != nil {
			return err
		}
		authenticator, err := newAuthenticator(authCfg, upstream, o.kubernetesIssuer, o.systemPrefixes, log)
		if err != nil {
			return err
		}
		engine, err := setupPolicies(ctx, lc.mgr, o.policyFile, true, log)
		if err != nil {
			return err
		}
		// The proxy reads approval requests to hold its clients; it has no approval key and its
		// NATS identity cannot write them.
		broker, err := approvals.New(tc.js, approvals.Options{Source: tc.source(), Logger: log})
		if err != nil {
			return err
		}
		var impersonation authn.ImpersonationAuthorizer
		if o.clientImpersonation {
			cs, err := kubernetes.NewForConfig(upstream)
			if err != nil {
				return err
			}
			impersonation = &authn.SubjectAccessReviewer{Client: cs}
		}
		px, err := proxy.NewProxy(proxy.Options{
			Impersonation: impersonation,
			Upstream:      upstream,
			Authenticator: authenticator,
			Masker:        masker,
			Recorder:      pub,
			Recordings:    recordings,
			Unrecorded:    proxy.UnrecordedPolicy(o.unrecorded),

			WriteRecordTimeout: o.writeRecordTimeout,
			TerminalDelay:      o.terminalDelay,
			Policy:             engine,
			AdmissionSees:      policy.AdmissionSeesSkipping(o.admissionSkipped),
			Approvals:          broker,
			MaxHold:            o.approvalTimeout,
			ConsoleURL:         o.consoleURL,
			Metrics:            lc.metrics,
			Logger:             log,
		})
		if err != nil {
			return err
		}
		// The proxy's records are flushed once it stopped, before the trail's connection closes.
		lc.onStop(func(context.Context) error { px.Flush(); return nil })
		tlsCfg, err := o.endpoint.tlsConfig(lc)
		if err != nil {
			return err
		}
		lc.ready("oidc-issuers", authenticator.Ready)
		lc.ready("nats", func(ctx context.Context) error { return errors.Join(tc.ready(ctx), broker.Ready(ctx)) })
		lc.ready("trail", func(context.Context) error { return pub.Ready() })
		lc.ready("policies", func(context.Context) error { return engine.Ready() })
		return errors.Join(lc.add(authenticator.Start),
			lc.serve("the proxy", o.endpoint.address(), &http.Server{Handler: px, MaxHeaderBytes: o.maxHeaderBytes}, tlsCfg))
	})
}

// newAuthenticator verifies the tokens of the issuers of cfg, as the proxy and the console do.
// The cluster's own service-account issuer (kubernetesIssuer, when set) is reached through
// kube-apiserver with kube's credentials.
func newAuthenticator(cfg *apiserver.AuthenticationConfiguration, kube *rest.Config, kubernetesIssuer string, systemPrefixes []string, log *slog.Logger) (*authn.Authenticator, error) {
	o := authn.AuthenticatorOptions{Config: cfg, AllowedSystemPrefixes: systemPrefixes, Logger: log}
	if kubernetesIssuer != "" {
		hc, err := authn.ClusterIssuerClient(kube, kubernetesIssuer)
		if err != nil {
			return nil, err
		}
		o.IssuerClients = map[string]*http.Client{kubernetesIssuer: hc}
	}
	return authn.NewAuthenticator(o)
}
