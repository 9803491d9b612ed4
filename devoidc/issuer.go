package devoidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/serving"
)

// Claims are the claims of a token the Issuer signs.
type Claims map[string]any

// Identity is a named demo identity the issuer logs in and mints tokens for.
type Identity struct {
	// Name is how it is chosen: on the login page, by `gatehouse dev token NAME`, in Mint.
	Name string `json:"name"`
	// Subject is the sub claim. Default: Name.
	Subject string `json:"subject,omitempty"`
	// Email is the email claim. Default: Name@gatehouse.dev.
	Email string `json:"email,omitempty"`
	// Groups is the groups claim.
	Groups []string `json:"groups,omitempty"`
	// Description is shown on the login page.
	Description string `json:"description,omitempty"`
}

func (id Identity) subject() string {
	if id.Subject != "" {
		return id.Subject
	}
	return id.Name
}

func (id Identity) email() string {
	if id.Email != "" {
		return id.Email
	}
	return id.Name + "@gatehouse.dev"
}

// Client is an OAuth 2.0 client the issuer accepts.
type Client struct {
	// ID is the client_id, also the audience of its ID tokens.
	ID string `json:"id"`
	// RedirectURIs are the exact redirect URIs allowed. Loopback URIs (http://127.0.0.1/...,
	// http://localhost/..., http://[::1]/...) match on any port, as RFC 8252 asks for native
	// apps.
	RedirectURIs []string `json:"redirectURIs,omitempty"`
}

// DefaultClientID is the public client of `gatehouse login`: loopback redirects, PKCE.
const DefaultClientID = "gatehouse"

// Options configure an Issuer.
type Options struct {
	// Address is where it listens. Default: 127.0.0.1 on a free port.
	Address string
	// Identifier is the issuer identifier (iss, and "issuer" in discovery) when it is not the
	// URL the issuer serves at, as for an issuer reached through a discoveryURL. Default: the
	// serving URL.
	Identifier string
	// KeyFile holds the signing keys (PEM), created when missing, so that tokens minted from
	// the same file (`gatehouse dev token`) verify. Default: fresh keys in memory.
	KeyFile string
	// Identities are the demo identities of the login page and of Mint.
	Identities []Identity
	// Clients are the OAuth clients. Default: DefaultClientID with loopback redirects.
	Clients []Client
	// Audience is the aud claim of Claims and Mint. Default: "gatehouse".
	Audience string
	// TokenTTL is how long ID tokens live. Default: 1 hour.
	TokenTTL time.Duration
	// RefreshTTL is how long refresh tokens live. Default: 24 hours.
	RefreshTTL time.Duration
	// Clock tells the time. Default: the real clock.
	Clock clock.PassiveClock
	// Logger reports logins. Default: discard.
	Logger *slog.Logger
}

// Issuer is an OpenID Connect issuer for development on loopback HTTPS: discovery, a JWKS,
// RS256 and ES256 signing with key rotation, a login page with the authorization code flow
// (PKCE) and the device flow, refresh tokens, and tokens minted for named demo identities.
type Issuer struct {
	// URL is the issuer identifier: the iss claim of its tokens and the "issuer" of its discovery
	// document. It is ServerURL unless Options.Identifier says otherwise.
	URL string
	// ServerURL is where the issuer serves, e.g. https://127.0.0.1:41234.
	ServerURL string
	// DiscoveryURL serves the discovery document at a path other than the well-known one, as an
	// AuthenticationConfiguration's issuer.discoveryURL may name.
	DiscoveryURL string
	// CAPEM is the PEM certificate the issuer serves with (self-signed); CAFile holds it when
	// the issuer was started with a KeyFile (next to it), else it is empty.
	CAPEM  []byte
	CAFile string
	// Client trusts the issuer's certificate.
	Client *http.Client
	// Audience is the default audience of Claims.
	Audience string

	o            Options
	clock        clock.PassiveClock
	log          *slog.Logger
	srv          *http.Server
	lis          net.Listener
	done         chan struct{}
	jwksRequests atomic.Int64

	mu      sync.Mutex
	keys    []*signingKey // keys[0] signs by default; all are published
	seq     int
	codes   map[string]*authCode
	refresh map[string]*refreshGrant
	devices map[string]*deviceGrant // by device_code
}

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

