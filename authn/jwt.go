package authn

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/apis/apiserver"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/cel/lazy"
)

// signingAlgorithms are the asymmetric JOSE algorithms accepted. "none" and the HMAC family are
// never accepted: an HMAC key would have to be shared with every verifier, and accepting one
// opens the classic confusion attack with a public key as the secret.
var signingAlgorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// jwtIssuer verifies the tokens of one issuer and maps their claims to an identity, with the
// semantics of kube-apiserver's JWT authenticator for the same configuration.
type jwtIssuer struct {
	cfg       apiserver.JWTAuthenticator
	audiences sets.Set[string]
	mapper    authenticationcel.CELMapper
	client    *http.Client
	log       *slog.Logger

	// verifier is nil until discovery succeeded; Start retries until it does.
	verifier atomic.Pointer[oidc.IDTokenVerifier]
	lastErr  atomic.Pointer[error]
}

func newJWTIssuer(cfg apiserver.JWTAuthenticator, client *http.Client, log *slog.Logger) (*jwtIssuer, error) {
	mapper, errs := apiservervalidation.CompileAndValidateJWTAuthenticator(authenticationcel.NewDefaultCompiler(), cfg, nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Issuer.URL, errs.ToAggregate())
	}
	if cfg.Issuer.CertificateAuthority != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.Issuer.CertificateAuthority)) {
			return nil, fmt.Errorf("issuer %s: certificateAuthority holds no PEM certificate", cfg.Issuer.URL)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig.RootCAs = pool
		client = &http.Client{Transport: t, Timeout: 30 * time.Second}
	}
	return &jwtIssuer{
		cfg:       cfg,
		audiences: sets.New(cfg.Issuer.Audiences...),
		mapper:    mapper,
		client:    client,
		log:       log.With("issuer", cfg.Issuer.URL),
	}, nil
}

// discover fetches the issuer's discovery document once and sets up the verifier; the key set
// is then fetched on demand and refetched when a token names an unknown key (rotation).
func (j *jwtIssuer) discover(ctx context.Context) error {
	ctx = oidc.ClientContext(ctx, j.client)
	discoveryURL := j.cfg.Issuer.URL
	if j.cfg.Issuer.DiscoveryURL != "" {
		// The discovery document then names the issuer, not the URL it was fetched from.
		ctx = oidc.InsecureIssuerURLContext(ctx, j.cfg.Issuer.URL)
		discoveryURL = strings.TrimSuffix(j.cfg.Issuer.DiscoveryURL, "/.well-known/openid-configuration")
	}
	provider, err := oidc.NewProvider(ctx, discoveryURL)
	if err != nil {
		j.lastErr.Store(&err)
		return err
	}
	// The key set must outlive ctx: it refreshes on key rotation for the life of the process.
	keysCtx := oidc.ClientContext(context.WithoutCancel(ctx), j.client)
	v := provider.VerifierContext(keysCtx, &oidc.Config{
		// Audiences are checked below: the configuration may list several.
		SkipClientIDCheck:    true,
		SupportedSigningAlgs: signingAlgorithms,
	})
	j.verifier.Store(v)
	j.lastErr.Store(nil)
	return nil
}

