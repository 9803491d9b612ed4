package testbed

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/devoidc"
)

// Claims are the claims of a token the Issuer signs.
type Claims = devoidc.Claims

// Issuer is the development OIDC issuer (package devoidc) on loopback HTTPS, with the test
// identities of CONVENTIONS (agents, approvers), plus deliberately bad tokens.
type Issuer struct {
	*devoidc.Issuer
	// CAFile is a PEM file with the CA of the issuer's serving certificate.
	CAFile string
	dir    string
	login  loginState
}

// TestIdentities are the demo identities of test issuers: agents in group agents, approvers
// in gatehouse:approvers.
var TestIdentities = []devoidc.Identity{
	{Name: "agent", Groups: []string{"agents"}},
	{Name: "approver", Groups: []string{"gatehouse:approvers"}},
}

// IssuerOptions configures StartIssuerWith.
type IssuerOptions struct {
	// Identifier is the issuer identifier when it is not the URL the issuer serves at, as for an
	// issuer reached through a discoveryURL. Default: ServerURL.
	Identifier string
}

// StartIssuer starts an issuer with an RS256 key (the default signer) and an ES256 key.
func StartIssuer() (*Issuer, error) { return StartIssuerWith(IssuerOptions{}) }

// StartIssuerWith is StartIssuer with options.
func StartIssuerWith(o IssuerOptions) (*Issuer, error) {
	iss, err := devoidc.Start(devoidc.Options{Identities: TestIdentities, Identifier: o.Identifier, Clients: []devoidc.Client{{
		// gatehouse login's loopback redirects, and a web app's on loopback HTTPS (the console).
		ID: devoidc.DefaultClientID, RedirectURIs: []string{"http://127.0.0.1/callback", "http://localhost/callback", "https://127.0.0.1/callback"},
	}}})
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	dir, err := os.MkdirTemp("", "gatehouse-oidc-")
	if err != nil {
		iss.Close()
		return nil, err
	}
	i := &Issuer{Issuer: iss, CAFile: filepath.Join(dir, "ca.crt"), dir: dir}
	if err := os.WriteFile(i.CAFile, iss.CAPEM, 0o600); err != nil {
		i.Close()
		return nil, err
	}
	return i, nil
}

// Close stops the issuer.
func (i *Issuer) Close() {
	i.Issuer.Close()
	_ = os.RemoveAll(i.dir)
}

// MustSign is Sign for tests that cannot go on without the token.
func (i *Issuer) MustSign(t TB, claims Claims, kid ...string) string {
	t.Helper()
	tok, err := i.Sign(claims, kid...)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return tok
}

// SignUnknownKey signs claims with a fresh RS256 key that the JWKS does not publish.
func (i *Issuer) SignUnknownKey(claims Claims) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	return devoidc.SignWith(jose.RS256, key, "unknown-key", claims)
}

// SignNone returns an unsigned token with "alg": "none".
func (i *Issuer) SignNone(claims Claims) string {
	return compact(map[string]any{"alg": "none", "typ": "JWT"}, claims, nil)
}

// SignHS256WithPublicKey returns a token MACed with HS256 using the PEM encoding of the default
// RSA public key as the secret: the algorithm-confusion attack on verifiers that take the
// algorithm from the token.
func (i *Issuer) SignHS256WithPublicKey(claims Claims) (string, error) {
	var rsaKey *jose.JSONWebKey
	for _, k := range i.PublicKeys() {
		if k.Algorithm == string(jose.RS256) {
			rsaKey = &k
			break
		}
	}
	if rsaKey == nil {
		return "", fmt.Errorf("testbed: no RS256 key")
	}
	der, err := x509.MarshalPKIXPublicKey(rsaKey.Key)
	if err != nil {
		return "", err
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	header := map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaKey.KeyID}
	signingInput := compact(header, claims, nil)
	signingInput = strings.TrimSuffix(signingInput, ".")
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Tamper replaces a signed token's payload with claims and keeps its header and signature.
func Tamper(token string, claims Claims) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return token
	}
	payload, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func compact(header map[string]any, claims Claims, sig []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "." +
		base64.RawURLEncoding.EncodeToString(sig)
}

// AuthenticationConfig returns an AuthenticationConfiguration (apiserver.config.k8s.io/v1, the
// file of kube-apiserver's and Gatehouse's --authentication-config) that trusts the issuer's
// tokens for audience, as Gatehouse's tests configure the proxy and the console: the subject
// prefixed "oidc:" is the user name, the groups claim the groups.
func (i *Issuer) AuthenticationConfig(audience string) string {
	return fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: [%q]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: ""}
`, i.URL, audience, strings.ReplaceAll(strings.TrimSpace(string(i.CAPEM)), "\n", "\n      "))
}
