package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

type approvalsOptions struct {
	kube          kubeOptions
	output        string
	console       string
	consoleCAFile string
}

func newApprovalsCommand() *cobra.Command {
	o := &approvalsOptions{}
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, show, approve and deny operations held for approval",
		Long: `Work with the approval requests of operations that Gatehouse policies hold for a human's
approval. The commands call the approvals API of gatehouse console with the credentials of your
kubeconfig (the one that points at the Gatehouse proxy; the console verifies the same tokens), so
you act as your own verified identity: you can decide requests if you are in one of their
approver groups, and never your own.

The console is found by asking the proxy of your kubeconfig (it answers calls of the approvals
API with the console's URL), or given with --console or GATEHOUSE_CONSOLE. Its certificate is
verified against the system's roots, your kubeconfig's CA and --console-ca-file.`,
	}
	o.kube.addFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&o.console, "console", "", "URL of gatehouse console, e.g. https://gatehouse-console.example.com. Default: $GATEHOUSE_CONSOLE, then the URL the proxy of your kubeconfig names.")
	cmd.PersistentFlags().StringVar(&o.consoleCAFile, "console-ca-file", "", "CA bundle of the console's serving certificate, when neither the system nor your kubeconfig's CA trusts it.")
	cmd.PersistentFlags().StringVarP(&o.output, "output", "o", "", "Output format: json or yaml. Default: human-readable.")

	var all, watch bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List pending approval requests (--all for every state, --watch to follow new ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			if watch {
				return o.watch(cmd.Context(), cmd.OutOrStdout(), c, all)
			}
			state := approvals.StatePending
			if all {
				state = ""
			}
			items, err := c.List(cmd.Context(), state)
			if err != nil {
				return err
			}
			if o.output != "" {
				return o.print(cmd.OutOrStdout(), approvals.ListResponse{Items: items})
			}
			return printTable(cmd.OutOrStdout(), items)
		},
	}
	list.Flags().BoolVar(&all, "all", false, "List requests in every state, not only pending ones.")
	list.Flags().BoolVarP(&watch, "watch", "w", false, "After listing, follow new requests and changes until interrupted.")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an approval request with its object and decisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.output != "" {
				return o.print(cmd.OutOrStdout(), r)
			}
			return printRequest(cmd.OutOrStdout(), r)
		},
	}
	cmd.AddCommand(list, show, o.decideCommand(approvals.Approve), o.decideCommand(approvals.Deny))
	return cmd
}

func (o *approvalsOptions) decideCommand(v approvals.Verdict) *cobra.Command {
	var (
		reason         string
		scope          bool
		scopeVerbs     []string
		scopeResources []string
		scopeDuration  time.Duration
	)
	name := strings.ToLower(string(v))
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: strings.ToUpper(name[:1]) + name[1:] + " an approval request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			var choice *approvals.ScopeChoice
			if scope || len(scopeVerbs) > 0 || len(scopeResources) > 0 || scopeDuration > 0 {
				choice = &approvals.ScopeChoice{Verbs: scopeVerbs, Resources: scopeResources}
				choice.Duration.Duration = scopeDuration
			}
			r, err := c.DecideScoped(cmd.Context(), args[0], v, reason, choice)
			if err != nil {
				return err
			}
			if o.output != "" {
				return o.print(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d of %d approvals)\n", r.ID, r.State, len(r.Approvers()), r.Required)
			if err == nil && r.Grant != nil && r.Grant.Scope != nil {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Granted: %s, until %s.\n", r.Grant.Scope, r.Grant.Expires.Format(time.RFC3339))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "Why; recorded with the decision in the trail.")
	if v == approvals.Approve {
		cmd.Flags().BoolVar(&scope, "scope", false, "Grant the scope the rule offers (its verbs and resources in the operation's namespace, "+
			"for the requester's session, for its longest duration) instead of the one operation. `gatehouse approvals show` prints the offer.")
		cmd.Flags().StringSliceVar(&scopeVerbs, "scope-verbs", nil, "Grant a scope with these of the offered verbs (implies --scope).")
		cmd.Flags().StringSliceVar(&scopeResources, "scope-resources", nil, "Grant a scope with these of the offered resources (implies --scope).")
		cmd.Flags().DurationVar(&scopeDuration, "scope-duration", 0, "Grant a scope for this long, at most the offered duration (implies --scope).")
	}
	return cmd
}

// client returns a client of the console's approvals API with the kubeconfig's credentials.
func (o *approvalsOptions) client(ctx context.Context) (*approvals.Client, error) {
	cfg, err := o.kube.restConfig()
	if err != nil {
		return nil, err
	}
	base := o.console
	if base == "" {
		base = os.Getenv("GATEHOUSE_CONSOLE")
	}
	if base == "" {
		proxyClient, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return nil, err
		}
		if base, err = approvals.DiscoverConsole(ctx, proxyClient, cfg.Host); err != nil {
			return nil, err
		}
	}
	if u, err := url.Parse(base); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the console's URL must be an https URL, not %q", base)
	}
	hc, err := consoleHTTPClient(cfg, o.consoleCAFile)
	if err != nil {
		return nil, err
	}
	return &approvals.Client{BaseURL: base, HTTP: hc}, nil
}

