// Package app builds the gatehouse command line: one cobra command per component, each parsing
// and validating its flags before it runs the component's library code.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// NewCommand returns the root gatehouse command writing to stdout and stderr. Errors are
// returned, not printed: main prints them once.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	cmd := &cobra.Command{
		Use:           "gatehouse",
		Short:         "Gatehouse: an attributable, reviewable and safe access gateway for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.setup()
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	g.addFlags(cmd)
	cmd.AddCommand(
		newVersionCommand(),
		newClickHouseCommand(g),
		newProxyCommand(g, runProxy),
		newEnricherCommand(g, runEnricher),
		newWebhookCommand(g, runWebhook),
		newApprovalsCommand(),
		newConsoleCommand(g, runConsole),
		newSessionsCommand(g),
		newSQLCommand(g),
	)
	cmd.AddCommand(localCommands(g)...)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())
	})
	return cmd
}

// serverCommand completes cmd, a command without arguments whose flags fill o, in the manner
// of cert-manager's NewServerCommand/newServerCommand: o is validated before run gets it, and
// run is a parameter, so that tests can see what the flags parse into and can call the real run
// with options of their own.
func serverCommand[O interface{ Validate() error }](g *globals, o O, run func(context.Context, *slog.Logger, O) error, cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.PreRunE = func(*cobra.Command, []string) error { return o.Validate() }
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), g.logger, o) }
	return cmd
}

// globals are the flags every subcommand shares.
type globals struct {
	stderr    io.Writer
	logFormat string
	logLevel  string
	logger    *slog.Logger
}

func (g *globals) addFlags(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&g.logFormat, "log-format", "json", "Log format: json or text.")
	fs.StringVar(&g.logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
}

func (g *globals) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(g.stderr, opts))
	case "text":
		g.logger = slog.New(slog.NewTextHandler(g.stderr, opts))
	default:
		return fmt.Errorf("--log-format must be json or text, not %q", g.logFormat)
	}
	// controller-runtime's components (webhook server, certificate watcher, caches) log through
	// its process-wide logger.
	ctrllog.SetLogger(logr.FromSlogHandler(g.logger.Handler()))
	// Kubernetes' own libraries (the OIDC authenticator, client-go) log through klog; route it to
	// the same structured log instead of klog's unstructured stderr.
	klog.SetSlogLogger(g.logger)
	return nil
}
