package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"
)

// Options says how a component reaches NATS.
type Options struct {
	// URL lists the NATS servers, comma separated. Empty starts an embedded server (dev mode).
	URL string
	// CredsFile is a NATS credentials file (JWT and NKey seed) for decentralised authentication.
	CredsFile string
	// CAFile, CertFile and KeyFile configure TLS: the CA that signed the servers' certificates and
	// the client certificate for mutual TLS.
	CAFile, CertFile, KeyFile string
	// StoreDir is the embedded server's JetStream directory. Default: a "nats" folder in the user
	// cache directory.
	StoreDir string
	// Name is the connection name shown in NATS monitoring, e.g. "gatehouse-proxy".
	Name string
	// Logger reports connection changes. Default: discard.
	Logger *slog.Logger
}

// AddFlags registers the options as command-line flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "nats-url", o.URL, "NATS server URLs, comma separated. Empty starts an embedded NATS server (development only).")
	fs.StringVar(&o.CredsFile, "nats-creds-file", o.CredsFile, "NATS credentials file.")
	fs.StringVar(&o.CAFile, "nats-ca-file", o.CAFile, "CA bundle that signed the NATS servers' certificates.")
	fs.StringVar(&o.CertFile, "nats-cert-file", o.CertFile, "Client certificate for NATS mutual TLS.")
	fs.StringVar(&o.KeyFile, "nats-key-file", o.KeyFile, "Client key for NATS mutual TLS.")
	fs.StringVar(&o.StoreDir, "nats-store-dir", o.StoreDir, "JetStream directory of the embedded NATS server (with an empty --nats-url).")
}

// Validate reports inconsistent options.
func (o *Options) Validate() error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("natsbus: --nats-cert-file and --nats-key-file go together")
	}
	if o.URL == "" && (o.CredsFile != "" || o.CAFile != "" || o.CertFile != "") {
		return errors.New("natsbus: credentials and TLS files need --nats-url")
	}
	return nil
}

// Conn is a NATS connection and, in dev mode, the embedded server behind it.
type Conn struct {
	*nats.Conn
	// Server is the embedded server, nil when connected to an external one.
	Server *Server
}

// Close drains the connection and stops the embedded server, if any.
func (c *Conn) Close() {
	_ = c.Drain()
	for !c.IsClosed() {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Server != nil {
		c.Server.Shutdown()
	}
}

// Connect connects to NATS, starting an embedded server when o.URL is empty. The connection
// reconnects forever: components keep running while NATS is away and fail closed meanwhile.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{}
	url := o.URL
	if url == "" {
		dir := o.StoreDir
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("natsbus: no --nats-url and no cache directory for an embedded server: %w", err)
			}
			dir = filepath.Join(cache, "gatehouse", "nats")
		}
		srv, err := StartServer(ServerOptions{StoreDir: dir, Logger: log.With("component", "nats-server")})
		if err != nil {
			return nil, err
		}
		log.Warn("no --nats-url given: started an embedded NATS server (development only)", "url", srv.URL(), "storeDir", dir)
		c.Server = srv
		url = srv.URL()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// No buffering while disconnected: a publish then fails at once, so the caller can
		// refuse the action it wanted to record instead of losing the record with the buffer.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error("NATS connection closed", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "err", err)
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	// nats.Connect has no context; honour a cancelled one before and after.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if c.Server != nil {
			c.Server.Shutdown()
		}
		return nil, fmt.Errorf("natsbus: connect to %s: %w", redact(url), err)
	}
	c.Conn = nc
	return c, nil
}

// redact drops user information from a URL list for error messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		at := strings.LastIndex(u, "@")
		if at < 0 {
			continue
		}
		scheme := ""
		if k := strings.Index(u, "://"); k >= 0 && k < at {
			scheme = u[:k+3]
		}
		parts[i] = scheme + "REDACTED" + u[at:]
	}
	return strings.Join(parts, ",")
}

// JetStream returns the JetStream API on the connection.
func (c *Conn) JetStream(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	js, err := jetstream.New(c.Conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	return js, nil
}
