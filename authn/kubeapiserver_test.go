package authn_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// The cluster's service-account issuer in TestSameAsKubeAPIServer: neither it nor the jwks_uri
// its discovery document names resolves (.invalid never does), as kubernetes.default.svc does
// not outside the cluster.
const (
	clusterIssuer = "https://kubernetes.default.svc.gatehouse-test.invalid"
	clusterJWKS   = "https://jwks.gatehouse-test.invalid/openid/v1/jwks"
)

// celJWT maps every field with CEL: a claim validation rule on the token's lifetime, the user
// name from preferred_username, groups from roles, the UID from oid, and extras, one from a
// nested claim, one with split().
func celJWT(i *testbed.Issuer) string {
	return fmt.Sprintf(`- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimValidationRules:
  - expression: "claims.exp - claims.iat <= 86400"
    message: tokens may live a day at most
  claimMappings:
    username:
      expression: "'cel:' + claims.preferred_username"
    groups:
      expression: "has(claims.roles) ? dyn(claims.roles).map(r, 'role:' + r) : []"
    uid:
      expression: "has(claims.oid) ? claims.oid : ''"
    extra:
    - key: example.com/tenant
      valueExpression: "has(claims.tenant) ? claims.tenant : ''"
    - key: example.com/scopes
      valueExpression: "has(claims.scopes) ? dyn(claims.scopes) : []"
    - key: example.com/scp
      valueExpression: "has(claims.scp) ? claims.scp.split(' ') : []"
    - key: example.com/team
      valueExpression: "has(claims.org) ? claims.org.team : ''"
`, i.URL, caYAML(i))
}

// twoAudiencesJWT is standardJWT accepting two audiences, with a second user validation rule.
func twoAudiencesJWT(i *testbed.Issuer) string {
	return fmt.Sprintf(`- issuer:
    url: %s
    audiences: ["gatehouse", "gatehouse-cli"]
    audienceMatchPolicy: MatchAny
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
  - expression: "!('oidc:blocked' in user.groups)"
    message: blocked group
`, i.URL, caYAML(i))
}

// discoveryJWT reaches i through its discoveryURL: its identifier is a URL that does not
// resolve. The user name is the email claim, which brings email_verified into play.
func discoveryJWT(i *testbed.Issuer) string {
	return fmt.Sprintf(`- issuer:
    url: %s
    discoveryURL: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: email, prefix: ""}
`, i.URL, i.DiscoveryURL, caYAML(i))
}

// clusterJWT trusts the cluster's service-account issuer, groups built with CEL as the
// manifests do.
const clusterJWT = `- issuer:
    url: ` + clusterIssuer + `
    audiences: ["gatehouse"]
  claimMappings:
    username: {claim: sub, prefix: ""}
    groups:
      expression: "['system:serviceaccounts', 'system:serviceaccounts:' + claims['kubernetes.io'].namespace]"
`

