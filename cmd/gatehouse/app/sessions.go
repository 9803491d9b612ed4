package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
	"github.com/gatehouse-dev/gatehouse/trail"
)

type sessionsOptions struct {
	clickhouse enricher.ClickHouseOptions
	output     string
}

func newSessionsCommand(g *globals) *cobra.Command {
	o := &sessionsOptions{}
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List, show, play, export, verify and replay recorded sessions",
		Long: `Work with what Gatehouse recorded of agent and user sessions: every API call, its policy
decision, approval and outcome, and the exec, attach and port-forward sessions, recorded as asciicast
v3 (docs.asciinema.org/manual/asciicast/v3) and masked. The commands read the enricher's ClickHouse
database with the same --clickhouse-* flags as 'gatehouse enricher'.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.setup(); err != nil {
				return err
			}
			return o.clickhouse.Validate()
		},
	}
	o.clickhouse.AddFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVarP(&o.output, "output", "o", "", "Output format of list, show, verify and replay: json or yaml. Default: human-readable.")
	cmd.AddCommand(o.listCommand(), o.showCommand(), o.playCommand(), o.exportCommand(), o.verifyCommand(), o.replayCommand())
	return cmd
}

func (o *sessionsOptions) store(ctx context.Context) (*sessionlog.Store, driver.Conn, error) {
	conn, err := o.clickhouse.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := sessionlog.New(conn, o.clickhouse.Database)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return s, conn, nil
}

// withStore runs f with a store, closing its connection afterwards.
func (o *sessionsOptions) withStore(cmd *cobra.Command, f func(context.Context, *sessionlog.Store) error) error {
	ctx := cmd.Context()
	s, conn, err := o.store(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(ctx, s)
}

func (o *sessionsOptions) print(w io.Writer, v any) error {
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

func (o *sessionsOptions) listCommand() *cobra.Command {
	var f sessionlog.Filter
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sessions, the most recently active first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				list, err := s.List(ctx, f)
				if err != nil {
					return err
				}
				if o.output != "" {
					return o.print(cmd.OutOrStdout(), list)
				}
				if len(list) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "No sessions.")
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SESSION\tLABEL\tUSER\tCLIENT\tSTARTED\tLAST ACTIVITY\tREQUESTS\tRECORDINGS")
				for _, x := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", x.ID, x.Label, x.User, x.Client,
						x.Started.UTC().Format(time.RFC3339), x.LastActivity.UTC().Format(time.RFC3339), x.Requests, x.Recordings)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&f.User, "user", "", "Only this user's sessions.")
	cmd.Flags().DurationVar(&since, "since", 0, "Only sessions active within this long, e.g. 24h.")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "Most sessions listed.")
	return cmd
}

func (o *sessionsOptions) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show SESSION",
		Short: "Show a session's timeline: every call, its decision, approval and outcome, and what ran in its terminals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				entries, err := s.Timeline(ctx, args[0])
				if err != nil {
					return err
				}
				if o.output != "" {
					return o.print(cmd.OutOrStdout(), entries)
				}
				if len(entries) == 0 {
					return fmt.Errorf("%w: no calls recorded for session %s", sessionlog.ErrNotFound, args[0])
				}
				return writeTimeline(cmd.OutOrStdout(), entries)
			})
		},
	}
}

// writeTimeline prints a timeline, one call a line, terminal sessions indented below their call.
func writeTimeline(w io.Writer, entries []sessionlog.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tCALL\tCODE\tROUTE\tDECISION\tAPPROVAL\tMASKED\tPAYLOAD")
	for _, e := range entries {
		call := e.Verb + " " + e.Resource
		if e.Subresource != "" {
			call += "/" + e.Subresource
		}
		if target := strings.Trim(e.Namespace+"/"+e.Name, "/"); target != "" {
			call += " " + target
		}
		if e.Resource == "" {
			call = e.Verb + " " + e.URI
		}
		code := fmt.Sprint(e.Code)
		if e.Open {
			code += " (open)"
		}
		decision := "-"
		if d := e.Decision; d != nil {
			decision = d.Action
			if d.Rule != "" {
				decision += " " + d.Policy + "/" + d.Rule
			}
		}
		approval := "-"
		if a := e.Approval; a != nil {
			approval = a.ID + " " + a.State
			if len(a.Approvers) > 0 {
				approval += " by " + strings.Join(a.Approvers, ",")
			}
		}
		masked := "-"
		if e.Masked > 0 {
			masked = fmt.Sprint(e.Masked)
			var by []string
			for k, v := range e.MaskedBy {
				by = append(by, fmt.Sprintf("%s:%d", k, v))
			}
			if len(by) > 0 {
				masked += " (" + strings.Join(by, ",") + ")"
			}
		}
		user := e.User
		if e.OriginalUser != "" {
			user += " (as " + e.OriginalUser + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), user, call, code,
			e.Route, decision, approval, masked, e.Payload)
		if e.Code >= 400 && e.Message != "" {
			fmt.Fprintf(tw, "\t\t  %s\t\t\t\t\t\t\n", truncateRunes(e.Message, 160))
		}
		if r := e.Recording; r != nil {
			state := "complete"
			if !r.Complete {
				state = "incomplete"
			}
			line := fmt.Sprintf("  recording %s (%s, %d chunks, %s)", r.ID, r.Format, r.Chunks, state)
			if len(r.Command) > 0 {
				line += ": " + strings.Join(r.Command, " ")
			}
			if r.ExitStatus != nil {
				line += fmt.Sprintf(" -> exit %d", *r.ExitStatus)
			}
			if r.Format == trail.FormatPortForward {
				line += fmt.Sprintf(": %d connections", r.Connections)
			}
			fmt.Fprintf(tw, "\t\t%s\t\t\t\t\t\t\n", line)
			for _, typed := range r.Typed {
				fmt.Fprintf(tw, "\t\t    $ %s\t\t\t\t\t\t\n", truncateRunes(typed, 160))
			}
		}
	}
	return tw.Flush()
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// recordingFor returns the recording an argument names: a recording ID, or a session with one
// terminal recording (or the one --recording names).
func recordingFor(ctx context.Context, s *sessionlog.Store, id, pick string) (*sessionlog.Recording, error) {
	if pick != "" {
		id = pick
	}
	rec, err := s.Recording(ctx, id)
	if err == nil || !errors.Is(err, sessionlog.ErrNotFound) {
		return rec, err
	}
	recs, lerr := s.Recordings(ctx, id)
	if lerr != nil {
		return nil, lerr
	}
	var terminals []string
	for _, r := range recs {
		if r.Format == trail.FormatAsciicast {
			terminals = append(terminals, r.ID)
		}
	}
	switch len(terminals) {
	case 0:
		return nil, fmt.Errorf("%w: no recording or session with a terminal recording has the ID %s", sessionlog.ErrNotFound, id)
	case 1:
		return s.Recording(ctx, terminals[0])
	}
	return nil, fmt.Errorf("session %s has %d terminal recordings; name one with --recording: %s", id, len(terminals), strings.Join(terminals, ", "))
}

func (o *sessionsOptions) playCommand() *cobra.Command {
	var po recording.PlayOptions
	var pick string
	cmd := &cobra.Command{
		Use:   "play RECORDING|SESSION",
		Short: "Play a terminal recording in this terminal, with its timing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				rec, err := recordingFor(ctx, s, args[0], pick)
				if err != nil {
					return err
				}
				cast, err := rec.Cast()
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
				defer stop()
				return recording.Play(ctx, cmd.OutOrStdout(), cast, po)
			})
		},
	}
	cmd.Flags().Float64Var(&po.Speed, "speed", 1, "Playback speed: 2 plays twice as fast.")
	cmd.Flags().DurationVar(&po.IdleLimit, "idle-limit", 0, "Cap every pause at this long, e.g. 2s. Default: the recording's pauses.")
	cmd.Flags().StringVar(&pick, "recording", "", "The recording to play, when the session has several.")
	return cmd
}

func (o *sessionsOptions) exportCommand() *cobra.Command {
	var file, pick string
	cmd := &cobra.Command{
		Use:   "export RECORDING|SESSION",
		Short: "Write a terminal recording as an asciicast v3 .cast file that asciinema and asciinema-player play",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				rec, err := recordingFor(ctx, s, args[0], pick)
				if err != nil {
					return err
				}
				if _, err := rec.Cast(); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if file != "" && file != "-" {
					f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
					if err != nil {
						return err
					}
					defer f.Close()
					w = f
				}
				return rec.Export(w)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "Write to this file instead of standard output.")
	cmd.Flags().StringVar(&pick, "recording", "", "The recording to export, when the session has several.")
	return cmd
}

// verification is the outcome of verifying one recording.
type verification struct {
	Recording string `json:"recording"`
	Chunks    int    `json:"chunks"`
	Head      string `json:"head,omitempty"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
}

