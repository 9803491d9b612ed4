package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/natsbus"
)

type enricherOptions struct {
	server serverOptions
	// kube reaches kube-apiserver, only for a self-managed serving certificate.
	kube             kubeOptions
	endpoint         endpointOptions
	nats             natsbus.Options
	clickhouse       enricher.ClickHouseOptions
	masking          maskingOptions
	clientCAFile     string
	gatewayUsers     []string
	retentionDays    int
	retention        map[string]int
	roles            string
	auditorRole      string
	agentGroups      []string
	cpNamespaces     []string
	webhookNames     []string
	gatewayGrace     time.Duration
	holdMargin       time.Duration
	maxRequest       int64
	maxEvent         int
	maxInFlight      int
	maxInFlightBytes int64
	spoolDir         string
	spoolMaxBytes    int64
	workers          int
	batchMessages    int
	batchMaxWait     time.Duration
	insertRows       int
	insertBytes      int
	ackWait          time.Duration
	auditLogPath     string
	memoryLimit      string
}

// newEnricherCommand returns `gatehouse enricher`, which runs run with the validated options.
func newEnricherCommand(g *globals, run func(context.Context, *slog.Logger, *enricherOptions) error) *cobra.Command {
	o := &enricherOptions{nats: natsbus.Options{Role: natsbus.RoleEnricher}}
	cmd := serverCommand(g, o, run, &cobra.Command{
		Use:   "enricher",
		Short: "Receive kube-apiserver audit events and store them, masked and joined with the trail, in ClickHouse",
		Long: `Run the audit enricher. kube-apiserver's audit webhook backend posts audit event batches
to its HTTPS intake (path ` + enricher.IntakePath + `, mutual TLS); each batch is masked and written
to the spool on local disk, synced, before it is acknowledged, so batches survive NATS being away
and the enricher's own restart. The spool is published to NATS JetStream, and from there the
events are inserted into ClickHouse together with the gateway's trail records (requests, policy
decisions, sessions). With --audit-log-path it also follows kube-apiserver's audit log as a
backstop for batches the webhook gave up on. The schema is created and migrated at start. See
docs/audit-pipeline.md for the pipeline and its failure modes, docs/auditing.md for the tables
and the auditors' queries, and manifests/audit for the audit policy and the webhook kubeconfig.`,
	})
	fs := cmd.Flags()
	o.server.addFlags(fs, "a self-signed serving certificate, an embedded NATS server, a random masking key, a spool in the user cache directory and an intake without client certificates, when none are configured.")
	o.endpoint.addFlags(fs, "the audit intake", 8443)
	o.kube.addFlags(fs)
	o.nats.AddFlags(fs)
	o.clickhouse.AddFlags(fs)
	o.masking.addFlags(fs)
	fs.StringVar(&o.clientCAFile, "client-ca-file", "", "CA bundle that signed kube-apiserver's audit webhook client certificate; the intake requires a client certificate signed by it. Required, except with --dev.")
	fs.StringSliceVar(&o.gatewayUsers, "gateway-users", []string{"system:serviceaccount:gatehouse:gatehouse-proxy"}, "Users the gateway authenticates to kube-apiserver as; only their impersonation extras are read as the gateway's session attributes. Empty trusts every impersonator.")
	fs.IntVar(&o.retentionDays, "retention-days", 365, "Days audit rows are kept (ClickHouse TTL, whole daily partitions). -1 keeps them forever.")
	fs.StringToIntVar(&o.retention, "retention", nil, "Retention of single tables in days, overriding --retention-days, e.g. audit_events=730,session_recordings=90 (-1: forever). Applied by the migrations at every start.")
	fs.StringVar(&o.roles, "clickhouse-roles", string(schema.RolesAuto), "Whether the migrations create the auditors' role and grant it SELECT on the views: auto (when the server and this account allow it, else a warning), on (fail when they cannot) or off (an administrator runs 'gatehouse sql --print-grants').")
	fs.StringVar(&o.auditorRole, "clickhouse-auditor-role", "", "Name of the auditors' ClickHouse role. Default: <database>_auditor.")
	fs.StringSliceVar(&o.agentGroups, "agent-groups", enricher.DefaultAgentGroups, "Groups whose members are agents (the trail's actor_kind).")
	fs.StringSliceVar(&o.cpNamespaces, "control-plane-namespaces", enricher.DefaultControlPlaneNamespaces, "Namespaces whose service accounts belong to the control plane (the trail's actor_kind control-plane), beside kube-apiserver, the kube-* components, nodes and --gateway-users.")
	fs.StringSliceVar(&o.webhookNames, "admission-webhooks", enricher.DefaultAdmissionWebhooks, "Names of Gatehouse's validating webhooks: only their audit annotations (decision, policy, rule, action, approval) are read.")
	fs.DurationVar(&o.holdMargin, "trail-hold-margin", schema.DefaultHoldMargin, "How far before a window's start the trail_for view (the canned queries') reads the gateway's records: at least the proxy's --approval-timeout, the longest it holds a call for approval.")
	fs.DurationVar(&o.gatewayGrace, "gateway-record-grace", 5*time.Minute, "How long an audit event carrying the gateway's session waits for the gateway's record before the trail view calls it a bypass.")
	fs.Int64Var(&o.maxRequest, "max-request-bytes", enricher.DefaultMaxRequestBytes, "Largest audit batch accepted; larger ones get 413.")
	fs.IntVar(&o.maxEvent, "max-event-bytes", enricher.DefaultMaxEventBytes, "Largest audit event stored whole; a larger one loses its request and response objects while it is read and is marked audit.k8s.io/truncated, as kube-apiserver's truncating backend does.")
	fs.IntVar(&o.maxInFlight, "max-requests-inflight", enricher.DefaultMaxInFlight, "Most audit batches processed at once; further ones wait.")
	fs.Int64Var(&o.maxInFlightBytes, "max-inflight-bytes", enricher.DefaultMaxInFlightBytes, "Most request bytes processed at once (a body of unknown length counts as --max-request-bytes); further batches wait. Bounds the intake's memory with concurrent large batches.")
	fs.StringVar(&o.spoolDir, "spool-dir", "", "Directory of the spool, where every accepted batch is written and synced before the intake answers, and from where it is published to NATS. Put it on a persistent volume; one enricher per directory. Required, except with --dev.")
	fs.Int64Var(&o.spoolMaxBytes, "spool-max-bytes", enricher.DefaultSpoolMaxBytes, "Size limit of the spool. When it is full the intake answers 503 (kube-apiserver retries) and says so in its log and metrics.")
	fs.StringVar(&o.memoryLimit, "memory-limit", "auto", "Soft memory limit of the Go runtime (GOMEMLIMIT): auto (90% of the container's cgroup memory limit, unless GOMEMLIMIT is set), off, or a size such as 900Mi.")
	fs.IntVar(&o.workers, "workers", enricher.DefaultWorkers, "Audit batch consumers running at once.")
	fs.IntVar(&o.batchMessages, "batch-max-messages", enricher.DefaultBatchMessages, "Most JetStream messages (each one audit batch) inserted into ClickHouse at once.")
	fs.DurationVar(&o.batchMaxWait, "batch-max-wait", enricher.DefaultBatchMaxWait, "Longest a consumer waits for a batch to fill before inserting it.")
	fs.IntVar(&o.insertRows, "insert-max-rows", enricher.DefaultInsertRows, "Most rows in one INSERT.")
	fs.IntVar(&o.insertBytes, "insert-max-bytes", enricher.DefaultInsertBytes, "About the most data in one INSERT; with --workers it bounds the consumers' memory.")
	fs.DurationVar(&o.ackWait, "ack-wait", enricher.DefaultAckWait, "How long a batch may stay unacknowledged before NATS delivers it again; after a crash, the batches in flight are stored that much later. INSERTs time out after half of it.")
	fs.StringVar(&o.auditLogPath, "audit-log-path", "", "kube-apiserver's audit log file (its log backend, --audit-log-format=json) to follow as the backstop of the webhook: events the webhook gave up on are stored from it, each once. Its position is kept in --spool-dir.")
	return cmd
}

