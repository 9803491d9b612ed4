package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// natsUsers are the identities of a NATS server: a users file and --nkey flags.
type natsUsers struct {
	usersFile string
	nkeys     []string
}

func (u *natsUsers) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&u.usersFile, "users-file", "", "YAML file of the identities the server accepts: for each role (admin, proxy, webhook, enricher, console) a list of public NKeys; `gatehouse nats keys` writes one.")
	fs.StringArrayVar(&u.nkeys, "nkey", nil, "An identity the server accepts, ROLE=PUBLIC_NKEY (e.g. proxy=UD...); repeatable, added to --users-file's.")
}

// users returns the identities given.
func (u *natsUsers) users() ([]natsbus.User, error) {
	var users []natsbus.User
	if u.usersFile != "" {
		data, err := os.ReadFile(u.usersFile)
		if err != nil {
			return nil, fmt.Errorf("--users-file: %w", err)
		}
		if users, err = natsbus.ParseUsers(data); err != nil {
			return nil, fmt.Errorf("--users-file: %w", err)
		}
	}
	for _, kv := range u.nkeys {
		role, key, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--nkey must be ROLE=PUBLIC_NKEY, not %q", kv)
		}
		r, err := natsbus.ParseRole(strings.TrimSpace(role))
		if err != nil {
			return nil, fmt.Errorf("--nkey: %w", err)
		}
		users = append(users, natsbus.User{Role: r, NKey: strings.TrimSpace(key)})
	}
	if err := natsbus.ValidateUsers(users); err != nil {
		return nil, err
	}
	return users, nil
}

// natsOptions are the flags of `gatehouse nats`.
type natsOptions struct {
	storeDir    string
	bindAddress string
	port        int
	allowRemote bool
	users       natsUsers
	certFile    string
	keyFile     string
	clientCA    string
	provision   bool
	replicas    int
	dev         bool
	// out is where the ready line goes (the command's standard output).
	out func() io.Writer
	// provisionSet reports whether --provision was given.
	provisionSet func() bool
	cluster      natsClusterOptions
}

// natsClusterOptions are the flags that make `gatehouse nats` one server of a cluster.
type natsClusterOptions struct {
	serverName string
	name       string
	port       int
	routes     []string
	caFile     string
}

func (o *natsOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.storeDir, "store-dir", "", "Directory where JetStream keeps its streams and key-value buckets; they survive restarts. Default: gatehouse/nats-server in the user cache directory.")
	fs.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "IP address to serve NATS clients on.")
	fs.IntVar(&o.port, "port", 4222, "Port to serve NATS clients on.")
	o.users.addFlags(fs)
	fs.StringVar(&o.certFile, "tls-cert-file", "", "The server's TLS certificate. Required, except with --dev.")
	fs.StringVar(&o.keyFile, "tls-private-key-file", "", "The server's TLS key.")
	fs.StringVar(&o.clientCA, "client-ca-file", "", "CA bundle that signs the components' client certificates: the server then requires one (mutual TLS) besides the NKey.")
	fs.BoolVar(&o.provision, "provision", true, "Create or update the streams and the approvals bucket at start, as the administrator would (gatehouse nats provision). Off by default with --cluster-name: the replicated streams need the cluster, so run gatehouse nats provision --replicas N once its servers are up.")
	fs.IntVar(&o.replicas, "replicas", 1, "Replicas of every stream and of the bucket that --provision creates.")
	fs.StringVar(&o.cluster.serverName, "server-name", "", "The server's name, unique in a cluster. Default: the host name with --cluster-name, else gatehouse.")
	fs.StringVar(&o.cluster.name, "cluster-name", "", "Run as one server of this NATS cluster (JetStream clustering: replicated streams and key-value buckets). The same on every server.")
	fs.IntVar(&o.cluster.port, "cluster-port", 6222, "Port the cluster's servers connect to each other on (routes), with --cluster-name.")
	fs.StringSliceVar(&o.cluster.routes, "routes", nil, "The cluster's servers as route URLs (nats-route://gatehouse-nats-0.gatehouse-nats:6222,...), with --cluster-name; listing this server too is fine.")
	fs.StringVar(&o.cluster.caFile, "cluster-ca-file", "", "CA bundle that signed the cluster's server certificates: routes use mutual TLS with --tls-cert-file (which then needs both server and client authentication). Required with --cluster-name, except with --dev.")
	fs.BoolVar(&o.dev, "dev", false, "Development mode: identities and TLS are optional; without identities the server has no authentication and serves loopback only.")
	fs.BoolVar(&o.allowRemote, "allow-unauthenticated-remote-clients", false, "With --dev and no identities, serve on a --bind-address other than loopback. Never in production.")
}