// TestSameAsKubeAPIServer gives one AuthenticationConfiguration to a real kube-apiserver
// (--authentication-config) and to the Authenticator, sends both the same real signed tokens
// and requires the same answer: both refuse, or both accept with the same user, UID, groups and
// extras (kube-apiserver's from a SelfSubjectReview). Where Gatehouse is stricter by design
// (system: names, control characters), the row says so.
func TestSameAsKubeAPIServer(t *testing.T) {
	std := startIssuer(t, testbed.IssuerOptions{})
	cel := startIssuer(t, testbed.IssuerOptions{})
	disc := startIssuer(t, testbed.IssuerOptions{Identifier: "https://idp.gatehouse-test.invalid/tenant-a"})
	raw := startIssuer(t, testbed.IssuerOptions{})
	stranger := startIssuer(t, testbed.IssuerOptions{})
	config := authConfig(twoAudiencesJWT(std), celJWT(cel), discoveryJWT(disc), rawJWT(raw))
	path := filepath.Join(t.TempDir(), "authentication-config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))

	kube, err := testbed.StartKube(testbed.KubeOptions{APIServerFlags: map[string][]string{
		"authentication-config":    {path},
		"service-account-issuer":   {clusterIssuer},
		"service-account-jwks-uri": {clusterJWKS},
	}})
	require.NoError(t, err, "a real kube-apiserver is required")
	t.Cleanup(kube.Stop)
	a := startAuthenticator(t, config, authn.AuthenticatorOptions{})

	// review asks kube-apiserver who tok is.
	review := func(t *testing.T, tok string) (*authenticationv1.UserInfo, error) {
		cfg := rest.AnonymousClientConfig(kube.Config)
		cfg.BearerToken = tok
		cs, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return &r.Status.UserInfo, nil
	}
	// kube-apiserver discovers the issuers in the background, as the Authenticator does.
	for _, i := range []*testbed.Issuer{std, cel, disc, raw} {
		tok := i.MustSign(t, claims(i, "probe", map[string]any{"preferred_username": "probe", "email": "probe@example.com"}))
		require.Eventually(t, func() bool { _, err := review(t, tok); return err == nil }, 60*time.Second, 50*time.Millisecond,
			"kube-apiserver discovered %s", i.URL)
	}

	now := time.Now()
	sign := func(i *testbed.Issuer, subject string, extra map[string]any) string {
		return i.MustSign(t, claims(i, subject, extra))
	}
	signWith := func(alg jose.SignatureAlgorithm) string {
		kid, err := std.PublishKey(alg)
		require.NoError(t, err)
		t.Cleanup(func() { std.RemoveKey(kid) })
		return std.MustSign(t, claims(std, "key-"+string(alg), nil), kid)
	}
	hs256, err := std.SignHS256WithPublicKey(claims(std, "mallory", nil))
	require.NoError(t, err)
	unknownKid, err := std.SignUnknownKey(claims(std, "mallory", nil))
	require.NoError(t, err)
	valid := sign(std, "alice", nil)
	celFull := map[string]any{
		"preferred_username": "carol", "roles": []string{"admin", "dev"}, "oid": "oid-7",
		"tenant": "acme", "scopes": []string{"read", "write"}, "org": map[string]any{"team": "team-a"},
	}

	tests := []struct {
		name     string
		token    string
		accepted bool
		// gatehouse is the reason Gatehouse refuses a token kube-apiserver accepts.
		gatehouse string
	}{
		// Claim mappings with prefixes, required claims, CEL rules, two audiences.
		{"groups as a list", sign(std, "alice", map[string]any{"groups": []string{"dev", "viewers"}}), true, ""},
		{"groups as one string", sign(std, "alice", map[string]any{"groups": "dev"}), true, ""},
		{"an empty group", sign(std, "alice", map[string]any{"groups": []string{"dev", ""}}), true, ""},
		{"no groups claim", valid, true, ""},
		{"empty sub: just the prefix", sign(std, "", nil), true, ""},
		{"second audience", sign(std, "alice", map[string]any{"aud": "gatehouse-cli"}), true, ""},
		{"audience list with one match", sign(std, "alice", map[string]any{"aud": []string{"other", "gatehouse"}}), true, ""},
		{"jti: a credential ID", sign(std, "alice", map[string]any{"jti": "abc-123"}), true, ""},
		{"iat in the future", sign(std, "alice", map[string]any{"iat": now.Add(time.Hour).Unix()}), true, ""},
		{"not before within the leeway", sign(std, "alice", map[string]any{"nbf": now.Add(30 * time.Second).Unix()}), true, ""},
		{"ES256", signWith(jose.ES256), true, ""},
		{"ES384", signWith(jose.ES384), true, ""},
		{"PS256", signWith(jose.PS256), true, ""},
		{"RS512", signWith(jose.RS512), true, ""},
		{"wrong audience", sign(std, "alice", map[string]any{"aud": "someone-else"}), false, ""},
		{"required claim missing", sign(std, "alice", map[string]any{"tenant": nil}), false, ""},
		{"required claim with another value", sign(std, "alice", map[string]any{"tenant": "evil"}), false, ""},
		{"required claim not a string", sign(std, "alice", map[string]any{"tenant": 42}), false, ""},
		{"claim validation expression", sign(std, "alice", map[string]any{"banned": true}), false, ""},
		{"user validation expression on the name", sign(std, "root", nil), false, ""},
		{"user validation expression on the groups", sign(std, "alice", map[string]any{"groups": []string{"blocked"}}), false, ""},
		{"missing sub", sign(std, "alice", map[string]any{"sub": nil}), false, ""},
		{"missing uid claim", sign(std, "alice", map[string]any{"uid": nil}), false, ""},
		{"uid not a string", sign(std, "alice", map[string]any{"uid": 42}), false, ""},
		{"a group that is not a string", sign(std, "alice", map[string]any{"groups": []any{"dev", 7}}), false, ""},
		{"expired", sign(std, "alice", map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), false, ""},
		{"not yet valid", sign(std, "alice", map[string]any{"nbf": now.Add(time.Hour).Unix()}), false, ""},
		{"EdDSA", signWith(jose.EdDSA), false, ""},
		{"alg none", std.SignNone(claims(std, "mallory", nil)), false, ""},
		{"HS256 signed with the public key", hs256, false, ""},
		{"unknown key id", unknownKid, false, ""},
		{"tampered payload", testbed.Tamper(valid, claims(std, "admin", nil)), false, ""},
		{"iss claim of an unknown issuer", std.MustSign(t, claims(std, "mallory", map[string]any{"iss": "https://evil.example.com"})), false, ""},
		{"iss claim of another configured issuer", std.MustSign(t, claims(std, "mallory", map[string]any{"iss": raw.URL})), false, ""},
		{"issuer not configured", sign(stranger, "mallory", nil), false, ""},
		{"garbage", "not-a-jwt", false, ""},

		// CEL mappings and extras.
		{"CEL: every claim", sign(cel, "x", celFull), true, ""},
		{"CEL: only the user name", sign(cel, "x", map[string]any{"preferred_username": "dan"}), true, ""},
		{"CEL: empty strings are dropped", sign(cel, "x", map[string]any{"preferred_username": "dan", "scopes": []string{"", "read"}, "tenant": ""}), true, ""},
		{"CEL: split(), whose list kube-apiserver does not take", sign(cel, "x", map[string]any{"preferred_username": "dan", "scp": "read write"}), false, ""},
		{"CEL: no preferred_username", sign(cel, "x", nil), false, ""},
		{"CEL: preferred_username not a string", sign(cel, "x", map[string]any{"preferred_username": 42}), false, ""},
		{"CEL: roles not a list", sign(cel, "x", map[string]any{"preferred_username": "dan", "roles": "admin"}), false, ""},
		{"CEL: lifetime over a day", sign(cel, "x", map[string]any{"preferred_username": "dan", "exp": now.Add(48 * time.Hour).Unix()}), false, ""},
		{"CEL: no iat", sign(cel, "x", map[string]any{"preferred_username": "dan", "iat": nil}), false, ""},

		// discoveryURL, and the email claim.
		{"discoveryURL: verified email", sign(disc, "x", map[string]any{"email": "erin@example.com", "email_verified": true}), true, ""},
		{"discoveryURL: email without email_verified", sign(disc, "x", map[string]any{"email": "erin@example.com"}), true, ""},
		{"discoveryURL: unverified email", sign(disc, "x", map[string]any{"email": "erin@example.com", "email_verified": false}), false, ""},
		{"discoveryURL: email_verified as a string", sign(disc, "x", map[string]any{"email": "erin@example.com", "email_verified": "true"}), false, ""},
		{"discoveryURL: no email", sign(disc, "x", nil), false, ""},

		// Names as the token gives them.
		{"raw names", raw.MustSign(t, merged(raw.Claims("frank"), map[string]any{"groups": []string{"ops"}, "note": "on call"})), true, ""},
		{"system:masters group", raw.MustSign(t, merged(raw.Claims("mallory"), map[string]any{"groups": []string{"system:masters"}})), true, authn.ReasonSystem},
		{"system: user name", raw.MustSign(t, raw.Claims("system:kube-controller-manager")), true, authn.ReasonSystem},
		{"LF in the user name", raw.MustSign(t, raw.Claims("mallory\nadmin")), true, authn.ReasonClaimValue},
		{"NUL in a group", raw.MustSign(t, merged(raw.Claims("mallory"), map[string]any{"groups": []string{"ops\x00"}})), true, authn.ReasonClaimValue},
		{"CR LF in an extra", raw.MustSign(t, merged(raw.Claims("mallory"), map[string]any{"note": "a\r\nb"})), true, authn.ReasonClaimValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kubeUser, kubeErr := review(t, tc.token)
			id, err := a.AuthenticateToken(t.Context(), tc.token)
			if !tc.accepted {
				require.Error(t, kubeErr, "kube-apiserver refuses it")
				require.True(t, apierrors.IsUnauthorized(kubeErr), "%v", kubeErr)
				require.Error(t, err, "so does Gatehouse")
				assert.NotEqual(t, authn.ReasonUnavailable, reasonOf(err), "%v", err)
				return
			}
			require.NoError(t, kubeErr, "kube-apiserver accepts it")
			if tc.gatehouse != "" {
				require.Error(t, err, "Gatehouse refuses it")
				assert.Equal(t, tc.gatehouse, reasonOf(err), "%v", err)
				return
			}
			require.NoError(t, err, "Gatehouse accepts it")
			assert.Equal(t, kubeUser.Username, id.User)
			assert.Equal(t, kubeUser.UID, id.UID)
			// kube-apiserver adds system:authenticated after its authenticators; so does it
			// for the identities the proxy impersonates.
			groups := slices.DeleteFunc(slices.Clone(kubeUser.Groups), func(g string) bool { return g == "system:authenticated" })
			assert.Equal(t, orNil(groups), orNil(id.Groups))
			extra := map[string][]string{}
			for k, v := range kubeUser.Extra {
				extra[k] = v
			}
			assert.Equal(t, extra, orEmpty(id.Extra))
		})
	}
	// The rows that kube-apiserver accepts show what the mappings produced.
	id, err := a.AuthenticateToken(t.Context(), sign(cel, "x", celFull))
	require.NoError(t, err)
	assert.Equal(t, "cel:carol", id.User)
	assert.Equal(t, []string{"role:admin", "role:dev"}, id.Groups)
	assert.Equal(t, map[string][]string{
		"example.com/tenant": {"acme"}, "example.com/scopes": {"read", "write"}, "example.com/team": {"team-a"},
	}, id.Extra)

	t.Run("cluster issuer out of cluster", func(t *testing.T) { testClusterIssuer(t, kube) })
}