func (o *sessionsOptions) verifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify RECORDING|SESSION",
		Short: "Check the hash chain of a recording, or of every recording of a session",
		Long: `Check that the stored chunks of a recording are the ones the proxy published: numbered without
gaps, each hash matching the chunk's content and the chunk before it, and the last one final. The
head hash printed is the hash of the last chunk; keep it elsewhere to detect a consistent rewrite of
the whole chain. Exits with an error when a recording does not verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				var recs []*sessionlog.Recording
				rec, err := s.Recording(ctx, args[0])
				switch {
				case err == nil:
					recs = append(recs, rec)
				case errors.Is(err, sessionlog.ErrNotFound):
					list, lerr := s.Recordings(ctx, args[0])
					if lerr != nil {
						return lerr
					}
					if len(list) == 0 {
						return fmt.Errorf("%w: no recording or session with recordings has the ID %s", sessionlog.ErrNotFound, args[0])
					}
					for _, r := range list {
						full, err := s.Recording(ctx, r.ID)
						if err != nil {
							return err
						}
						recs = append(recs, full)
					}
				default:
					return err
				}
				var results []verification
				failed := 0
				for _, r := range recs {
					head, err := r.Verify()
					v := verification{Recording: r.ID, Chunks: len(r.Chunks), Head: head, OK: err == nil}
					if err != nil {
						v.Error = err.Error()
						failed++
					}
					results = append(results, v)
				}
				if o.output != "" {
					if err := o.print(cmd.OutOrStdout(), results); err != nil {
						return err
					}
				} else {
					for _, v := range results {
						if v.OK {
							fmt.Fprintf(cmd.OutOrStdout(), "%s: OK, %d chunks, head %s\n", v.Recording, v.Chunks, v.Head)
						} else {
							fmt.Fprintf(cmd.OutOrStdout(), "%s: FAILED: %s\n", v.Recording, v.Error)
						}
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d recordings do not verify", failed, len(results))
				}
				return nil
			})
		},
	}
}

func (o *sessionsOptions) replayCommand() *cobra.Command {
	var kube kubeOptions
	var masking maskingOptions
	var ro sessionlog.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay SESSION --kubeconfig SANDBOX",
		Short: "Re-issue a session's writes against a cluster, as dry runs by default, and compare the outcomes",
		Long: `Re-issue the writes of a session, in order, against the cluster of --kubeconfig (a sandbox, or the
same cluster with the default --dry-run), and report call by call whether each would succeed now and
how its answer differs from the recorded one (the audit event's responseObject, as stored), fields
that every write changes left out. With --masking-key-file (the key the trail was masked with) the
replayed answers are masked the same way and the differing values are shown; without it only the
fields that differ are named. Recorded objects are masked: a Secret is replayed with placeholders.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := kube.restConfig()
			if err != nil {
				return err
			}
			if masking.keyFile != "" || masking.configFile != "" {
				m, _, err := masking.masker(false, slog.New(slog.DiscardHandler))
				if err != nil {
					return err
				}
				ro.Masker = m
			}
			return o.withStore(cmd, func(ctx context.Context, s *sessionlog.Store) error {
				calls, err := s.Writes(ctx, args[0])
				if err != nil {
					return err
				}
				if len(calls) == 0 {
					return fmt.Errorf("%w: no writes recorded for session %s", sessionlog.ErrNotFound, args[0])
				}
				results, err := sessionlog.Replay(ctx, cfg, calls, ro)
				if err != nil {
					return err
				}
				if o.output != "" {
					return o.print(cmd.OutOrStdout(), results)
				}
				return writeReplay(cmd.OutOrStdout(), results, ro.DryRun)
			})
		},
	}
	kube.addFlags(cmd.Flags())
	masking.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&ro.DryRun, "dry-run", true, "Send every write with dryRun=All, so that nothing changes. --dry-run=false writes for real: use a sandbox.")
	cmd.Flags().BoolVar(&ro.Impersonate, "impersonate", false, "Send each write as the user who made it (the kubeconfig's identity must be allowed to impersonate them).")
	return cmd
}

func writeReplay(w io.Writer, results []sessionlog.Result, dryRun bool) error {
	mode := "for real"
	if dryRun {
		mode = "as dry runs"
	}
	fmt.Fprintf(w, "Replayed %d writes %s.\n", len(results), mode)
	for i, r := range results {
		c := r.Call
		now := "fails now"
		if r.Succeeded {
			now = "would succeed now"
		}
		if r.Error != "" {
			now = "not sent: " + r.Error
		}
		fmt.Fprintf(w, "%d. %s %s: recorded %d, replayed %d: %s\n", i+1, c.Verb, c.URI, c.Code, r.Code, now)
		if r.Message != "" {
			fmt.Fprintf(w, "   %s\n", r.Message)
		}
		if r.Succeeded != r.RecordedSucceeded && r.Error == "" {
			fmt.Fprintf(w, "   the outcome differs from the recorded one\n")
		}
		for _, d := range r.Diff {
			fmt.Fprintf(w, "   ~ %s: %s -> %s\n", d.Path, d.Recorded, d.Replayed)
		}
	}
	return nil
}
