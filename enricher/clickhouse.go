package enricher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

// PasswordEnv is the environment variable the ClickHouse password is read from when no
// password file is given.
const PasswordEnv = "GATEHOUSE_CLICKHOUSE_PASSWORD"

// ClickHouseOptions say how to reach ClickHouse. The zero value reaches a local server over
// the native protocol as the default user.
type ClickHouseOptions struct {
	// Addr lists the servers as host:port, tried in order. Default 127.0.0.1:9000.
	Addr []string
	// Protocol is "native" (TCP, ports 9000/9440) or "http" (ports 8123/8443). Default native.
	Protocol string
	// Database holds the enricher's tables. Default "gatehouse".
	Database string
	// Username is the ClickHouse user. Default "default".
	Username string
	// PasswordFile holds the password (trailing white space removed). Default: the
	// environment variable PasswordEnv, else no password. The password is never logged.
	PasswordFile string
	// TLS turns TLS on, verifying the server against the system roots or CAFile. Setting
	// CAFile, CertFile or ServerName implies it.
	TLS bool
	// CAFile is a PEM bundle of the CAs that signed the servers' certificates.
	CAFile string
	// CertFile and KeyFile are a client certificate and key for mutual TLS.
	CertFile, KeyFile string
	// ServerName overrides the name the server certificate is checked against.
	ServerName string
	// InsecureSkipVerify turns off server certificate verification. Never in production.
	InsecureSkipVerify bool
	// DialTimeout bounds connecting. Default 10s.
	DialTimeout time.Duration
	// Cluster is the ClickHouse cluster the schema is created on (schema.Options.Cluster):
	// replicated local tables behind Distributed tables. Every statement then waits until the
	// Distributed tables forwarded its rows to their shards (distributed_foreground_insert), so
	// a batch is acknowledged to NATS only once its rows are in a replicated table. Default "":
	// a single server.
	Cluster string

	// getenv reads the environment; a test seam.
	getenv func(string) string
}

// AddFlags registers the options as --clickhouse-* flags.
func (o *ClickHouseOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Addr, "clickhouse-addr", []string{"127.0.0.1:9000"}, "ClickHouse servers, host:port, comma separated: the native port (9000, TLS 9440) or the HTTP port (8123, TLS 8443) as --clickhouse-protocol says.")
	fs.StringVar(&o.Protocol, "clickhouse-protocol", "native", "ClickHouse protocol: native or http.")
	fs.StringVar(&o.Database, "clickhouse-database", schema.DefaultDatabase, "ClickHouse database of the audit tables; created when missing.")
	fs.StringVar(&o.Username, "clickhouse-username", "default", "ClickHouse user.")
	fs.StringVar(&o.PasswordFile, "clickhouse-password-file", "", "File holding the ClickHouse password. Default: $"+PasswordEnv+".")
	fs.BoolVar(&o.TLS, "clickhouse-tls", false, "Connect to ClickHouse over TLS (implied by the other --clickhouse-tls-* and CA flags).")
	fs.StringVar(&o.CAFile, "clickhouse-ca-file", "", "CA bundle that signed the ClickHouse servers' certificates.")
	fs.StringVar(&o.CertFile, "clickhouse-cert-file", "", "Client certificate for ClickHouse mutual TLS.")
	fs.StringVar(&o.KeyFile, "clickhouse-key-file", "", "Client key for ClickHouse mutual TLS.")
	fs.StringVar(&o.ServerName, "clickhouse-tls-server-name", "", "Name the ClickHouse server certificate is checked against. Default: the host of --clickhouse-addr.")
	fs.BoolVar(&o.InsecureSkipVerify, "clickhouse-insecure-skip-tls-verify", false, "Do not verify the ClickHouse server certificate. Never in production.")
	fs.DurationVar(&o.DialTimeout, "clickhouse-dial-timeout", 10*time.Second, "Timeout for connecting to ClickHouse.")
	fs.StringVar(&o.Cluster, "clickhouse-cluster", "", "ClickHouse cluster (remote_servers) to create the schema on: ON CLUSTER, Replicated*MergeTree local tables (the servers need the {shard} and {replica} macros and ClickHouse Keeper) and Distributed tables over them. Empty: one server.")
}

func (o *ClickHouseOptions) setDefaults() {
	if len(o.Addr) == 0 {
		o.Addr = []string{"127.0.0.1:9000"}
	}
	if o.Protocol == "" {
		o.Protocol = "native"
	}
	if o.Database == "" {
		o.Database = schema.DefaultDatabase
	}
	if o.Username == "" {
		o.Username = "default"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.getenv == nil {
		o.getenv = os.Getenv
	}
}

// Validate reports inconsistent options.
func (o *ClickHouseOptions) Validate() error {
	var errs []error
	switch strings.ToLower(o.Protocol) {
	case "", "native", "http":
	default:
		errs = append(errs, fmt.Errorf("--clickhouse-protocol must be native or http, not %q", o.Protocol))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("--clickhouse-cert-file and --clickhouse-key-file go together"))
	}
	so := schema.Options{Database: o.Database, Cluster: o.Cluster}
	if err := so.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Options returns the clickhouse-go options, reading the password and the TLS files.
func (o *ClickHouseOptions) Options() (*clickhouse.Options, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	password := o.getenv(PasswordEnv)
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--clickhouse-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), " \t\r\n")
	}
	opts := &clickhouse.Options{
		Addr:     o.Addr,
		Protocol: clickhouse.Native,
		// No default database: it may not exist before the first migration, and every
		// statement names it.
		Auth:        clickhouse.Auth{Username: o.Username, Password: password},
		DialTimeout: o.DialTimeout,
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "gatehouse-enricher", Version: "v1"},
		}},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	}
	if strings.EqualFold(o.Protocol, "http") {
		opts.Protocol = clickhouse.HTTP
	}
	if o.Cluster != "" {
		opts.Settings = clickhouse.Settings{"distributed_foreground_insert": 1}
	}
	if o.TLS || o.CAFile != "" || o.CertFile != "" || o.ServerName != "" || o.InsecureSkipVerify {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // documented, off by default
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--clickhouse-ca-file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--clickhouse-ca-file: no PEM certificate in %s", o.CAFile)
			}
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("--clickhouse-cert-file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts.TLS = cfg
	}
	return opts, nil
}

// Open returns a ClickHouse connection. It does not wait for the server: the enricher starts
// (and accepts audit batches) while ClickHouse is down, and keeps retrying.
func (o *ClickHouseOptions) Open(context.Context) (driver.Conn, error) {
	opts, err := o.Options()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}