// Start starts an issuer with an ES256 key and an RS256 key (the default signer).
func Start(o Options) (*Issuer, error) {
	if o.Address == "" {
		o.Address = "127.0.0.1:0"
	}
	if o.Audience == "" {
		o.Audience = "gatehouse"
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.RefreshTTL == 0 {
		o.RefreshTTL = 24 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Clients) == 0 {
		o.Clients = []Client{{ID: DefaultClientID, RedirectURIs: []string{"http://127.0.0.1/callback", "http://localhost/callback"}}}
	}
	i := &Issuer{Audience: o.Audience, o: o, clock: o.Clock, log: o.Logger, done: make(chan struct{}),
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{}, devices: map[string]*deviceGrant{}}
	if o.KeyFile != "" {
		if err := i.loadKeys(o.KeyFile); err != nil {
			return nil, err
		}
	} else {
		if _, err := i.AddKey(jose.ES256); err != nil {
			return nil, err
		}
		if _, err := i.AddKey(jose.RS256); err != nil {
			return nil, err
		}
	}
	lis, err := net.Listen("tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("devoidc: listen on %s: %w", o.Address, err)
	}
	i.lis = lis
	i.ServerURL = "https://" + lis.Addr().String()
	i.DiscoveryURL = i.ServerURL + PathOtherDiscovery
	i.URL = i.ServerURL
	if o.Identifier != "" {
		i.URL = o.Identifier
	}
	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		_ = lis.Close()
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		_ = lis.Close()
		return nil, err
	}
	i.CAPEM = certPEM
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	i.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if o.KeyFile != "" {
		i.CAFile = filepath.Join(filepath.Dir(o.KeyFile), "issuer-ca.crt")
		if err := os.WriteFile(i.CAFile, certPEM, 0o600); err != nil {
			_ = lis.Close()
			return nil, err
		}
	}
	i.srv = &http.Server{Handler: i.routes(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}}
	go func() {
		defer close(i.done)
		if err := i.srv.ServeTLS(lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			i.log.Error("dev OIDC issuer stopped", "err", err)
		}
	}()
	return i, nil
}

// Close stops the issuer.
func (i *Issuer) Close() {
	_ = i.srv.Close()
	<-i.done
}

// JWKSRequests returns how often the JWKS was fetched, to observe caching and rotation.
func (i *Issuer) JWKSRequests() int64 { return i.jwksRequests.Load() }

// Identities returns the demo identities.
func (i *Issuer) Identities() []Identity {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]Identity{}, i.o.Identities...)
}

// SetIdentity adds id to the demo identities of the login page and of Mint, or replaces the
// identity of that name.
func (i *Issuer) SetIdentity(id Identity) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for k := range i.o.Identities {
		if i.o.Identities[k].Name == id.Name {
			i.o.Identities[k] = id
			return
		}
	}
	i.o.Identities = append(i.o.Identities, id)
}

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
	key, err := newKey(alg)
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

// SigningAlgorithms are the algorithms AddKey supports.
var SigningAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func newKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("devoidc: unsupported signing algorithm %s", alg)
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

// PublicKeys returns the published keys, the default signer first.
func (i *Issuer) PublicKeys() []jose.JSONWebKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]jose.JSONWebKey, 0, len(i.keys))
	for _, k := range i.keys {
		out = append(out, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig"})
	}
	return out
}

// Claims returns valid claims for subject: this issuer, the default audience, issued now,
// expiring after the token lifetime. Callers add or override entries.
func (i *Issuer) Claims(subject string) Claims {
	now := i.clock.Now()
	return Claims{
		"iss": i.URL,
		"aud": i.Audience,
		"sub": subject,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(i.o.TokenTTL).Unix(),
	}
}

