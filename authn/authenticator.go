package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/identity"
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
	// ReasonClaimValue: the mapped user name, UID, a group or an extra contains a control
	// character (CR, LF, NUL, ...), which no Kubernetes identity may carry.
	ReasonClaimValue = "invalid-claim-value"
	// ReasonReservedExtra: the claim mappings produced an extra under gatehouse.dev/, which only
	// Gatehouse sets.
	ReasonReservedExtra = "reserved-extra"
)

// ErrIssuerUnavailable is returned when the token's issuer could not be discovered yet, or its
// keys could not be fetched.
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
	// HTTPClient fetches discovery documents and key sets of issuers that have neither a
	// certificateAuthority nor an entry in IssuerClients. Default: the client kube-apiserver
	// builds (the host's root CAs, proxy settings from the environment, a 30s timeout).
	HTTPClient *http.Client
	// IssuerClients overrides HTTPClient, and the issuer's certificateAuthority, per issuer URL.
	// The Kubernetes cluster's own issuer needs ClusterIssuerClient.
	IssuerClients map[string]*http.Client
	// AllowedSystemPrefixes lists the system: user and group name prefixes a token may map to,
	// e.g. "system:serviceaccount:" and "system:serviceaccounts" to let pods act as their own
	// service accounts. Everything else under "system:" is refused; system:masters always is.
	AllowedSystemPrefixes []string
	// CacheSize bounds the verified-token cache. Default 10000.
	CacheSize int
	// CacheTTL bounds how long a verified token is cached, below its own expiry. Default 5m.
	CacheTTL time.Duration
	// Clock tells the time of the token cache and of the expiry check made on every identity
	// returned. Default: the real clock.
	Clock clock.PassiveClock
	// Logger reports discovery progress. Default: discard.
	Logger *slog.Logger
}

func (o *AuthenticatorOptions) setDefaults() {
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Authenticator verifies bearer tokens from the configured OIDC issuers with kube-apiserver's own
// JWT authenticator (k8s.io/apiserver/plugin/pkg/authenticator/token/oidc), so that an
// AuthenticationConfiguration maps a token to the same user, UID, groups and extras here as in
// kube-apiserver. Around it, Gatehouse adds a cache keyed by the token's SHA-256, the system:
// guard, and the refusal of control characters and of extras in its own reserved domain.
type Authenticator struct {
	issuers map[string]*jwtIssuer
	all     []*jwtIssuer
	cache   *tokenCache
	opts    AuthenticatorOptions
	started atomic.Bool
}

// NewAuthenticator validates o.Config as kube-apiserver does (CEL included), and as Gatehouse
// needs it (see ParseAuthenticationConfig), and returns an Authenticator; Start must run for its
// issuers to become usable.
func NewAuthenticator(o AuthenticatorOptions) (*Authenticator, error) {
	if o.Config == nil || len(o.Config.JWT) == 0 {
		return nil, errors.New("authn: no jwt authenticators configured")
	}
	if err := validateConfig(o.Config); err != nil {
		return nil, fmt.Errorf("authn: %w", err)
	}
	return newAuthenticator(o)
}

// newAuthenticator is NewAuthenticator without the validation of o.Config.
func newAuthenticator(o AuthenticatorOptions) (*Authenticator, error) {
	o.setDefaults()
	a := &Authenticator{issuers: map[string]*jwtIssuer{}, opts: o, cache: newTokenCache(o.CacheSize)}
	for _, cfg := range o.Config.JWT {
		client, ok := o.IssuerClients[cfg.Issuer.URL]
		if !ok && cfg.Issuer.CertificateAuthority == "" {
			client = o.HTTPClient
		}
		j, err := newJWTIssuer(cfg, client, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("authn: %w", err)
		}
		a.issuers[cfg.Issuer.URL] = j
		a.all = append(a.all, j)
	}
	return a, nil
}

// Start builds each issuer's authenticator, which discovers the issuer in the background and
// retries every 10 seconds until it succeeds, as in kube-apiserver; it returns when ctx ends.
// The authenticators stop with ctx.
func (a *Authenticator) Start(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("authn: Authenticator already started")
	}
	for _, j := range a.all {
		if err := j.start(ctx); err != nil {
			return fmt.Errorf("authn: %w", err)
		}
		go j.watch(ctx)
	}
	<-ctx.Done()
	return nil
}

