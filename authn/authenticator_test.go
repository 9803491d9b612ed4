package authn_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apiserver/pkg/apis/apiserver"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// These tests drive the Authenticator directly, with issuers of the test bed; the ones in
// kubeapiserver_test.go compare it with a real kube-apiserver.

// startIssuer starts a test bed issuer for one test.
func startIssuer(t *testing.T, o testbed.IssuerOptions) *testbed.Issuer {
	t.Helper()
	i, err := testbed.StartIssuerWith(o)
	require.NoError(t, err)
	t.Cleanup(i.Close)
	return i
}

// caYAML returns i's CA certificate for an issuer.certificateAuthority block indented by six.
func caYAML(i *testbed.Issuer) string {
	return strings.ReplaceAll(strings.TrimSpace(string(i.CAPEM)), "\n", "\n      ")
}

// authConfig returns an AuthenticationConfiguration of the jwt authenticators given, each a
// "- issuer: ..." list item.
func authConfig(jwt ...string) string {
	return "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n" + strings.Join(jwt, "")
}

// standardJWT trusts i for audience "gatehouse": sub with the oidc: prefix, groups with the
// oidc: prefix, uid from the uid claim, a required claim, a CEL claim rule and a user rule.
func standardJWT(i *testbed.Issuer) string {
	return fmt.Sprintf(`- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimValidationRules:
  - claim: tenant
    requiredValue: acme
  - expression: "!has(claims.banned) || claims.banned != true"
    message: banned identities may not use the cluster
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {claim: uid}
  userValidationRules:
  - expression: "!user.username.startsWith('oidc:root')"
    message: no root accounts
`, i.URL, caYAML(i))
}

// rawJWT trusts i with names taken as they are (no prefix), so a token can claim system: names,
// and maps the note claim to an extra.
func rawJWT(i *testbed.Issuer) string {
	return fmt.Sprintf(`- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: ""}
    groups: {claim: groups, prefix: ""}
    uid: {expression: "has(claims.uid) ? claims.uid : ''"}
    extra:
    - key: example.com/note
      valueExpression: "has(claims.note) ? claims.note : ''"
`, i.URL, caYAML(i))
}

// startAuthenticator starts an Authenticator for config and waits until its issuers are
// discovered; it stops with the test.
func startAuthenticator(t *testing.T, config string, o authn.AuthenticatorOptions) *authn.Authenticator {
	t.Helper()
	a := newStartedAuthenticator(t, config, o)
	require.Eventually(t, func() bool { return a.Ready(context.Background()) == nil }, 30*time.Second, 10*time.Millisecond,
		"the issuers are discovered")
	return a
}

