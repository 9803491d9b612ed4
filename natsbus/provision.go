package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ProvisionOptions tune the streams and the bucket Provision creates.
type ProvisionOptions struct {
	Streams trail.StreamOptions
	Bucket  approvals.BucketOptions
}

// Provision creates the trail's streams (trail.Streams) and the approvals bucket, or updates
// them to their definitions. It needs the administrator's credentials (RoleAdmin): components
// may not create or delete streams and buckets, they only check that they exist (Check).
func Provision(ctx context.Context, js jetstream.JetStream, o ProvisionOptions) error {
	return errors.Join(
		trail.EnsureStreams(ctx, js, o.Streams),
		approvals.EnsureBucket(ctx, js, o.Bucket),
	)
}

// ProvisionConn provisions on nc, which must be connected as the administrator.
func ProvisionConn(ctx context.Context, nc *nats.Conn, o ProvisionOptions) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsbus: provision: %w", err)
	}
	if err := Provision(ctx, js, o); err != nil {
		return fmt.Errorf("natsbus: provision: %w", err)
	}
	return nil
}

// Streams returns the streams role publishes to or reads from, which must exist before it can
// work.
func Streams(role Role) []string {
	switch role {
	case RoleProxy:
		return []string{trail.StreamTrail, trail.StreamRecordings}
	case RoleWebhook, RoleConsole:
		return []string{trail.StreamTrail}
	case RoleEnricher:
		return []string{trail.StreamTrail, trail.StreamAudit, trail.StreamRecordings}
	}
	return nil
}

// CheckStreams reports whether the streams role needs exist: nil, or an error wrapping
// trail.ErrNotProvisioned that names the first missing one (the approvals bucket is the
// broker's to check).
func CheckStreams(ctx context.Context, js jetstream.JetStream, role Role) error {
	return trail.CheckStreams(ctx, js, Streams(role)...)
}