// consoleHTTPClient returns an HTTP client with the kubeconfig's credentials (its token, or its
// exec credential plugin) that trusts the system's roots, the kubeconfig's CA and caFile.
func consoleHTTPClient(cfg *rest.Config, caFile string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pems := [][]byte{cfg.CAData}
	for _, f := range []string{cfg.CAFile, caFile} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pems = append(pems, data)
	}
	if caFile != "" && !x509.NewCertPool().AppendCertsFromPEM(pems[len(pems)-1]) {
		return nil, fmt.Errorf("--console-ca-file: no PEM certificate in %s", caFile)
	}
	for _, p := range pems {
		pool.AppendCertsFromPEM(p)
	}
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
	}
	auth := rest.CopyConfig(cfg)
	auth.TLSClientConfig = rest.TLSClientConfig{}
	rt, err := rest.HTTPWrappersForConfig(auth, base)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, Timeout: 0}, nil
}

func (o *approvalsOptions) print(w io.Writer, v any) error {
	switch o.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("--output must be json or yaml, not %q", o.output)
}

func describeOperation(r *approvals.Request) string {
	op := r.Operation
	res := op.Resource
	if op.APIGroup != "" {
		res += "." + op.APIGroup
	}
	if op.Subresource != "" {
		res += "/" + op.Subresource
	}
	target := op.Name
	if op.Namespace != "" {
		target = op.Namespace + "/" + op.Name
	}
	return strings.ToLower(op.Verb) + " " + res + " " + target
}

func printTable(w io.Writer, items []*approvals.Request) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No approval requests.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREQUESTER\tOPERATION\tRULE\tAPPROVALS\tAGE")
	for _, r := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.ID, r.State, r.Requester.User, describeOperation(r),
			r.Policy.Policy+"/"+r.Policy.Rule, len(r.Approvers()), r.Required, time.Since(r.Created).Round(time.Second))
	}
	return tw.Flush()
}

func printRequest(w io.Writer, r *approvals.Request) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", r.ID)
	fmt.Fprintf(tw, "State:\t%s\n", r.State)
	fmt.Fprintf(tw, "Requester:\t%s (groups: %s)\n", r.Requester.User, strings.Join(r.Requester.Groups, ", "))
	if r.OriginalUser != "" {
		fmt.Fprintf(tw, "Sent by:\t%s, impersonating the requester\n", r.OriginalUser)
	}
	if r.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", r.Reason)
	}
	if r.SessionID != "" {
		fmt.Fprintf(tw, "Session:\t%s\n", r.SessionID)
	}
	fmt.Fprintf(tw, "Operation:\t%s\n", describeOperation(r))
	fmt.Fprintf(tw, "Rule:\t%s/%s: %s\n", r.Policy.Policy, r.Policy.Rule, r.Policy.Message)
	fmt.Fprintf(tw, "Approvers:\tmembers of %s; %d approval(s) needed\n", strings.Join(r.ApproverGroups, ", "), r.Required)
	fmt.Fprintf(tw, "Created:\t%s\n", r.Created.Format(time.RFC3339))
	fmt.Fprintf(tw, "Expires:\t%s\n", r.Expires.Format(time.RFC3339))
	if o := r.ScopeOffer; o != nil {
		fmt.Fprintf(tw, "Scope offered:\t%s on %s in %s, for the requester's session, for up to %s (approve --scope)\n",
			strings.Join(o.Verbs, ", "), strings.Join(o.Resources, ", "), cmp.Or(o.Namespace, "the cluster scope"), o.MaxDuration.Duration)
	}
	if r.Grant != nil {
		if r.Grant.Scope != nil {
			fmt.Fprintf(tw, "Scope granted:\t%s\n", r.Grant.Scope)
		}
		fmt.Fprintf(tw, "Grant:\tvalid until %s", r.Grant.Expires.Format(time.RFC3339))
		if r.Grant.UsedAt != nil {
			fmt.Fprintf(tw, ", used at %s (admission UID %s)", r.Grant.UsedAt.Format(time.RFC3339), r.Grant.AdmissionUID)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "Fingerprint:\t%s\n", r.Fingerprint)
	for _, d := range r.Decisions {
		fmt.Fprintf(tw, "Decision:\t%s by %s at %s", d.Verdict, d.Approver, d.Time.Format(time.RFC3339))
		if d.Reason != "" {
			fmt.Fprintf(tw, ": %s", d.Reason)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Object) > 0 {
		y, err := yaml.JSONToYAML(r.Object)
		if err != nil {
			y = r.Object
		}
		fmt.Fprintf(w, "Object (secret values masked):\n%s", indentLines(string(y), "  "))
	}
	return nil
}

func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}