// identityClaims are the claims of a demo identity's ID token for audience.
func (i *Issuer) identityClaims(id Identity, audience, nonce string) Claims {
	c := i.Claims(id.subject())
	c["aud"] = audience
	c["name"] = id.Name
	c["preferred_username"] = id.Name
	c["email"] = id.email()
	c["email_verified"] = true
	c["groups"] = append([]string{}, id.Groups...)
	// A token ID makes every token distinct: two tokens minted in the same second are two
	// sessions at the proxy, which derives a session from the token.
	c["jti"] = randomToken()
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

// ErrUnknownIdentity is returned for a name that is not one of the demo identities.
var ErrUnknownIdentity = errors.New("devoidc: unknown identity")

// Mint signs an ID token for the demo identity name, for the default audience.
func (i *Issuer) Mint(name string) (string, error) {
	id, ok := i.identity(name)
	if !ok {
		return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownIdentity, name, strings.Join(i.identityNames(), ", "))
	}
	return i.Sign(i.identityClaims(id, i.Audience, ""))
}

func (i *Issuer) identity(name string) (Identity, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, id := range i.o.Identities {
		if id.Name == name {
			return id, true
		}
	}
	return Identity{}, false
}

func (i *Issuer) identityNames() []string {
	var names []string
	for _, id := range i.Identities() {
		names = append(names, id.Name)
	}
	return names
}

// Sign signs claims with the default key, or with the key kid when given.
func (i *Issuer) Sign(claims Claims, kid ...string) (string, error) {
	k, err := i.key(kid...)
	if err != nil {
		return "", err
	}
	return SignWith(k.alg, k.key, k.id, claims)
}

// SignWith signs claims as a JWT with key under the key ID kid.
func SignWith(alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims Claims) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
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

func (i *Issuer) key(kid ...string) (*signingKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.keys) == 0 {
		return nil, errors.New("devoidc: no signing key")
	}
	if len(kid) == 0 {
		return i.keys[0], nil
	}
	for _, k := range i.keys {
		if k.id == kid[0] {
			return k, nil
		}
	}
	return nil, fmt.Errorf("devoidc: no key %q", kid[0])
}

// loadKeys reads the signing keys from file, creating it (0600) with an ES256 and an RS256
// key when it does not exist.
func (i *Issuer) loadKeys(file string) error {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		var out []byte
		for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256} {
			key, err := newKey(alg)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return err
			}
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
		}
		if err := os.WriteFile(file, out, 0o600); err != nil {
			return fmt.Errorf("devoidc: write signing keys: %w", err)
		}
		data = out
	} else if err != nil {
		return fmt.Errorf("devoidc: read signing keys: %w", err)
	}
	keys, err := parseKeys(data)
	if err != nil {
		return err
	}
	i.keys = keys
	return nil
}

// parseKeys reads PEM PKCS#8 signing keys; the last one signs by default. Key IDs are derived
// from the keys (RFC 7638 thumbprints), so every reader of the same file names them alike.
func parseKeys(data []byte) ([]*signingKey, error) {
	var keys []*signingKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devoidc: signing key: %w", err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("devoidc: signing key is not a signer")
		}
		alg := jose.RS256
		if _, ok := k.(*ecdsa.PrivateKey); ok {
			alg = jose.ES256
		}
		thumb, err := (&jose.JSONWebKey{Key: signer.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		keys = append([]*signingKey{{id: fmt.Sprintf("%s-%x", strings.ToLower(string(alg)), thumb[:6]), alg: alg, key: signer}}, keys...)
	}
	if len(keys) == 0 {
		return nil, errors.New("devoidc: no signing key in the key file")
	}
	return keys, nil
}

// MintFromKeyFile signs a token for id with the default key of a key file written by an Issuer
// started with that KeyFile: `gatehouse dev token` uses it while `gatehouse dev` runs.
func MintFromKeyFile(keyFile, issuerURL, audience string, id Identity, ttl time.Duration) (string, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("devoidc: %w", err)
	}
	keys, err := parseKeys(data)
	if err != nil {
		return "", err
	}
	now := time.Now()
	c := Claims{"iss": issuerURL, "aud": audience, "sub": id.subject(), "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "jti": randomToken(),
		"exp": now.Add(ttl).Unix(), "name": id.Name, "preferred_username": id.Name, "email": id.email(), "email_verified": true,
		"groups": append([]string{}, id.Groups...)}
	return SignWith(keys[0].alg, keys[0].key, keys[0].id, c)
}
