package certs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
)

// BundleKey is the key of the CA bundle in the ConfigMap PublishConfigMap writes, as in
// cert-manager's Secrets and kube-root-ca.crt.
const BundleKey = "ca.crt"

// FieldManager is the server-side apply field manager of what this package writes.
const FieldManager = "gatehouse-certs"

// Flags are the command-line options of a self-managed serving certificate.
type Flags struct {
	// Secret is namespace/name of the CA's Secret; empty disables the self-managed certificate.
	Secret string
	// DNSNames are the serving certificate's names.
	DNSNames []string
	// CAConfigMap is namespace/name of a ConfigMap the CA bundle is published in (key ca.crt).
	CAConfigMap string
	// CADuration and CertDuration are the lifetimes of the CA and the serving certificates.
	CADuration, CertDuration time.Duration
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Secret, "self-managed-ca-secret", "", "namespace/name of an existing Secret in which this component keeps its own CA and issues its serving certificate (instead of --tls-cert-file): the CA is generated into the Secret, rotated before it expires, and published.")
	fs.StringSliceVar(&f.DNSNames, "self-managed-dns-names", nil, "DNS names of the self-managed serving certificate, e.g. gatehouse-webhook.gatehouse.svc.")
	fs.StringVar(&f.CAConfigMap, "self-managed-ca-configmap", "", "namespace/name of a ConfigMap to publish the self-managed CA bundle in (key ca.crt), for clients to trust.")
	fs.DurationVar(&f.CADuration, "self-managed-ca-duration", DefaultCADuration, "Lifetime of the self-managed CA; it is replaced after two thirds of it.")
	fs.DurationVar(&f.CertDuration, "self-managed-cert-duration", DefaultCertDuration, "Lifetime of a self-managed serving certificate; it is replaced after two thirds of it.")
}

// Enabled reports whether a self-managed certificate is configured.
func (f *Flags) Enabled() bool { return f.Secret != "" }

// Validate reports inconsistent flags.
func (f *Flags) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var errs []error
	if _, _, err := splitName(f.Secret); err != nil {
		errs = append(errs, fmt.Errorf("--self-managed-ca-secret: %w", err))
	}
	if f.CAConfigMap != "" {
		if _, _, err := splitName(f.CAConfigMap); err != nil {
			errs = append(errs, fmt.Errorf("--self-managed-ca-configmap: %w", err))
		}
	}
	if len(f.DNSNames) == 0 {
		errs = append(errs, errors.New("--self-managed-dns-names is required with --self-managed-ca-secret"))
	}
	if f.CADuration <= f.CertDuration {
		errs = append(errs, errors.New("--self-managed-ca-duration must exceed --self-managed-cert-duration"))
	}
	return errors.Join(errs...)
}

// Options returns the Options the flags describe. The bundle is published to the ConfigMap, if
// one is named, and to each of publish.
func (f *Flags) Options(cs kubernetes.Interface, log *slog.Logger, publish ...func(context.Context, []byte) error) (Options, error) {
	if err := f.Validate(); err != nil {
		return Options{}, err
	}
	ns, name, _ := splitName(f.Secret)
	if f.CAConfigMap != "" {
		cmNS, cmName, _ := splitName(f.CAConfigMap)
		publish = append(publish, PublishConfigMap(cs, cmNS, cmName))
	}
	if len(publish) == 0 {
		return Options{}, fmt.Errorf("%w: nothing publishes the CA bundle: name a ConfigMap (--self-managed-ca-configmap)", ErrInvalidOptions)
	}
	return Options{
		SecretNamespace: ns,
		SecretName:      name,
		DNSNames:        f.DNSNames,
		CADuration:      f.CADuration,
		CertDuration:    f.CertDuration,
		Logger:          log,
		Publish: func(ctx context.Context, bundle []byte) error {
			var errs []error
			for _, p := range publish {
				errs = append(errs, p(ctx, bundle))
			}
			return errors.Join(errs...)
		},
	}, nil
}

// PublishConfigMap returns a Publish function that writes the bundle into key ca.crt of the
// ConfigMap namespace/name with server-side apply.
func PublishConfigMap(cs kubernetes.Interface, namespace, name string) func(context.Context, []byte) error {
	return func(ctx context.Context, bundle []byte) error {
		cm := corev1ac.ConfigMap(name, namespace).WithData(map[string]string{BundleKey: string(bundle)})
		if _, err := cs.CoreV1().ConfigMaps(namespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("write the CA bundle to ConfigMap %s/%s: %w", namespace, name, err)
		}
		return nil
	}
}

func splitName(s string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(s, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("want namespace/name, not %q", s)
	}
	return namespace, name, nil
}
