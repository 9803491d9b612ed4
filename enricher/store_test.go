package enricher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// postBatches posts events from..to-1 in EventLists of size events, expecting 200.
func (h *harness) postBatches(t testing.TB, from, to, size int, o genOptions) {
	t.Helper()
	for i := from; i < to; i += size {
		require.Equal(t, http.StatusOK, h.post(t, testEventList(i, min(i+size, to), o)))
	}
}

// streamMsgs returns the number of messages in a stream.
func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// assertNowhere fails if value occurs in any row of any table of db.
func assertNowhere(t *testing.T, conn driver.Conn, db string, values ...string) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'", clickhouse.Named("db", db))
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, tables)
	for _, table := range tables {
		for _, v := range values {
			n := countRows(t, conn, "SELECT count() FROM "+db+"."+table+" WHERE position(formatRow('TSV', *), {v:String}) > 0", clickhouse.Named("v", v))
			assert.Zero(t, n, "%q found in %s.%s", v, db, table)
		}
	}
}

func TestIntakeToClickHouse(t *testing.T) {
	for _, protocol := range []string{"native", "http"} {
		t.Run(protocol, func(t *testing.T) {
			const secret = "canary-4f1d9a7c2e"
			ch := openClickHouse(t, sharedClickHouse(t), protocol)
			h := newHarness(t, harnessOptions{ch: ch})
			pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "test"})
			require.NoError(t, err)

			// 1000 events through the gateway (with their gateway records), 600 direct.
			gw := genOptions{id: "gw-" + protocol, secret: secret, session: "sess-" + protocol}
			h.postBatches(t, 0, 1000, 400, gw)
			for i := range 1000 {
				id := genEventID(gw.id, i)
				require.NoError(t, pub.Publish(t.Context(), &trail.Request{
					Meta: trail.Meta{ID: id}, AuditID: id, SessionID: gw.session,
					Identity:  trail.Identity{User: "alice@example.com", Issuer: "https://idp.example.com", Subject: "alice"},
					Operation: trail.Operation{Verb: "list", Resource: "pods", Namespace: "team-a"}, Code: 200,
				}))
			}
			direct := genOptions{id: "direct-" + protocol, secret: secret}
			h.postBatches(t, 0, 600, 400, direct)
			require.NoError(t, pub.Close(t.Context()))

			h.waitRows(t, 1600, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
			h.waitRows(t, 1000, 30*time.Second, "SELECT count() FROM {db}.gateway_requests FINAL")
			assert.Equal(t, uint64(1000), h.count(t, "SELECT count() FROM {db}.trail WHERE route = 'gateway'"))
			assert.Equal(t, uint64(600), h.count(t, "SELECT count() FROM {db}.trail WHERE route = 'bypass' AND NOT gateway_extras"))
			assert.Equal(t, uint64(1000), h.count(t, "SELECT count() FROM {db}.trail WHERE session_id = 'sess-"+protocol+"' AND issuer = 'https://idp.example.com' AND client = 'kubectl/v1.36' AND authenticated_user = 'system:serviceaccount:gatehouse:gatehouse-proxy'"))
			assert.Equal(t, uint64(160), h.count(t, "SELECT count() FROM {db}.audit_events WHERE resource = 'secrets' AND masked_fields > 0 AND masked_by['secret-data'] > 0"))
			assert.Equal(t, uint64(160), h.count(t, "SELECT count() FROM {db}.audit_events WHERE subresource = 'exec' AND masked_fields > 0"))
			assert.Equal(t, uint64(320), h.count(t, "SELECT count() FROM {db}.audit_events WHERE request_object != '' AND response_object != '' AND verb = 'create'"))
			assertNowhere(t, ch, h.db, secret, base64.StdEncoding.EncodeToString([]byte(secret)))
			assert.NotContains(t, h.logs.String(), secret)
		})
	}
}

func TestIntakeRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{tweak: func(o *Options) { o.MaxRequestBytes = 64 << 10 }})
	good := testEventList(0, 5, genOptions{id: "refusals"})
	verified := &tls.ConnectionState{HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{{}}}}
	noTLS := &tls.ConnectionState{}
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		want        int
		tls         *tls.ConnectionState // the connection; default: a verified client certificate
	}{
		{"no TLS", http.MethodPost, "application/json", string(good), http.StatusUnauthorized, noTLS},
		{"TLS without a verified client certificate", http.MethodPost, "application/json", string(good), http.StatusUnauthorized, &tls.ConnectionState{HandshakeComplete: true}},
		{"get", http.MethodGet, "application/json", string(good), http.StatusMethodNotAllowed, nil},
		{"yaml", http.MethodPost, "application/yaml", string(good), http.StatusUnsupportedMediaType, nil},
		{"no content type", http.MethodPost, "", string(good), http.StatusUnsupportedMediaType, nil},
		{"malformed", http.MethodPost, "application/json", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":`, http.StatusBadRequest, nil},
		{"not an EventList", http.MethodPost, "application/json", `{"kind":"PodList","apiVersion":"v1","items":[]}`, http.StatusBadRequest, nil},
		{"bad event", http.MethodPost, "application/json", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":tru}]}`, http.StatusBadRequest, nil},
		{"too large", http.MethodPost, "application/json", string(testEventList(0, 200, genOptions{id: "big"})), http.StatusRequestEntityTooLarge, nil},
		{"empty list", http.MethodPost, "application/json", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`, http.StatusOK, nil},
		{"charset", http.MethodPost, "application/json; charset=utf-8", string(good), http.StatusOK, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, IntakePath, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			switch tc.tls {
			case nil:
				req.TLS = verified
			case noTLS:
				req.TLS = nil
			default:
				req.TLS = tc.tls
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.want != http.StatusOK {
				assert.Contains(t, rec.Body.String(), `"kind":"Status"`)
				assert.Contains(t, rec.Body.String(), "gatehouse enricher: ")
			}
		})
	}
	// The two good batches are one body: stored once.
	require.Eventually(t, func() bool { return h.spool.stats().Batches == 0 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(1), streamMsgs(t, h.js, trail.StreamAudit), "the same body twice is stored once")

	t.Run("NATS down", func(t *testing.T) {
		h.nats.Shutdown()
		require.Eventually(t, func() bool { return h.nc.Status() != nats.CONNECTED }, 5*time.Second, 10*time.Millisecond)
		assert.Equal(t, http.StatusOK, h.post(t, testEventList(10, 20, genOptions{id: "refusals"})), "the spool takes batches while NATS is away")
		require.NoError(t, h.Ready(t.Context()))
		assert.Equal(t, 1, h.spool.stats().Batches, "the batch waits in the spool")
		require.NoError(t, h.nats.Start())
		h.waitRows(t, 15, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
		assert.Zero(t, h.spool.stats().Batches, "the spool is drained")
	})
}

func TestIntakeNotReady(t *testing.T) {
	h := newHarness(t, harnessOptions{noStart: true})
	assert.Equal(t, http.StatusServiceUnavailable, h.post(t, testEventList(0, 5, genOptions{id: "early"})))
	assert.ErrorIs(t, h.Ready(t.Context()), ErrNotReady)
}

// TestDuplicatesCollapse delivers the same events again on every path a duplicate can take:
// kube-apiserver retrying a batch (the intake's message ID), a producer publishing it again
// under another ID (beyond JetStream's duplicate window), and a redelivery after the insert
// succeeded but the acknowledgement did not happen.
func TestDuplicatesCollapse(t *testing.T) {
	var failOnce atomic.Int32
	failOnce.Store(1)
	h := newHarness(t, harnessOptions{setup: func(e *Enricher) {
		e.afterInsert = func(table string) error {
			if table == "audit_events" && failOnce.Add(-1) == 0 {
				return errors.New("lost acknowledgement (test)")
			}
			return nil
		}
	}})
	o := genOptions{id: "dup"}
	body := testEventList(0, 400, o)
	require.Equal(t, http.StatusOK, h.post(t, body))
	require.Equal(t, http.StatusOK, h.post(t, body), "a retry is answered 200")
	// The intake answers once a batch is spooled; JetStream has it once the spool is drained.
	h.settle(t)
	assert.Equal(t, uint64(1), streamMsgs(t, h.js, trail.StreamAudit), "and stored once")

	// The same EventList from another producer, under another message ID.
	m := nats.NewMsg(trail.SubjectAuditBatch)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, "other-producer-1")
	_, err := h.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)

	h.waitRows(t, 400, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
	h.settle(t)
	// Every delivery was inserted: the first message twice (its acknowledgement was lost), the
	// other producer's once. (Counted by the enricher: background merges may already have
	// removed some of the duplicate rows.)
	var inserted dto.Metric
	require.NoError(t, h.metrics.rows.WithLabelValues("audit_events").Write(&inserted))
	assert.Equal(t, 1200.0, inserted.GetCounter().GetValue())
	h.assertStoredOnce(t, 400)
	assert.Contains(t, h.logs.String(), "lost acknowledgement (test)")
}

func TestTrailRecords(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	pub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "proxy/test"})
	require.NoError(t, err)
	ctx := t.Context()
	at := time.Now().UTC()
	id := trail.Identity{User: "alice@example.com", Groups: []string{"dev"}, Issuer: "https://idp", Subject: "alice",
		Extra: map[string][]string{"team": {"a", "b"}}}
	require.NoError(t, pub.Publish(ctx, &trail.Session{Meta: trail.Meta{Time: at}, SessionID: "s-1", Label: "refactor", Event: trail.SessionStarted,
		Identity: id, Client: "coding-agent", Started: at, LastActivity: at, Requests: 1}))
	require.NoError(t, pub.Publish(ctx, &trail.Session{Meta: trail.Meta{Time: at.Add(time.Minute)}, SessionID: "s-1", Event: trail.SessionActive,
		Identity: id, Started: at, LastActivity: at.Add(time.Minute), Requests: 42}))
	require.NoError(t, pub.Publish(ctx, &trail.Request{Meta: trail.Meta{ID: "a-1", Time: at}, AuditID: "a-1", SessionID: "s-1", Identity: id,
		Operation: trail.Operation{Verb: "delete", Resource: "pods", Namespace: "prod", Name: "web-0"}, Code: 403,
		Decision: &trail.Policy{Policy: "prod", Rule: "no-deletes", Action: "deny", Message: "deleting pods in prod needs an approval"},
		Masking:  &trail.Masking{Fields: 2, Detectors: map[string]int{"jwt": 2}}, Latency: time.Millisecond}))
	require.NoError(t, pub.Publish(ctx, &trail.Decision{Meta: trail.Meta{ID: "d-1", Time: at}, Component: "validating-webhook", AdmissionUID: "a-2",
		SessionID: "s-1", Identity: id, Policy: trail.Policy{Policy: "prod", Rule: "exec", Action: "requireApproval"}}))
	for i, ev := range []trail.ApprovalEvent{trail.ApprovalRequested, trail.ApprovalVoted, trail.ApprovalApproved, trail.ApprovalGrantUsed} {
		a := &trail.Approval{Meta: trail.Meta{ID: fmt.Sprintf("ap-1-%d", i), Time: at.Add(time.Duration(i) * time.Second)}, ApprovalID: "ap-1",
			Event: ev, SessionID: "s-1", Requester: id, Operation: trail.Operation{Verb: "CONNECT", Resource: "pods", Subresource: "exec", Namespace: "prod", Name: "web-0"},
			Policy: trail.Policy{Policy: "prod", Rule: "exec", Action: "requireApproval", Message: "exec in prod needs two approvals"}, Required: 2,
			ApproverGroups: []string{"sre"}, Path: "proxy", Expires: at.Add(time.Hour)}
		switch ev {
		case trail.ApprovalVoted:
			a.Actor, a.Reason, a.Approvers = "bob", "looked at the plan", []string{"bob"}
		case trail.ApprovalApproved:
			a.Actor, a.Reason, a.Approvers = "carol", "ok", []string{"bob", "carol"}
		case trail.ApprovalGrantUsed:
			a.Approvers, a.AdmissionUID = []string{"bob", "carol"}, "a-3"
		}
		require.NoError(t, pub.Publish(ctx, a))
	}
	require.NoError(t, pub.Close(ctx))
	// A record of a kind this enricher does not know yet, and a message that is no record.
	_, err = h.js.Publish(ctx, "gatehouse.trail.v1.gossip.s-1", []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Gossip","id":"g-1"}`))
	require.NoError(t, err)
	_, err = h.js.Publish(ctx, "gatehouse.trail.v1.request.s-1", []byte(`{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","code":"x"}`))
	require.NoError(t, err)

	h.waitRows(t, 1, 30*time.Second, "SELECT count() FROM {db}.ingest_errors FINAL WHERE stream = 'GATEHOUSE_TRAIL'")
	h.waitRows(t, 2, 30*time.Second, "SELECT count() FROM {db}.sessions FINAL")
	assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL WHERE action = 'deny' AND masked_by['jwt'] = 2 AND user_extra['team'] = ['a','b']"))
	assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.gateway_decisions FINAL WHERE admission_uid = 'a-2' AND action = 'requireApproval'"))
	assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.session_summary WHERE session_id = 's-1' AND requests = 42 AND label = 'refactor' AND client = 'coding-agent' AND NOT ended"))
	assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.trail WHERE route = 'gateway-only' AND audit_id = 'a-1' AND decision_action = 'deny' AND decision_component = 'proxy'"))
	assert.Equal(t, uint64(1), h.count(t, "SELECT count() FROM {db}.decision_summary WHERE decision_id = 'd-1' AND admission_uid = 'a-2' AND action = 'requireApproval'"))
	h.waitRows(t, 4, 30*time.Second, "SELECT count() FROM {db}.approvals FINAL")
	assert.Equal(t, [][]string{{"GrantUsed", "alice@example.com", "bob,carol", "bob: looked at the plan,carol: ok", "exec in prod needs two approvals", "a-3", "2"}},
		queryRows(t, h.ch, "SELECT state, requester, approvers, reasons, policy_message, used_by_admission_uid, toString(required) FROM "+h.db+".approval_summary WHERE approval_id = 'ap-1'"))
	var msg string
	require.NoError(t, h.ch.QueryRow(ctx, "SELECT error FROM "+h.db+".ingest_errors").Scan(&msg))
	assert.Contains(t, msg, "decode Request record")
	assert.NotContains(t, h.logs.String(), `"x"`, "the bad record's content is not logged")
}

// TestStartWhileNATSIsAway starts the enricher while NATS cannot be reached: the intake accepts
// and spools batches at once, and publishes them once the connection succeeds.
func TestStartWhileNATSIsAway(t *testing.T) {
	var reachable atomic.Bool
	h := newHarness(t, harnessOptions{noStart: true})
	h.opts.NATS = nil
	h.opts.ConnectNATS = func(context.Context) (*nats.Conn, error) {
		if !reachable.Load() {
			return nil, errors.New("connection refused (test)")
		}
		return h.enc, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	require.Eventually(t, func() bool { return h.Ready(ctx) == nil }, 10*time.Second, 10*time.Millisecond, "the intake is ready without NATS")
	require.Equal(t, http.StatusOK, h.post(t, testEventList(0, 50, genOptions{id: "early"})))
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "connecting to NATS failed, retrying") }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, h.spool.stats().Batches)
	reachable.Store(true)
	require.Eventually(t, h.migrated.Load, 30*time.Second, 20*time.Millisecond)
	h.waitRows(t, 50, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
}

