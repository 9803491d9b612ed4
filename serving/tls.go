package serving

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// TLSOptions says where a server's certificate comes from.
type TLSOptions struct {
	// CertFile and KeyFile are a PEM certificate (chain) and key. Both files are watched and
	// reloaded when they change, so cert-manager can rotate them without a restart.
	CertFile, KeyFile string
	// SelfSigned allows serving with a self-signed certificate generated at start when no files
	// are given. For development only.
	SelfSigned bool
}

// AddFlags registers the options as flags named after kube-apiserver's.
func (o *TLSOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CertFile, "tls-cert-file", o.CertFile, "File containing the x509 serving certificate (chain), PEM. Reloaded when it changes.")
	fs.StringVar(&o.KeyFile, "tls-private-key-file", o.KeyFile, "File containing the x509 private key matching --tls-cert-file, PEM.")
}

// Validate reports inconsistent options.
func (o *TLSOptions) Validate() error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("--tls-cert-file and --tls-private-key-file go together")
	}
	if o.CertFile == "" && !o.SelfSigned {
		return errors.New("a serving certificate is required: set --tls-cert-file and --tls-private-key-file (or use development mode)")
	}
	return nil
}

// Config returns a TLS configuration for the options. With files, it also returns the
// certwatcher that reloads them: a controller-runtime Runnable, to be run for as long as the
// configuration is used. hosts are the names a self-signed certificate is valid for.
func (o *TLSOptions) Config(log *slog.Logger, hosts ...string) (*tls.Config, manager.Runnable, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if o.CertFile != "" {
		w, err := certwatcher.New(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load serving certificate: %w", err)
		}
		cfg.GetCertificate = w.GetCertificate
		return cfg, w, nil
	}
	cert, err := SelfSignedCertificate(hosts...)
	if err != nil {
		return nil, nil, err
	}
	log.Warn("serving with a self-signed certificate (development only)", "hosts", hosts)
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil, nil
}

// SelfSignedCertificate returns a certificate for hosts (names or IP addresses), valid for a
// year, signed by its own key. Default hosts: localhost and 127.0.0.1.
func SelfSignedCertificate(hosts ...string) (tls.Certificate, error) {
	certPEM, keyPEM, err := SelfSignedPEM(hosts...)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// SelfSignedPEM is SelfSignedCertificate as PEM-encoded certificate and key.
func SelfSignedPEM(hosts ...string) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"Gatehouse development"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
