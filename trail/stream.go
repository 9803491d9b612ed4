package trail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subject trees. Every subject this package publishes on lies under one of them.
const (
	subjectTrail = "gatehouse.trail.v1"
	// SubjectAuditBatch carries kube-apiserver audit EventLists as the enricher received them.
	SubjectAuditBatch = "gatehouse.audit.v1.batch"
	// subjectRecording is the tree of recording chunks: gatehouse.recording.v1.<session>.<recording>.
	subjectRecording = "gatehouse.recording.v1"
)

// RecordingSubject returns the subject the chunks of recording rec of session s are published on.
func RecordingSubject(s, rec string) string {
	return subjectRecording + "." + sessionToken(s) + "." + sessionToken(rec)
}

// SubjectRecordings returns the wildcard subject matching every recording chunk of session s, or
// of every session when s is "".
func SubjectRecordings(s string) string {
	if s == "" {
		return subjectRecording + ".>"
	}
	return subjectRecording + "." + sessionToken(s) + ".*"
}

// SubjectAll returns the wildcard subject matching every record of kind k; SubjectSession the
// one matching every record of one session.
func SubjectAll(k Kind) string { return subjectTrail + "." + strings.ToLower(string(k)) + ".*" }

// SubjectSession returns the wildcard subject matching every record of session s.
func SubjectSession(s string) string { return subjectTrail + ".*." + sessionToken(s) }

// Stream names.
const (
	// StreamTrail holds every record of this package.
	StreamTrail = "GATEHOUSE_TRAIL"
	// StreamAudit holds the raw audit batches received from kube-apiserver until the enricher has
	// stored them.
	StreamAudit = "GATEHOUSE_AUDIT"
	// StreamRecordings holds the chunks of session recordings (exec, attach, port-forward) until
	// the enricher has stored them. Its messages are larger than trail records (up to
	// MaxRecordingChunkBytes), so it has a stream and consumers of its own.
	StreamRecordings = "GATEHOUSE_RECORDINGS"
)

// StreamOptions tunes the streams Streams returns.
type StreamOptions struct {
	// MaxAge bounds how long records are kept. Default 7 days: the enricher normally consumes
	// within seconds; the margin covers a long ClickHouse outage.
	MaxAge time.Duration
	// Replicas is the stream replication factor in a NATS cluster. Default 1.
	Replicas int
	// DuplicateWindow is how long a message ID is remembered for deduplication. Default 10 minutes,
	// longer than any retry of a publisher or of kube-apiserver's audit webhook backend.
	DuplicateWindow time.Duration
	// Storage is where the stream is stored. Default file storage.
	Storage jetstream.StorageType
}

func (o *StreamOptions) setDefaults() {
	if o.MaxAge == 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 10 * time.Minute
	}
}

// Streams returns the JetStream stream definitions for the trail, the audit batches and the
// session recordings. All refuse new messages rather than discard unconsumed ones when a limit
// is reached (DiscardNew), so a full stream surfaces as a publish error instead of silent loss.
func Streams(o StreamOptions) []jetstream.StreamConfig {
	o.setDefaults()
	base := jetstream.StreamConfig{
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardNew,
		MaxAge:     o.MaxAge,
		Storage:    o.Storage,
		Replicas:   o.Replicas,
		Duplicates: o.DuplicateWindow,
	}
	trail := base
	trail.Name = StreamTrail
	trail.Description = "Gatehouse trail records (" + APIVersion + ")"
	trail.Subjects = []string{subjectTrail + ".>"}

	audit := base
	audit.Name = StreamAudit
	audit.Description = "kube-apiserver audit event batches received by the Gatehouse enricher"
	audit.Subjects = []string{SubjectAuditBatch}

	rec := base
	rec.Name = StreamRecordings
	rec.Description = "Gatehouse session recordings (" + APIVersion + " Recording chunks)"
	rec.Subjects = []string{subjectRecording + ".>"}
	return []jetstream.StreamConfig{trail, audit, rec}
}

// EnsureStreams creates the streams Streams returns, or updates them to that definition. It needs
// the NATS administrator's permissions; components check that the streams exist (CheckStreams).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("trail: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// ErrNotProvisioned means a stream does not exist: the NATS administrator creates the streams
// (EnsureStreams, which `gatehouse nats provision` runs); components may not.
var ErrNotProvisioned = errors.New("trail: not provisioned")

// CheckStreams reports whether the named streams exist: nil, ErrNotProvisioned naming the
// first missing one, or the error that prevented the check.
func CheckStreams(ctx context.Context, js jetstream.JetStream, names ...string) error {
	for _, name := range names {
		if _, err := js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("%w: the stream %s does not exist; the NATS administrator creates it (gatehouse nats provision)", ErrNotProvisioned, name)
			}
			return fmt.Errorf("trail: stream %s: %w", name, err)
		}
	}
	return nil
}

// EnricherConsumer returns the durable pull consumer definition the enricher reads stream with.
// Messages are acknowledged explicitly after they are stored; unacknowledged ones are redelivered
// after AckWait without limit, so nothing is lost while ClickHouse is down.
func EnricherConsumer(stream string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       "gatehouse-enricher",
		Description:   "Gatehouse enricher: stores " + stream + " in ClickHouse",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 100_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}
