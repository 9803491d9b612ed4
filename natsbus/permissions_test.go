package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The tests of this file run every role's credentials against a real NATS server secured as
// deployed (TLS with client certificates, NKeys, natsbus.Permissions): what a role must do
// works through Gatehouse's own code paths, and what it must not do is refused by the server.

var bed *testbed.NATS

func TestMain(m *testing.M) {
	var err error
	if bed, err = testbed.StartNATS(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bed.Stop()
	os.Exit(code)
}

// approvalKey is the test's approval key, shared by its webhook and console.
var approvalKey = []byte("natsbus-test-approval-key-0123456789abcdef")

// roleConn is a connection as a role that collects the permission violations the server
// reports.
type roleConn struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	role natsbus.Role

	mu         sync.Mutex
	violations []string
	seen       chan struct{}
}

func connectAs(t *testing.T, role natsbus.Role) *roleConn {
	t.Helper()
	c := &roleConn{role: role, seen: make(chan struct{}, 64)}
	nc, err := bed.ConnectAs(role, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
			c.seen <- struct{}{}
		}
	}))
	require.NoError(t, err, "%s connects with its own credentials", role)
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, err = jetstream.New(nc)
	require.NoError(t, err)
	return c
}

// refused runs op, which must fail, and checks that the server reported a permission violation
// naming subject. The operation is cancelled once the violation is seen.
func (c *roleConn) refused(t *testing.T, subject string, op func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c.mu.Lock()
	c.violations = nil // only this operation's count
	c.mu.Unlock()
	result := make(chan error, 1)
	go func() { result <- op(ctx) }()
	violated := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, v := range c.violations {
			if strings.Contains(v, `"`+subject) {
				return true
			}
		}
		return false
	}
	var opErr error
	opDone := false
	for !violated() {
		select {
		case <-c.seen:
		case opErr = <-result:
			opDone = true
			if opErr == nil {
				t.Errorf("%s: the operation on %s succeeded", c.role, subject)
				return
			}
			result = nil
		case <-ctx.Done():
			t.Errorf("%s: no permission violation for %s reported (saw %v)", c.role, subject, c.violations)
			return
		}
	}
	cancel()
	if !opDone {
		opErr = <-result
	}
	assert.Error(t, opErr, "%s: the operation on %s must fail", c.role, subject)
}

// refusedSubscription checks that subscribing to subject is refused.
func (c *roleConn) refusedSubscription(t *testing.T, subject string) {
	t.Helper()
	c.refused(t, subject, func(context.Context) error {
		sub, err := c.nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		// The server refuses asynchronously; the subscription then never receives.
		if err := c.nc.Flush(); err != nil {
			return err
		}
		_, err = sub.NextMsg(200 * time.Millisecond)
		if err == nil {
			return errors.New("a message arrived")
		}
		return err
	})
}

func publishSync(c *roleConn, subject string, data []byte) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.js.Publish(ctx, subject, data)
		return err
	}
}

func record(kind trail.Kind, session string) trail.Record {
	m := trail.Meta{ID: trail.NewID()}
	switch kind {
	case trail.KindRequest:
		return &trail.Request{Meta: m, SessionID: session}
	case trail.KindSession:
		return &trail.Session{Meta: m, SessionID: session}
	case trail.KindDecision:
		return &trail.Decision{Meta: m, SessionID: session}
	case trail.KindApproval:
		return &trail.Approval{Meta: m, SessionID: session, ApprovalID: "ap-aaaaaaaaaaaaaaaa", Event: trail.ApprovalRequested}
	}
	panic(kind)
}

func publisher(t *testing.T, c *roleConn) *trail.Publisher {
	t.Helper()
	p, err := trail.NewPublisher(c.nc, trail.PublisherOptions{Source: string(c.role) + "/test", AckTimeout: time.Second})
	require.NoError(t, err)
	return p
}

func subjectOf(t *testing.T, r trail.Record) string {
	s, err := trail.Subject(r)
	require.NoError(t, err)
	return s
}

func broker(t *testing.T, c *roleConn, key []byte) *approvals.Broker {
	t.Helper()
	b, err := approvals.New(c.js, approvals.Options{Key: key, Recorder: publisher(t, c), Source: string(c.role) + "/test"})
	require.NoError(t, err)
	return b
}