// Start retries discovery until it succeeds or ctx ends.
func (j *jwtIssuer) Start(ctx context.Context) {
	delay := time.Second
	for ctx.Err() == nil {
		err := j.discover(ctx)
		if err == nil {
			j.log.Info("OIDC issuer discovered")
			return
		}
		j.log.Warn("OIDC discovery failed, retrying", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// Ready reports whether the issuer's discovery succeeded.
func (j *jwtIssuer) Ready() error {
	if j.verifier.Load() != nil {
		return nil
	}
	if e := j.lastErr.Load(); e != nil {
		return fmt.Errorf("issuer %s: %w", j.cfg.Issuer.URL, *e)
	}
	return fmt.Errorf("issuer %s: discovery pending", j.cfg.Issuer.URL)
}

// authenticate verifies token, which names this issuer, and maps its claims.
func (j *jwtIssuer) authenticate(ctx context.Context, token string) (*Identity, error) {
	v := j.verifier.Load()
	if v == nil {
		return nil, fmt.Errorf("%w: issuer %s is not reachable yet", ErrIssuerUnavailable, j.cfg.Issuer.URL)
	}
	idt, err := v.Verify(oidc.ClientContext(ctx, j.client), token)
	if err != nil {
		return nil, &AuthError{Reason: verifyReason(err), Err: err}
	}
	if !j.audienceOK(idt.Audience) {
		return nil, &AuthError{Reason: ReasonAudience, Err: fmt.Errorf("token audience %q not accepted", idt.Audience)}
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return nil, &AuthError{Reason: ReasonClaims, Err: err}
	}
	id, err := j.mapClaims(ctx, c)
	if err != nil {
		return nil, &AuthError{Reason: ReasonClaims, Err: err}
	}
	id.Issuer, id.Subject, id.Expiry = idt.Issuer, idt.Subject, idt.Expiry
	return id, nil
}

func (j *jwtIssuer) audienceOK(aud []string) bool {
	// MatchAny, the only policy kube-apiserver supports.
	for _, a := range aud {
		if j.audiences.Has(a) {
			return true
		}
	}
	return false
}

func verifyReason(err error) string {
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return ReasonExpired
	case strings.Contains(msg, "before the nbf"):
		return ReasonNotYetValid
	case strings.Contains(msg, "id token issued by a different provider"):
		return ReasonIssuer
	case strings.Contains(msg, "signing algorithm") || strings.Contains(msg, "unexpected signature algorithm"):
		return ReasonAlgorithm
	case strings.Contains(msg, "malformed jwt"):
		return ReasonMalformed
	}
	return ReasonSignature
}

// claims are a token's claims, decoded lazily.
type claims map[string]json.RawMessage

func (c claims) get(name string, v any) error {
	raw, ok := c[name]
	if !ok {
		return fmt.Errorf("claim %q is missing", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("claim %q: %w", name, err)
	}
	return nil
}

// mapClaims applies claimMappings, claimValidationRules and userValidationRules, in the order
// and with the meaning kube-apiserver gives them.
func (j *jwtIssuer) mapClaims(ctx context.Context, c claims) (*Identity, error) {
	m := j.cfg.ClaimMappings
	var celClaims *lazy.MapValue
	if j.mapper.Username != nil || j.mapper.Groups != nil || j.mapper.UID != nil || j.mapper.Extra != nil || j.mapper.ClaimValidationRules != nil {
		celClaims = claimsValue(c)
	}
	id := &Identity{}

	// Username.
	if j.mapper.Username != nil {
		r, err := j.mapper.Username.EvalClaimMapping(ctx, celClaims)
		if err != nil {
			return nil, fmt.Errorf("username expression: %w", err)
		}
		s, ok := r.EvalResult.Value().(string)
		if !ok || s == "" {
			return nil, errors.New("username expression must return a non-empty string")
		}
		id.User = s
	} else {
		if err := c.get(m.Username.Claim, &id.User); err != nil {
			return nil, fmt.Errorf("username: %w", err)
		}
		if m.Username.Claim == "email" {
			if _, ok := c["email_verified"]; ok {
				var verified bool
				if err := c.get("email_verified", &verified); err != nil || !verified {
					return nil, errors.New("email not verified")
				}
			}
		}
		if id.User == "" {
			return nil, errors.New("username claim is empty")
		}
		if p := m.Username.Prefix; p != nil {
			id.User = *p + id.User
		}
	}

	// Groups: a claim (string or list) or an expression.
	if m.Groups.Claim != "" {
		if raw, ok := c[m.Groups.Claim]; ok {
			groups, err := stringOrList(raw)
			if err != nil {
				return nil, fmt.Errorf("groups claim %q: %w", m.Groups.Claim, err)
			}
			for _, g := range groups {
				if p := m.Groups.Prefix; p != nil {
					g = *p + g
				}
				id.Groups = append(id.Groups, g)
			}
		}
	} else if j.mapper.Groups != nil {
		r, err := j.mapper.Groups.EvalClaimMapping(ctx, celClaims)
		if err != nil {
			return nil, fmt.Errorf("groups expression: %w", err)
		}
		if id.Groups, err = celStrings(r.EvalResult); err != nil {
			return nil, fmt.Errorf("groups expression: %w", err)
		}
	}

	// UID.
	if m.UID.Claim != "" {
		if err := c.get(m.UID.Claim, &id.UID); err != nil {
			return nil, fmt.Errorf("uid: %w", err)
		}
	} else if j.mapper.UID != nil {
		r, err := j.mapper.UID.EvalClaimMapping(ctx, celClaims)
		if err != nil {
			return nil, fmt.Errorf("uid expression: %w", err)
		}
		s, ok := r.EvalResult.Value().(string)
		if !ok {
			return nil, errors.New("uid expression must return a string")
		}
		id.UID = s
	}

	// Extra.
	if j.mapper.Extra != nil {
		rs, err := j.mapper.Extra.EvalClaimMappings(ctx, celClaims)
		if err != nil {
			return nil, fmt.Errorf("extra expression: %w", err)
		}
		for _, r := range rs {
			em, ok := r.ExpressionAccessor.(*authenticationcel.ExtraMappingExpression)
			if !ok {
				return nil, errors.New("extra expression of unexpected type")
			}
			vals, err := celStrings(r.EvalResult)
			if err != nil {
				return nil, fmt.Errorf("extra %q: %w", em.Key, err)
			}
			if len(vals) > 0 {
				if id.Extra == nil {
					id.Extra = map[string][]string{}
				}
				id.Extra[em.Key] = vals
			}
		}
	}

	// Claim validation.
	for _, rule := range j.cfg.ClaimValidationRules {
		if rule.Claim == "" {
			continue
		}
		var v string
		if err := c.get(rule.Claim, &v); err != nil || v != rule.RequiredValue {
			return nil, fmt.Errorf("required claim %q does not have the required value", rule.Claim)
		}
	}
	if j.mapper.ClaimValidationRules != nil {
		rs, err := j.mapper.ClaimValidationRules.EvalClaimMappings(ctx, celClaims)
		if err != nil {
			return nil, fmt.Errorf("claim validation: %w", err)
		}
		if err := validationFailure(rs); err != nil {
			return nil, err
		}
	}
	if j.mapper.UserValidationRules != nil {
		rs, err := j.mapper.UserValidationRules.EvalUser(ctx, userValue(id))
		if err != nil {
			return nil, fmt.Errorf("user validation: %w", err)
		}
		if err := validationFailure(rs); err != nil {
			return nil, err
		}
	}
	return id, nil
}

func validationFailure(rs []authenticationcel.EvaluationResult) error {
	for _, r := range rs {
		ok, isBool := r.EvalResult.Value().(bool)
		if !isBool {
			return errors.New("validation expression must return a boolean")
		}
		if !ok {
			msg := ""
			switch a := r.ExpressionAccessor.(type) {
			case *authenticationcel.ClaimValidationCondition:
				msg = a.Message
			case *authenticationcel.UserValidationCondition:
				msg = a.Message
			}
			return fmt.Errorf("validation rule %q failed: %s", r.ExpressionAccessor.GetExpression(), msg)
		}
	}
	return nil
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("must be a string or a list of strings")
	}
	return list, nil
}

// celStrings converts an expression result to a string list: a string, a list of strings, or
// null. Empty strings are dropped, as kube-apiserver does.
func celStrings(v ref.Val) ([]string, error) {
	switch v.Type() {
	case types.NullType:
		return nil, nil
	case types.StringType:
		if s := v.Value().(string); s != "" {
			return []string{s}, nil
		}
		return nil, nil
	}
	native, err := v.ConvertToNative(stringSliceType)
	if err != nil {
		return nil, errors.New("expression must return a string or a list of strings")
	}
	return slices.DeleteFunc(native.([]string), func(s string) bool { return s == "" }), nil
}

// claimsValue exposes claims to CEL as the variable "claims", decoding each on first use.
func claimsValue(c claims) *lazy.MapValue {
	m := lazy.NewMapValue(types.NewObjectType("kubernetes.claims"))
	for name, raw := range c {
		m.Append(name, func(*lazy.MapValue) ref.Val {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return types.NewErr("claim %q: %v", name, err)
			}
			return types.DefaultTypeAdapter.NativeToValue(v)
		})
	}
	return m
}

// userValue exposes the mapped identity to userValidationRules as the variable "user".
func userValue(id *Identity) *lazy.MapValue {
	m := lazy.NewMapValue(types.NewObjectType("kubernetes.UserInfo"))
	field := func(name string, v any) {
		m.Append(name, func(*lazy.MapValue) ref.Val { return types.DefaultTypeAdapter.NativeToValue(v) })
	}
	field("username", id.User)
	field("uid", id.UID)
	field("groups", id.Groups)
	field("extra", id.Extra)
	return m
}

// issuerOf returns the unverified iss claim of a JWT, to pick the issuer that must verify it.
func issuerOf(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("JWT payload is not base64url")
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errors.New("JWT payload is not JSON")
	}
	return c.Issuer, nil
}

var stringSliceType = reflect.TypeOf([]string{})
