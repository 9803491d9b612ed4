package enricher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/masking"
)

// ErrInvalidOptions is wrapped by the errors of Options.Validate.
var ErrInvalidOptions = errors.New("enricher: invalid options")

// Defaults of Options.
const (
	DefaultMaxRequestBytes  = 64 << 20
	DefaultMaxEventBytes    = 4 << 20
	DefaultMaxInFlightBytes = 128 << 20
	DefaultSpoolMaxBytes    = 1 << 30
	DefaultWorkers          = 2
	DefaultBatchMessages    = 64
	DefaultFetchBytes       = 16 << 20
	DefaultBatchMaxWait     = time.Second
	DefaultInsertRows       = 100_000
	DefaultInsertBytes      = 32 << 20
	DefaultAckWait          = time.Minute
	DefaultPublishTimeout   = 10 * time.Second
	DefaultMaxInFlight      = 8
	DefaultRetryDelay       = 2 * time.Second
	DefaultShutdownDrain    = 10 * time.Second
)

// defaultMaxPayload is NATS' default max_payload.
const defaultMaxPayload = 1 << 20

// Options configures an Enricher.
type Options struct {
	// NATS is the connection the spool is published on and the consumers read from. Either
	// NATS or ConnectNATS is required.
	NATS *nats.Conn
	// ConnectNATS connects to NATS; Start calls it until it succeeds, while the intake already
	// spools batches, so that the enricher starts (and restarts) while NATS is away.
	ConnectNATS func(context.Context) (*nats.Conn, error)
	// ClickHouse is where events and trail records are stored. Required. Any ClickHouse server
	// reached over the native or the HTTP protocol works the same.
	ClickHouse driver.Conn
	// Masker masks every audit event before it leaves the intake. Required.
	Masker *masking.Masker
	// EnvelopeKey authenticates the intake's messages to the consumers (HeaderMAC): a message
	// whose MAC verifies was masked by an intake; any other is masked by the consumer. Every
	// enricher of a deployment needs the same key (EnvelopeKey derives it from the masking
	// key). At least 16 bytes. Default: a random key, so that only this process's own
	// messages verify and every other one is masked again.
	EnvelopeKey []byte
	// SpoolDir is the directory of the spool, the intake's durable queue: every accepted batch
	// is written there, synced, before the intake answers, and published to JetStream from
	// there. It must survive the enricher's restart (a persistent volume), and only one
	// enricher may use it. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; when it is full the intake answers 503 and kube-apiserver
	// retries. Default DefaultSpoolMaxBytes.
	SpoolMaxBytes int64
	// ShutdownDrain is how long the enricher goes on publishing the spool after Start's
	// context ended. Default DefaultShutdownDrain.
	ShutdownDrain time.Duration
	// Authenticate checks an intake request's client. Default: a TLS client certificate the
	// server verified (the server must require and verify client certificates); requests
	// without one get 401.
	Authenticate func(*http.Request) error
	// Schema names the database, the retention and the gateway grace period of the trail view.
	Schema schema.Options

	// GatewayUsers are the users the gateway authenticates to kube-apiserver as (its service
	// account, e.g. system:serviceaccount:gatehouse:gatehouse-proxy). The gateway's
	// impersonation extras (session, issuer, subject, client, approval) are read only from
	// events those users impersonated. Empty trusts every impersonator: kube-apiserver already
	// lets only holders of the userextras impersonation right set them.
	GatewayUsers []string
	// AgentGroups are the groups whose members are agents (actor_kind agent). Default
	// DefaultAgentGroups.
	AgentGroups []string
	// ControlPlaneNamespaces are the namespaces whose service accounts belong to the control
	// plane (actor_kind control-plane), beside kube-apiserver, the kube-* components, nodes and
	// the GatewayUsers. Default DefaultControlPlaneNamespaces.
	ControlPlaneNamespaces []string
	// AdmissionWebhooks are the names of Gatehouse's validating webhooks: only their audit
	// annotations (decision ID, policy, rule, action, approval ID) are read. Default
	// DefaultAdmissionWebhooks, the names of manifests/webhook.
	AdmissionWebhooks []string

	// MaxRequestBytes bounds an intake request body; larger ones get 413. Default
	// DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// MaxEventBytes bounds one audit event as stored: a larger event loses its request and
	// response objects (and, should the rest still not fit, every member that alone does not)
	// while it is read, and is marked audit.k8s.io/truncated, as kube-apiserver's truncating
	// backend does. Default DefaultMaxEventBytes.
	MaxEventBytes int
	// MaxInFlightBytes bounds the request bytes the intake processes at once (a request of
	// unknown length counts as MaxRequestBytes); further requests wait. Default
	// DefaultMaxInFlightBytes.
	MaxInFlightBytes int64
	// MaxMessageBytes bounds a message published to NATS, after S2 compression: larger batches
	// are split, and an event that does not fit a message on its own loses its request and
	// response objects. It must be below the NATS server's max_payload less 4 KiB for headers.
	// Default: that, for NATS' default max_payload of 1 MiB, or for the server of
	// Options.NATS when it is connected.
	MaxMessageBytes int
	// PublishTimeout bounds publishing one spooled batch to JetStream, until its last
	// acknowledgement. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// MaxInFlight bounds the intake requests processed at once; further requests wait for a
	// slot. Default DefaultMaxInFlight.
	MaxInFlight int

	// Workers is the number of audit batch consumers running at once, so that decoding one
	// batch overlaps with inserting another. Default DefaultWorkers.
	Workers int
	// BatchMessages is the most messages one consumer reads and inserts at once; with
	// BatchMaxWait it bounds an INSERT by size and by time. Default DefaultBatchMessages.
	BatchMessages int
	// FetchBytes bounds the message bytes one consumer reads at once (at least one message).
	// Default DefaultFetchBytes.
	FetchBytes int
	// BatchMaxWait is the longest a consumer waits for a batch to fill up. Default
	// DefaultBatchMaxWait.
	BatchMaxWait time.Duration
	// InsertRows bounds the rows of one INSERT; larger batches are inserted in parts. Default
	// DefaultInsertRows.
	InsertRows int
	// InsertBytes bounds the memory the rows of one INSERT take (estimated), and with it a
	// consumer's memory: the INSERT's own buffers take about twice as much again. Larger
	// batches are inserted in parts. Every INSERT makes a part that ClickHouse merges later,
	// so larger INSERTs cost it less: with DefaultInsertBytes (about ten thousand events of
	// BenchmarkIngest's mix) ClickHouse spent about a third less CPU per event than with 8 MiB.
	InsertBytes int
	// AckWait is how long a batch may stay unacknowledged before JetStream delivers it again:
	// after a crash, the batches the enricher was inserting are stored that much later.
	// Default DefaultAckWait.
	AckWait time.Duration
	// InsertTimeout bounds one INSERT. It must be shorter than AckWait. Default AckWait/2.
	InsertTimeout time.Duration
	// RetryDelay is how long a batch waits before it is delivered again after a failed insert,
	// and between attempts to reach ClickHouse at start. Default DefaultRetryDelay.
	RetryDelay time.Duration

	// AuditLogPath is kube-apiserver's audit log file (its log backend, JSON lines) to follow:
	// the backstop for events the webhook backend gave up on, or the only source for clusters
	// without the webhook. Its position is kept in SpoolDir. Empty disables it.
	AuditLogPath string
	// AuditLogPollInterval is how often the audit log is checked for new lines. Default 1s.
	AuditLogPollInterval time.Duration

	// Logger receives the enricher's log. It never sees event contents. Default: discard.
	Logger *slog.Logger
	// Registerer receives the enricher's metrics. Default: none.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.AgentGroups == nil {
		o.AgentGroups = DefaultAgentGroups
	}
	if o.ControlPlaneNamespaces == nil {
		o.ControlPlaneNamespaces = DefaultControlPlaneNamespaces
	}
	if o.AdmissionWebhooks == nil {
		o.AdmissionWebhooks = DefaultAdmissionWebhooks
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxInFlightBytes == 0 {
		o.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if o.ShutdownDrain == 0 {
		o.ShutdownDrain = DefaultShutdownDrain
	}
	if o.Authenticate == nil {
		o.Authenticate = authenticateClientCert
	}
	if len(o.EnvelopeKey) == 0 {
		o.EnvelopeKey = make([]byte, 32)
		_, _ = rand.Read(o.EnvelopeKey)
	}
	if o.FetchBytes == 0 {
		o.FetchBytes = DefaultFetchBytes
	}
	if o.InsertBytes == 0 {
		o.InsertBytes = DefaultInsertBytes
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = defaultMaxPayload - 4<<10
		if o.NATS != nil && o.NATS.MaxPayload() > 0 {
			o.MaxMessageBytes = int(o.NATS.MaxPayload()) - 4<<10
		}
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.BatchMessages == 0 {
		o.BatchMessages = DefaultBatchMessages
	}
	if o.BatchMaxWait == 0 {
		o.BatchMaxWait = DefaultBatchMaxWait
	}
	if o.InsertRows == 0 {
		o.InsertRows = DefaultInsertRows
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.InsertTimeout == 0 {
		o.InsertTimeout = o.AckWait / 2
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.AuditLogPollInterval == 0 {
		o.AuditLogPollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options an Enricher cannot work with.
func (o *Options) Validate() error {
	var errs []error
	if (o.NATS == nil) == (o.ConnectNATS == nil) {
		errs = append(errs, errors.New("a NATS connection, or a function that connects, is required (not both)"))
	}
	if o.ClickHouse == nil {
		errs = append(errs, errors.New("a ClickHouse connection is required"))
	}
	if o.Masker == nil {
		errs = append(errs, errors.New("a masker is required: no event is stored unmasked"))
	}
	if o.SpoolDir == "" {
		errs = append(errs, errors.New("a spool directory is required: the intake stores every batch there before it answers"))
	}
	if len(o.EnvelopeKey) != 0 && len(o.EnvelopeKey) < 16 {
		errs = append(errs, fmt.Errorf("EnvelopeKey must be at least 16 bytes, got %d", len(o.EnvelopeKey)))
	}
	if o.MaxEventBytes < 0 || o.MaxInFlightBytes < 0 || o.SpoolMaxBytes < 0 || o.FetchBytes < 0 || o.InsertBytes < 0 {
		errs = append(errs, errors.New("sizes must not be negative"))
	}
	if o.MaxEventBytes != 0 && o.MaxEventBytes < 16<<10 {
		errs = append(errs, fmt.Errorf("MaxEventBytes must be at least 16 KiB, got %d", o.MaxEventBytes))
	}
	if err := o.Schema.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.MaxRequestBytes < 0 || o.MaxMessageBytes < 0 || o.MaxInFlight < 0 || o.Workers < 0 || o.BatchMessages < 0 || o.InsertRows < 0 {
		errs = append(errs, errors.New("sizes and counts must not be negative"))
	}
	if o.MaxMessageBytes != 0 && o.MaxMessageBytes < 16<<10 {
		errs = append(errs, fmt.Errorf("MaxMessageBytes must be at least 16 KiB, got %d", o.MaxMessageBytes))
	}
	ackWait := o.AckWait
	if ackWait == 0 {
		ackWait = DefaultAckWait
	}
	if o.InsertTimeout >= ackWait {
		errs = append(errs, fmt.Errorf("InsertTimeout (%s) must be shorter than AckWait (%s)", o.InsertTimeout, ackWait))
	}
	if o.AckWait != 0 && o.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("AckWait must be at least 1s, got %s", o.AckWait))
	}
	if o.PublishTimeout < 0 || o.BatchMaxWait < 0 || o.InsertTimeout < 0 || o.AckWait < 0 || o.RetryDelay < 0 || o.AuditLogPollInterval < 0 || o.ShutdownDrain < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}
