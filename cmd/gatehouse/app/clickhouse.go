//go:build !gatehouse_noclickhouse

package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/chserver"
)

// clickhouseOptions are the flags of `gatehouse clickhouse`.
type clickhouseOptions struct{ chserver.Options }

// Validate defaults the library from $GATEHOUSE_LIBCHDB and checks the options.
func (o *clickhouseOptions) Validate() error {
	if o.Library == "" {
		o.Library = os.Getenv("GATEHOUSE_LIBCHDB")
	}
	return o.Options.Validate()
}

func newClickHouseCommand(g *globals) *cobra.Command {
	o := &clickhouseOptions{}
	cmd := serverCommand(g, o, runClickHouse, &cobra.Command{
		Use:   "clickhouse",
		Short: "Run the ClickHouse engine from libchdb.so as a loopback server (development and tests)",
		Long: `Run the ClickHouse engine, loaded from its shared-library build (libchdb.so), as a server
listening on loopback with the native and HTTP protocols. It has no authentication and is meant
for development, demos and tests; production points the enricher at a real ClickHouse.

scripts/testbed.sh clickhouse fetches and verifies the library.`,
	})
	fs := cmd.Flags()
	fs.StringVar(&o.Library, "library", "", "Path of libchdb.so. Default: $GATEHOUSE_LIBCHDB.")
	fs.StringVar(&o.DataDir, "data-dir", filepath.Join(os.TempDir(), "gatehouse-clickhouse"), "Directory holding the databases.")
	fs.StringVar(&o.ListenHost, "listen-host", "127.0.0.1", "Loopback address to listen on.")
	fs.IntVar(&o.TCPPort, "tcp-port", 9000, "Native protocol port.")
	fs.IntVar(&o.HTTPPort, "http-port", 8123, "HTTP interface port.")
	fs.StringVar(&o.ConfigFile, "config-file", "", "ClickHouse configuration file (XML) whose users_config defines users, passwords, grants and roles, which the engine then enforces.")
	return cmd
}

// runClickHouse serves the engine until ctx ends.
func runClickHouse(ctx context.Context, log *slog.Logger, o *clickhouseOptions) error {
	lc, err := newLifecycle(serverOptions{}, lifecycleOptions{}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		return lc.add(func(ctx context.Context) error {
			log.Info("starting ClickHouse engine", "library", o.Library, "dataDir", o.DataDir,
				"tcpPort", o.TCPPort, "httpPort", o.HTTPPort)
			errc := make(chan error, 1)
			go func() { errc <- chserver.Serve(o.Options) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				// The engine cannot be stopped from inside; the process exits with it.
				log.Info("stopping ClickHouse engine")
				return nil
			}
		})
	})
}