func spec(t *testing.T) approvals.Spec {
	fp, err := approvals.NewFingerprinter([]byte("natsbus-test-fingerprint-key"))
	require.NoError(t, err)
	op := trail.Operation{Verb: "create", APIGroup: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", Name: trail.NewID()}
	f, err := fp.Fingerprint("agent", op, nil)
	require.NoError(t, err)
	return approvals.Spec{
		Requester: trail.Identity{User: "agent", Groups: []string{"agents"}}, Operation: op, Fingerprint: f,
		Policy: trail.Policy{Policy: "p", Rule: "r"}, ApproverGroups: []string{"gatehouse:approvers"}, Required: 1,
		GrantTTL: time.Minute, Path: approvals.PathAdmission, Timeout: time.Minute,
	}
}

var approver = trail.Identity{User: "approver", Groups: []string{"gatehouse:approvers"}}

// kvSubject is the subject a write of key in the approvals bucket is published on.
func kvSubject(key string) string { return "$KV." + approvals.Bucket + "." + key }

// kvPut writes a key of the approvals bucket as c.
func kvPut(c *roleConn, key string) func(context.Context) error {
	return publishSync(c, kvSubject(key), []byte(`{"mac":"AAAA","data":{}}`))
}

// TestConnectionsRefused: no identity, an unknown key, no TLS or no client certificate get no
// connection at all.
func TestConnectionsRefused(t *testing.T) {
	o := bed.Options(natsbus.RoleProxy)
	seed, err := nats.NkeyOptionFromSeed(o.NKeyFile)
	require.NoError(t, err)
	stranger, err := nkeys.CreateUser()
	require.NoError(t, err)
	strangerPub, _ := stranger.PublicKey()
	plain := "nats://" + strings.TrimPrefix(bed.URL(), "tls://")
	tests := []struct {
		name string
		url  string
		opts []nats.Option
	}{
		{"no credentials", bed.URL(), []nats.Option{nats.RootCAs(o.CAFile), nats.ClientCert(o.CertFile, o.KeyFile)}},
		{"an unknown key", bed.URL(), []nats.Option{nats.Nkey(strangerPub, stranger.Sign), nats.RootCAs(o.CAFile), nats.ClientCert(o.CertFile, o.KeyFile)}},
		{"a user and password", bed.URL(), []nats.Option{nats.UserInfo("proxy", "proxy"), nats.RootCAs(o.CAFile), nats.ClientCert(o.CertFile, o.KeyFile)}},
		{"no TLS", plain, []nats.Option{seed}},
		{"no client certificate", bed.URL(), []nats.Option{seed, nats.RootCAs(o.CAFile)}},
		{"an untrusted server certificate", bed.URL(), []nats.Option{seed, nats.ClientCert(o.CertFile, o.KeyFile)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(tc.url, append(tc.opts, nats.Timeout(2*time.Second))...)
			if err == nil {
				nc.Close()
			}
			require.Error(t, err)
		})
	}
	t.Run("Gatehouse's own client refuses to go without TLS", func(t *testing.T) {
		o := bed.Options(natsbus.RoleProxy)
		o.URL, o.CAFile = plain, ""
		require.ErrorContains(t, o.Validate(), "TLS")
	})
}

// TestEveryRoleDoesItsWork runs each component's NATS operations with its own credentials.
func TestEveryRoleDoesItsWork(t *testing.T) {
	ctx := t.Context()
	proxy, webhook, console, enricher, admin := connectAs(t, natsbus.RoleProxy), connectAs(t, natsbus.RoleWebhook),
		connectAs(t, natsbus.RoleConsole), connectAs(t, natsbus.RoleEnricher), connectAs(t, natsbus.RoleAdmin)

	t.Run("admin provisions", func(t *testing.T) {
		require.NoError(t, natsbus.Provision(ctx, admin.js, natsbus.ProvisionOptions{}))
	})
	for _, c := range []*roleConn{proxy, webhook, console, enricher} {
		require.NoError(t, natsbus.CheckStreams(ctx, c.js, c.role), "%s checks its streams", c.role)
	}
	t.Run("proxy records requests, sessions and recordings", func(t *testing.T) {
		p := publisher(t, proxy)
		for _, k := range []trail.Kind{trail.KindRequest, trail.KindSession} {
			require.NoError(t, p.PublishSync(ctx, record(k, "s-1")), "%s", k)
		}
		rp, err := recording.NewPublisher(proxy.nc, recording.PublisherOptions{Source: "proxy/test"})
		require.NoError(t, err)
		w, err := rp.Open(ctx, recording.Info{RecordingID: trail.NewID(), SessionID: "s-1", Format: trail.FormatAsciicast, Subresource: "exec"}, []byte("{}\n"))
		require.NoError(t, err)
		require.NoError(t, w.Close(ctx))
	})

	wb, cb, pb := broker(t, webhook, approvalKey), broker(t, console, approvalKey), broker(t, proxy, nil)
	for _, b := range []*approvals.Broker{wb, cb, pb} {
		require.NoError(t, b.Ready(ctx))
	}
	s := spec(t)
	var id string
	t.Run("webhook creates and indexes a request", func(t *testing.T) {
		r, err := wb.Create(ctx, s)
		require.NoError(t, err)
		require.NoError(t, wb.Index(ctx, r))
		found, err := wb.FindByFingerprint(ctx, s.Fingerprint)
		require.NoError(t, err)
		id = found.ID
		require.Equal(t, r.ID, id)
		require.NoError(t, publisher(t, webhook).PublishSync(ctx, record(trail.KindDecision, "s-1")))
	})
	waited := make(chan *approvals.Request, 1)
	t.Run("the proxy waits, the console watches and decides", func(t *testing.T) {
		go func() {
			r, err := pb.Wait(ctx, id)
			assert.NoError(t, err)
			waited <- r
		}()
		w, err := cb.Watch(ctx)
		require.NoError(t, err)
		defer func() { _ = w.Stop() }()
		list, err := cb.List(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, list)
		r, err := cb.Decide(ctx, id, approver, approvals.Approve, "fine")
		require.NoError(t, err)
		require.Equal(t, approvals.StateApproved, r.State)
		for c := range w.Changes() {
			if c != nil && c.Request != nil && c.Request.ID == id && c.Request.State == approvals.StateApproved {
				break
			}
		}
		select {
		case r := <-waited:
			require.Equal(t, approvals.StateApproved, r.State)
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy's wait did not see the decision")
		}
	})
	t.Run("webhook uses the grant", func(t *testing.T) {
		r, err := wb.Consume(ctx, id, "agent", s.Fingerprint, "uid-1")
		require.NoError(t, err)
		require.Equal(t, approvals.StateUsed, r.State)
		got, err := pb.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, approvals.StateUsed, got.State, "the proxy reads the bucket")
	})
	t.Run("enricher publishes audit batches and reads everything through its consumers", func(t *testing.T) {
		_, err := enricher.js.Publish(ctx, trail.SubjectAuditBatch, []byte(`{"kind":"EventList","items":[]}`))
		require.NoError(t, err)
		for _, stream := range []string{trail.StreamAudit, trail.StreamTrail, trail.StreamRecordings} {
			cfg := trail.EnricherConsumer(stream)
			if stream == trail.StreamRecordings {
				cfg = trail.RecordingsConsumer()
			}
			c, err := trail.NewConsumer(ctx, enricher.js, stream, cfg, trail.ConsumerOptions{MaxWait: 500 * time.Millisecond, BatchSize: 10})
			require.NoError(t, err, stream)
			got := make(chan int, 1)
			cctx, cancel := context.WithCancel(ctx)
			go func() {
				_ = c.Run(cctx, func(_ context.Context, b []jetstream.Msg) error {
					select {
					case got <- len(b):
					default:
					}
					return nil
				})
			}()
			select {
			case n := <-got:
				assert.Positive(t, n, stream)
			case <-time.After(10 * time.Second):
				t.Errorf("the enricher read nothing from %s", stream)
			}
			cancel()
		}
	})
}