// testClusterIssuer verifies a real service-account token through kube-apiserver, with a
// credential that may read nothing but the issuer's discovery document and keys, although
// neither the issuer's host nor its jwks_uri's resolves here.
func testClusterIssuer(t *testing.T, kube *testbed.Kube) {
	ctx := t.Context()
	for _, u := range []string{clusterIssuer, clusterJWKS} {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		host := parsed.Hostname()
		_, err = net.DefaultResolver.LookupHost(ctx, host)
		require.Error(t, err, "%s must not resolve for this test to mean anything", host)
	}
	proxyUser, err := kube.AddUser("gatehouse-issuer-reader")
	require.NoError(t, err)
	_, err = kube.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "gatehouse-issuer-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: "gatehouse-issuer-reader"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	client, err := authn.ClusterIssuerClient(proxyUser, clusterIssuer)
	require.NoError(t, err)
	a := startAuthenticator(t, authConfig(clusterJWT), authn.AuthenticatorOptions{
		IssuerClients:         map[string]*http.Client{clusterIssuer: client},
		AllowedSystemPrefixes: []string{"system:serviceaccount:", "system:serviceaccounts"},
	})

	ns := kube.Namespace(t, "sa")
	_, err = kube.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	request := func(audience string) string {
		tr, err := kube.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "agent", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return tr.Status.Token
	}
	id, err := a.AuthenticateToken(ctx, request("gatehouse"))
	require.NoError(t, err)
	assert.Equal(t, "system:serviceaccount:"+ns+":agent", id.User)
	assert.Equal(t, []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}, id.Groups)
	assert.Equal(t, clusterIssuer, id.Issuer)
	assert.Len(t, id.Extra["authentication.kubernetes.io/credential-id"], 1, "the token's jti")

	_, err = a.AuthenticateToken(ctx, request("kubernetes"))
	assert.Equal(t, authn.ReasonAudience, reasonOf(err), "%v", err)

	// A client built straight from the rest.Config, as before, resolves the issuer's host
	// itself and never becomes ready.
	plain, err := rest.HTTPClientFor(proxyUser)
	require.NoError(t, err)
	b := newStartedAuthenticator(t, authConfig(clusterJWT), authn.AuthenticatorOptions{IssuerClients: map[string]*http.Client{clusterIssuer: plain}})
	require.Eventually(t, func() bool {
		err := b.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "gatehouse-test.invalid")
	}, 30*time.Second, 10*time.Millisecond)
}

func orNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func orEmpty(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}