// Validate reports flags that cannot work together.
func (o *enricherOptions) Validate() error {
	errs := []error{o.endpoint.validate(o.server.dev, false), o.server.validateNATS(&o.nats)}
	if err := o.clickhouse.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.retentionDays == 0 {
		errs = append(errs, errors.New("--retention-days must be positive, or -1 to keep rows forever"))
	}
	so := schema.Options{Database: o.clickhouse.Database, Retention: o.retention, Roles: schema.RolesMode(o.roles), AuditorRole: o.auditorRole}
	if err := so.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--retention, --clickhouse-roles or --clickhouse-auditor-role: %w", err))
	}
	if o.clientCAFile == "" && !o.server.dev {
		errs = append(errs, errors.New("--client-ca-file is required: the intake accepts audit events only from kube-apiserver's client certificate (without it, only with --dev)"))
	}
	if o.spoolDir == "" && !o.server.dev {
		errs = append(errs, errors.New("--spool-dir is required: the intake stores every batch there before it answers (a persistent volume)"))
	}
	if _, err := parseMemoryLimit(o.memoryLimit); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseMemoryLimit parses --memory-limit: -1 for auto, 0 for off, else bytes.
func parseMemoryLimit(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return -1, nil
	case "off", "none":
		return 0, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Value() <= 0 {
		return 0, fmt.Errorf("--memory-limit must be auto, off or a positive size such as 900Mi, not %q", s)
	}
	return q.Value(), nil
}

