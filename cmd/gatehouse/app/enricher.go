package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
)

type enricherOptions struct {
	// kube reaches kube-apiserver, only for a self-managed serving certificate.
	kube          kubeOptions
	endpoint      endpointOptions
	nats          natsbus.Options
	clickhouse    enricher.ClickHouseOptions
	masking       maskingOptions
	clientCAFile  string
	gatewayUsers  []string
	retentionDays int
	gatewayGrace  time.Duration
	maxRequest    int64
	maxInFlight   int
	workers       int
	batchMessages int
	batchMaxWait  time.Duration
	insertRows    int
	ackWait       time.Duration
	auditLogPath  string
	dev           bool
}

func newEnricherCommand(g *globals) *cobra.Command {
	o := &enricherOptions{}
	cmd := &cobra.Command{
		Use:   "enricher",
		Short: "Receive kube-apiserver audit events and store them, masked and joined with the trail, in ClickHouse",
		Long: `Run the audit enricher. kube-apiserver's audit webhook backend posts audit event batches
to its HTTPS intake (path ` + enricher.IntakePath + `); each batch is masked and stored in NATS
JetStream before it is acknowledged, then inserted into ClickHouse together with the gateway's
trail records (requests, policy decisions, sessions). The schema is created and migrated at
start. See docs/auditing.md for the tables and the auditors' queries, and manifests/audit for the
audit policy and the webhook kubeconfig.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), g)
		},
	}
	fs := cmd.Flags()
	o.endpoint.addFlags(fs, "the audit intake")
	o.kube.addFlags(fs)
	o.nats.AddFlags(fs)
	o.clickhouse.AddFlags(fs)
	o.masking.addFlags(fs)
	fs.StringVar(&o.clientCAFile, "client-ca-file", "", "CA bundle that signed kube-apiserver's audit webhook client certificate. When set, the intake requires a client certificate signed by it; without it anyone who reaches the intake can add events.")
	fs.StringSliceVar(&o.gatewayUsers, "gateway-users", []string{"system:serviceaccount:gatehouse:gatehouse-proxy"}, "Users the gateway authenticates to kube-apiserver as; only their impersonation extras are read as the gateway's session attributes. Empty trusts every impersonator.")
	fs.IntVar(&o.retentionDays, "retention-days", 365, "Days audit rows are kept (ClickHouse TTL, whole daily partitions). -1 keeps them forever.")
	fs.DurationVar(&o.gatewayGrace, "gateway-record-grace", 5*time.Minute, "How long an audit event carrying the gateway's session waits for the gateway's record before the trail view calls it a bypass.")
	fs.Int64Var(&o.maxRequest, "max-request-bytes", enricher.DefaultMaxRequestBytes, "Largest audit batch accepted; larger ones get 413.")
	fs.IntVar(&o.maxInFlight, "max-requests-inflight", enricher.DefaultMaxInFlight, "Most audit batches processed at once; further ones wait. With --max-request-bytes it bounds the intake's memory.")
	fs.IntVar(&o.workers, "workers", enricher.DefaultWorkers, "Audit batch consumers running at once.")
	fs.IntVar(&o.batchMessages, "batch-max-messages", enricher.DefaultBatchMessages, "Most JetStream messages (each one audit batch) inserted into ClickHouse at once.")
	fs.DurationVar(&o.batchMaxWait, "batch-max-wait", enricher.DefaultBatchMaxWait, "Longest a consumer waits for a batch to fill before inserting it.")
	fs.IntVar(&o.insertRows, "insert-max-rows", enricher.DefaultInsertRows, "Most rows in one INSERT.")
	fs.DurationVar(&o.ackWait, "ack-wait", enricher.DefaultAckWait, "How long a batch may stay unacknowledged before NATS delivers it again; after a crash, the batches in flight are stored that much later. INSERTs time out after half of it.")
	fs.StringVar(&o.auditLogPath, "audit-log-path", "", "kube-apiserver audit log file (JSON lines) to follow, for clusters without the webhook backend.")
	fs.BoolVar(&o.dev, "dev", false, "Development mode: a self-signed serving certificate, an embedded NATS server and a random masking key when none are configured. Never in production.")
	return cmd
}

func (o *enricherOptions) validate() error {
	var errs []error
	if err := o.endpoint.validateTLS(o.dev); err != nil {
		errs = append(errs, err)
	}
	if o.nats.URL == "" && !o.dev {
		errs = append(errs, errors.New("--nats-url is required (the embedded server is for --dev only)"))
	}
	if err := o.nats.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.clickhouse.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.retentionDays == 0 {
		errs = append(errs, errors.New("--retention-days must be positive, or -1 to keep rows forever"))
	}
	return errors.Join(errs...)
}

func (o *enricherOptions) run(ctx context.Context, g *globals) error {
	log := g.logger.With("component", "enricher")
	masker, _, err := o.masking.masker(o.dev, log)
	if err != nil {
		return err
	}
	o.nats.Name = "gatehouse-enricher"
	o.nats.Logger = log
	nc, err := natsbus.Connect(ctx, o.nats)
	if err != nil {
		return err
	}
	defer nc.Close()
	ch, err := o.clickhouse.Open(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()

	reg := serving.NewRegistry()
	e, err := enricher.New(enricher.Options{
		NATS:            nc.Conn,
		ClickHouse:      ch,
		Masker:          masker,
		Schema:          schema.Options{Database: o.clickhouse.Database, RetentionDays: o.retentionDays, GatewayGrace: o.gatewayGrace},
		GatewayUsers:    o.gatewayUsers,
		MaxRequestBytes: o.maxRequest,
		MaxInFlight:     o.maxInFlight,
		Workers:         o.workers,
		BatchMessages:   o.batchMessages,
		BatchMaxWait:    o.batchMaxWait,
		InsertRows:      o.insertRows,
		AckWait:         o.ackWait,
		AuditLogPath:    o.auditLogPath,
		Logger:          log,
		Registerer:      reg,
	})
	if err != nil {
		return err
	}
	tlsCfg, err := o.endpoint.tlsConfig(ctx, log, o.kube.restConfig, "localhost", "127.0.0.1")
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
	} else {
		log.Warn("no --client-ca-file: the audit intake accepts events from any client that reaches it")
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+enricher.IntakePath, e)
	health := serving.NewHealth(log)
	health.AddReadyCheck("intake", e.Ready)
	grp, ctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return e.Start(ctx) })
	if err := o.endpoint.serve(ctx, grp, log, "the audit intake on "+enricher.IntakePath, &http.Server{Handler: mux}, tlsCfg, health, reg); err != nil {
		return err
	}
	return grp.Wait()
}
