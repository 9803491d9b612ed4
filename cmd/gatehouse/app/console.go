package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/console"
	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// consoleOptions are the flags of `gatehouse console`.
type consoleOptions struct {
	server           serverOptions
	kube             kubeOptions
	endpoint         endpointOptions
	nats             natsbus.Options
	masking          maskingOptions
	authConfig       string
	kubernetesIssuer string
	systemPrefixes   []string
	externalURL      string
	issuerURL        string
	clientID         string
	clientSecretFile string
	scopes           []string
	sessionKeyFile   string
	sessionMaxAge    time.Duration
	viewerGroups     []string
	sessionLink      string
	notifySlackFile  string
	notifyJSONFile   string
	approvalKey      approvalKeyOptions
	// clickhouse is the session log the session pages read: the flags of gatehouse sessions.
	clickhouse    enricher.ClickHouseOptions
	clickhouseSet func() bool
}

// newConsoleCommand returns `gatehouse console`, which runs run with the validated options.
func newConsoleCommand(g *globals, run func(context.Context, *slog.Logger, *consoleOptions) error) *cobra.Command {
	o := &consoleOptions{nats: natsbus.Options{Role: natsbus.RoleConsole}}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "console",
		Short: "Run the approvers' web console and the approvals API",
		Long: `Run the approvers' console: a live inbox of the operations Gatehouse policies hold for
approval, each with the object as admission sees it (masked) and the change it makes, approve and
deny with a reason, and the history. Approvers sign in with OpenID Connect (authorization code
with PKCE) at an issuer of --authentication-config, the same file the proxy reads; the console
is the OAuth client --oidc-client-id there, and that issuer's audiences must include it.

The approvals API (/gatehouse/v1/approvals, used by 'gatehouse approvals') is served on the same
listener with bearer tokens verified like the proxy's; the proxy does not serve it. The console
connects to NATS with its own credentials, the only ones that may write decisions, and holds the
approval key (shared with the webhook) that authenticates what it shows and decides.

With --clickhouse-addr (and the other --clickhouse-* flags, those of 'gatehouse sessions') it also
shows sessions: each session's timeline of API calls and its terminal recordings, played in the
browser, to the viewer groups (every session), to a session's own user, and to those who may see an
approval request made in it. Without it the session pages say that the console has no session log.`,
	})
	fs := cmd.Flags()
	o.server.addFlags(fs, "a self-signed serving certificate, an embedded NATS server without --nats-url, and random session, masking and approval keys when none are configured.")
	o.kube.addFlags(fs)
	o.endpoint.addFlags(fs, "the console", 8443)
	o.nats.AddFlags(fs)
	o.masking.addFlags(fs)
	o.approvalKey.addFlags(fs)
	fs.StringVar(&o.authConfig, "authentication-config", "", "AuthenticationConfiguration file (apiserver.config.k8s.io) with the jwt issuers to trust: the proxy's. Required.")
	fs.StringVar(&o.kubernetesIssuer, "kubernetes-issuer", "", "Issuer URL of the cluster's service-account tokens, when listed in --authentication-config: its discovery and keys are fetched through kube-apiserver.")
	fs.StringSliceVar(&o.systemPrefixes, "allowed-system-prefixes", nil, "system: user and group name prefixes tokens may map to. system:masters is always refused.")
	fs.StringVar(&o.externalURL, "external-url", "", "The https URL browsers reach the console at, e.g. https://gatehouse.example.com (the login callback is <url>/callback). Required.")
	fs.StringVar(&o.issuerURL, "oidc-issuer-url", "", "Issuer approvers sign in with; one of --authentication-config's jwt issuers. Default: the first of them.")
	fs.StringVar(&o.clientID, "oidc-client-id", "", "OAuth 2.0 client ID of the console at the issuer. Required.")
	fs.StringVar(&o.clientSecretFile, "oidc-client-secret-file", "", "File holding the client secret. Default: a public client (PKCE only).")
	fs.StringSliceVar(&o.scopes, "oidc-scopes", []string{"profile", "email", "groups"}, "Scopes requested besides openid.")
	fs.StringVar(&o.sessionKeyFile, "session-key-file", "", "File holding the key (at least 32 bytes) that seals session cookies and derives CSRF tokens; the same on every replica. Required (--dev: random).")
	fs.DurationVar(&o.sessionMaxAge, "session-max-age", 8*time.Hour, "Longest console session; a session also ends when its ID token expires.")
	fs.StringSliceVar(&o.viewerGroups, "viewer-groups", nil, "Groups that may see every approval request without deciding. Requesters and approver groups always see theirs.")
	fs.StringVar(&o.sessionLink, "session-link", "", "URL of a requester's session, {session} replaced by its ID (e.g. a dashboard of its API calls). Default: the console's history of that session.")
	fs.StringVar(&o.notifySlackFile, "notify-slack-url-file", "", "File holding a Slack-compatible incoming-webhook URL told of new requests and decisions.")
	fs.StringVar(&o.notifyJSONFile, "notify-webhook-url-file", "", "File holding a URL that receives a JSON body for each new request and decision.")
	o.clickhouse.AddFlags(fs)
	o.clickhouseSet = func() bool { return fs.Changed("clickhouse-addr") }
	return cmd
}

// Validate reports flags that cannot work together.
func (o *consoleOptions) Validate() error {
	var errs []error
	if o.authConfig == "" {
		errs = append(errs, errors.New("--authentication-config is required"))
	}
	if o.clientID == "" {
		errs = append(errs, errors.New("--oidc-client-id is required"))
	}
	if u, err := url.Parse(o.externalURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, errors.New("--external-url must be an https URL (session cookies are Secure)"))
	}
	if o.sessionKeyFile == "" && !o.server.dev {
		errs = append(errs, errors.New("--session-key-file is required"))
	}
	errs = append(errs, o.endpoint.validate(o.server.dev, false), o.server.validateNATS(&o.nats), o.approvalKey.validate(o.server.dev), o.clickhouse.Validate())
	return errors.Join(errs...)
}

