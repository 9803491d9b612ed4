package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ServerOptions configures an embedded NATS server.
type ServerOptions struct {
	// StoreDir is where JetStream keeps its data. Required: an embedded server must survive its
	// own restart with its streams and key-value buckets intact.
	StoreDir string
	// Name is the server's name, unique within a cluster. Default "gatehouse".
	Name string
	// Host is the address to listen on. Default 127.0.0.1.
	Host string
	// Port is the client port. Default: a free port chosen by the system.
	Port int
	// Users are the identities the server accepts, each with its role's permissions
	// (Permissions). Without users the server has no authentication: development only, and
	// then it should listen on loopback only.
	Users []User
	// Unrestricted are public NKeys accepted with every permission. For tests, which set up and
	// forge what no role may; never in production (`gatehouse nats` has no flag for it).
	Unrestricted []string
	// TLS, when set, makes the server accept TLS connections only.
	TLS *ServerTLS
	// Cluster, when set, makes the server one of a NATS cluster: JetStream then keeps each
	// stream and bucket on as many servers as its replicas (ProvisionOptions), and the
	// components list every server in their URL. Nil: a single server.
	Cluster *ServerCluster
	// Provision creates (or updates) the streams and the approvals bucket once the server is
	// up, as the administrator would (Provision): connected in-process with a key made for that
	// and never written anywhere.
	Provision bool
	// ProvisionOptions tune what Provision creates.
	ProvisionOptions ProvisionOptions
	// Logger receives the server's log. Default: discard.
	Logger *slog.Logger
}

// ServerTLS is the server's TLS.
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the server require a client certificate signed by it
	// (mutual TLS), in addition to the user's NKey.
	ClientCAFile string
}

// ServerCluster is how a server joins a NATS cluster.
type ServerCluster struct {
	// Name is the cluster's name, the same on every server. Required.
	Name string
	// Host is the address to listen on for the other servers (routes). Default: the server's
	// Host.
	Host string
	// Port is the route port. Default: a free port chosen by the system.
	Port int
	// Routes are the other servers' route URLs (nats-route://host:6222). A server may list
	// itself; it is ignored.
	Routes []string
	// TLS secures the routes with mutual TLS: the server presents CertFile (which must allow
	// both server and client authentication) and accepts only peers whose certificates
	// ClientCAFile signed, since a route is trusted with every message and every stream. Nil:
	// plaintext routes, for development on one machine only.
	TLS *ServerTLS
}

// validate reports a cluster configuration the server could not use.
func (c *ServerCluster) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("natsbus: ServerCluster.Name is required"))
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.ClientCAFile == "") {
		errs = append(errs, errors.New("natsbus: the routes' TLS needs a certificate, its key and the CA that signed the other servers' certificates"))
	}
	return errors.Join(errs...)
}

// User is an identity the server accepts: the public key of an NKey ("U...") and its role.
type User struct {
	Role Role   `json:"role"`
	NKey string `json:"nkey"`
}

// Validate reports a user the server could not accept.
func (u User) Validate() error {
	if _, err := ParseRole(string(u.Role)); err != nil {
		return err
	}
	if !nkeys.IsValidPublicUserKey(u.NKey) {
		return fmt.Errorf("natsbus: %s: %q is not the public key of an NKey user (U...)", u.Role, u.NKey)
	}
	return nil
}

// Server is an embedded NATS server with JetStream enabled.
type Server struct {
	srv    *server.Server
	useTLS bool
}

// serverOptions returns nats-server's options for o.
func (o ServerOptions) serverOptions() (*server.Options, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsbus: ServerOptions.StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.Name == "" {
		o.Name = "gatehouse"
	}
	opts := &server.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
	}
	if err := ValidateUsers(o.Users); err != nil {
		return nil, err
	}
	for _, u := range dedup(o.Users) {
		if err := u.Validate(); err != nil {
			return nil, err
		}
		perms, err := Permissions(u.Role)
		if err != nil {
			return nil, err
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms})
	}
	for _, k := range o.Unrestricted {
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("natsbus: %q is not the public key of an NKey user", k)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if o.TLS != nil {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile, CaFile: o.TLS.ClientCAFile,
			Verify: o.TLS.ClientCAFile != "", Timeout: 2,
		})
		if err != nil {
			return nil, fmt.Errorf("natsbus: server TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = cfg, true, o.TLS.ClientCAFile != "", 2
	}
	if c := o.Cluster; c != nil {
		if err := c.validate(); err != nil {
			return nil, err
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = o.Host
		}
		if opts.Cluster.Port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		if len(c.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		}
		if c.TLS != nil {
			cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
				CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, CaFile: c.TLS.ClientCAFile, Verify: true, Timeout: 2,
			})
			if err != nil {
				return nil, fmt.Errorf("natsbus: route TLS: %w", err)
			}
			// As nats-server does for a cluster's tls block: every route both dials and
			// accepts, and verifies the other side against the same CA.
			cfg.RootCAs = cfg.ClientCAs
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = cfg, 2
		}
	}
	return opts, nil
}

// StartServer starts an embedded NATS server and waits until it accepts connections (and, with
// Provision, until the streams and the bucket exist).
func StartServer(o ServerOptions) (*Server, error) {
	var provisioner nkeys.KeyPair
	if o.Provision {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, err
		}
		pub, _ := kp.PublicKey()
		provisioner = kp
		if len(o.Users) > 0 || len(o.Unrestricted) > 0 {
			o.Users = append(o.Users[:len(o.Users):len(o.Users)], User{Role: RoleAdmin, NKey: pub})
		}
	}
	opts, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbus: configure the NATS server: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(serverLogger{o.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbus: NATS server on %s:%d not ready after 10s", opts.Host, opts.Port)
	}
	s := &Server{srv: srv, useTLS: o.TLS != nil}
	if provisioner != nil {
		if err := s.provision(provisioner, len(o.Users) > 0 || len(o.Unrestricted) > 0, o.ProvisionOptions); err != nil {
			s.Shutdown()
			return nil, err
		}
	}
	return s, nil
}

// provision connects in-process as the administrator and provisions.
func (s *Server) provision(kp nkeys.KeyPair, auth bool, po ProvisionOptions) error {
	opts := []nats.Option{nats.InProcessServer(s.srv), nats.Name("gatehouse-provisioner"), nats.CustomInboxPrefix(RoleAdmin.InboxPrefix())}
	if auth {
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return fmt.Errorf("natsbus: provision: %w", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ProvisionConn(ctx, nc, po)
}

// URL returns the client URL, e.g. nats://127.0.0.1:4222 (tls://... with TLS).
func (s *Server) URL() string {
	u := s.srv.ClientURL()
	if s.useTLS {
		u = "tls://" + strings.TrimPrefix(strings.TrimPrefix(u, "nats://"), "tls://")
	}
	return u
}

// Port returns the client port, so a restarted server can listen where the old one did.
func (s *Server) Port() int { return s.srv.Addr().(*net.TCPAddr).Port }

// ClusterAddr returns the route listener's address (host:port), "" without a cluster.
func (s *Server) ClusterAddr() string {
	if a := s.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Name returns the server's name.
func (s *Server) Name() string { return s.srv.Name() }

// Shutdown stops the server and waits until it is down.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// serverLogger adapts slog to nats-server's logger.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