// newStartedAuthenticator starts an Authenticator for config without waiting for discovery.
func newStartedAuthenticator(t *testing.T, config string, o authn.AuthenticatorOptions) *authn.Authenticator {
	t.Helper()
	cfg, err := authn.ParseAuthenticationConfig([]byte(config))
	require.NoError(t, err)
	o.Config = cfg
	a, err := authn.NewAuthenticator(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return a
}

// claims returns valid claims of i for the standard configuration, with extra merged in (a nil
// value deletes the claim).
func claims(i *testbed.Issuer, subject string, extra map[string]any) testbed.Claims {
	c := i.Claims(subject)
	c["tenant"] = "acme"
	c["uid"] = "uid-" + subject
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// merged returns c with extra set in it.
func merged(c testbed.Claims, extra map[string]any) testbed.Claims {
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func reasonOf(err error) string {
	var ae *authn.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	if errors.Is(err, authn.ErrIssuerUnavailable) {
		return authn.ReasonUnavailable
	}
	return ""
}

// TestFailureReasons sends the tokens an attacker or a broken client would, and pins the reason
// each is refused with: the reasons come from kube-apiserver's error texts, so a library update
// that changes them fails here.
func TestFailureReasons(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	raw := startIssuer(t, testbed.IssuerOptions{})
	other := startIssuer(t, testbed.IssuerOptions{})
	a := startAuthenticator(t, authConfig(standardJWT(idp), rawJWT(raw)), authn.AuthenticatorOptions{})
	now := time.Now()

	sign := func(extra map[string]any) string { return idp.MustSign(t, claims(idp, "mallory", extra)) }
	signWith := func(alg jose.SignatureAlgorithm) string {
		kid, err := idp.PublishKey(alg)
		require.NoError(t, err)
		t.Cleanup(func() { idp.RemoveKey(kid) })
		return idp.MustSign(t, claims(idp, "mallory-"+string(alg), nil), kid)
	}
	hs256, err := idp.SignHS256WithPublicKey(claims(idp, "mallory", nil))
	require.NoError(t, err)
	unknownKid, err := idp.SignUnknownKey(claims(idp, "mallory", nil))
	require.NoError(t, err)
	valid := sign(nil)
	wrongIss := claims(idp, "mallory", map[string]any{"iss": "https://evil.example.com"})
	otherIss := claims(idp, "mallory", map[string]any{"iss": raw.URL})

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"valid", valid, ""},
		{"valid, signed with ES256", signWith(jose.ES256), ""},
		{"valid, signed with PS384", signWith(jose.PS384), ""},
		{"valid, signed with ES512", signWith(jose.ES512), ""},
		{"not before within the minute of leeway", sign(map[string]any{"nbf": now.Add(30 * time.Second).Unix()}), ""},
		{"garbage", "not-a-jwt", authn.ReasonMalformed},
		{"four parts", valid + ".x", authn.ReasonMalformed},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, authn.ReasonMalformed},
		{"expired", sign(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), authn.ReasonExpired},
		{"no exp", sign(map[string]any{"exp": nil}), authn.ReasonExpired},
		{"not yet valid", sign(map[string]any{"nbf": now.Add(time.Hour).Unix()}), authn.ReasonNotYetValid},
		{"wrong audience", sign(map[string]any{"aud": "someone-else"}), authn.ReasonAudience},
		{"issuer not configured", other.MustSign(t, claims(other, "mallory", nil)), authn.ReasonIssuer},
		{"iss claim of an unknown issuer", idp.MustSign(t, wrongIss), authn.ReasonIssuer},
		{"iss claim of another configured issuer", idp.MustSign(t, otherIss), authn.ReasonSignature},
		{"unknown key id", unknownKid, authn.ReasonSignature},
		{"alg none", idp.SignNone(claims(idp, "mallory", nil)), authn.ReasonAlgorithm},
		{"HS256 signed with the public key", hs256, authn.ReasonAlgorithm},
		{"EdDSA, which kube-apiserver does not accept", signWith(jose.EdDSA), authn.ReasonAlgorithm},
		{"tampered payload", testbed.Tamper(valid, claims(idp, "alice", nil)), authn.ReasonSignature},
		{"required claim missing", sign(map[string]any{"tenant": nil}), authn.ReasonClaims},
		{"required claim with another value", sign(map[string]any{"tenant": "evil"}), authn.ReasonClaims},
		{"claim validation expression", sign(map[string]any{"banned": true}), authn.ReasonClaims},
		{"user validation expression", idp.MustSign(t, claims(idp, "root", nil)), authn.ReasonClaims},
		{"missing username claim", sign(map[string]any{"sub": nil}), authn.ReasonClaims},
		{"missing uid claim", sign(map[string]any{"uid": nil}), authn.ReasonClaims},
		{"groups neither a string nor a list", sign(map[string]any{"groups": 42}), authn.ReasonClaims},
		{"system:masters group", raw.MustSign(t, merged(raw.Claims("mallory"), map[string]any{"groups": []string{"system:masters"}})), authn.ReasonSystem},
		{"system: user name", raw.MustSign(t, raw.Claims("system:kube-controller-manager")), authn.ReasonSystem},
		{"system:nodes group", raw.MustSign(t, merged(raw.Claims("mallory"), map[string]any{"groups": []string{"dev", "system:nodes"}})), authn.ReasonSystem},
		{"LF in the user name", raw.MustSign(t, raw.Claims("mallory\nImpersonate-User: admin")), authn.ReasonClaimValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.AuthenticateToken(t.Context(), tc.token)
			if tc.reason == "" {
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(id.User, "oidc:mallory"), id.User)
				return
			}
			require.Error(t, err)
			assert.Nil(t, id)
			assert.Equal(t, tc.reason, reasonOf(err), "%v", err)
			assert.False(t, errors.Is(err, authn.ErrIssuerUnavailable), "a refused token is not an unavailable issuer: %v", err)
			assert.NotContains(t, err.Error(), tc.token, "the error never holds the token")
		})
	}
}