// Validate reports flags that cannot work, and defaults the store directory.
func (o *natsOptions) Validate() error {
	var errs []error
	if o.port < 1 || o.port > 65535 {
		errs = append(errs, fmt.Errorf("--port must be between 1 and 65535, not %d", o.port))
	}
	ip := net.ParseIP(o.bindAddress)
	if ip == nil {
		errs = append(errs, fmt.Errorf("--bind-address must be an IP address, not %q", o.bindAddress))
	}
	users, err := o.users.users()
	if err != nil {
		errs = append(errs, err)
	}
	if (o.certFile == "") != (o.keyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file go together"))
	}
	if o.clientCA != "" && o.certFile == "" {
		errs = append(errs, errors.New("--client-ca-file needs --tls-cert-file"))
	}
	if !o.dev {
		if len(users) == 0 && err == nil {
			errs = append(errs, errors.New("the components' identities are required (--users-file or --nkey; gatehouse nats keys makes them); only --dev serves without authentication"))
		}
		if o.certFile == "" {
			errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file are required: components reach NATS over TLS; only --dev serves without"))
		}
	}
	if o.dev && len(users) == 0 && ip != nil && !ip.IsLoopback() && !o.allowRemote {
		errs = append(errs, fmt.Errorf("--bind-address %s is not loopback and this server has no authentication: anyone who reaches it could read and write the trail and the approvals; give it the components' identities, or pass --allow-unauthenticated-remote-clients for a throw-away setup", o.bindAddress))
	}
	if o.replicas == 0 { // not set: a single copy, as provisioning defaults to
		o.replicas = 1
	}
	if o.replicas < 1 || o.replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas must be between 1 and 5, not %d", o.replicas))
	}
	if c := &o.cluster; c.name != "" {
		if o.provision && o.provisionSet != nil && o.provisionSet() {
			errs = append(errs, errors.New("--provision cannot run at start with --cluster-name: the replicated streams need the whole cluster; run gatehouse nats provision --replicas N once its servers are up"))
		}
		o.provision = false
		if c.port < 1 || c.port > 65535 || c.port == o.port {
			errs = append(errs, fmt.Errorf("--cluster-port must be between 1 and 65535 and differ from --port, not %d", c.port))
		}
		if len(c.routes) == 0 {
			errs = append(errs, errors.New("--routes is required with --cluster-name: the other servers of the cluster"))
		}
		if c.caFile != "" && o.certFile == "" {
			errs = append(errs, errors.New("--cluster-ca-file needs --tls-cert-file: the routes' mutual TLS uses the server's certificate"))
		}
		if c.caFile == "" && !o.dev {
			errs = append(errs, errors.New("--cluster-ca-file is required with --cluster-name: a route is trusted with every message, so the servers authenticate each other with mutual TLS; only --dev clusters without"))
		}
		if c.serverName == "" {
			host, err := os.Hostname()
			if err != nil {
				errs = append(errs, fmt.Errorf("--server-name is required (no host name: %w)", err))
			}
			c.serverName = host
		}
	} else if c.caFile != "" || len(c.routes) > 0 {
		errs = append(errs, errors.New("--routes and --cluster-ca-file need --cluster-name"))
	}
	if o.storeDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			errs = append(errs, fmt.Errorf("--store-dir is required (no user cache directory: %w)", err))
		}
		o.storeDir = filepath.Join(cache, "gatehouse", "nats-server")
	}
	return errors.Join(errs...)
}

