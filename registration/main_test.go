package registration_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// bed holds what the tests of this package share: kube-apiserver and etcd with Gatehouse's
// namespace and the webhook's RBAC, CA Secret and (empty) configurations applied from the plain
// manifests (rendered from the chart), and clients acting as the webhook's service account.
var bed struct {
	root string
	kube *testbed.Kube
	// webhook acts as the webhook's service account, with exactly the chart's RBAC.
	webhook   *rest.Config
	webhookCS kubernetes.Interface
	log       *slog.Logger
}

const (
	namespace     = "gatehouse"
	caSecret      = "gatehouse-webhook-ca"
	validatingCfg = "gatehouse-validating"
	mutatingCfg   = "gatehouse-mutating"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "registration tests:", err)
		return 1
	}
	bed.log = slog.New(slog.DiscardHandler)
	if os.Getenv("GATEHOUSE_TESTBED_VERBOSE") != "" {
		bed.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var err error
	if bed.root, err = testbed.RepoRoot(); err != nil {
		return fail(err)
	}
	if bed.kube, err = testbed.StartKube(testbed.KubeOptions{}); err != nil {
		return fail(err)
	}
	defer bed.kube.Stop()
	m2 := func(p string) string { return filepath.Join(bed.root, "manifests", p) }
	if _, err := bed.kube.KubectlApply(m2("namespace.yaml"), m2("webhook/rbac.yaml"), m2("webhook/certificates.yaml"),
		m2("webhook/configurations.yaml"), m2("proxy/rbac.yaml"), m2("proxy/certificates.yaml")); err != nil {
		return fail(err)
	}
	if bed.webhook, err = bed.kube.AddUser("system:serviceaccount:"+namespace+":gatehouse-webhook", "system:serviceaccounts", "system:serviceaccounts:"+namespace); err != nil {
		return fail(err)
	}
	if bed.webhookCS, err = kubernetes.NewForConfig(bed.webhook); err != nil {
		return fail(err)
	}
	return m.Run()
}

// webhookServer is a stand-in for `gatehouse webhook`: it answers every AdmissionReview with
// allowed, counts them, and records the certificate it served at each TLS handshake, one per
// call.
type webhookServer struct {
	url      string
	listener net.Listener
	srv      *http.Server
	reviews  atomic.Int64

	mu         sync.Mutex
	handshakes []*x509.Certificate // the leaf served at each handshake
}

// newWebhookServer listens on a free loopback port; serve starts answering.
func newWebhookServer(t *testing.T, getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *webhookServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &webhookServer{listener: l, url: fmt.Sprintf("https://localhost:%d", l.Addr().(*net.TCPAddr).Port)}
	s.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           http.HandlerFunc(s.serveReview),
		// HTTP/1.1 only, and every response closes its connection (serveReview): each call is
		// a new TLS handshake, checked against the CA bundle kube-apiserver holds at that moment.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := getCertificate(h)
			if err == nil {
				leaf, perr := x509.ParseCertificate(c.Certificate[0])
				if perr == nil {
					s.mu.Lock()
					s.handshakes = append(s.handshakes, leaf)
					s.mu.Unlock()
				}
			}
			return c, err
		}},
	}
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func (s *webhookServer) serve() {
	go func() { _ = s.srv.ServeTLS(s.listener, "", "") }()
}

func (s *webhookServer) serveReview(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	s.reviews.Add(1)
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	_ = json.NewEncoder(w).Encode(review)
}

// leaves returns the leaves served so far.
func (s *webhookServer) leaves() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*x509.Certificate(nil), s.handshakes...)
}

// privilegedCall makes a request the privileged webhook (failurePolicy Fail) receives: a
// dry-run Secret creation by an administrator in namespace ns.
func privilegedCall(ctx context.Context, ns string) error {
	_, err := bed.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	return testbed.WaitFor(ctx, timeout, cond)
}

// parseBundle returns the certificates of a PEM bundle.
func parseBundle(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in the bundle")
	}
	return certs, nil
}
