package natsbus

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Role is an identity on NATS: each Gatehouse component connects with the credentials of its
// role, and the server lets it publish and subscribe only where Permissions(role) says.
type Role string

// Roles.
const (
	// RoleAdmin provisions the streams and the approvals bucket ([Provision]); it runs nothing
	// else and publishes no data.
	RoleAdmin Role = "admin"
	// RoleProxy publishes the trail's Request and Session records and the session recordings,
	// and reads (never writes) the approvals bucket to hold its clients.
	RoleProxy Role = "proxy"
	// RoleWebhook publishes Decision and Approval records, creates approval requests, indexes
	// them by fingerprint and uses their grants.
	RoleWebhook Role = "webhook"
	// RoleEnricher publishes the audit batches its intake received and consumes the trail, the
	// audit batches and the recordings.
	RoleEnricher Role = "enricher"
	// RoleConsole decides approval requests (the approvals API's identity) and publishes
	// Approval records.
	RoleConsole Role = "console"
)

// Roles lists every role, the administrator first.
var Roles = []Role{RoleAdmin, RoleProxy, RoleWebhook, RoleEnricher, RoleConsole}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("natsbus: unknown role %q (roles: admin, proxy, webhook, enricher, console)", s)
}

// InboxPrefix is the prefix of the role's reply subjects. Every request a component makes
// (JetStream's API, publish acknowledgements, key-value reads and watches) is answered on its own
// inbox, and each role may subscribe only to its own: a component cannot read the answers
// another one gets, and cannot answer in its place (no role may publish to an inbox).
func (r Role) InboxPrefix() string { return "_INBOX." + string(r) }

// Subjects of JetStream's API and of the approvals bucket.
const (
	jsAPI    = "$JS.API"
	kvStream = "KV_" + approvals.Bucket
	kvPrefix = "$KV." + approvals.Bucket
)

func streamInfo(stream string) string { return jsAPI + ".STREAM.INFO." + stream }

// kvKeys is the subject of the keys of one prefix of the approvals bucket: writing (and
// deleting) a key is publishing on it.
func kvKeys(prefix string) string { return kvPrefix + "." + prefix + ".*" }

// approvalsReader is what reading and watching the approvals bucket takes: looking the bucket up,
// getting a key (direct or through the stream), and the ordered consumers of a watch (created,
// deleted when the watch stops, and their flow control answered).
var approvalsReader = []string{
	streamInfo(kvStream),
	jsAPI + ".DIRECT.GET." + kvStream + ".>",
	jsAPI + ".STREAM.MSG.GET." + kvStream,
	jsAPI + ".CONSUMER.CREATE." + kvStream,
	jsAPI + ".CONSUMER.CREATE." + kvStream + ".>",
	jsAPI + ".CONSUMER.DELETE." + kvStream + ".>",
	"$JS.FC." + kvStream + ".>",
}

// consumerOf is what reading a durable pull consumer takes: creating or updating it (its own
// name only), its info, fetching and acknowledging.
func consumerOf(stream, durable string) []string {
	return []string{
		streamInfo(stream),
		jsAPI + ".CONSUMER.CREATE." + stream + "." + durable,
		jsAPI + ".CONSUMER.CREATE." + stream + "." + durable + ".>",
		jsAPI + ".CONSUMER.DURABLE.CREATE." + stream + "." + durable,
		jsAPI + ".CONSUMER.INFO." + stream + "." + durable,
		jsAPI + ".CONSUMER.MSG.NEXT." + stream + "." + durable,
		"$JS.ACK." + stream + "." + durable + ".>",
	}
}

// Publish returns the subjects role may publish on. Every subject not listed is refused by the
// server. Subscriptions are refused everywhere but on the role's inbox (InboxPrefix).
func Publish(role Role) ([]string, error) {
	// $JS.API.INFO reports the account's JetStream limits; every client may ask.
	common := []string{jsAPI + ".INFO"}
	trailRecords := func(kinds ...trail.Kind) []string {
		out := []string{streamInfo(trail.StreamTrail)}
		for _, k := range kinds {
			out = append(out, trail.SubjectAll(k))
		}
		return out
	}
	var out []string
	switch role {
	case RoleAdmin:
		// Streams, buckets and consumers; no message.
		out = []string{jsAPI + ".>"}
	case RoleProxy:
		out = slices.Concat(
			trailRecords(trail.KindRequest, trail.KindSession),
			[]string{streamInfo(trail.StreamRecordings), trail.SubjectRecordings("")},
			approvalsReader,
		)
	case RoleWebhook:
		out = slices.Concat(
			trailRecords(trail.KindDecision, trail.KindApproval),
			approvalsReader,
			[]string{
				kvKeys(approvals.PrefixRequest),
				kvKeys(approvals.PrefixUse),
				kvKeys(approvals.PrefixIndex),
				kvKeys(approvals.PrefixScope),
			},
		)
	case RoleConsole:
		out = slices.Concat(
			trailRecords(trail.KindApproval),
			approvalsReader,
			[]string{kvKeys(approvals.PrefixDecision)},
		)
	case RoleEnricher:
		durable := trail.EnricherConsumer(trail.StreamTrail).Durable
		out = slices.Concat(
			[]string{trail.SubjectAuditBatch},
			consumerOf(trail.StreamAudit, durable),
			consumerOf(trail.StreamTrail, durable),
			consumerOf(trail.StreamRecordings, trail.RecordingsConsumer().Durable),
		)
	default:
		return nil, fmt.Errorf("natsbus: unknown role %q", role)
	}
	return slices.Concat(common, out), nil
}

// Permissions returns the server permissions of role: Publish(role), and subscriptions on its
// inbox only.
func Permissions(role Role) (*server.Permissions, error) {
	pub, err := Publish(role)
	if err != nil {
		return nil, err
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{role.InboxPrefix() + ".>"}},
	}, nil
}
