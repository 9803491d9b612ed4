package certs

import (
	"context"
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
	"slices"
	"sync"
	"time"

	cmtls "github.com/cert-manager/cert-manager/pkg/server/tls"
	"github.com/cert-manager/cert-manager/pkg/server/tls/authority"
	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// Defaults of Options.
const (
	// DefaultCADuration is how long a CA is valid; it is replaced after two thirds of it.
	DefaultCADuration = 365 * 24 * time.Hour
	// DefaultCertDuration is how long a serving certificate is valid; it is replaced after two
	// thirds of it.
	DefaultCertDuration = 7 * 24 * time.Hour
	// DefaultRotationGrace is how long clients get to load a new CA bundle.
	DefaultRotationGrace = time.Minute
)

var (
	// ErrInvalidOptions is wrapped by every error about Options.
	ErrInvalidOptions = errors.New("certs: invalid options")
	// ErrNotReady is returned by Ready until a serving certificate is available.
	ErrNotReady = errors.New("certs: no serving certificate yet")
)

// Options configure a Source.
type Options struct {
	// SecretNamespace and SecretName name the Secret holding the CA. Required. The Secret must
	// exist (empty is fine: the CA is generated into it); the chart creates it.
	SecretNamespace, SecretName string
	// DNSNames are the names the serving certificate is valid for. Required.
	DNSNames []string
	// CommonName is the CA's subject common name. Default: SecretName.
	CommonName string
	// CADuration is the CA's lifetime. Default: DefaultCADuration. It must exceed CertDuration.
	CADuration time.Duration
	// CertDuration is a serving certificate's lifetime. Default: DefaultCertDuration.
	CertDuration time.Duration
	// RotationGrace is how long clients get to load a changed bundle before a certificate from
	// a new CA is served, and before the previous CA is dropped from the bundle. Default:
	// DefaultRotationGrace.
	RotationGrace time.Duration
	// Publish receives the CA bundle (PEM) clients must trust: at start, and at each step of a
	// rotation. It must return only once the bundle is in place (the webhook configurations
	// updated, a ConfigMap written). Errors are retried with backoff. Required.
	Publish func(ctx context.Context, bundle []byte) error
	// Logger receives the source's and cert-manager's messages. Default: discarded.
	Logger *slog.Logger

	// clock is a test seam for the grace periods. Default: the real clock.
	clock clock.Clock
}

func (o *Options) setDefaults() {
	if o.CommonName == "" {
		o.CommonName = o.SecretName
	}
	if o.CADuration == 0 {
		o.CADuration = DefaultCADuration
	}
	if o.CertDuration == 0 {
		o.CertDuration = DefaultCertDuration
	}
	if o.RotationGrace == 0 {
		o.RotationGrace = DefaultRotationGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
}

// Validate reports missing or inconsistent options.
func (o *Options) Validate() error {
	var errs []error
	if o.SecretNamespace == "" || o.SecretName == "" {
		errs = append(errs, errors.New("the CA's Secret must be named with its namespace"))
	}
	if len(o.DNSNames) == 0 {
		errs = append(errs, errors.New("at least one DNS name is required"))
	}
	if o.CADuration != 0 && o.CADuration <= o.CertDuration {
		errs = append(errs, fmt.Errorf("the CA's lifetime (%s) must exceed the certificates' (%s)", o.CADuration, o.CertDuration))
	}
	if o.CADuration < 0 || o.CertDuration < 0 || o.RotationGrace < 0 {
		errs = append(errs, errors.New("durations must be positive"))
	}
	if o.Publish == nil {
		errs = append(errs, errors.New("a Publish function is required: clients must learn the CA"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}

// Source serves a certificate signed by a CA it keeps in a Secret. It is a controller-runtime
// Runnable: Start runs it until the context ends.
type Source struct {
	o         Options
	authority *orderedAuthority
	dynamic   *cmtls.DynamicSource
}

// New returns a Source reaching kube-apiserver with cfg.
func New(cfg *rest.Config, o Options) (*Source, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	a := &orderedAuthority{
		inner: &authority.DynamicAuthority{
			SecretNamespace: o.SecretNamespace,
			SecretName:      o.SecretName,
			RESTConfig:      cfg,
			CommonName:      o.CommonName,
			CADuration:      o.CADuration,
			LeafDuration:    o.CertDuration,
		},
		secrets: cs.CoreV1().Secrets(o.SecretNamespace),
		o:       &o,
	}
	return &Source{o: o, authority: a, dynamic: &cmtls.DynamicSource{DNSNames: o.DNSNames, Authority: a}}, nil
}

// Start maintains the CA and the serving certificate until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	ctx = logr.NewContext(ctx, logr.FromSlogHandler(s.o.Logger.Handler()))
	return s.dynamic.Start(ctx)
}

// NeedLeaderElection reports false: every replica serves.
func (s *Source) NeedLeaderElection() bool { return false }

// GetCertificate returns the current serving certificate, for tls.Config.GetCertificate.
func (s *Source) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.dynamic.GetCertificate(hello)
}

// Ready returns nil once a serving certificate is available.
func (s *Source) Ready(context.Context) error {
	if !s.dynamic.Healthy() {
		return ErrNotReady
	}
	return nil
}

// Bundle returns the CA bundle last published (PEM), or nil before the first.
func (s *Source) Bundle() []byte { return s.authority.currentBundle() }

// orderedAuthority is the cert-manager Authority a DynamicSource signs with: cert-manager's
// DynamicAuthority, except that a new CA signs only once clients have had RotationGrace to
// learn it, and rotation notifications reach the DynamicSource only then.
type orderedAuthority struct {
	inner   *authority.DynamicAuthority
	secrets typedcorev1.SecretInterface
	o       *Options

	mu sync.Mutex
	// trusted are the CAs whose certificates may be served, newest first.
	trusted []*x509.Certificate
	bundle  []byte
	watches []chan<- struct{}
}

var _ cmtls.Authority = (*orderedAuthority)(nil)

func (a *orderedAuthority) Run(ctx context.Context) error {
	changed := make(chan struct{}, 1)
	a.inner.WatchRotation(changed)
	defer a.inner.StopWatchingRotation(changed)
	grp, ctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return a.inner.Run(ctx) })
	grp.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
			// Retried until it succeeds: a lost notification would leave a new CA unused.
			backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: time.Minute}
			_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
				if err := a.adopt(ctx); err != nil {
					if ctx.Err() == nil {
						a.o.Logger.Error("could not adopt the CA; retrying", "secret", a.o.SecretNamespace+"/"+a.o.SecretName, "err", err)
					}
					return false, nil
				}
				return true, nil
			})
		}
	})
	return grp.Wait()
}

