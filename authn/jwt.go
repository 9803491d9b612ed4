package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
)

// signingAlgorithms are the algorithms kube-apiserver accepts for an --authentication-config:
// RS, ES and PS with SHA-256/384/512, asymmetric only. "none", the HMAC family (which would
// open the confusion attack with a public key as the secret) and EdDSA are refused.
var signingAlgorithms = oidc.AllValidSigningAlgorithms()

// jwtIssuer is one jwt authenticator of the configuration, verified and mapped by
// kube-apiserver's own code.
type jwtIssuer struct {
	url  string
	opts oidc.Options
	log  *slog.Logger

	// authn is nil until Start built it.
	authn atomic.Pointer[startedIssuer]
}

type startedIssuer struct {
	oidc.AuthenticatorTokenWithHealthCheck
}

// staticCA is an issuer's certificateAuthority, as kube-apiserver passes it to its authenticator.
type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

// newJWTIssuer prepares the authenticator for cfg. client fetches the issuer's discovery
// document, keys and distributed claims; when nil, kube-apiserver's own client is used, trusting
// the issuer's certificateAuthority if it has one and the host's roots otherwise.
func newJWTIssuer(cfg apiserver.JWTAuthenticator, client *http.Client, log *slog.Logger) (*jwtIssuer, error) {
	opts := oidc.Options{
		JWTAuthenticator:     cfg,
		SupportedSigningAlgs: signingAlgorithms,
		Client:               client,
	}
	if client == nil && cfg.Issuer.CertificateAuthority != "" {
		opts.CAContentProvider = staticCA(cfg.Issuer.CertificateAuthority)
	}
	return &jwtIssuer{url: cfg.Issuer.URL, opts: opts, log: log.With("issuer", cfg.Issuer.URL)}, nil
}

// start builds the authenticator; it discovers the issuer in the background until ctx ends.
func (j *jwtIssuer) start(ctx context.Context) error {
	a, err := oidc.New(ctx, j.opts)
	if err != nil {
		return fmt.Errorf("issuer %s: %w", j.url, err)
	}
	j.authn.Store(&startedIssuer{a})
	return nil
}

// watch logs the issuer's discovery progress until it succeeds or ctx ends.
func (j *jwtIssuer) watch(ctx context.Context) {
	last := ""
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		err := j.ready()
		if err == nil {
			j.log.Info("OIDC issuer discovered")
			return true, nil
		}
		if msg := err.Error(); msg != last {
			j.log.Warn("OIDC issuer not discovered yet, retrying", "err", err)
			last = msg
		}
		return false, nil
	})
}

// ready reports whether the issuer's discovery succeeded.
func (j *jwtIssuer) ready() error {
	a := j.authn.Load()
	if a == nil {
		return fmt.Errorf("issuer %s: not started", j.url)
	}
	return a.HealthCheck()
}

// authenticate verifies token, which names this issuer, and maps its claims.
func (j *jwtIssuer) authenticate(ctx context.Context, token string) (*Identity, error) {
	a := j.authn.Load()
	if a == nil {
		return nil, fmt.Errorf("%w: issuer %s is not started", ErrIssuerUnavailable, j.url)
	}
	resp, ok, err := a.AuthenticateToken(ctx, token)
	if err != nil {
		return nil, classify(j.url, err)
	}
	if !ok || resp == nil || resp.User == nil {
		return nil, &AuthError{Reason: ReasonIssuer, Err: errors.New("token issuer is not configured")}
	}
	// The signature is verified: the payload is the issuer's.
	c, err := payloadOf(token)
	if err != nil {
		return nil, &AuthError{Reason: ReasonMalformed, Err: err}
	}
	u := resp.User
	id := &Identity{Expiry: c.Expiry}
	id.User, id.UID, id.Groups, id.Extra = u.GetName(), u.GetUID(), u.GetGroups(), u.GetExtra()
	id.Issuer, id.Subject = c.Issuer, c.Subject
	return id, nil
}

// classify turns an error of kube-apiserver's authenticator into Gatehouse's failure reasons.
// That authenticator reports errors as text (it formats them with %v), so the reasons come from
// the messages of the versions in go.mod; TestFailureReasons pins each one.
func classify(issuer string, err error) error {
	msg := err.Error()
	verify, isVerify := strings.CutPrefix(msg, "oidc: verify token: ")
	reason := ReasonClaims
	switch {
	case strings.Contains(msg, "oidc: authenticator not initialized"):
		return fmt.Errorf("%w: issuer %s has not been discovered yet: %w", ErrIssuerUnavailable, issuer, err)
	case !isVerify:
		// Verified; the claim mappings or validation rules refused it.
	case strings.Contains(verify, "fetching keys"):
		return fmt.Errorf("%w: issuer %s: %w", ErrIssuerUnavailable, issuer, err)
	case strings.Contains(verify, "token is expired"):
		reason = ReasonExpired
	case strings.Contains(verify, "before the nbf"):
		reason = ReasonNotYetValid
	case strings.Contains(verify, "issued by a different provider"):
		reason = ReasonIssuer
	case strings.Contains(verify, "expected audience"):
		reason = ReasonAudience
	case strings.Contains(verify, "unsupported algorithm"):
		reason = ReasonAlgorithm
	case strings.Contains(verify, "malformed jwt"), strings.Contains(verify, "not signed"),
		strings.Contains(verify, "multiple signatures"), strings.Contains(verify, "failed to unmarshal claims"):
		reason = ReasonMalformed
	default:
		reason = ReasonSignature
	}
	return &AuthError{Reason: reason, Err: err}
}

// tokenPayload holds the claims Gatehouse reads itself from a token, besides the mapping.
type tokenPayload struct {
	Issuer  string    `json:"iss"`
	Subject string    `json:"sub"`
	Exp     unixTime  `json:"exp"`
	Expiry  time.Time `json:"-"`
}

// unixTime is a NumericDate, read as the go-oidc version kube-apiserver uses reads it.
type unixTime time.Time

func (t *unixTime) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	unix, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return ferr
		}
		unix = int64(f)
	}
	*t = unixTime(time.Unix(unix, 0))
	return nil
}

// payloadOf decodes the claims Gatehouse reads itself from a verified token.
func payloadOf(token string) (*tokenPayload, error) {
	payload, err := rawPayload(token)
	if err != nil {
		return nil, err
	}
	var c tokenPayload
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("JWT payload is not JSON with string iss and sub and a numeric exp")
	}
	c.Expiry = time.Time(c.Exp)
	return &c, nil
}

// rawPayload returns a compact JWT's payload, not verified.
func rawPayload(token string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(token), "{") {
		return nil, errors.New("not a compact JWT")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("JWT payload is not base64url")
	}
	return payload, nil
}

// issuerOf returns the unverified iss claim of a JWT, to pick the issuer that must verify it.
// Like kube-apiserver, it reads Google's legacy "accounts.google.com" as its https URL.
func issuerOf(token string) (string, error) {
	payload, err := rawPayload(token)
	if err != nil {
		return "", err
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errors.New("JWT payload is not JSON")
	}
	if c.Issuer == "accounts.google.com" {
		return "https://accounts.google.com", nil
	}
	return c.Issuer, nil
}