// newNATSCommand returns `gatehouse nats`, which runs run with the validated options.
func newNATSCommand(g *globals, run func(context.Context, *slog.Logger, *natsOptions) error) *cobra.Command {
	o := &natsOptions{}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "nats",
		Short: "Run a standalone NATS JetStream server (the embedded engine) for Gatehouse",
		Long: `Run a NATS server with JetStream: the engine Gatehouse embeds, as a process of its own, for
people who want the components (proxy, webhook, enricher, console) to share one NATS without a
NATS installation.

Each component connects with its own NKey (gatehouse nats keys makes one per component and the
users file of their public keys) and may do only what its role needs: the server gives every
identity its role's permissions (gatehouse nats authorization prints them for an external
nats-server). Components reach it over TLS (--tls-cert-file; with --client-ca-file they also
present client certificates). At start it creates the streams and the approvals bucket, which no
component may. With --dev and no identities it serves loopback without authentication.

With --cluster-name it is one server of a JetStream cluster (--routes lists the others; the
servers authenticate each other with mutual TLS, --cluster-ca-file). It then provisions nothing at
start: once the servers are up, run gatehouse nats provision --replicas 3, so that every stream
and the bucket survive the loss of a server.`,
	})
	o.out = cmd.OutOrStdout
	o.provisionSet = func() bool { return cmd.Flags().Changed("provision") }
	o.addFlags(cmd.Flags())
	cmd.AddCommand(newNATSKeysCommand(), newNATSAuthorizationCommand(), newNATSProvisionCommand(g))
	return cmd
}

// runNATS serves NATS until ctx ends.
func runNATS(ctx context.Context, log *slog.Logger, o *natsOptions) error {
	addr := net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port))
	// nats-server reports a port in use only as "not ready"; say what it is.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (%w): stop what uses it or choose another --port", addr, err)
	}
	_ = l.Close()
	if err := os.MkdirAll(o.storeDir, 0o700); err != nil {
		return fmt.Errorf("--store-dir: %w", err)
	}
	users, err := o.users.users()
	if err != nil {
		return err
	}
	so := natsbus.ServerOptions{StoreDir: o.storeDir, Name: o.cluster.serverName, Host: o.bindAddress, Port: o.port, Users: users, Provision: o.provision,
		Logger: log.With("component", "nats-server")}
	so.ProvisionOptions.Streams.Replicas, so.ProvisionOptions.Bucket.Replicas = o.replicas, o.replicas
	if o.certFile != "" {
		so.TLS = &natsbus.ServerTLS{CertFile: o.certFile, KeyFile: o.keyFile, ClientCAFile: o.clientCA}
	}
	lc, err := newLifecycle(serverOptions{}, lifecycleOptions{}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		if c := o.cluster; c.name != "" {
			so.Cluster = &natsbus.ServerCluster{Name: c.name, Host: o.bindAddress, Port: c.port, Routes: c.routes}
			if c.caFile != "" {
				so.Cluster.TLS = &natsbus.ServerTLS{CertFile: o.certFile, KeyFile: o.keyFile, ClientCAFile: c.caFile}
			}
		}
		srv, err := natsbus.StartServer(so)
		if err != nil {
			return err
		}
		lc.onStop(func(context.Context) error {
			log.Info("stopping NATS")
			srv.Shutdown()
			return nil
		})
		auth := fmt.Sprintf("%d identities", len(users))
		if len(users) == 0 {
			auth = "no authentication (development only)"
		}
		log.Info("serving NATS with JetStream", "url", srv.URL(), "storeDir", o.storeDir, "identities", len(users), "tls", o.certFile != "", "provisioned", o.provision,
			"server", o.cluster.serverName, "cluster", o.cluster.name, "routes", srv.ClusterAddr())
		_, _ = fmt.Fprintf(o.out(), "NATS JetStream ready at %s (store %s, %s); Ctrl-C stops it\n", srv.URL(), o.storeDir, auth)
		return nil
	})
}