// TestEveryRoleIsRefusedWhatItMustNotDo tries, with each role's credentials, what that role
// must not do.
func TestEveryRoleIsRefusedWhatItMustNotDo(t *testing.T) {
	ctx := t.Context()
	roles := map[natsbus.Role]*roleConn{}
	for _, r := range natsbus.Roles {
		roles[r] = connectAs(t, r)
	}
	wb := broker(t, roles[natsbus.RoleWebhook], approvalKey)
	r, err := wb.Create(ctx, spec(t))
	require.NoError(t, err)
	id := r.ID

	trailKinds := []trail.Kind{trail.KindRequest, trail.KindSession, trail.KindDecision, trail.KindApproval}
	may := map[natsbus.Role][]trail.Kind{
		natsbus.RoleProxy:   {trail.KindRequest, trail.KindSession},
		natsbus.RoleWebhook: {trail.KindDecision, trail.KindApproval},
		natsbus.RoleConsole: {trail.KindApproval},
	}
	writes := map[natsbus.Role][]string{
		natsbus.RoleWebhook: {approvals.PrefixRequest, approvals.PrefixUse, approvals.PrefixIndex, approvals.PrefixScope},
		natsbus.RoleConsole: {approvals.PrefixDecision},
	}
	for _, role := range natsbus.Roles {
		c := roles[role]
		t.Run(string(role), func(t *testing.T) {
			t.Parallel()
			for _, k := range trailKinds {
				if contains(may[role], k) {
					continue
				}
				subj := subjectOf(t, record(k, "s-x"))
				c.refused(t, subj, publishSync(c, subj, []byte(`{}`)))
			}
			for _, p := range []string{approvals.PrefixRequest, approvals.PrefixDecision, approvals.PrefixUse, approvals.PrefixIndex, approvals.PrefixScope} {
				if contains(writes[role], p) {
					continue
				}
				k := p + "." + id
				c.refused(t, kvSubject(k), kvPut(c, k))
			}
			if role != natsbus.RoleEnricher {
				c.refused(t, trail.SubjectAuditBatch, publishSync(c, trail.SubjectAuditBatch, []byte(`{"kind":"EventList","items":[]}`)))
			}
			if role != natsbus.RoleProxy {
				subj := trail.RecordingSubject("s-x", "r-x")
				c.refused(t, subj, publishSync(c, subj, []byte(`{}`)))
			}
			if role == natsbus.RoleAdmin {
				return
			}
			// No stream or bucket is created, changed or deleted but by the administrator.
			c.refused(t, "$JS.API.STREAM.CREATE.EVIL", func(ctx context.Context) error {
				_, err := c.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
				return err
			})
			c.refused(t, "$JS.API.STREAM.CREATE.KV_EVIL", func(ctx context.Context) error {
				_, err := c.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "EVIL"})
				return err
			})
			c.refused(t, "$JS.API.STREAM.UPDATE."+trail.StreamTrail, func(ctx context.Context) error {
				_, err := c.js.UpdateStream(ctx, jetstream.StreamConfig{Name: trail.StreamTrail, Subjects: []string{"gatehouse.trail.v1.>", "evil.>"}})
				return err
			})
			for _, stream := range []string{trail.StreamTrail, trail.StreamAudit, "KV_" + approvals.Bucket} {
				c.refused(t, "$JS.API.STREAM.DELETE."+stream, func(ctx context.Context) error { return c.js.DeleteStream(ctx, stream) })
				c.refused(t, "$JS.API.STREAM.PURGE."+stream, func(ctx context.Context) error {
					_, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, nil)
					return err
				})
				c.refused(t, "$JS.API.STREAM.MSG.DELETE."+stream, func(ctx context.Context) error {
					_, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+stream, []byte(`{"seq":1}`))
					return err
				})
			}
			// Nobody reads another component's replies, nor answers in its place.
			for _, other := range natsbus.Roles {
				if other == role {
					continue
				}
				c.refusedSubscription(t, other.InboxPrefix()+".>")
				subj := other.InboxPrefix() + ".forged"
				c.refused(t, subj, func(context.Context) error {
					if err := c.nc.Publish(subj, []byte("forged")); err != nil {
						return err
					}
					if err := c.nc.Flush(); err != nil {
						return err
					}
					return errors.New("published (the server refuses asynchronously)")
				})
			}
			// No one subscribes to data subjects directly: everything goes through JetStream.
			c.refusedSubscription(t, "gatehouse.>")
			c.refusedSubscription(t, "$KV.>")
			c.refusedSubscription(t, ">")
		})
	}

	t.Run("the enricher cannot read approvals or use another consumer", func(t *testing.T) {
		c := roles[natsbus.RoleEnricher]
		c.refused(t, "$JS.API.STREAM.INFO.KV_"+approvals.Bucket, func(ctx context.Context) error {
			_, err := c.js.KeyValue(ctx, approvals.Bucket)
			return err
		})
		c.refused(t, "$JS.API.CONSUMER.CREATE."+trail.StreamTrail+".other", func(ctx context.Context) error {
			_, err := c.js.CreateOrUpdateConsumer(ctx, trail.StreamTrail, jetstream.ConsumerConfig{Durable: "other"})
			return err
		})
	})
	t.Run("the proxy cannot consume the trail or the audit batches", func(t *testing.T) {
		c := roles[natsbus.RoleProxy]
		for _, stream := range []string{trail.StreamTrail, trail.StreamAudit} {
			c.refused(t, "$JS.API.CONSUMER.CREATE."+stream, func(ctx context.Context) error {
				_, err := c.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{})
				return err
			})
		}
	})
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
