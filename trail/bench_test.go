package trail_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// BenchmarkPublish compares the trail publisher with a bare JetStream asynchronous publish of
// the same encoded record under a message ID: the baseline is what any publisher must pay.
func BenchmarkPublish(b *testing.B) {
	_, nc, js := setup(b)
	ctx := context.Background()
	rec := func() *trail.Request {
		return &trail.Request{
			AuditID: trail.NewID(), SessionID: "bench",
			Identity:  trail.Identity{User: "alice@example.com", Groups: []string{"dev", "system:authenticated"}},
			Operation: trail.Operation{Verb: "get", Resource: "pods", Namespace: "default", Name: "web-0"},
			Code:      200,
		}
	}
	b.Run("baseline=jetstream", func(b *testing.B) {
		bjs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			r := rec()
			data, _ := json.Marshal(r)
			msg := nats.NewMsg("gatehouse.trail.v1.request.bench")
			msg.Data = data
			msg.Header.Set(jetstream.MsgIDHeader, r.AuditID)
			if _, err := bjs.PublishMsgAsync(msg); err != nil {
				b.Fatal(err)
			}
		}
		<-bjs.PublishAsyncComplete()
	})
	b.Run("trail", func(b *testing.B) {
		p, err := trail.NewPublisher(nc, trail.PublisherOptions{})
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			for {
				err := p.Publish(ctx, rec())
				if err == nil {
					break
				}
				// Backlog full: wait for acknowledgements as the baseline's stall does.
				require.ErrorIs(b, err, trail.ErrBacklog)
				_ = p.Flush(ctx)
			}
		}
		require.NoError(b, p.Close(ctx))
	})
	_ = js
}