func newNATSKeysCommand() *cobra.Command {
	var dir string
	var roles []string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make an NKey for each Gatehouse component and the users file of their public keys",
		Long: `Write, into --dir, an NKey seed file per role (<role>.nkey, mode 0600: the component's
--nats-nkey-file, a secret) and users.yaml with their public keys (the server's --users-file, not
secret). Seeds that exist are kept: run it again to add a role or to rewrite users.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rs []natsbus.Role
			for _, r := range roles {
				role, err := natsbus.ParseRole(r)
				if err != nil {
					return err
				}
				rs = append(rs, role)
			}
			users, err := natsbus.WriteKeys(dir, rs)
			if err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintf(cmd.OutOrStdout(), "%-9s %s  (seed: %s)\n", u.Role, u.NKey, filepath.Join(dir, natsbus.SeedFile(u.Role)))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Public keys: %s\n", filepath.Join(dir, natsbus.UsersFile))
			return err
		},
	}
	all := make([]string, len(natsbus.Roles))
	for i, r := range natsbus.Roles {
		all[i] = string(r)
	}
	cmd.Flags().StringVar(&dir, "dir", "gatehouse-nats-keys", "Directory to write the seeds and users.yaml into.")
	cmd.Flags().StringSliceVar(&roles, "roles", all, "Roles to make keys for.")
	return cmd
}

func newNATSAuthorizationCommand() *cobra.Command {
	var users natsUsers
	var format string
	cmd := &cobra.Command{
		Use:   "authorization",
		Short: "Print the authorization block for an external nats-server: each identity with its role's permissions",
		Long: `Print what an external nats-server needs to serve Gatehouse as gatehouse nats does: with the
default --format conf, an authorization block with every identity of --users-file and --nkey and
its role's publish and subscribe permissions (include it in the server's configuration, next to
its TLS and JetStream settings); with --format json, the permissions of every role, for servers
that authenticate with an operator's JWTs (nsc add user --allow-pub ... --allow-sub ...).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "json":
				data, err := natsbus.PermissionsJSON()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			case "conf":
				us, err := users.users()
				if err != nil {
					return err
				}
				if len(us) == 0 {
					return errors.New("--users-file or --nkey is required with --format conf")
				}
				conf, err := natsbus.AuthorizationConfig(us)
				if err != nil {
					return err
				}
				_, err = io.WriteString(cmd.OutOrStdout(), conf)
				return err
			}
			return fmt.Errorf("--format must be conf or json, not %q", format)
		},
	}
	users.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "conf", "conf (nats-server configuration) or json (permissions by role).")
	return cmd
}

func newNATSProvisionCommand(g *globals) *cobra.Command {
	o := natsbus.Options{Role: natsbus.RoleAdmin}
	var po natsbus.ProvisionOptions
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Create or update Gatehouse's streams and approvals bucket, as the NATS administrator",
		Long: `Create the JetStream streams (` + strings.Join([]string{trail.StreamTrail, trail.StreamAudit, trail.StreamRecordings}, ", ") + `) and
the key-value bucket ` + approvals.Bucket + `, or update them to their current definitions. Components may
not create, change or delete them; they wait, not ready, until they exist. Connects with the
administrator's identity (--nats-nkey-file with the admin seed). gatehouse nats does it itself at
start; run this for an external NATS, at install and after every upgrade (the chart's hook does).`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			po.Bucket.Replicas = po.Streams.Replicas
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			o.Logger = g.logger
			conn, err := natsbus.Connect(ctx, o)
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := conn.WaitReady(ctx); err != nil {
				return err
			}
			if err := natsbus.ProvisionConn(ctx, conn.Conn, po); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Provisioned %s, %s, %s and %s.\n", trail.StreamTrail, trail.StreamAudit, trail.StreamRecordings, approvals.Bucket)
			return err
		},
	}
	fs := cmd.Flags()
	o.AddFlags(fs)
	fs.IntVar(&po.Streams.Replicas, "replicas", 1, "Replicas of every stream and of the bucket, in a NATS cluster.")
	fs.DurationVar(&po.Streams.MaxAge, "trail-max-age", 7*24*time.Hour, "How long the trail, the audit batches and the recordings are kept in NATS (the enricher stores them in ClickHouse within seconds).")
	fs.DurationVar(&po.Bucket.Retention, "approvals-retention", 90*24*time.Hour, "How long approval requests are kept.")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "How long to wait for NATS.")
	fs.BoolVar(&o.Dev, "dev", false, "Development mode: credentials and TLS are optional.")
	return cmd
}
