package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// PKI is a certificate authority with a serving certificate and a client certificate, written
// as PEM files: mutual TLS as deployed, between kube-apiserver's audit webhook backend (the
// client) and the enricher's intake (the server).
type PKI struct {
	// CAFile is the CA certificate; the server trusts client certificates it signed, the client
	// trusts the server's.
	CAFile string
	// ServerCertFile and ServerKeyFile are the serving certificate (for 127.0.0.1 and
	// localhost) and its key. It also allows client authentication, as the servers of a NATS
	// cluster need: each dials the others with it.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are the client certificate (CN kube-apiserver-audit) and
	// its key.
	ClientCertFile, ClientKeyFile string
	// Pool holds the CA certificate.
	Pool *x509.CertPool
	// Server and Client are the two certificates with their keys.
	Server, Client tls.Certificate
}

// NewPKI creates a CA valid for a day and issues the serving and the client certificate, into
// dir.
func NewPKI(dir string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{Pool: x509.NewCertPool(), CAFile: filepath.Join(dir, "ca.crt")}
	p.Pool.AddCert(ca)
	if err := writePEM(p.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	issue := func(serial int64, cn string, usage []x509.ExtKeyUsage, certFile, keyFile string, ips []net.IP, names []string) (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: ips, DNSNames: names,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
	}
	p.ServerCertFile, p.ServerKeyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if p.Server, err = issue(2, "gatehouse-enricher", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, p.ServerCertFile, p.ServerKeyFile,
		[]net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}); err != nil {
		return nil, err
	}
	p.ClientCertFile, p.ClientKeyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if p.Client, err = issue(3, "kube-apiserver-audit", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, p.ClientCertFile, p.ClientKeyFile, nil, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// ServerTLS returns a server configuration that requires a client certificate signed by the CA.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Server}, ClientCAs: p.Pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// ClientTLS returns a client configuration that presents the client certificate and trusts the
// CA.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Client}, RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
}

// WriteAuditWebhookKubeconfig writes the audit webhook configuration kube-apiserver reads
// (--audit-webhook-config-file): the intake's URL, the CA that signed its certificate, and the
// client certificate kube-apiserver presents.
func (p *PKI) WriteAuditWebhookKubeconfig(path, url string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["gatehouse-enricher"] = &clientcmdapi.Cluster{Server: url, CertificateAuthority: p.CAFile}
	kc.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{ClientCertificate: p.ClientCertFile, ClientKey: p.ClientKeyFile}
	kc.Contexts["gatehouse-enricher"] = &clientcmdapi.Context{Cluster: "gatehouse-enricher", AuthInfo: "kube-apiserver"}
	kc.CurrentContext = "gatehouse-enricher"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("testbed: write audit webhook kubeconfig: %w", err)
	}
	return nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
