package natsbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a NATS connection and, in development mode, the embedded server behind it.
type Conn struct {
	*nats.Conn
	// Server is the embedded server, nil when connected to an external one.
	Server *Server
	url    string
}

// Close drains the connection and stops the embedded server, if any.
func (c *Conn) Close() {
	if c.Drain() == nil {
		deadline := time.Now().Add(10 * time.Second)
		for !c.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	c.Conn.Close()
	if c.Server != nil {
		c.Server.Shutdown()
	}
}

// Ready reports whether the connection is up: nil, or why not (its state and the last error,
// e.g. a refused credential or an untrusted certificate).
func (c *Conn) Ready() error {
	st := c.Status()
	if st == nats.CONNECTED {
		return nil
	}
	msg := fmt.Sprintf("not connected to NATS at %s (%s)", redact(c.url), st)
	if err := c.LastError(); err != nil {
		msg += ": " + err.Error()
	}
	return fmt.Errorf("natsbus: %s", msg)
}

// WaitReady waits until the connection is up, or ctx ends (then it returns why it is not up).
func (c *Conn) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := c.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// Connect returns a connection to NATS as o.Role, starting an embedded server in development
// mode without a URL. It does not wait for the server: a server that is down (or refuses the
// credentials) is retried in the background forever, so a component starts without NATS and
// fails closed meanwhile, and Ready says why. Errors are about the options and files only.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Name == "" {
		o.Name = "gatehouse-" + string(o.Role)
	}
	c := &Conn{url: o.URL}
	if o.embedded() {
		dir := o.StoreDir
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("natsbus: no --nats-url and no cache directory for an embedded server: %w", err)
			}
			dir = filepath.Join(cache, "gatehouse", "nats")
		}
		srv, err := StartServer(ServerOptions{StoreDir: dir, Provision: true, Logger: log.With("component", "nats-server")})
		if err != nil {
			return nil, err
		}
		log.Warn("--dev without --nats-url: started an embedded NATS server without authentication (development only)", "url", srv.URL(), "storeDir", dir)
		c.Server = srv
		c.url = srv.URL()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.CustomInboxPrefix(o.Role.InboxPrefix()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// Start while the server is away, and keep trying when it refuses the credentials (they
		// may be rotated on the server): Ready reports it meanwhile.
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		// No buffering while disconnected: a publish then fails at once, so the caller can
		// refuse the action it wanted to record instead of losing the record with the buffer.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("cannot connect to NATS, retrying", "err", err)
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
	switch {
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: --nats-nkey-file: %w", err)
		}
		opts = append(opts, opt)
	case o.CredsFile != "":
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("natsbus: --nats-creds-file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.secure() {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	// nats.Connect has no context; honour a cancelled one.
	if err := ctx.Err(); err != nil {
		c.shutdownServer()
		return nil, err
	}
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		c.shutdownServer()
		return nil, fmt.Errorf("natsbus: connect to %s: %w", redact(c.url), err)
	}
	c.Conn = nc
	return c, nil
}

func (c *Conn) shutdownServer() {
	if c.Server != nil {
		c.Server.Shutdown()
	}
}

// tlsConfig is the client's TLS: the CA (system roots without one) and, for mutual TLS, the
// client certificate, read at every handshake.
func (o *Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: --nats-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("natsbus: --nats-ca-file: no PEM certificate in %s", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		certFile, keyFile := o.CertFile, o.KeyFile
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("natsbus: --nats-cert-file, --nats-key-file: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("natsbus: client certificate: %w", err)
			}
			return &cert, nil
		}
	}
	return cfg, nil
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
