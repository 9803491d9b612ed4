package sessionlog_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// env is a NATS server, a ClickHouse server and an enricher storing into a database of its own:
// the store reads what the enricher wrote.
var env struct {
	nc           *nats.Conn
	ch           driver.Conn
	db           string
	intake       *httptest.Server
	intakeClient *http.Client
	masker       *masking.Masker
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessionlog tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	n, err := testbed.StartNATS()
	if err != nil {
		return 0, err
	}
	defer n.Stop()
	if env.nc, err = n.Connect(); err != nil {
		return 0, err
	}
	defer env.nc.Close()
	chs, err := testbed.StartClickHouse()
	if err != nil {
		return 0, err
	}
	defer chs.Close()
	o := enricher.ClickHouseOptions{Addr: []string{chs.NativeAddr}, Database: "default"}
	if env.ch, err = o.Open(context.Background()); err != nil {
		return 0, err
	}
	defer env.ch.Close()
	env.db = "sessionlog_test"
	if env.masker, err = masking.New(masking.Config{Key: []byte("sessionlog-test-masking-key-0001")}); err != nil {
		return 0, err
	}
	spool, err := os.MkdirTemp("", "sessionlog-spool-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(spool)
	e, err := enricher.New(enricher.Options{
		NATS: env.nc, ClickHouse: env.ch, Masker: env.masker, SpoolDir: spool,
		Schema:       schema.Options{Database: env.db},
		BatchMaxWait: 200 * time.Millisecond, RetryDelay: 300 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Start(ctx) }()
	defer func() { cancel(); <-done }()
	if err := testbed.WaitFor(ctx, 60*time.Second, e.Ready); err != nil {
		return 0, fmt.Errorf("the enricher is not ready: %w", err)
	}
	// Mutual TLS, as deployed: the intake takes audit events only from kube-apiserver's
	// certificate.
	pki, err := testbed.NewPKI(spool)
	if err != nil {
		return 0, err
	}
	env.intake = httptest.NewUnstartedServer(e)
	env.intake.TLS = pki.ServerTLS()
	env.intake.StartTLS()
	defer env.intake.Close()
	env.intakeClient = &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}}
	return m.Run(), nil
}

// waitFor waits until query counts want rows.
func waitFor(t *testing.T, want uint64, query string, args ...any) {
	t.Helper()
	var got uint64
	require.Eventually(t, func() bool {
		err := env.ch.QueryRow(t.Context(), strings.ReplaceAll(query, "{db}", env.db), args...).Scan(&got)
		return err == nil && got == want
	}, 60*time.Second, 100*time.Millisecond, "%s: got %d, want %d", query, got, want)
}

