package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apiserver/pkg/apis/apiserver"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

func TestTokenCache(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	key := func(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint("token-", i))) }
	c := newTokenCache(8)
	for i := range 8 {
		expires := now.Add(time.Hour)
		if i%2 == 0 {
			expires = now.Add(time.Minute)
		}
		c.put(key(i), &Identity{}, expires, now)
	}
	_, ok := c.get(key(0), now.Add(time.Minute-time.Nanosecond))
	assert.True(t, ok, "valid until its expiry")
	_, ok = c.get(key(0), now.Add(time.Minute))
	assert.False(t, ok, "not at its expiry")
	_, ok = c.get(key(99), now)
	assert.False(t, ok)

	// Full: the expired entries go first.
	later := now.Add(2 * time.Minute)
	c.put(key(8), &Identity{}, later.Add(time.Hour), later)
	assert.Equal(t, 5, c.len())
	for _, i := range []int{1, 3, 5, 7, 8} {
		_, ok := c.get(key(i), later)
		assert.True(t, ok, "live entry %d kept", i)
	}
	// Full of live entries: down to three quarters, then the new one.
	for i := 9; i < 12; i++ {
		c.put(key(i), &Identity{}, later.Add(time.Hour), later)
	}
	require.Equal(t, 8, c.len())
	c.put(key(12), &Identity{}, later.Add(time.Hour), later)
	assert.Equal(t, 7, c.len())
	_, ok = c.get(key(12), later)
	assert.True(t, ok)
}

// TestReservedExtrasAtAuthentication: should a configuration that maps a gatehouse.dev extra
// ever get past validation, the identity is still refused.
func TestReservedExtrasAtAuthentication(t *testing.T) {
	idp, err := testbed.StartIssuer()
	require.NoError(t, err)
	t.Cleanup(idp.Close)
	cfg, err := ParseAuthenticationConfig([]byte(idp.AuthenticationConfig("gatehouse")))
	require.NoError(t, err)
	cfg.JWT[0].ClaimMappings.Extra = []apiserver.ExtraMapping{{Key: "gatehouse.dev/approval-id", ValueExpression: "'forged-approval'"}}
	require.Error(t, validateConfig(cfg))

	a, err := newAuthenticator(AuthenticatorOptions{Config: cfg})
	require.NoError(t, err, "kube-apiserver's authenticator itself accepts the mapping")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Start(ctx) }()
	require.Eventually(t, func() bool { return a.Ready(ctx) == nil }, 30*time.Second, 10*time.Millisecond)

	id, err := a.AuthenticateToken(ctx, idp.MustSign(t, idp.Claims("mallory")))
	require.Error(t, err)
	assert.Nil(t, id)
	assert.Equal(t, ReasonReservedExtra, reason(err))
	assert.Contains(t, err.Error(), "gatehouse.dev/approval-id")
}

func TestIssuerOfReadsTheUnverifiedIssuer(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		token, want string
	}{
		{"x." + enc(`{"iss":"https://idp"}`) + ".y", "https://idp"},
		{"x." + enc(`{"iss":"accounts.google.com"}`) + ".y", "https://accounts.google.com"},
		{"x." + enc(`{"sub":"no issuer"}`) + ".y", ""},
	}
	for _, tc := range tests {
		got, err := issuerOf(tc.token)
		require.NoError(t, err, tc.token)
		assert.Equal(t, tc.want, got)
	}
	for _, bad := range []string{"", "a.b", "a.!!.c", "a." + enc("not json") + ".c", "a.b.c.d",
		`{"payload":"` + enc(`{"iss":"https://idp"}`) + `","signatures":[]}`} {
		_, err := issuerOf(bad)
		assert.Error(t, err, bad)
	}
}

func TestClassifyKnowsEveryVerificationFailure(t *testing.T) {
	// Texts of the go-oidc version kube-apiserver's authenticator uses, as it wraps them.
	tests := map[string]string{
		"oidc: verify token: oidc: token is expired (Token Expiry: 2026-01-01 00:00:00 +0000 UTC)":             ReasonExpired,
		"oidc: verify token: oidc: current time 2026 before the nbf (not before) time: 2027":                   ReasonNotYetValid,
		`oidc: verify token: oidc: id token issued by a different provider, expected "a" got "b"`:              ReasonIssuer,
		`oidc: verify token: oidc: expected audience in ["gatehouse"] got ["x"]`:                               ReasonAudience,
		`oidc: verify token: oidc: id token signed with unsupported algorithm, expected ["RS256"] got "HS256"`: ReasonAlgorithm,
		"oidc: verify token: oidc: malformed jwt: square/go-jose: compact JWS format must have three parts":    ReasonMalformed,
		"oidc: verify token: failed to verify signature: failed to verify id token signature":                  ReasonSignature,
		"oidc: parse username claims \"sub\": claim not present":                                               ReasonClaims,
		"oidc: error evaluating claim validation expression: validation expression 'x' failed: no":             ReasonClaims,
	}
	for msg, want := range tests {
		assert.Equal(t, want, reason(classify("https://idp", fmt.Errorf("%s", msg))), msg)
	}
	for _, msg := range []string{
		"oidc: authenticator not initialized",
		"oidc: verify token: failed to verify signature: fetching keys oidc: get keys failed: 503 Service Unavailable",
	} {
		err := classify("https://idp", fmt.Errorf("%s", msg))
		assert.ErrorIs(t, err, ErrIssuerUnavailable, msg)
		assert.Equal(t, ReasonUnavailable, reason(err))
	}
}
