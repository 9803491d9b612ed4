package registration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// FieldManager is the server-side apply field manager of the registered configurations.
const FieldManager = "gatehouse-webhook"

// Defaults of Options.
const (
	DefaultResync       = time.Minute
	DefaultProbeTimeout = 5 * time.Second
)

var (
	// ErrInvalidOptions is wrapped by every error about Options.
	ErrInvalidOptions = errors.New("registration: invalid options")
	// ErrNoBundle is returned by a probe or an apply before any CA bundle is known.
	ErrNoBundle = errors.New("registration: no CA bundle yet")
	// ErrDeleted is returned for a configuration that does not exist: it is never created.
	ErrDeleted = errors.New("registration: the webhook configuration does not exist and is not created")
)

// Options configure a Registrar.
type Options struct {
	// Validating and Mutating are the configurations to register, as Load reads them. At least
	// one configuration is required.
	Validating []admissionregistrationv1.ValidatingWebhookConfiguration
	Mutating   []admissionregistrationv1.MutatingWebhookConfiguration
	// URL, when set, replaces each webhook's service reference by URL followed by the service's
	// path, for a webhook that runs outside the cluster (development, tests). The probe then
	// calls that URL.
	URL string
	// CABundleFile, when set, is a PEM file whose content is the CA bundle (the ca.crt of a
	// cert-manager Secret); it is read at start and at every resync. Otherwise the bundle
	// comes from SetCABundle.
	CABundleFile string
	// Ready reports whether the webhook can decide; registration waits for it. Default: ready.
	Ready func(context.Context) error
	// Resync is how often the configurations are applied again. Default: DefaultResync.
	Resync time.Duration
	// ProbeTimeout bounds one probe of the webhook. Default: DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// Logger receives progress and errors. Default: discarded.
	Logger *slog.Logger

	// clock is a test seam for the resync ticker. Default: the real clock.
	clock clock.WithTicker
}