func TestIdentityOfAValidToken(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	a := startAuthenticator(t, authConfig(standardJWT(idp)), authn.AuthenticatorOptions{})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	id, err := a.AuthenticateToken(t.Context(), idp.MustSign(t, claims(idp, "alice", map[string]any{
		"groups": []string{"dev", "viewers"}, "exp": exp.Unix(), "jti": "token-42",
	})))
	require.NoError(t, err)
	assert.Equal(t, "oidc:alice", id.User)
	assert.Equal(t, "uid-alice", id.UID)
	assert.Equal(t, []string{"oidc:dev", "oidc:viewers"}, id.Groups)
	assert.Equal(t, map[string][]string{"authentication.kubernetes.io/credential-id": {"JTI=token-42"}}, id.Extra,
		"the jti becomes the credential ID, as in kube-apiserver")
	assert.Equal(t, idp.URL, id.Issuer)
	assert.Equal(t, "alice", id.Subject)
	assert.True(t, exp.Equal(id.Expiry), "%s != %s", exp, id.Expiry)
}

// TestUnavailableIssuer: an issuer that cannot be reached is reported as unavailable (the proxy
// answers 503), never as a bad token, and the Authenticator is not ready.
func TestUnavailableIssuer(t *testing.T) {
	t.Run("discovery fails", func(t *testing.T) {
		down := startIssuer(t, testbed.IssuerOptions{})
		tok := down.MustSign(t, claims(down, "alice", nil))
		config := authConfig(standardJWT(down))
		down.Close()
		a := newStartedAuthenticator(t, config, authn.AuthenticatorOptions{})
		require.Eventually(t, func() bool {
			err := a.Ready(t.Context())
			return err != nil && !strings.Contains(err.Error(), "not initialized") && !strings.Contains(err.Error(), "not started")
		}, 30*time.Second, 10*time.Millisecond, "discovery was tried and failed")
		_, err := a.AuthenticateToken(t.Context(), tok)
		require.ErrorIs(t, err, authn.ErrIssuerUnavailable)
		assert.Equal(t, authn.ReasonUnavailable, reasonOf(err))
	})
	t.Run("keys cannot be fetched", func(t *testing.T) {
		idp := startIssuer(t, testbed.IssuerOptions{})
		a := startAuthenticator(t, authConfig(standardJWT(idp)), authn.AuthenticatorOptions{})
		tok := idp.MustSign(t, claims(idp, "alice", nil))
		idp.Close()
		_, err := a.AuthenticateToken(t.Context(), tok)
		require.ErrorIs(t, err, authn.ErrIssuerUnavailable)
	})
	t.Run("not started", func(t *testing.T) {
		idp := startIssuer(t, testbed.IssuerOptions{})
		cfg, err := authn.ParseAuthenticationConfig([]byte(authConfig(standardJWT(idp))))
		require.NoError(t, err)
		a, err := authn.NewAuthenticator(authn.AuthenticatorOptions{Config: cfg})
		require.NoError(t, err)
		require.Error(t, a.Ready(t.Context()))
		_, err = a.AuthenticateToken(t.Context(), idp.MustSign(t, claims(idp, "alice", nil)))
		require.ErrorIs(t, err, authn.ErrIssuerUnavailable)
	})
}

