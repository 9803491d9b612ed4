package testbed

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Claims are the claims of a token the Issuer signs.
type Claims map[string]any

// Issuer is an OpenID Connect issuer on loopback HTTPS: it serves discovery and a JWKS and signs
// tokens with keys it can rotate (RS256 and ES256 at first; AddKey adds the other JOSE
// algorithms). It also makes deliberately bad tokens.
type Issuer struct {
	// URL is the issuer identifier: the iss claim of its tokens and the "issuer" of its discovery
	// document. It is ServerURL unless IssuerOptions.Identifier says otherwise.
	URL string
	// ServerURL is where the issuer serves, e.g. https://127.0.0.1:41234: its discovery document
	// at /.well-known/openid-configuration and at DiscoveryURL, its key set at /keys.
	ServerURL string
	// DiscoveryURL serves the discovery document at a path other than the well-known one, as an
	// AuthenticationConfiguration's issuer.discoveryURL may name.
	DiscoveryURL string
	// CAFile is a PEM file with the CA of the issuer's serving certificate; CAPEM its content.
	CAFile string
	CAPEM  []byte
	// Client trusts the issuer's certificate.
	Client *http.Client
	// Audience is the default audience of Claims: "gatehouse".
	Audience string

	srv          *httptest.Server
	jwksRequests atomic.Int64

	mu   sync.Mutex
	keys []*signingKey // keys[0] signs by default; all are published
	seq  int

	login loginState
}

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
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
	i := &Issuer{Audience: "gatehouse"}
	if _, err := i.AddKey(jose.ES256); err != nil {
		return nil, err
	}
	if _, err := i.AddKey(jose.RS256); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /other/discovery", i.serveDiscovery)
	mux.HandleFunc("GET /keys", i.serveJWKS)
	mux.HandleFunc("GET /auth", i.serveAuthorize)
	mux.HandleFunc("POST /token", i.serveToken)
	i.srv = httptest.NewTLSServer(mux)
	i.ServerURL = i.srv.URL
	i.DiscoveryURL = i.srv.URL + "/other/discovery"
	i.URL = i.srv.URL
	if o.Identifier != "" {
		i.URL = o.Identifier
	}
	i.Client = i.srv.Client()
	i.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.srv.Certificate().Raw})
	dir, err := os.MkdirTemp("", "gatehouse-oidc-")
	if err != nil {
		i.srv.Close()
		return nil, err
	}
	i.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(i.CAFile, i.CAPEM, 0o600); err != nil {
		i.srv.Close()
		return nil, err
	}
	return i, nil
}

// Close stops the issuer.
func (i *Issuer) Close() {
	i.srv.Close()
	_ = os.RemoveAll(filepath.Dir(i.CAFile))
}

// JWKSRequests returns how often the JWKS was fetched, to observe caching and rotation.
func (i *Issuer) JWKSRequests() int64 { return i.jwksRequests.Load() }

// AddKey creates a key for alg (RS, PS or ES with 256, 384 or 512, or EdDSA), publishes it and
// makes it the default signer: a key rotation. It returns the key ID.
func (i *Issuer) AddKey(alg jose.SignatureAlgorithm) (string, error) {
	return i.addKey(alg, true)
}

// PublishKey is AddKey without making the key the default signer: tokens name it with Sign's kid.
func (i *Issuer) PublishKey(alg jose.SignatureAlgorithm) (string, error) {
	return i.addKey(alg, false)
}

func (i *Issuer) addKey(alg jose.SignatureAlgorithm, signer bool) (string, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return "", fmt.Errorf("testbed: unsupported signing algorithm %s", alg)
	}
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seq++
	k := &signingKey{id: fmt.Sprintf("%s-%d", strings.ToLower(string(alg)), i.seq), alg: alg, key: key}
	if signer || len(i.keys) == 0 {
		i.keys = append([]*signingKey{k}, i.keys...)
	} else {
		i.keys = append(i.keys, k)
	}
	return k.id, nil
}

// RemoveKey stops publishing a key: tokens it signed no longer verify once verifiers refresh.
func (i *Issuer) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, k := range i.keys {
		if k.id == kid {
			i.keys = append(i.keys[:n], i.keys[n+1:]...)
			return
		}
	}
}

// Claims returns valid claims for subject: this issuer, the default audience, issued now,
// expiring in an hour. Tests add or override entries.
func (i *Issuer) Claims(subject string) Claims {
	now := time.Now()
	return Claims{
		"iss": i.URL,
		"aud": i.Audience,
		"sub": subject,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// Sign signs claims with the default key, or with the key kid when given.
func (i *Issuer) Sign(claims Claims, kid ...string) (string, error) {
	k, err := i.key(kid...)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.id))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
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

func (i *Issuer) key(kid ...string) (*signingKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(kid) == 0 {
		return i.keys[0], nil
	}
	for _, k := range i.keys {
		if k.id == kid[0] {
			return k, nil
		}
	}
	return nil, fmt.Errorf("testbed: no key %q", kid[0])
}

// SignUnknownKey signs claims with a fresh RS256 key that the JWKS does not publish.
func (i *Issuer) SignUnknownKey(claims Claims) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), "unknown-key"))
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// SignNone returns an unsigned token with "alg": "none".
func (i *Issuer) SignNone(claims Claims) string {
	return compact(map[string]any{"alg": "none", "typ": "JWT"}, claims, nil)
}

// SignHS256WithPublicKey returns a token MACed with HS256 using the PEM encoding of the default
// RSA public key as the secret: the algorithm-confusion attack on verifiers that take the
// algorithm from the token.
func (i *Issuer) SignHS256WithPublicKey(claims Claims) (string, error) {
	i.mu.Lock()
	var rsaKey *signingKey
	for _, k := range i.keys {
		if k.alg == jose.RS256 {
			rsaKey = k
			break
		}
	}
	i.mu.Unlock()
	if rsaKey == nil {
		return "", fmt.Errorf("testbed: no RS256 key")
	}
	der, err := x509.MarshalPKIXPublicKey(rsaKey.key.Public())
	if err != nil {
		return "", err
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	header := map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaKey.id}
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

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.ServerURL + "/keys",
		"authorization_endpoint":                i.ServerURL + "/auth",
		"token_endpoint":                        i.ServerURL + "/token",
		"response_types_supported":              []string{"code", "id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksRequests.Add(1)
	i.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig"})
	}
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}