// TestIntakeSpoolFull fills a small spool while NATS is away: the intake refuses the batch that
// does not fit with 503, so that kube-apiserver keeps it and retries, and says so in its log and
// metrics; once NATS is back and the spool drained, the retry is accepted and nothing is lost.
func TestIntakeSpoolFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, harnessOptions{tweak: func(o *Options) {
		o.SpoolMaxBytes = 96 << 10
		o.Registerer = reg
	}})
	h.nats.Shutdown()
	require.Eventually(t, func() bool { return h.nc.Status() != nats.CONNECTED }, 5*time.Second, 10*time.Millisecond)
	o := genOptions{id: "full"}
	accepted := 0
	for ; accepted < 100; accepted++ {
		code := h.post(t, testEventList(accepted*200, (accepted+1)*200, o))
		if code == http.StatusServiceUnavailable {
			break
		}
		require.Equal(t, http.StatusOK, code)
	}
	require.Positive(t, accepted, "the spool took batches")
	require.Less(t, accepted, 100, "until it was full")
	assert.LessOrEqual(t, h.spool.stats().Bytes, int64(96<<10), "the spool stays within its limit")
	assert.Contains(t, h.logs.String(), "spool full")
	assert.Equal(t, 1.0, gathered(t, reg, "gatehouse_enricher_spool_full_total"))
	assert.Positive(t, gathered(t, reg, "gatehouse_enricher_spool_bytes"))
	entries, err := os.ReadDir(h.spoolDir)
	require.NoError(t, err)
	for _, de := range entries {
		assert.False(t, strings.HasSuffix(de.Name(), spoolPartSuffix), "the refused batch left nothing behind")
	}

	require.NoError(t, h.nats.Start())
	require.Eventually(t, func() bool { return h.spool.stats().Batches == 0 }, 30*time.Second, 20*time.Millisecond)
	// kube-apiserver's retry of the refused batch.
	require.Equal(t, http.StatusOK, h.post(t, testEventList(accepted*200, (accepted+1)*200, o)))
	h.waitRows(t, uint64((accepted+1)*200), 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL")
}