// adopt makes the CA now in the Secret the one that signs, in the order the package
// documentation describes.
func (a *orderedAuthority) adopt(ctx context.Context) error {
	ca, err := a.currentCA(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	previous := slices.Clone(a.trusted)
	a.mu.Unlock()
	if len(previous) > 0 && previous[0].Equal(ca) {
		if len(previous) == 1 {
			return nil
		}
		// A rotation whose last step failed: its grace periods have passed.
		if err := a.publish(ctx, ca); err != nil {
			return err
		}
		a.trust(false, ca)
		return nil
	}
	if len(previous) == 0 {
		// Nothing was served yet: clients need the CA before the first certificate, no more.
		if err := a.publish(ctx, ca); err != nil {
			return err
		}
		a.trust(true, ca)
		a.o.Logger.Info("serving certificates from the CA", "secret", a.o.SecretName, "notAfter", ca.NotAfter)
		return nil
	}
	old := previous[0]
	if err := a.publish(ctx, ca, old); err != nil {
		return err
	}
	a.o.Logger.Info("a new CA is published beside the previous one; serving certificates from it after the grace period",
		"secret", a.o.SecretName, "grace", a.o.RotationGrace)
	if err := a.sleep(ctx); err != nil {
		return err
	}
	a.trust(true, ca, old)
	if err := a.sleep(ctx); err != nil {
		return err
	}
	if err := a.publish(ctx, ca); err != nil {
		return err
	}
	a.trust(false, ca)
	a.o.Logger.Info("the previous CA is no longer published", "secret", a.o.SecretName)
	return nil
}

// sleep waits for the grace period, or until ctx ends.
func (a *orderedAuthority) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-a.o.clock.After(a.o.RotationGrace):
		return nil
	}
}

// publish hands the bundle of cas to Options.Publish and remembers it.
func (a *orderedAuthority) publish(ctx context.Context, cas ...*x509.Certificate) error {
	var bundle []byte
	for _, c := range cas {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := a.o.Publish(ctx, bundle); err != nil {
		return fmt.Errorf("publish the CA bundle: %w", err)
	}
	a.mu.Lock()
	a.bundle = bundle
	a.mu.Unlock()
	return nil
}

// trust lets cas sign serving certificates; with renew, it tells the DynamicSource to renew its
// certificate (from the newest CA).
func (a *orderedAuthority) trust(renew bool, cas ...*x509.Certificate) {
	a.mu.Lock()
	a.trusted = cas
	watches := slices.Clone(a.watches)
	a.mu.Unlock()
	if !renew {
		return
	}
	for _, ch := range watches {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (a *orderedAuthority) currentBundle() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.bundle)
}

// currentCA reads the CA from the Secret and checks that the DynamicAuthority signs with it (a
// later change is announced by another notification).
func (a *orderedAuthority) currentCA(ctx context.Context) (*x509.Certificate, error) {
	s, err := a.secrets.Get(ctx, a.o.SecretName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the CA: %w", err)
	}
	block, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	if block == nil {
		return nil, errors.New("the CA Secret holds no certificate yet")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := a.inner.Sign(&x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "probe"},
		PublicKey:    key.Public(),
	})
	if err != nil {
		return nil, fmt.Errorf("sign with the CA: %w", err)
	}
	if err := probe.CheckSignatureFrom(ca); err != nil {
		return nil, errors.New("the CA changed again while it was read")
	}
	return ca, nil
}

// Sign signs template with the current CA if clients trust it yet; otherwise it answers
// authority.ErrCertificateNotAvailable, on which the DynamicSource keeps its certificate and
// retries.
func (a *orderedAuthority) Sign(template *x509.Certificate) (*x509.Certificate, error) {
	cert, err := a.inner.Sign(template)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ca := range a.trusted {
		if cert.CheckSignatureFrom(ca) == nil {
			return cert, nil
		}
	}
	return nil, authority.ErrCertificateNotAvailable
}

func (a *orderedAuthority) WatchRotation(ch chan<- struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watches = append(a.watches, ch)
}

func (a *orderedAuthority) StopWatchingRotation(ch chan<- struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watches = slices.DeleteFunc(a.watches, func(c chan<- struct{}) bool { return c == ch })
}
