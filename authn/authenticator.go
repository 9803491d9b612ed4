package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/apis/apiserver"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Identity is an identity verified from a token.
type Identity struct {
	trail.Identity
	// Expiry is when the token expires; the identity is not used after it.
	Expiry time.Time
}

// Reasons an authentication fails, as reported in metrics and trail records. They never contain
// the token or its claims.
const (
	ReasonMissing      = "missing"
	ReasonMalformed    = "malformed"
	ReasonIssuer       = "unknown-issuer"
	ReasonSignature    = "signature"
	ReasonAlgorithm    = "algorithm"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not-yet-valid"
	ReasonAudience     = "audience"
	ReasonClaims       = "claims"
	ReasonSystem       = "system-identity"
	ReasonUnavailable  = "issuer-unavailable"
	ReasonImpersonate  = "impersonation-header"
	ReasonHeaderLength = "header-too-large"
)

// ErrIssuerUnavailable is returned when the token's issuer could not be discovered yet.
var ErrIssuerUnavailable = errors.New("authn: OIDC issuer unavailable")

// AuthError is a failed authentication. Its message is safe to log; clients get a generic one.
type AuthError struct {
	Reason string
	Err    error
}

func (e *AuthError) Error() string {
	return "authentication failed (" + e.Reason + "): " + e.Err.Error()
}
func (e *AuthError) Unwrap() error { return e.Err }

// reason returns the failure reason of err for metrics.
func reason(err error) string {
	var ae *AuthError
	switch {
	case errors.As(err, &ae):
		return ae.Reason
	case errors.Is(err, ErrIssuerUnavailable):
		return ReasonUnavailable
	}
	return ReasonSignature
}

// AuthenticatorOptions configures an Authenticator.
type AuthenticatorOptions struct {
	// Config holds the jwt authenticators, as kube-apiserver's --authentication-config does.
	// Required.
	Config *apiserver.AuthenticationConfiguration
	// HTTPClient fetches discovery documents and key sets of issuers without a
	// certificateAuthority of their own. Default: http.DefaultClient's transport with a 30s
	// timeout. The Kubernetes cluster's own issuer needs a client that trusts and authenticates
	// to the API server (rest.HTTPClientFor).
	HTTPClient *http.Client
	// IssuerClients overrides HTTPClient per issuer URL.
	IssuerClients map[string]*http.Client
	// AllowedSystemPrefixes lists the system: user and group name prefixes a token may map to,
	// e.g. "system:serviceaccount:" and "system:serviceaccounts" to let pods act as their own
	// service accounts. Everything else under "system:" is refused; system:masters always is.
	AllowedSystemPrefixes []string
	// CacheSize bounds the verified-token cache. Default 10000.
	CacheSize int
	// CacheTTL bounds how long a verified token is cached, below its own expiry. Default 5m.
	CacheTTL time.Duration
	// Logger reports discovery progress. Default: discard.
	Logger *slog.Logger
}

func (o *AuthenticatorOptions) setDefaults() {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Authenticator verifies bearer tokens from the configured OIDC issuers.
type Authenticator struct {
	issuers map[string][]*jwtIssuer
	all     []*jwtIssuer
	cache   *tokenCache
	opts    AuthenticatorOptions
	now     func() time.Time
}

// NewAuthenticator returns an Authenticator; Start must run for its issuers to become usable.
func NewAuthenticator(o AuthenticatorOptions) (*Authenticator, error) {
	if o.Config == nil || len(o.Config.JWT) == 0 {
		return nil, errors.New("authn: no jwt authenticators configured")
	}
	o.setDefaults()
	a := &Authenticator{issuers: map[string][]*jwtIssuer{}, opts: o, now: time.Now}
	a.cache = newTokenCache(o.CacheSize)
	for _, cfg := range o.Config.JWT {
		client := o.HTTPClient
		if c, ok := o.IssuerClients[cfg.Issuer.URL]; ok {
			client = c
		}
		j, err := newJWTIssuer(cfg, client, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("authn: %w", err)
		}
		a.issuers[cfg.Issuer.URL] = append(a.issuers[cfg.Issuer.URL], j)
		a.all = append(a.all, j)
	}
	return a, nil
}

// Start discovers every issuer, retrying in the background until each succeeds, and returns
// when ctx ends.
func (a *Authenticator) Start(ctx context.Context) error {
	for _, j := range a.all {
		go j.Start(ctx)
	}
	<-ctx.Done()
	return nil
}

// Ready reports an error while an issuer has not been discovered.
func (a *Authenticator) Ready(context.Context) error {
	var errs []error
	for _, j := range a.all {
		if err := j.Ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AuthenticateToken verifies token and returns the identity it maps to. A token verified before
// costs a map lookup.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (*Identity, error) {
	key := sha256.Sum256([]byte(token))
	now := a.now()
	if id, ok := a.cache.get(key, now); ok {
		return id, nil
	}
	iss, err := issuerOf(token)
	if err != nil {
		return nil, &AuthError{Reason: ReasonMalformed, Err: err}
	}
	candidates := a.issuers[iss]
	if len(candidates) == 0 {
		return nil, &AuthError{Reason: ReasonIssuer, Err: errors.New("token issuer is not configured")}
	}
	var id *Identity
	for _, j := range candidates {
		if id, err = j.authenticate(ctx, token); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := a.CheckIdentity(id); err != nil {
		return nil, err
	}
	expires := now.Add(a.opts.CacheTTL)
	if id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	a.cache.put(key, id, expires)
	return id, nil
}

// CheckIdentity refuses identities in the reserved system: namespace that were not explicitly
// allowed: neither an identity provider nor a client's impersonation may make cluster
// components or administrators.
func (a *Authenticator) CheckIdentity(id *Identity) error {
	names := append([]string{id.User}, id.Groups...)
	for _, n := range names {
		if !strings.HasPrefix(n, "system:") {
			continue
		}
		if n == "system:masters" || !a.systemAllowed(n) {
			return &AuthError{Reason: ReasonSystem, Err: fmt.Errorf("token maps to the reserved name %q", n)}
		}
	}
	return nil
}

func (a *Authenticator) systemAllowed(name string) bool {
	for _, p := range a.opts.AllowedSystemPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