// TestKeysRotateAndWithdraw: a token signed with a new key verifies once the key set is refetched; a
// cached token costs no fetch; a token of a withdrawn key is refused once the keys are
// refetched without it.
func TestKeysRotateAndWithdraw(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	a := startAuthenticator(t, authConfig(standardJWT(idp)), authn.AuthenticatorOptions{})
	oldKid, err := idp.AddKey(jose.RS256)
	require.NoError(t, err)
	_, err = a.AuthenticateToken(t.Context(), idp.MustSign(t, claims(idp, "before", nil), oldKid))
	require.NoError(t, err)
	// Tokens of the key about to be withdrawn, each a different token: one that verifies while
	// the old key set is still in use is cached, so every later attempt must bring a new one.
	withdrawn := make([]string, 200)
	for n := range withdrawn {
		withdrawn[n] = idp.MustSign(t, claims(idp, "withdrawn", map[string]any{"jti": fmt.Sprintf("withdrawn-%d", n)}), oldKid)
	}

	before := idp.JWKSRequests()
	kid, err := idp.AddKey(jose.ES256)
	require.NoError(t, err)
	idp.RemoveKey(oldKid)
	tok := idp.MustSign(t, claims(idp, "rotated", nil), kid)
	// The key set is refetched in the background: go-oidc (as kube-apiserver uses it) lets a
	// verification that starts just as a fetch completes share that fetch's result, so the first
	// attempt may still see the old set. Failures are never cached; wait until it verifies.
	require.Eventually(t, func() bool {
		_, err := a.AuthenticateToken(t.Context(), tok)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "a token signed with a new key verifies after the key set is refetched")
	assert.Greater(t, idp.JWKSRequests(), before)

	after := idp.JWKSRequests()
	for range 20 {
		_, err := a.AuthenticateToken(t.Context(), tok)
		require.NoError(t, err)
	}
	assert.Equal(t, after, idp.JWKSRequests(), "a cached token costs no verification")

	// The withdrawn key is gone once the key set is refetched. A refetch that started before the
	// withdrawal may still be the one the first verifications shared, so each attempt first asks
	// for a key the verifier cannot have seen, which refetches, and then tries a token of the
	// withdrawn key that was never verified (and so is not cached). go-oidc hands a fetch's keys
	// to the verifications waiting on it before it stores them as its cached set, so a
	// verification right after a refetch may still see the old set from the cache.
	var last error
	attempt := 0
	if !assert.Eventually(t, func() bool {
		if attempt == len(withdrawn) {
			return false
		}
		fresh, err := idp.PublishKey(jose.ES256)
		require.NoError(t, err)
		_, _ = a.AuthenticateToken(t.Context(), idp.MustSign(t, claims(idp, "refetch", nil), fresh))
		_, last = a.AuthenticateToken(t.Context(), withdrawn[attempt])
		attempt++
		return reasonOf(last) == authn.ReasonSignature
	}, 10*time.Second, 50*time.Millisecond, "a token of a withdrawn key is refused once the key set is refetched") {
		t.Logf("the last answer for the withdrawn key's token: %v", last)
	}
}

// TestAuthenticateTokenDigest: the digest is the token's SHA-256, valid or not, and the identity
// and error are AuthenticateToken's, from the cache or verified.
func TestAuthenticateTokenDigest(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	a := startAuthenticator(t, authConfig(standardJWT(idp)), authn.AuthenticatorOptions{})
	tok := idp.MustSign(t, claims(idp, "alice", nil))
	for _, token := range []string{tok, tok, "not-a-token", tok + "x"} {
		id, digest, err := a.AuthenticateTokenDigest(t.Context(), token)
		assert.Equal(t, sha256.Sum256([]byte(token)), digest)
		want, wantErr := a.AuthenticateToken(t.Context(), token)
		assert.Equal(t, want, id)
		assert.Equal(t, reasonOf(wantErr), reasonOf(err))
		assert.Equal(t, wantErr == nil, err == nil)
	}
}

// TestCacheFollowsTheClock advances a fake clock: a verified token is served from the cache
// until CacheTTL, then verified again, and refused once the clock passes its expiry, cached or
// not.
func TestCacheFollowsTheClock(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	start := time.Now()
	clock := clocktesting.NewFakeClock(start)
	a := startAuthenticator(t, authConfig(standardJWT(idp)), authn.AuthenticatorOptions{Clock: clock, CacheTTL: 5 * time.Minute})
	tok := idp.MustSign(t, claims(idp, "alice", map[string]any{"exp": start.Add(30 * time.Minute).Unix()}))

	first, err := a.AuthenticateToken(t.Context(), tok)
	require.NoError(t, err)
	clock.Step(5*time.Minute - time.Second)
	cached, err := a.AuthenticateToken(t.Context(), tok)
	require.NoError(t, err)
	assert.Same(t, first, cached, "served from the cache within CacheTTL")

	clock.Step(time.Second)
	again, err := a.AuthenticateToken(t.Context(), tok)
	require.NoError(t, err)
	assert.NotSame(t, first, again, "verified again at CacheTTL")
	assert.Equal(t, first, again)

	clock.Step(25*time.Minute + time.Second)
	_, err = a.AuthenticateToken(t.Context(), tok)
	assert.Equal(t, authn.ReasonExpired, reasonOf(err), "expired by the Authenticator's clock: %v", err)

	// A token that expires before CacheTTL leaves the cache at its expiry.
	clock.SetTime(time.Now())
	short := idp.MustSign(t, claims(idp, "bob", map[string]any{"exp": clock.Now().Add(2 * time.Minute).Unix()}))
	_, err = a.AuthenticateToken(t.Context(), short)
	require.NoError(t, err)
	clock.Step(2*time.Minute + time.Second)
	_, err = a.AuthenticateToken(t.Context(), short)
	assert.Equal(t, authn.ReasonExpired, reasonOf(err), "not served from the cache after its expiry: %v", err)
}

// TestControlCharactersAreRefused: a token whose user name, UID, groups or extras carry a
// control character is refused with its own reason, never passed on (where it would break the
// Impersonate-* headers and read as an API server failure).
func TestControlCharactersAreRefused(t *testing.T) {
	raw := startIssuer(t, testbed.IssuerOptions{})
	a := startAuthenticator(t, authConfig(rawJWT(raw)), authn.AuthenticatorOptions{})
	tok := func(subject string, extra map[string]any) string {
		return raw.MustSign(t, merged(raw.Claims(subject), extra))
	}
	tests := []struct {
		name  string
		token string
	}{
		{"CR LF in the user name", tok("mallory\r\nImpersonate-Group: system:masters", nil)},
		{"LF in the user name", tok("mallory\n", nil)},
		{"NUL in the user name", tok("mallory\x00admin", nil)},
		{"tab in the user name", tok("mallory\tadmin", nil)},
		{"DEL in the user name", tok("mallory\x7f", nil)},
		{"C1 NEL in the user name", tok("mallory\u0085", nil)},
		{"escape sequence in the user name", tok("mallory\x1b[2J", nil)},
		{"LF in a group", tok("mallory", map[string]any{"groups": []string{"dev", "ops\nadmins"}})},
		{"NUL in the UID", tok("mallory", map[string]any{"uid": "42\x00"})},
		{"CR LF in an extra", tok("mallory", map[string]any{"note": "hello\r\nImpersonate-User: admin"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.AuthenticateToken(t.Context(), tc.token)
			require.Error(t, err)
			assert.Nil(t, id)
			assert.Equal(t, authn.ReasonClaimValue, reasonOf(err))
			assert.Contains(t, err.Error(), "invalid claim value")
			assert.False(t, errors.Is(err, authn.ErrIssuerUnavailable))
		})
	}
	// Printable text beyond ASCII is a name like any other.
	id, err := a.AuthenticateToken(t.Context(), tok("José Müller 李", map[string]any{"note": "ok ✓"}))
	require.NoError(t, err)
	assert.Equal(t, "José Müller 李", id.User)

	// The same check holds for identities a client's impersonation asks for.
	err = a.CheckIdentity(&authn.Identity{Identity: trail.Identity{User: "bob", Groups: []string{"ops\r\n"}}})
	assert.Equal(t, authn.ReasonClaimValue, reasonOf(err))
}

// TestReservedExtrasInTheConfiguration: claim mappings may not produce Gatehouse's own extras;
// the configuration is refused with an error naming the key.
func TestReservedExtrasInTheConfiguration(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	withExtra := func(key string) string {
		return authConfig(fmt.Sprintf(`- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    extra:
    - key: example.com/team
      valueExpression: "'blue'"
    - key: %s
      valueExpression: "'forged'"
`, idp.URL, caYAML(idp), key))
	}
	for _, key := range []string{"gatehouse.dev/session-id", "gatehouse.dev/approval-id", "gatehouse.dev/new-key", "team.gatehouse.dev/x"} {
		t.Run(key, func(t *testing.T) {
			_, err := authn.ParseAuthenticationConfig([]byte(withExtra(key)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "jwt[0].claimMappings.extra[1].key")
			assert.Contains(t, err.Error(), key)
			assert.Contains(t, err.Error(), "reserved for Gatehouse")
		})
	}
	// A key merely mentioning the domain is not reserved.
	_, err := authn.ParseAuthenticationConfig([]byte(withExtra("example.com/gatehouse.dev")))
	require.NoError(t, err)
}

func TestConfigurationGatehouseCannotHonour(t *testing.T) {
	idp := startIssuer(t, testbed.IssuerOptions{})
	withEgress := strings.Replace(standardJWT(idp), `    audiences: ["gatehouse"]`, "    audiences: [\"gatehouse\"]\n    egressSelectorType: cluster", 1)
	_, err := authn.ParseAuthenticationConfig([]byte(authConfig(withEgress)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "egressSelectorType")

	cfg, err := authn.ParseAuthenticationConfig([]byte(authConfig(standardJWT(idp))))
	require.NoError(t, err)
	cfg.JWT[0].ClaimMappings.Extra = append(cfg.JWT[0].ClaimMappings.Extra, apiserver.ExtraMapping{Key: "gatehouse.dev/issuer", ValueExpression: "'forged'"})
	_, err = authn.NewAuthenticator(authn.AuthenticatorOptions{Config: cfg})
	require.Error(t, err, "NewAuthenticator validates a configuration built in code too")
	assert.Contains(t, err.Error(), "gatehouse.dev/issuer")

	cfg.JWT[0].ClaimMappings.Extra = nil
	cfg.JWT = append(cfg.JWT, cfg.JWT[0])
	_, err = authn.NewAuthenticator(authn.AuthenticatorOptions{Config: cfg})
	require.Error(t, err, "two authenticators for one issuer, as kube-apiserver refuses")
}
