package registration

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
)

// Flags are the command-line options of the webhook's self-registration.
type Flags struct {
	// Configurations is the file Load reads; empty disables registration.
	Configurations string
	URL            string
	CABundleFile   string
	Resync         time.Duration
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Configurations, "webhook-configurations", "", "File with the ValidatingWebhookConfiguration and MutatingWebhookConfiguration to register once this webhook answers, keeping their caBundle current (the chart mounts them from a ConfigMap). They are written into the existing, empty configurations of the same names, never created. Empty: they are registered by other means.")
	fs.StringVar(&f.URL, "webhook-url", "", "Register the webhooks with this base URL (https://host:port) followed by their service path instead of their Service: for a webhook running outside the cluster.")
	fs.StringVar(&f.CABundleFile, "webhook-ca-bundle-file", "", "CA bundle (PEM) to register, e.g. the ca.crt of the cert-manager Secret mounted for --cert-dir; re-read at every resync. With --self-managed-ca-secret the self-managed CA is registered instead.")
	fs.DurationVar(&f.Resync, "webhook-configurations-resync", DefaultResync, "How often the registered configurations are applied again.")
}

// Enabled reports whether registration is configured.
func (f *Flags) Enabled() bool { return f.Configurations != "" }

// Validate reports inconsistent flags. selfManaged says whether a self-managed certificate
// supplies the CA bundle.
func (f *Flags) Validate(selfManaged bool) error {
	if !f.Enabled() {
		if f.URL != "" || f.CABundleFile != "" {
			return errors.New("--webhook-url and --webhook-ca-bundle-file need --webhook-configurations")
		}
		return nil
	}
	if selfManaged == (f.CABundleFile != "") {
		return errors.New("--webhook-configurations needs the CA bundle from exactly one of --self-managed-ca-secret and --webhook-ca-bundle-file")
	}
	return nil
}

// New loads the configurations and returns their Registrar.
func (f *Flags) New(cs kubernetes.Interface, log *slog.Logger, ready func(context.Context) error) (*Registrar, error) {
	v, m, err := Load(f.Configurations)
	if err != nil {
		return nil, err
	}
	return New(cs, Options{
		Validating:   v,
		Mutating:     m,
		URL:          f.URL,
		CABundleFile: f.CABundleFile,
		Ready:        ready,
		Resync:       f.Resync,
		Logger:       log,
	})
}