// Ready reports an error while an issuer has not been discovered.
func (a *Authenticator) Ready(context.Context) error {
	var errs []error
	for _, j := range a.all {
		if err := j.ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AuthenticateToken verifies token and returns the identity it maps to. A token verified before
// costs a map lookup until its identity expires from the cache (CacheTTL, or the token's own
// expiry if sooner).
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (*Identity, error) {
	id, _, err := a.AuthenticateTokenDigest(ctx, token)
	return id, err
}

// AuthenticateTokenDigest is AuthenticateToken, returning as well the SHA-256 digest of the token,
// which it computes to look the token up, for a caller that derives something from the token
// (the proxy's session ID) and need not hash it a second time. The digest is returned whether or
// not the token is valid.
func (a *Authenticator) AuthenticateTokenDigest(ctx context.Context, token string) (*Identity, [sha256.Size]byte, error) {
	key := sha256.Sum256([]byte(token))
	id, err := a.authenticate(ctx, token, key)
	return id, key, err
}

// authenticate verifies token, whose SHA-256 digest is key.
func (a *Authenticator) authenticate(ctx context.Context, token string, key [sha256.Size]byte) (*Identity, error) {
	now := a.opts.Clock.Now()
	if id, ok := a.cache.get(key, now); ok {
		return id, nil
	}
	iss, err := issuerOf(token)
	if err != nil {
		return nil, &AuthError{Reason: ReasonMalformed, Err: err}
	}
	j := a.issuers[iss]
	if j == nil {
		return nil, &AuthError{Reason: ReasonIssuer, Err: errors.New("token issuer is not configured")}
	}
	id, err := j.authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	// kube-apiserver's authenticator checked the expiry against the system clock; the cache
	// runs on a.opts.Clock, which must agree.
	if id.Expiry.Before(now) {
		return nil, &AuthError{Reason: ReasonExpired, Err: fmt.Errorf("token expired at %s", id.Expiry.UTC().Format(time.RFC3339))}
	}
	if err := checkReservedExtras(id); err != nil {
		return nil, err
	}
	if err := a.CheckIdentity(id); err != nil {
		return nil, err
	}
	expires := now.Add(a.opts.CacheTTL)
	if id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	a.cache.put(key, id, expires, now)
	return id, nil
}

// CheckIdentity refuses identities no request may act as, whether they come from a token or
// from a client's impersonation:
//   - names, UID, groups or extras with a control character (CR, LF, NUL, ...): they cannot be
//     sent in the Impersonate-* headers and would disguise the identity in logs and records;
//   - names in the reserved system: namespace that were not explicitly allowed: neither an
//     identity provider nor a client's impersonation may make cluster components or
//     administrators (system:masters is always refused).
func (a *Authenticator) CheckIdentity(id *Identity) error {
	if err := checkClaimValues(id); err != nil {
		return err
	}
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

// checkClaimValues refuses an identity that carries a control character anywhere. The message
// names the field, never the value.
func checkClaimValues(id *Identity) error {
	check := func(field, s string) error {
		if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
			r := []rune(s[i:])[0]
			return &AuthError{Reason: ReasonClaimValue, Err: fmt.Errorf("invalid claim value: the %s contains the control character %U", field, r)}
		}
		return nil
	}
	if err := check("user name", id.User); err != nil {
		return err
	}
	if err := check("UID", id.UID); err != nil {
		return err
	}
	for _, g := range id.Groups {
		if err := check("group", g); err != nil {
			return err
		}
	}
	for k, vs := range id.Extra {
		if err := check("extra key", k); err != nil {
			return err
		}
		for _, v := range vs {
			if err := check(fmt.Sprintf("extra %q", k), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkReservedExtras refuses an identity whose claim mappings produced an extra in Gatehouse's
// reserved domain. The configuration cannot map one (validateConfig); this holds if it ever did.
func checkReservedExtras(id *Identity) error {
	for k := range id.Extra {
		if identity.IsReserved(k) {
			return &AuthError{Reason: ReasonReservedExtra, Err: fmt.Errorf("the claim mappings produced the extra %q, which only Gatehouse sets", k)}
		}
	}
	return nil
}
