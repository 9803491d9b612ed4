package natsbus

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// Options says how a component reaches NATS: where, as whom (its role's credentials) and over
// which TLS. Every command's NATS flags are these (AddFlags).
type Options struct {
	// URL lists the NATS servers, comma separated. Required, except in development mode, where
	// an empty URL starts an embedded server without authentication.
	URL string
	// NKeyFile is the component's NKey seed file (a user seed, "SU..."): the server knows its
	// public key (gatehouse nats --users-file). One of NKeyFile and CredsFile is required outside
	// development mode.
	NKeyFile string
	// CredsFile is a NATS credentials file (a user JWT and its NKey seed), for servers that
	// authenticate with an operator's JWTs instead: the JWT must carry Publish(role) and the
	// role's inbox (see `gatehouse nats authorization --format json`).
	CredsFile string
	// CAFile is the CA bundle that signed the servers' certificates. Outside development mode
	// the connection must use TLS: CAFile, or tls:// URLs verified against the system's roots.
	CAFile string
	// CertFile and KeyFile are a client certificate for servers that verify clients (mutual
	// TLS); read at every connection, so a renewed certificate is used at the next reconnect.
	CertFile, KeyFile string
	// StoreDir is the embedded server's JetStream directory (development mode, empty URL).
	// Default: a "nats" folder in the user cache directory.
	StoreDir string
	// Dev is development mode, set by the command's --dev: an empty URL starts an embedded
	// server, and credentials and TLS are optional.
	Dev bool
	// Role is the identity the component connects as: its replies come to the role's inbox
	// (Role.InboxPrefix), the only subjects its credentials may subscribe to. Required.
	Role Role
	// Name is the connection name shown in NATS monitoring. Default "gatehouse-<role>".
	Name string
	// Logger reports connection changes. Default: discard.
	Logger *slog.Logger
}

// AddFlags registers the options as command-line flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "nats-url", o.URL, "NATS server URLs, comma separated (tls://host:4222). Required, except with --dev, where an empty URL starts an embedded NATS server without authentication.")
	fs.StringVar(&o.NKeyFile, "nats-nkey-file", o.NKeyFile, "The component's NKey seed file (gatehouse nats keys writes one per component; the server holds the public keys). Required outside --dev, unless --nats-creds-file is set.")
	fs.StringVar(&o.CredsFile, "nats-creds-file", o.CredsFile, "NATS credentials file (user JWT and seed), for servers that use an operator's JWTs instead of NKeys.")
	fs.StringVar(&o.CAFile, "nats-ca-file", o.CAFile, "CA bundle that signed the NATS servers' certificates. Outside --dev, NATS is reached over TLS: this CA, or tls:// URLs and the system's roots.")
	fs.StringVar(&o.CertFile, "nats-cert-file", o.CertFile, "Client certificate for NATS servers that verify clients (mutual TLS).")
	fs.StringVar(&o.KeyFile, "nats-key-file", o.KeyFile, "Client key for NATS mutual TLS.")
	fs.StringVar(&o.StoreDir, "nats-store-dir", o.StoreDir, "JetStream directory of the embedded NATS server (--dev with an empty --nats-url).")
}

// Validate reports options that cannot work, or that would connect without TLS or credentials
// outside development mode.
func (o *Options) Validate() error {
	var errs []error
	if o.Role == "" {
		errs = append(errs, errors.New("natsbus: Options.Role is required"))
	} else if _, err := ParseRole(string(o.Role)); err != nil {
		errs = append(errs, err)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("--nats-cert-file and --nats-key-file go together"))
	}
	if o.NKeyFile != "" && o.CredsFile != "" {
		errs = append(errs, errors.New("--nats-nkey-file and --nats-creds-file are alternatives; set one"))
	}
	switch {
	case o.URL == "" && o.Dev:
		if o.NKeyFile != "" || o.CredsFile != "" || o.CAFile != "" || o.CertFile != "" {
			errs = append(errs, errors.New("NATS credentials and TLS files need --nats-url (with --dev and no --nats-url, an embedded server without authentication runs)"))
		}
	case o.URL == "":
		errs = append(errs, errors.New("--nats-url is required (an embedded NATS server runs only with --dev)"))
	case !o.Dev:
		if o.NKeyFile == "" && o.CredsFile == "" {
			errs = append(errs, fmt.Errorf("NATS credentials are required: --nats-nkey-file with the %s's NKey seed (or --nats-creds-file); only --dev connects without", o.Role))
		}
		if o.CAFile == "" && !allTLS(o.URL) {
			errs = append(errs, errors.New("NATS must be reached over TLS: set --nats-ca-file, or use tls:// URLs whose certificates the system trusts; only --dev connects without"))
		}
	}
	return errors.Join(errs...)
}

// embedded reports whether Connect starts an embedded server.
func (o *Options) embedded() bool { return o.URL == "" && o.Dev }

// secure reports whether the connection must use TLS.
func (o *Options) secure() bool { return o.CAFile != "" || o.CertFile != "" || allTLS(o.URL) }

func allTLS(urls string) bool {
	if urls == "" {
		return false
	}
	for u := range strings.SplitSeq(urls, ",") {
		if !strings.HasPrefix(strings.TrimSpace(u), "tls://") {
			return false
		}
	}
	return true
}