// setMemoryLimit sets the Go runtime's soft memory limit from --memory-limit and the container.
func (o *enricherOptions) setMemoryLimit(log *slog.Logger) error {
	limit, err := parseMemoryLimit(o.memoryLimit)
	if err != nil {
		return err
	}
	switch {
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("memory limit set", "bytes", limit, "from", "--memory-limit")
	case limit == 0:
		debug.SetMemoryLimit(math.MaxInt64)
	case os.Getenv("GOMEMLIMIT") != "":
		log.Info("memory limit set", "bytes", debug.SetMemoryLimit(-1), "from", "GOMEMLIMIT")
	default:
		cg, err := enricher.CgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup")
		if err != nil {
			return fmt.Errorf("--memory-limit=auto: %w", err)
		}
		if cg == 0 {
			log.Info("no container memory limit found; the Go runtime has no memory limit")
			return nil
		}
		limit = int64(float64(cg) * enricher.MemoryLimitShare)
		debug.SetMemoryLimit(limit)
		log.Info("memory limit set", "bytes", limit, "from", "the container's memory limit", "containerBytes", cg)
	}
	return nil
}

// envelopeKey derives the key that authenticates the intake's messages from the masking key,
// which every enricher of a deployment shares. Without a masking key (--dev), nil: the enricher
// then uses a random key of its own.
func (o *enricherOptions) envelopeKey() ([]byte, error) {
	var key []byte
	switch {
	case o.masking.keyFile != "":
		b, err := os.ReadFile(o.masking.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--masking-key-file: %w", err)
		}
		key = []byte(strings.TrimRight(string(b), " \t\r\n"))
	case o.masking.configFile != "":
		cfg, err := masking.LoadConfig(o.masking.configFile)
		if err != nil {
			return nil, err
		}
		key = cfg.Key
	}
	if len(key) == 0 {
		return nil, nil
	}
	return enricher.EnvelopeKey(key), nil
}

