package app

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"

	"github.com/gatehouse-dev/gatehouse/devenv"
	"github.com/gatehouse-dev/gatehouse/devoidc"
)

func newDevCommand() *cobra.Command {
	o := devenv.Options{}
	var scenario bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system on this machine for development: control plane, node, NATS, ClickHouse, OIDC issuer and Gatehouse",
		Long: `Run Gatehouse and everything it needs in one process, for development and demos:
kube-apiserver and etcd (from the build scripts/testbed.sh caches) with the audit webhook pointed
at the enricher and the shipped audit policy; a development node (pods run a built-in shell, see
package devnode); NATS JetStream; ClickHouse; a development OIDC issuer with demo identities
(agent, approver, developer); and the proxy, the admission webhooks (registered with the shipped
configurations and the default policy pack), the enricher and the console, each a child process
of this binary started with its own command-line flags and its own NATS identity (an NKey, over
TLS), as in production.

It writes agent.kubeconfig, approver.kubeconfig and admin.kubeconfig into --dir, prints what to
try, and runs until Ctrl-C, then stops every part and leaves no process behind. With --scenario
it first plays a scripted agent session through the proxy and prints its audit trail.

With --kubeconfig it attaches to an existing cluster instead of starting a control plane and a
node, and prints the administrator's steps for the webhooks and the audit backend.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o.Out = cmd.OutOrStdout()
			env, err := devenv.Start(ctx, o)
			if err != nil {
				return err
			}
			defer env.Stop()
			if scenario {
				if _, err := env.Scenario(ctx); err != nil {
					return fmt.Errorf("scenario: %w", err)
				}
			}
			env.PrintTry()
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "\nStopping…")
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Dir, "dir", ".gatehouse-dev", "State directory: kubeconfigs, keys, logs and the components' data.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Attach to the cluster of this kubeconfig (an administrator's) instead of starting kube-apiserver, etcd and a dev node.")
	fs.StringVar(&o.KubeAssets, "kube-assets", "", "Directory with kube-apiserver, etcd and kubectl. Default: $KUBEBUILDER_ASSETS, then the cache of scripts/testbed.sh.")
	fs.StringVar(&o.LibCHDB, "libchdb", "", "The ClickHouse engine library (libchdb.so). Default: $GATEHOUSE_LIBCHDB, then the cache of scripts/testbed.sh.")
	fs.StringVar(&o.ProxyAddress, "proxy-address", "127.0.0.1:8443", "Address the proxy listens on.")
	fs.StringVar(&o.IssuerAddress, "issuer-address", "127.0.0.1:8444", "Address the development OIDC issuer listens on.")
	fs.StringVar(&o.ConsoleAddress, "console-address", "127.0.0.1:8445", "Address gatehouse console (the approvers' web UI and the approvals API) listens on.")
	fs.DurationVar(&o.ApprovalTimeout, "approval-timeout", 10*time.Minute, "How long the proxy holds a request that needs approval.")
	fs.BoolVar(&o.Reset, "reset", false, "Discard a state directory left by a run that did not stop cleanly, stopping the processes it left.")
	fs.BoolVar(&scenario, "scenario", false, "Play a scripted agent session through the proxy and print its audit trail, then keep running.")
	cmd.AddCommand(newDevTokenCommand())
	return cmd
}

func newDevTokenCommand() *cobra.Command {
	var dir, output string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:       "token agent|approver|developer",
		Short:     "Print a token of a demo identity of the running `gatehouse dev`",
		Long:      "Mint an ID token for a demo identity, signed with the development issuer's key in --dir, while `gatehouse dev` runs there. -o exec-credential prints it as a kubectl exec credential.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"agent", "approver", "developer"},
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := devenv.ReadState(dir)
			if err != nil {
				return err
			}
			var id *devoidc.Identity
			var names []string
			for _, i := range st.Identities {
				names = append(names, i.Name)
				if i.Name == args[0] {
					id = &i
				}
			}
			if id == nil {
				return fmt.Errorf("no demo identity %q; the identities are %v", args[0], names)
			}
			tok, err := devoidc.MintFromKeyFile(devenv.IssuerKeyFile(dir), st.IssuerURL, st.Audience, *id, ttl)
			if err != nil {
				return err
			}
			switch output {
			case "":
				_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			case "exec-credential":
				exp := time.Now().Add(ttl)
				err = json.NewEncoder(cmd.OutOrStdout()).Encode(&clientauthv1.ExecCredential{
					TypeMeta: execCredentialType,
					Status:   &clientauthv1.ExecCredentialStatus{Token: tok, ExpirationTimestamp: metaTime(exp)},
				})
			default:
				err = fmt.Errorf("-o must be empty or exec-credential, not %q", output)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".gatehouse-dev", "State directory of the running gatehouse dev.")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "How long the token is valid.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: empty for the bare token, or exec-credential.")
	return cmd
}
