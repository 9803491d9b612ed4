package registration_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gatehouse-dev/gatehouse/certs"
)

// TestSelfManagedCertificateInConfigMap runs the proxy's self-managed certificate as the chart
// configures it (flags, RBAC, the empty Secret and ConfigMap): the CA bundle is published in the
// ConfigMap, and a client trusting that bundle reaches the proxy by its Service name, and only
// by it.
func TestSelfManagedCertificateInConfigMap(t *testing.T) {
	ctx := t.Context()
	proxy, err := bed.kube.AddUser("system:serviceaccount:"+namespace+":gatehouse-proxy", "system:serviceaccounts", "system:serviceaccounts:"+namespace)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(proxy)
	require.NoError(t, err)
	const name = "gatehouse-proxy.gatehouse.svc"
	flags := certs.Flags{Secret: namespace + "/gatehouse-proxy-ca", DNSNames: []string{name}, CAConfigMap: namespace + "/gatehouse-proxy-ca",
		CADuration: certs.DefaultCADuration, CertDuration: certs.DefaultCertDuration}
	opts, err := flags.Options(cs, bed.log)
	require.NoError(t, err)
	src, err := certs.New(proxy, opts)
	require.NoError(t, err)
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	wg.Go(func() { assert.NoError(t, src.Start(runCtx)) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	var bundle []byte
	require.NoError(t, waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		cm, err := bed.kube.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, "gatehouse-proxy-ca", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[certs.BundleKey] == "" {
			return errors.New("no bundle published yet")
		}
		bundle = []byte(cm.Data[certs.BundleKey])
		return src.Ready(ctx)
	}))
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(bundle))

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: src.GetCertificate})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	dial := func(serverName string, roots *x509.CertPool) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12})
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	require.NoError(t, dial(name, pool), "the published bundle verifies the proxy")
	assert.Error(t, dial("kubernetes.default.svc", pool), "the certificate names the proxy, nothing else")
	assert.Error(t, dial(name, x509.NewCertPool()), "only the published CA signs it")
}