// runEnricher runs the enricher until ctx ends.
func runEnricher(ctx context.Context, log *slog.Logger, o *enricherOptions) error {
	log = log.With("component", "enricher")
	if err := o.setMemoryLimit(log); err != nil {
		return err
	}
	var kube *rest.Config // only a self-managed serving certificate reaches kube-apiserver
	if o.endpoint.selfManaged.Enabled() {
		var err error
		if kube, err = o.kube.restConfig(); err != nil {
			return err
		}
	}
	lc, err := newLifecycle(o.server, lifecycleOptions{kube: kube}, log)
	if err != nil {
		return err
	}
	return lc.run(ctx, func() error {
		masker, _, err := o.masking.masker(o.server.dev, log)
		if err != nil {
			return err
		}
		envelopeKey, err := o.envelopeKey()
		if err != nil {
			return err
		}
		spoolDir := o.spoolDir
		if spoolDir == "" { // --dev
			cache, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("no --spool-dir and no cache directory: %w", err)
			}
			spoolDir = filepath.Join(cache, "gatehouse", "spool")
			log.Warn("no --spool-dir given: spooling in the user cache directory (development only)", "dir", spoolDir)
		}
		// The intake spools batches while NATS is away, also when the enricher starts then: connect
		// in the background, retrying.
		o.nats.Logger = log
		var natsMu sync.Mutex
		var natsConn *natsbus.Conn
		lc.onStop(func(context.Context) error {
			natsMu.Lock()
			defer natsMu.Unlock()
			if natsConn != nil {
				natsConn.Close()
			}
			return nil
		})
		connectNATS := func(ctx context.Context) (*nats.Conn, error) {
			c, err := natsbus.Connect(ctx, o.nats)
			if err != nil {
				return nil, err
			}
			natsMu.Lock()
			defer natsMu.Unlock()
			natsConn = c
			return c.Conn, nil
		}
		ch, err := o.clickhouse.Open(ctx)
		if err != nil {
			return err
		}
		lc.onStop(func(context.Context) error { return ch.Close() })

		var authenticate func(*http.Request) error // default: a verified client certificate
		if o.clientCAFile == "" {
			log.Warn("no --client-ca-file: the audit intake accepts events from any client that reaches it (development only)")
			authenticate = func(*http.Request) error { return nil }
		}
		e, err := enricher.New(enricher.Options{
			ConnectNATS:   connectNATS,
			ClickHouse:    ch,
			Masker:        masker,
			EnvelopeKey:   envelopeKey,
			SpoolDir:      spoolDir,
			SpoolMaxBytes: o.spoolMaxBytes,
			Authenticate:  authenticate,
			Schema: schema.Options{Database: o.clickhouse.Database, Cluster: o.clickhouse.Cluster, RetentionDays: o.retentionDays, Retention: o.retention,
				GatewayGrace: o.gatewayGrace, HoldMargin: o.holdMargin, Roles: schema.RolesMode(o.roles), AuditorRole: o.auditorRole, Logger: log},
			GatewayUsers:           o.gatewayUsers,
			AgentGroups:            o.agentGroups,
			ControlPlaneNamespaces: o.cpNamespaces,
			AdmissionWebhooks:      o.webhookNames,
			MaxRequestBytes:        o.maxRequest,
			MaxEventBytes:          o.maxEvent,
			MaxInFlight:            o.maxInFlight,
			MaxInFlightBytes:       o.maxInFlightBytes,
			Workers:                o.workers,
			BatchMessages:          o.batchMessages,
			BatchMaxWait:           o.batchMaxWait,
			InsertRows:             o.insertRows,
			InsertBytes:            o.insertBytes,
			AckWait:                o.ackWait,
			AuditLogPath:           o.auditLogPath,
			Logger:                 log,
			Registerer:             lc.metrics,
		})
		if err != nil {
			return err
		}
		tlsCfg, err := o.endpoint.tlsConfig(lc)
		if err != nil {
			return err
		}
		if o.clientCAFile != "" {
			pem, err := os.ReadFile(o.clientCAFile)
			if err != nil {
				return fmt.Errorf("--client-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--client-ca-file: no PEM certificate in %s", o.clientCAFile)
			}
			tlsCfg.ClientCAs = pool
			tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		mux := http.NewServeMux()
		mux.Handle("POST "+enricher.IntakePath, e)
		lc.ready("intake", e.Ready)
		return errors.Join(lc.add(e.Start),
			lc.serve("the audit intake on "+enricher.IntakePath, o.endpoint.address(), &http.Server{Handler: mux}, tlsCfg))
	})
}