func (o *Options) setDefaults() {
	if o.Ready == nil {
		o.Ready = func(context.Context) error { return nil }
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = DefaultProbeTimeout
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
	if len(o.Validating)+len(o.Mutating) == 0 {
		errs = append(errs, errors.New("no webhook configuration to register"))
	}
	if o.URL != "" {
		u, err := url.Parse(o.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("URL must be https://host[:port], not %q", o.URL))
		}
	}
	if o.Resync < 0 || o.ProbeTimeout < 0 {
		errs = append(errs, errors.New("durations must be positive"))
	}
	for _, c := range o.configs() {
		for _, cc := range c.clientConfigs {
			if cc.Service == nil && cc.URL == nil {
				errs = append(errs, fmt.Errorf("%s: a webhook names neither a service nor a URL", c.name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}

// Registrar applies the webhook configurations once the webhook answers, then keeps them and
// their CA bundle current. It is a controller-runtime Runnable; every replica runs one.
type Registrar struct {
	cs kubernetes.Interface
	o  Options

	// mu serialises applies and guards bundle.
	mu         sync.Mutex
	bundle     []byte
	haveBundle chan struct{}
	registered atomic.Bool
}

// New returns a Registrar writing through cs.
func New(cs kubernetes.Interface, o Options) (*Registrar, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	return &Registrar{cs: cs, o: o, haveBundle: make(chan struct{})}, nil
}

// NeedLeaderElection reports false: every replica keeps the configurations current, so that
// one being down never leaves them stale.
func (r *Registrar) NeedLeaderElection() bool { return false }

// Registered reports whether the configurations have been applied.
func (r *Registrar) Registered() bool { return r.registered.Load() }

// SetCABundle sets the CA bundle (PEM) the configurations carry. Once they are registered, it
// returns only after they were applied with it.
func (r *Registrar) SetCABundle(ctx context.Context, bundle []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setBundleLocked(ctx, bundle)
}

func (r *Registrar) setBundleLocked(ctx context.Context, bundle []byte) error {
	if len(bundle) == 0 {
		return fmt.Errorf("%w: empty", ErrNoBundle)
	}
	if _, err := certPool(bundle); err != nil {
		return err
	}
	changed := !bytes.Equal(r.bundle, bundle)
	r.bundle = bytes.Clone(bundle)
	select {
	case <-r.haveBundle:
	default:
		close(r.haveBundle)
	}
	if !changed || !r.registered.Load() {
		return nil
	}
	return r.applyLocked(ctx)
}

// Start waits for a CA bundle, for the webhook to be ready and to answer at the address
// kube-apiserver will call, registers the configurations, and re-applies them every Resync
// until ctx ends.
func (r *Registrar) Start(ctx context.Context) error {
	log := r.o.Logger
	if r.o.CABundleFile != "" {
		// Retried below until the file is there: a mounted Secret can appear late.
		_ = r.readBundleFile(ctx)
	}
	backoff := func() wait.Backoff {
		return wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.1, Steps: 1 << 30, Cap: 10 * time.Second}
	}
	var lastReason string
	err := wait.ExponentialBackoffWithContext(ctx, backoff(), func(ctx context.Context) (bool, error) {
		reason := ""
		if r.o.CABundleFile != "" {
			if err := r.readBundleFile(ctx); err != nil {
				reason = err.Error()
			}
		}
		if reason == "" {
			if err := r.o.Ready(ctx); err != nil {
				reason = "the webhook is not ready: " + err.Error()
			} else if err := r.Probe(ctx); err != nil {
				reason = "the webhook does not answer yet: " + err.Error()
			}
		}
		if reason != "" && reason != lastReason {
			log.Info("waiting to register the webhook configurations", "reason", reason)
		}
		lastReason = reason
		return reason == "", nil
	})
	if err != nil {
		return nil // ctx ended
	}
	err = wait.ExponentialBackoffWithContext(ctx, backoff(), func(ctx context.Context) (bool, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.applyLocked(ctx); err != nil {
			log.Error("registering the webhook configurations failed; retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil
	}
	r.registered.Store(true)
	log.Info("registered the webhook configurations", "configurations", r.names())

	ticker := r.o.clock.NewTicker(r.o.Resync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		if r.o.CABundleFile != "" {
			if err := r.readBundleFile(ctx); err != nil {
				log.Error("reading the CA bundle failed", "file", r.o.CABundleFile, "err", err)
			}
		}
		r.mu.Lock()
		err := r.applyLocked(ctx)
		r.mu.Unlock()
		if err != nil {
			log.Error("re-applying the webhook configurations failed", "err", err)
		}
	}
}

func (r *Registrar) readBundleFile(ctx context.Context) error {
	b, err := os.ReadFile(r.o.CABundleFile)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setBundleLocked(ctx, b)
}

// Probe calls every address the configurations send requests to, as kube-apiserver will: over
// TLS verified with the CA bundle for the name kube-apiserver checks. Any HTTP answer counts.
func (r *Registrar) Probe(ctx context.Context) error {
	r.mu.Lock()
	bundle := r.bundle
	r.mu.Unlock()
	if len(bundle) == 0 {
		return ErrNoBundle
	}
	pool, err := certPool(bundle)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range r.o.configs() {
		for _, cc := range c.clientConfigs {
			target, serverName := r.endpoint(cc)
			if seen[target] {
				continue
			}
			seen[target] = true
			if err := r.probe(ctx, target, serverName, pool); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Registrar) probe(ctx context.Context, target, serverName string, pool *x509.CertPool) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.ProbeTimeout)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	return resp.Body.Close()
}

// endpoint returns the URL kube-apiserver calls for cc, and the name it verifies.
func (r *Registrar) endpoint(cc admissionregistrationv1.WebhookClientConfig) (target, serverName string) {
	cc = r.clientConfig(cc)
	if cc.URL != nil {
		u, _ := url.Parse(*cc.URL)
		return *cc.URL, u.Hostname()
	}
	host := cc.Service.Name + "." + cc.Service.Namespace + ".svc"
	port := int32(443)
	if cc.Service.Port != nil {
		port = *cc.Service.Port
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + ptr.Deref(cc.Service.Path, "/"), host
}

// clientConfig returns cc as registered: pointed at URL when set, with the CA bundle.
func (r *Registrar) clientConfig(cc admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
	cc = *cc.DeepCopy()
	if r.o.URL != "" && cc.Service != nil {
		cc.URL = ptr.To(strings.TrimSuffix(r.o.URL, "/") + ptr.Deref(cc.Service.Path, "/"))
		cc.Service = nil
	}
	cc.CABundle = bytes.Clone(r.bundle)
	return cc
}

// applyLocked applies every configuration with the current bundle. r.mu is held.
func (r *Registrar) applyLocked(ctx context.Context) error {
	if len(r.bundle) == 0 {
		return ErrNoBundle
	}
	var errs []error
	for _, c := range r.o.Validating {
		obj := c.DeepCopy()
		obj.TypeMeta = metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingWebhookConfiguration"}
		obj.ObjectMeta = objectMeta(obj.ObjectMeta)
		for i := range obj.Webhooks {
			obj.Webhooks[i].ClientConfig = r.clientConfig(obj.Webhooks[i].ClientConfig)
		}
		client := r.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		errs = append(errs, apply(ctx, obj.Name, obj, client.Get, client.Patch))
	}
	for _, c := range r.o.Mutating {
		obj := c.DeepCopy()
		obj.TypeMeta = metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingWebhookConfiguration"}
		obj.ObjectMeta = objectMeta(obj.ObjectMeta)
		for i := range obj.Webhooks {
			obj.Webhooks[i].ClientConfig = r.clientConfig(obj.Webhooks[i].ClientConfig)
		}
		client := r.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
		errs = append(errs, apply(ctx, obj.Name, obj, client.Get, client.Patch))
	}
	return errors.Join(errs...)
}

// objectMeta is the metadata a configuration is applied with: its name, labels and annotations
// as rendered.
func objectMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Labels: m.Labels, Annotations: m.Annotations}
}

// apply applies obj, named name, with a typed client's Get and Patch. A configuration that does
// not exist is not created: the chart creates them empty, and one an administrator deleted
// stays deleted (break-glass) until it is restored.
func apply[T any](ctx context.Context, name string, obj any,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	patch func(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (T, error)) error {
	if _, err := get(ctx, name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: %s (restore it with helm upgrade, or kubectl apply -f manifests/webhook/configurations.yaml)", ErrDeleted, name)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	if _, err := patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)}); err != nil {
		return fmt.Errorf("apply %s: %w", name, err)
	}
	return nil
}

func (r *Registrar) names() []string {
	var names []string
	for _, c := range r.o.configs() {
		names = append(names, c.name)
	}
	return names
}

// config is what the Registrar needs of either kind of configuration.
type config struct {
	name          string
	clientConfigs []admissionregistrationv1.WebhookClientConfig
}

func (o *Options) configs() []config {
	var out []config
	for _, c := range o.Validating {
		cfg := config{name: "validatingwebhookconfiguration/" + c.Name}
		for _, w := range c.Webhooks {
			cfg.clientConfigs = append(cfg.clientConfigs, w.ClientConfig)
		}
		out = append(out, cfg)
	}
	for _, c := range o.Mutating {
		cfg := config{name: "mutatingwebhookconfiguration/" + c.Name}
		for _, w := range c.Webhooks {
			cfg.clientConfigs = append(cfg.clientConfigs, w.ClientConfig)
		}
		out = append(out, cfg)
	}
	return out
}

func certPool(bundle []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("registration: the CA bundle holds no PEM certificate")
	}
	return pool, nil
}