// auditEvent is a minimal audit event of a call through the gateway in session.
func auditEvent(auditID, session, verb, uri, resource, sub, name string, code int, reqObj, respObj string) string {
	objs := ""
	if reqObj != "" {
		objs += `,"requestObject":` + reqObj
	}
	if respObj != "" {
		objs += `,"responseObject":` + respObj
	}
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":%q,"stage":"ResponseComplete",
"requestURI":%q,"verb":%q,"user":{"username":"system:serviceaccount:gatehouse:gatehouse-proxy"},
"impersonatedUser":{"username":"oidc:agent","groups":["agents"],"extra":{"gatehouse.dev/session-id":[%q]}},
"sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.36.3",
"objectRef":{"resource":%q,"subresource":%q,"namespace":"ns","name":%q,"apiVersion":"v1"},
"responseStatus":{"metadata":{},"code":%d},
"requestReceivedTimestamp":"%s","stageTimestamp":"%s"%s}`,
		auditID, uri, verb, session, resource, sub, name, code, time.Now().UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano), objs)
}

// TestStore records a session as the proxy and kube-apiserver would, and reads it back: the
// list, the timeline with the terminal session inline, the recording, verified; then a stored
// chunk is changed and the recording no longer verifies.
func TestStore(t *testing.T) {
	ctx := t.Context()
	session := "s-" + trail.NewID()[24:]
	pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{Source: "proxy/test"})
	require.NoError(t, err)
	at := time.Now().UTC()
	id := trail.Identity{User: "oidc:agent", Groups: []string{"agents"}}
	require.NoError(t, pub.PublishSync(ctx, &trail.Session{Meta: trail.Meta{Time: at}, SessionID: session, Label: "fix-build", Event: trail.SessionStarted,
		Identity: id, Client: "kubectl/v1.36.3", Started: at, LastActivity: at, Requests: 3}))
	// A refused call, an approved create, an exec with its recording.
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: "r-deny", Time: at}, AuditID: "r-deny", SessionID: session, Identity: id,
		Operation: trail.Operation{Verb: "delete", Resource: "namespaces", Name: "prod"}, Code: 403,
		Decision: &trail.Policy{Policy: "default", Rule: "no-namespace-deletes", Action: "deny", Message: "no"}, Error: "denied by policy default/no-namespace-deletes"}))
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"ns"},"data":{"mode":"safe","password":"gatehouse:masked:0123456789ab"}}`
	execID := trail.NewID()
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` +
		auditEvent("a-create", session, "create", "/api/v1/namespaces/ns/configmaps", "configmaps", "", "settings", 201, cm, cm) + "," +
		auditEvent(execID, session, "create", "/api/v1/namespaces/ns/pods/shell/exec?command=sh&stdin=true&tty=true", "pods", "exec", "shell", 101, "", "") + "]}"
	resp, err := env.intakeClient.Post(env.intake.URL+enricher.IntakePath, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: "a-create", Time: at.Add(time.Second)}, AuditID: "a-create", SessionID: session,
		Identity: id, Operation: trail.Operation{Verb: "create", Resource: "configmaps", Namespace: "ns"}, Code: 201}))
	require.NoError(t, pub.PublishSync(ctx, &trail.Request{Meta: trail.Meta{ID: execID, Time: at.Add(2 * time.Second)}, AuditID: execID, SessionID: session,
		Identity: id, Operation: trail.Operation{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns", Name: "shell"}, Code: 101, RecordingID: execID}))

	recs, err := recording.NewPublisher(env.nc, recording.PublisherOptions{Source: "proxy/test", ChunkBytes: 64})
	require.NoError(t, err)
	start := at.Add(2 * time.Second)
	w, err := recs.Open(ctx, recording.Info{RecordingID: execID, SessionID: session, AuditID: execID, Format: trail.FormatAsciicast,
		Subresource: "exec", Namespace: "ns", Pod: "shell", Container: "main", Command: []string{"sh"}, User: "oidc:agent"},
		recording.HeaderLine(recording.Header{Term: recording.Term{Cols: 80, Rows: 24}, Timestamp: start.Unix(), Command: "sh"}))
	require.NoError(t, err)
	clk := clocktesting.NewFakeClock(start)
	term := recording.NewTerminal(w, recording.NewMasker(env.masker, nil), start, recording.TerminalOptions{Clock: clk})
	term.Output(recording.CodeOutput, []byte("$ "))
	for _, k := range "ls -l\r" {
		clk.Step(50 * time.Millisecond)
		term.Input([]byte(string(k)))
	}
	clk.Step(10 * time.Millisecond)
	term.Output(recording.CodeOutput, []byte("ls -l\r\ntotal 0\r\n$ "))
	clk.Step(3 * time.Second)
	term.Input([]byte("exit\r"))
	term.Output(recording.CodeOutput, []byte("exit\r\n"))
	term.Exit(0)
	require.NoError(t, term.Close(ctx))

	waitFor(t, 1, "SELECT count() FROM {db}.recording_summary WHERE session_id = {s:String} AND complete AND chunks = last_seq + 1", clickhouse.Named("s", session))
	waitFor(t, 3, "SELECT count() FROM {db}.gateway_requests FINAL WHERE session_id = {s:String}", clickhouse.Named("s", session))
	waitFor(t, 2, "SELECT count() FROM {db}.audit_events FINAL WHERE session_id = {s:String}", clickhouse.Named("s", session))
	waitFor(t, 1, "SELECT count() FROM {db}.sessions FINAL WHERE session_id = {s:String}", clickhouse.Named("s", session))

	store, err := sessionlog.New(env.ch, env.db)
	require.NoError(t, err)
	list, err := store.List(ctx, sessionlog.Filter{User: "oidc:agent"})
	require.NoError(t, err)
	var found *sessionlog.Session
	for i := range list {
		if list[i].ID == session {
			found = &list[i]
		}
	}
	require.NotNil(t, found)
	assert.Equal(t, "fix-build", found.Label)
	assert.Equal(t, 1, found.Recordings)

	t.Run("filters", func(t *testing.T) {
		// Another session of another user, without recordings.
		other := "s-" + trail.NewID()[24:]
		require.NoError(t, pub.PublishSync(ctx, &trail.Session{Meta: trail.Meta{Time: at}, SessionID: other, Event: trail.SessionStarted,
			Identity: trail.Identity{User: "oidc:other"}, Started: at, LastActivity: at, Requests: 1}))
		waitFor(t, 1, "SELECT count() FROM {db}.sessions FINAL WHERE session_id = {s:String}", clickhouse.Named("s", other))
		ids := func(f sessionlog.Filter) []string {
			f.IDs = append(f.IDs, session, other)
			list, err := store.List(ctx, f)
			require.NoError(t, err)
			var out []string
			for _, x := range list {
				out = append(out, x.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    sessionlog.Filter
			want []string
		}{
			{"both", sessionlog.Filter{}, []string{session, other}},
			{"a user", sessionlog.Filter{User: "oidc:other"}, []string{other}},
			{"with recordings", sessionlog.Filter{WithRecordings: true}, []string{session}},
			{"started before", sessionlog.Filter{Until: at.Add(-time.Minute)}, nil},
			{"started before, later", sessionlog.Filter{Until: at.Add(time.Minute)}, []string{session, other}},
			{"active since", sessionlog.Filter{Since: at.Add(time.Minute)}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) { assert.ElementsMatch(t, tc.want, ids(tc.f)) })
		}
		one, err := store.List(ctx, sessionlog.Filter{IDs: []string{other}})
		require.NoError(t, err)
		require.Len(t, one, 1)
		assert.Equal(t, other, one[0].ID)

		got, err := store.Session(ctx, session)
		require.NoError(t, err)
		assert.Equal(t, "oidc:agent", got.User)
		assert.Equal(t, 1, got.Recordings)
		_, err = store.Session(ctx, "s-no-such-session")
		require.ErrorIs(t, err, sessionlog.ErrNotFound)
	})

	timeline, err := store.Timeline(ctx, session)
	require.NoError(t, err)
	require.Len(t, timeline, 3, "%+v", timeline)
	deny, create, exec := timeline[0], timeline[1], timeline[2]
	assert.Equal(t, "delete", deny.Verb)
	assert.Equal(t, 403, deny.Code)
	require.NotNil(t, deny.Decision)
	assert.Equal(t, "deny", deny.Decision.Action)
	assert.Equal(t, "gateway", create.Route)
	assert.Equal(t, 201, create.Code)
	assert.Equal(t, "ConfigMap settings: data{mode,password}", create.Payload)
	assert.Equal(t, "exec", exec.Subresource)
	require.NotNil(t, exec.Recording, "the exec's recording is inline")
	assert.Equal(t, []string{"ls -l", "exit"}, exec.Recording.Typed)
	require.NotNil(t, exec.Recording.ExitStatus)
	assert.Equal(t, 0, *exec.Recording.ExitStatus)
	assert.True(t, exec.Recording.Complete)

	rec, err := store.Recording(ctx, execID)
	require.NoError(t, err)
	head, err := rec.Verify()
	require.NoError(t, err)
	assert.Equal(t, rec.Chunks[len(rec.Chunks)-1].Hash, head)
	cast, err := rec.Cast()
	require.NoError(t, err)
	assert.Equal(t, "$ ls -l\r\ntotal 0\r\n$ exit\r\n", cast.Output())

	t.Run("play keeps the timing, capped", func(t *testing.T) {
		pclk := clocktesting.NewFakeClock(time.Now())
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- recording.Play(ctx, &out, cast, recording.PlayOptions{Speed: 2, IdleLimit: time.Second, Clock: pclk})
		}()
		// The pauses are waited on the clock: the player ends only as time passes.
		steps := 0
		err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			select {
			case err := <-done:
				return true, err
			default:
			}
			if pclk.HasWaiters() {
				pclk.Step(time.Second)
				steps++
			}
			return false, nil
		})
		require.NoError(t, err, "the player finishes as its clock advances")
		assert.Equal(t, cast.Output(), out.String())
		assert.Positive(t, steps, "it waited on its clock")
	})

	t.Run("a changed chunk is detected", func(t *testing.T) {
		require.Greater(t, len(rec.Chunks), 2)
		require.NoError(t, env.ch.Exec(ctx, strings.ReplaceAll(`ALTER TABLE {db}.session_recordings UPDATE data = replaceAll(data, 'total 0', 'total 9')
			WHERE recording_id = {id:String} SETTINGS mutations_sync = 2`, "{db}", env.db), clickhouse.Named("id", execID)))
		tampered, err := store.Recording(ctx, execID)
		require.NoError(t, err)
		assert.Contains(t, tampered.Data(), "total 9", "the stored chunk was changed")
		_, err = tampered.Verify()
		require.ErrorIs(t, err, trail.ErrChainBroken)
	})
	t.Run("a removed chunk is detected", func(t *testing.T) {
		require.NoError(t, env.ch.Exec(ctx, strings.ReplaceAll(`ALTER TABLE {db}.session_recordings DELETE
			WHERE recording_id = {id:String} AND seq = 1 SETTINGS mutations_sync = 2`, "{db}", env.db), clickhouse.Named("id", execID)))
		cut, err := store.Recording(ctx, execID)
		require.NoError(t, err)
		_, err = cut.Verify()
		require.ErrorIs(t, err, trail.ErrChainIncomplete)
	})
	_, err = store.Recording(ctx, "no-such-recording")
	require.ErrorIs(t, err, sessionlog.ErrNotFound)
}

// TestRecordingCompleteOnlyWithEveryChunk: the chunks of one recording may be inserted out of
// order (the enricher's workers insert batches in parallel); a recording whose final chunk is
// stored before an earlier one is not complete until that one is.
func TestRecordingCompleteOnlyWithEveryChunk(t *testing.T) {
	ctx := t.Context()
	id := trail.NewID()
	insert := func(seq uint32, final bool) {
		t.Helper()
		now := time.Now().UTC()
		require.NoError(t, env.ch.Exec(ctx, "INSERT INTO "+env.db+".session_recordings (recording_id, seq, session_id, start, time, final, format, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			id, seq, "s-out-of-order", now, now, final, trail.FormatAsciicast, "x"))
	}
	complete := func() bool {
		t.Helper()
		var c bool
		require.NoError(t, env.ch.QueryRow(ctx, "SELECT toBool(complete) FROM "+env.db+".recording_summary WHERE recording_id = ?", id).Scan(&c))
		return c
	}
	insert(1, true)
	assert.False(t, complete(), "the final chunk without the one before it")
	insert(0, false)
	assert.True(t, complete(), "every chunk up to the final one")
}