// gathered returns the value of a counter or gauge in reg (the sum over its labels).
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

// TestMisplacedRecordsAreNotStored: NATS lets each kind of record be published only by its
// producer, on its own subjects; a record on another kind's subject (the proxy's credentials
// publishing an approval as a request, a copy made by a consumer's deliver subject) or under
// another session's subject is recorded in ingest_errors and stored nowhere else.
func TestMisplacedRecordsAreNotStored(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := t.Context()
	at := time.Now().UTC()
	approval, err := json.Marshal(&trail.Approval{Meta: trail.Meta{APIVersion: trail.APIVersion, Kind: trail.KindApproval, ID: "forged-approval", Time: at},
		ApprovalID: "ap-forged", Event: trail.ApprovalApproved, SessionID: "s-forged", Actor: "nobody", Approvers: []string{"nobody"}})
	require.NoError(t, err)
	request, err := json.Marshal(&trail.Request{Meta: trail.Meta{APIVersion: trail.APIVersion, Kind: trail.KindRequest, ID: "forged-request", Time: at},
		AuditID: "forged-request", SessionID: "s-real", Operation: trail.Operation{Verb: "get", Resource: "pods"}, Code: 200})
	require.NoError(t, err)
	chunk, err := json.Marshal(&trail.Recording{Meta: trail.Meta{APIVersion: trail.APIVersion, Kind: trail.KindRecording, ID: "forged-chunk.0", Time: at},
		RecordingID: "forged-chunk", SessionID: "s-real", Format: trail.FormatAsciicast, Subresource: "exec", Data: "{}\n"})
	require.NoError(t, err)
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{"gatehouse.trail.v1.request.s-forged", approval}, // an approval on the requests' subject
		{"gatehouse.trail.v1.request.s-other", request},   // a request under another session
		{trail.RecordingSubject("s-other", "x"), chunk},   // a chunk on another recording's subject
		{"gatehouse.trail.v1.session.s-real", request},    // a request on the sessions' subject
	} {
		_, err := h.js.Publish(ctx, m.subject, m.data)
		require.NoError(t, err)
	}
	h.waitRows(t, 4, 30*time.Second, "SELECT count() FROM {db}.ingest_errors FINAL WHERE error LIKE '%record on a subject of another kind%'")
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.approvals FINAL WHERE approval_id = 'ap-forged'"))
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.gateway_requests FINAL WHERE audit_id = 'forged-request'"))
	assert.Zero(t, h.count(t, "SELECT count() FROM {db}.session_recordings FINAL WHERE recording_id = 'forged-chunk'"))
}
