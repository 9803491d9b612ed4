package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// natsOptions are the flags of `gatehouse nats`.
type natsOptions struct {
	storeDir    string
	bindAddress string
	port        int
	allowRemote bool
	// out is where the ready line goes (the command's standard output).
	out func() io.Writer
}

func (o *natsOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.storeDir, "store-dir", "", "Directory where JetStream keeps its streams and key-value buckets; they survive restarts. Default: gatehouse/nats-server in the user cache directory.")
	fs.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "IP address to serve NATS clients on.")
	fs.IntVar(&o.port, "port", 4222, "Port to serve NATS clients on.")
	fs.BoolVar(&o.allowRemote, "allow-unauthenticated-remote-clients", false, "Serve on a --bind-address other than loopback although the server has no authentication. Never in production.")
}

// Validate reports flags that cannot work, and defaults the store directory.
func (o *natsOptions) Validate() error {
	if o.port < 1 || o.port > 65535 {
		return fmt.Errorf("--port must be between 1 and 65535, not %d", o.port)
	}
	ip := net.ParseIP(o.bindAddress)
	if ip == nil {
		return fmt.Errorf("--bind-address must be an IP address, not %q", o.bindAddress)
	}
	if !ip.IsLoopback() && !o.allowRemote {
		return fmt.Errorf("--bind-address %s is not loopback and this server has no authentication: anyone who reaches it could read and write the trail and the approvals; use a NATS cluster with credentials, or pass --allow-unauthenticated-remote-clients for a throw-away setup", o.bindAddress)
	}
	if o.storeDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("--store-dir is required (no user cache directory: %w)", err)
		}
		o.storeDir = filepath.Join(cache, "gatehouse", "nats-server")
	}
	return nil
}

// newNATSCommand returns `gatehouse nats`, which runs run with the validated options.
func newNATSCommand(g *globals, run func(context.Context, *slog.Logger, *natsOptions) error) *cobra.Command {
	o := &natsOptions{}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "nats",
		Short: "Run a standalone NATS JetStream server (the embedded engine) for development",
		Long: `Run a NATS server with JetStream: the engine Gatehouse embeds, as a process of its own, for
people who want the components (proxy, webhook, enricher) to share one NATS without a NATS
installation. Point them at it with --nats-url nats://127.0.0.1:4222.

It has no authentication and listens on loopback unless told otherwise; production uses a NATS
cluster with TLS and per-component credentials.`,
	})
	o.out = cmd.OutOrStdout
	o.addFlags(cmd.Flags())
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
	lc, err := newLifecycle(serverOptions{}, lifecycleOptions{}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		srv, err := natsbus.StartServer(natsbus.ServerOptions{StoreDir: o.storeDir, Host: o.bindAddress, Port: o.port, Logger: log.With("component", "nats-server")})
		if err != nil {
			return err
		}
		lc.onStop(func(context.Context) error {
			log.Info("stopping NATS")
			srv.Shutdown()
			return nil
		})
		log.Info("serving NATS with JetStream", "url", srv.URL(), "storeDir", o.storeDir)
		_, _ = fmt.Fprintf(o.out(), "NATS JetStream ready at %s (store %s); Ctrl-C stops it\n", srv.URL(), o.storeDir)
		return nil
	})
}
