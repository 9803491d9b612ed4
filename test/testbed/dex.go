package testbed

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/serving"
)

// DexUser is a user of Dex's password database.
type DexUser struct {
	// Email is what the user types to log in, and the email claim.
	Email    string
	Password string
	Groups   []string
}

// DexClient is an OAuth 2.0 client registered with Dex.
type DexClient struct {
	ID, Secret   string
	RedirectURIs []string
}

// Dex is a real OpenID Connect provider (github.com/dexidp/dex, built by scripts/testbed.sh)
// serving HTTPS on loopback, with static users and clients and its memory storage.
type Dex struct {
	// Issuer is the issuer URL; CAPEM the certificate its server presents.
	Issuer string
	CAPEM  []byte
	// Client trusts Dex's certificate.
	Client *http.Client

	p   *Process
	dir string
}

// DexBinary returns the path of the dex binary: $GATEHOUSE_DEX, else what scripts/testbed.sh
// reports for the cache.
func DexBinary() (string, error) {
	p := os.Getenv("GATEHOUSE_DEX")
	if p == "" {
		env, err := testbedEnv()
		if err != nil {
			return "", err
		}
		p = env["GATEHOUSE_DEX"]
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: dex not found at %q; run 'scripts/testbed.sh dex' (or make testbed) to build and cache it", ErrMissing, p)
	}
	return p, nil
}

// StartDex starts Dex with users and clients and waits until it serves its discovery document.
// The process dies with the test binary.
func StartDex(users []DexUser, clients []DexClient) (*Dex, error) {
	bin, err := DexBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-dex-")
	if err != nil {
		return nil, err
	}
	d := &Dex{dir: dir}
	fail := func(err error) (*Dex, error) {
		d.Stop()
		return nil, fmt.Errorf("testbed: dex: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	d.Issuer = "https://" + addr + "/dex"
	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	if err != nil {
		return fail(err)
	}
	d.CAPEM = certPEM
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fail(err)
	}
	type staticPassword struct {
		Email    string   `json:"email"`
		Hash     string   `json:"hash"`
		Username string   `json:"username"`
		UserID   string   `json:"userID"`
		Groups   []string `json:"groups,omitempty"`
	}
	var passwords []staticPassword
	for n, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost) // Dex refuses cheaper hashes
		if err != nil {
			return fail(err)
		}
		name, _, _ := strings.Cut(u.Email, "@")
		passwords = append(passwords, staticPassword{Email: u.Email, Hash: string(hash), Username: name,
			UserID: fmt.Sprintf("00000000-0000-0000-0000-%012d", n+1), Groups: u.Groups})
	}
	type staticClient struct {
		ID           string   `json:"id"`
		Name         string   `json:"name"`
		Secret       string   `json:"secret,omitempty"`
		Public       bool     `json:"public,omitempty"`
		RedirectURIs []string `json:"redirectURIs"`
	}
	var cs []staticClient
	for _, c := range clients {
		cs = append(cs, staticClient{ID: c.ID, Name: c.ID, Secret: c.Secret, Public: c.Secret == "", RedirectURIs: c.RedirectURIs})
	}
	cfg, err := yaml.Marshal(map[string]any{
		"issuer":  d.Issuer,
		"storage": map[string]any{"type": "memory"},
		"web":     map[string]any{"https": addr, "tlsCert": certFile, "tlsKey": keyFile},
		"logger":  map[string]any{"level": "info", "format": "text"},
		"oauth2": map[string]any{
			"skipApprovalScreen": true,
			"responseTypes":      []string{"code"},
		},
		"expiry":           map[string]any{"idTokens": "1h"},
		"enablePasswordDB": true,
		"staticPasswords":  passwords,
		"staticClients":    cs,
	})
	if err != nil {
		return fail(err)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		return fail(err)
	}
	if d.p, err = startProcess("dex", bin, "", "serve", cfgFile); err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	d.Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if err := d.p.WaitReady(d.Issuer+"/.well-known/openid-configuration", 30*time.Second); err != nil {
		return fail(err)
	}
	return d, nil
}

// Output returns what Dex logged.
func (d *Dex) Output() string {
	if d.p == nil {
		return ""
	}
	return d.p.Output()
}

// Stop ends Dex and removes its files.
func (d *Dex) Stop() {
	if d.p != nil {
		_ = d.p.Kill()
	}
	_ = os.RemoveAll(d.dir)
}