// readSecretFile reads a key, secret or URL from a file, without surrounding whitespace.
func readSecretFile(flag, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// runConsole runs the console until ctx ends.
func runConsole(ctx context.Context, log *slog.Logger, o *consoleOptions) error {
	log = log.With("component", "console")
	var kube *rest.Config // for the cluster's token issuer and a self-managed serving certificate
	if o.kubernetesIssuer != "" || o.endpoint.selfManaged.Enabled() {
		var err error
		if kube, err = o.kube.restConfig(); err != nil {
			return err
		}
	}
	lc, err := newLifecycle(o.server, lifecycleOptions{kube: kube}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		authCfg, err := authn.LoadAuthenticationConfig(o.authConfig)
		if err != nil {
			return err
		}
		provider, err := o.provider(authCfg)
		if err != nil {
			return err
		}
		authenticator, err := newAuthenticator(authCfg, kube, o.kubernetesIssuer, o.systemPrefixes, log)
		if err != nil {
			return err
		}
		var sessionKey []byte
		if o.sessionKeyFile != "" {
			k, err := readSecretFile("--session-key-file", o.sessionKeyFile)
			if err != nil {
				return err
			}
			sessionKey = []byte(k)
		} else {
			sessionKey = make([]byte, 32)
			_, _ = rand.Read(sessionKey)
			log.Warn("no --session-key-file: using a random session key (development only); sessions end at every restart")
		}
		// The console masks only what approvers type; without a configured key a random one does.
		masker, _, err := o.masking.masker(true, log)
		if err != nil {
			return err
		}
		var hooks []console.Webhook
		for _, h := range []struct{ file, format, flag string }{
			{o.notifySlackFile, console.FormatSlack, "--notify-slack-url-file"},
			{o.notifyJSONFile, console.FormatJSON, "--notify-webhook-url-file"},
		} {
			if h.file == "" {
				continue
			}
			u, err := readSecretFile(h.flag, h.file)
			if err != nil {
				return err
			}
			hooks = append(hooks, console.Webhook{URL: u, Format: h.format})
		}
		var notifier *console.Notifier
		if len(hooks) > 0 {
			if notifier, err = console.NewNotifier(hooks, log); err != nil {
				return err
			}
		}

		approvalKey, err := o.approvalKey.key(log)
		if err != nil {
			return err
		}
		tc, err := openTrail(ctx, lc, o.nats, "console", 0)
		if err != nil {
			return err
		}
		broker, err := approvals.New(tc.js, approvals.Options{Key: approvalKey, Recorder: tc.pub, Source: tc.source(), Logger: log})
		if err != nil {
			return err
		}
		sessions, closeSessions, err := o.sessionLog(ctx, log)
		if err != nil {
			return err
		}
		lc.onStop(func(context.Context) error { closeSessions(); return nil })
		api := &approvals.API{Broker: broker, Logger: log, Authenticate: console.BearerAuthenticator(authenticator)}
		external, _ := url.Parse(o.externalURL)
		srv, err := console.New(console.Options{
			Broker:        broker,
			Authenticator: authenticator,
			API:           api,
			Providers:     []*console.Provider{provider},
			ExternalURL:   external,
			SessionKey:    sessionKey,
			SessionMaxAge: o.sessionMaxAge,
			ViewerGroups:  o.viewerGroups,
			SessionLink:   o.sessionLink,
			Sessions:      sessions,
			Masker:        masker,
			Notifier:      notifier,
			Connected:     tc.conn.IsConnected,
			Logger:        log,
		})
		if err != nil {
			return err
		}
		if notifier != nil {
			notifier.RequestURL = srv.RequestURL
		}
		tlsCfg, err := o.endpoint.tlsConfig(lc)
		if err != nil {
			return err
		}
		lc.ready("oidc-issuers", authenticator.Ready)
		lc.ready("approvals", srv.Ready)
		lc.ready("trail", func(context.Context) error { return tc.pub.Ready() })
		lc.ready("nats", func(ctx context.Context) error { return errors.Join(tc.ready(ctx), broker.Ready(ctx)) })
		return errors.Join(lc.add(authenticator.Start), lc.add(srv.Start),
			lc.serve("the console", o.endpoint.address(), &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}, tlsCfg))
	})
}

// provider is the login provider: the chosen issuer of the authentication configuration, with
// its certificate authority.
func (o *consoleOptions) provider(cfg *apiserver.AuthenticationConfiguration) (*console.Provider, error) {
	var jwt *apiserver.JWTAuthenticator
	for i := range cfg.JWT {
		if o.issuerURL == "" || cfg.JWT[i].Issuer.URL == o.issuerURL {
			jwt = &cfg.JWT[i]
			break
		}
	}
	if jwt == nil {
		return nil, fmt.Errorf("--oidc-issuer-url %s is not an issuer of --authentication-config", o.issuerURL)
	}
	p := &console.Provider{IssuerURL: jwt.Issuer.URL, ClientID: o.clientID, Scopes: o.scopes, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if jwt.Issuer.CertificateAuthority != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(jwt.Issuer.CertificateAuthority)) {
			return nil, fmt.Errorf("the certificateAuthority of issuer %s holds no certificate", jwt.Issuer.URL)
		}
		p.HTTPClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	if o.clientSecretFile != "" {
		secret, err := readSecretFile("--oidc-client-secret-file", o.clientSecretFile)
		if err != nil {
			return nil, err
		}
		p.ClientSecret = secret
	}
	return p, nil
}
