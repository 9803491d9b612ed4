package enricher

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/auditsql"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// proxyUser is the user the gateway authenticates to kube-apiserver as.
const proxyUser = "system:serviceaccount:gatehouse:gatehouse-proxy"

// TestEndToEnd runs a real kube-apiserver whose audit webhook posts to the enricher (with mutual
// TLS), drives a session through the gateway (the real proxy, in process) and some direct
// calls, and checks what lands in ClickHouse: one row per event the API server sent, per
// stage; gateway rows joined with their identity, session and Audit-ID; direct calls marked as
// bypass; no canary secret anywhere; and every canned query of docs/auditing.md answering from
// this data.
func TestEndToEnd(t *testing.T) {
	ctx := t.Context()
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	since := time.Now().UTC().Add(-time.Minute)

	// The enricher, with the mutual TLS kube-apiserver's webhook kubeconfig asks for.
	tap := &intakeTap{}
	h := newHarness(t, harnessOptions{
		tweak: func(o *Options) { o.GatewayUsers = []string{proxyUser} },
		setup: func(e *Enricher) { e.observe = tap.observe },
	})
	pki := h.pki
	t.Run("intake refuses clients without a certificate of its CA", func(t *testing.T) {
		other, err := testbed.NewPKI(t.TempDir())
		require.NoError(t, err)
		for name, certs := range map[string][]tls.Certificate{"none": nil, "another CA": {other.Client}} {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
			req, _ := http.NewRequest(http.MethodPost, h.url, strings.NewReader(string(testEventList(0, 1, genOptions{id: "anon"}))))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, name)
		}
	})

	// kube-apiserver with the audit policy and webhook configuration of manifests/audit.
	kube, err := testbed.StartKube(testbed.KubeOptions{APIServerFlags: testbed.AuditWebhook(
		filepath.Join(root, "manifests", "audit", "policy.yaml"),
		webhookKubeconfig(t, filepath.Join(root, "manifests", "audit", "webhook-kubeconfig.yaml"), h.url, pki),
	)})
	require.NoError(t, err)
	t.Cleanup(kube.Stop)
	kubelet, err := testbed.StartKubelet(ctx, kube, "stub-node")
	require.NoError(t, err)
	t.Cleanup(kubelet.Close)

	canaries := newCanaries()
	ns := setUpCluster(t, kube, kubelet, canaries)

	// A session through the real proxy (package proxy, in process), publishing its records to
	// the enricher's NATS as the proxy does.
	gw := startGateway(t, kube, h)
	alice := gw.clientset(t)
	_, err = alice.CoreV1().Secrets(ns).Get(ctx, "db-credentials", metav1.GetOptions{})
	require.NoError(t, err)
	secretRead := gw.auditID(t, "get", "secrets", "db-credentials")
	_, err = alice.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	_, err = alice.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-notes"}, Data: map[string]string{"note": "refactoring the billing service"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The webhook's and the broker's records, which the proxy's NATS identity may not publish,
	// go with the test's own.
	standInPub, err := trail.NewPublisher(h.nc, trail.PublisherOptions{Source: "proxy/e2e"})
	require.NoError(t, err)
	standIn := newStandInGateway(t, kube, standInPub, gw.sessionID(t), gw.ident)
	standIn.decision(ctx, gw.auditID(t, "create", "configmaps", "agent-notes"), "validating-webhook", trail.Policy{Policy: "default", Rule: "configmaps", Action: "allow"}, "")
	_, err = alice.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-token"}, StringData: map[string]string{"token": canaries.stringData},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = alice.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "RBAC denies: %v", err)
	forbidden := gw.auditID(t, "get", "secrets", "anything")
	// The proxy's policy refuses the delete: it never reaches kube-apiserver.
	err = alice.CoreV1().Secrets(ns).Delete(ctx, "db-credentials", metav1.DeleteOptions{})
	require.True(t, apierrors.IsForbidden(err), "the policy refuses: %v", err)
	refused := gw.auditID(t, "delete", "secrets", "db-credentials")

	// An exec through the proxy, which records it.
	runExec := func(config *rest.Config, command string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cs, err := kubernetes.NewForConfig(config)
		require.NoError(t, err)
		execURL := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("shell").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "main", Command: []string{"sh", "-c", command}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		executor, err := remotecommand.NewSPDYExecutor(config, http.MethodPost, execURL.URL())
		require.NoError(t, err)
		require.NoError(t, executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}), stderr.String())
		assert.Contains(t, stdout.String(), "migrated")
	}
	runExec(gw.config, "echo migrated")
	gatewayExecID := gw.auditID(t, "create", "pods", "shell")

	// An exec under an approval: requested by alice, approved by bob. The stand-in makes this
	// call and publishes its records: the proxy attaches an approval ID only to a call that
	// admission held and the broker approved, and this test runs neither the admission webhook
	// nor the broker (test/e2e TestGroundTruth runs them all). Decisions and approval events
	// are likewise the webhook's and the broker's records, not the proxy's.
	approvalID := "apr-e2e-1"
	standIn.approval(ctx, approvalID, ns, trail.ApprovalRequested, "", "")
	standIn.approval(ctx, approvalID, ns, trail.ApprovalApproved, "bob@example.com", "migration window agreed")
	runExec(standIn.config(approvalID), "echo migrated # --password "+canaries.command)
	execID := standIn.lastAuditID()
	standIn.decision(ctx, execID, "validating-webhook", trail.Policy{Policy: "default", Rule: "exec-needs-approval", Action: "allow", Message: "approved"}, approvalID)
	gatewayIDs := append(gw.auditIDs(t, refused), standIn.auditIDs()...)
	require.NoError(t, gw.pub.Close(ctx))
	require.NoError(t, standInPub.Close(ctx))

	// Direct calls, bypassing the gateway. Direct clients may send Audit-IDs too; these do, so
	// that the test knows when kube-apiserver has sent their events.
	malloryID, adminID := trail.NewID(), trail.NewID()
	mallory := userClient(t, kube, "mallory")
	_, err = mallory.CoreV1().Secrets(ns).Get(withAuditID(ctx, malloryID), "db-credentials", metav1.GetOptions{})
	require.NoError(t, err)
	admin := rest.CopyConfig(kube.Config)
	admin.WrapTransport = auditIDFromContext
	adminCS, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	_, err = adminCS.CoreV1().Namespaces().List(withAuditID(ctx, adminID), metav1.ListOptions{})
	require.NoError(t, err)

	// Everything kube-apiserver sent is stored, once, per stage.
	byStage := waitStored(t, h, tap, append(gatewayIDs, malloryID, adminID))
	t.Logf("stored = sent, by stage: %v", byStage)
	if info, err := h.js.Stream(ctx, trail.StreamAudit); err == nil {
		if si, err := info.Info(ctx); err == nil {
			tap.mu.Lock()
			t.Logf("JetStream holds %d bytes for %d bytes of audit batches received (%.1fx)", si.State.Bytes, tap.bytes, float64(tap.bytes)/float64(si.State.Bytes))
			tap.mu.Unlock()
		}
	}
	assert.Positive(t, byStage["ResponseComplete"])
	assert.Positive(t, byStage["ResponseStarted"], "the exec stream has a ResponseStarted stage")
	assert.Zero(t, tap.refused(), "the intake refused no batch")
	h.waitRows(t, uint64(gw.recordCount()+len(standIn.auditIDs())), 30*time.Second, "SELECT count() FROM {db}.gateway_requests FINAL")

	t.Run("gateway calls join their gateway record, identity and session", func(t *testing.T) {
		for _, id := range gatewayIDs {
			rows := queryRows(t, h.ch, "SELECT route, user, session_id, issuer, subject, client, authenticated_user, gateway_record_id FROM "+h.db+".trail WHERE audit_id = {id:String}",
				clickhouse.Named("id", id))
			require.NotEmpty(t, rows, "audit ID %s", id)
			for _, r := range rows {
				assert.Equal(t, []string{"gateway", "alice@example.com", gw.sessionID(t), gw.ident.Issuer, "alice", "e2e-agent/1.0", proxyUser, id}, r, "audit ID %s", id)
			}
		}
		rows := queryRows(t, h.ch, "SELECT route, decision_action, toString(code), gateway_record_id FROM "+h.db+".trail WHERE route = 'gateway-only'")
		assert.Equal(t, [][]string{{"gateway-only", "deny", "403", refused}}, rows, "the refused request is in the trail too")
		rows = queryRows(t, h.ch, "SELECT DISTINCT toString(recording_id != '') FROM "+h.db+".trail WHERE audit_id = {id:String}",
			clickhouse.Named("id", gatewayExecID))
		assert.Equal(t, [][]string{{"1"}}, rows, "the proxy's exec has its recording")
		rows = queryRows(t, h.ch, "SELECT decision_rule, approval_id, arrayStringConcat(approvers, ','), arrayStringConcat(approval_reasons, ',') FROM "+h.db+".trail WHERE audit_id = {id:String} AND stage = 'ResponseComplete'",
			clickhouse.Named("id", execID))
		// The stand-in published its decision under the exec's Audit-ID as admission UID: admission
		// records are not keyed so (an AdmissionReview's UID is kube-apiserver's ID of one webhook
		// call), and it joins nothing. Decisions join their audit events through the validating
		// webhook's audit annotations, which this test's API server has no webhook to write
		// (test/e2e TestGroundTruth checks that join).
		assert.Equal(t, [][]string{{"", approvalID, "bob@example.com", "bob@example.com: migration window agreed"}}, rows)
	})
	t.Run("direct calls are marked as bypass", func(t *testing.T) {
		rows := queryRows(t, h.ch, "SELECT DISTINCT route, toString(gateway_extras) FROM "+h.db+".trail WHERE user = 'mallory'")
		assert.Equal(t, [][]string{{"bypass", "false"}}, rows)
		// Everyone but the gateway's session (the administrator, kube-apiserver itself) went
		// directly.
		rows = queryRows(t, h.ch, "SELECT DISTINCT route FROM "+h.db+".trail WHERE session_id = ''")
		assert.Equal(t, [][]string{{"bypass"}}, rows)
		assert.Positive(t, countRows(t, h.ch, "SELECT count() FROM "+h.db+".trail WHERE route = 'bypass' AND resource = 'namespaces' AND verb = 'list'"))
	})
	t.Run("no secret reaches ClickHouse, JetStream or the log", func(t *testing.T) {
		values := canaries.all()
		assertNowhere(t, h.ch, h.db, values...)
		assertNotInStream(t, h.js, trail.StreamAudit, values...)
		for _, v := range values {
			assert.NotContains(t, h.logs.String(), v)
		}
		// The Secret was read, and its data replaced.
		rows := queryRows(t, h.ch, "SELECT toString(masked_fields > 0), toString(position(response_object, '\"data\"') > 0) FROM "+h.db+".audit_events FINAL WHERE audit_id = {id:String}",
			clickhouse.Named("id", secretRead))
		assert.Equal(t, [][]string{{"1", "1"}}, rows)
	})
	t.Run("canned queries", func(t *testing.T) {
		runCannedQueries(t, h, cannedParams{
			since: since, session: gw.sessionID(t), issuer: gw.ident.Issuer, auditID: forbidden, ns: ns, approval: approvalID, execID: execID,
		})
	})
	t.Run("manifests apply", func(t *testing.T) {
		_, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gatehouse"}}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
		out, err := exec.CommandContext(ctx, kube.Kubectl, "--kubeconfig", kube.Kubeconfig, "apply", "-f", filepath.Join(root, "manifests", "enricher")).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "statefulset.apps/gatehouse-enricher created")
		assert.Contains(t, string(out), "daemonset.apps/gatehouse-enricher-backstop created")
	})
}

// gateway is the real proxy (package proxy) in front of kube-apiserver, as deployed: it runs
// as the proxy's service account with the shipped RBAC, verifies signed OIDC tokens, refuses
// what its policy denies and publishes its trail records and recordings to the enricher's NATS
// with the proxy's NATS identity. Its records are tapped on their way to the publisher so that
// the test knows their Audit-IDs.
type gateway struct {
	pub    *trail.Publisher
	ident  trail.Identity
	config *rest.Config

	mu      sync.Mutex
	records []*trail.Request
	session string
}

// gatewayPolicy refuses what the proxy itself answers: a policy denial never reaches
// kube-apiserver.
const gatewayPolicy = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: default}
spec:
  rules:
  - name: no-secret-deletes
    match: {resources: [secrets], operations: [DELETE]}
    action: deny
    message: deleting Secrets is not allowed for agents
`

func startGateway(t *testing.T, kube *testbed.Kube, h *harness) *gateway {
	t.Helper()
	ctx := t.Context()
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	_, err = kube.KubectlApply(filepath.Join(root, "manifests", "namespace.yaml"), filepath.Join(root, "manifests", "proxy", "rbac.yaml"))
	require.NoError(t, err)
	upstream, err := kube.AddUser(proxyUser)
	require.NoError(t, err)

	issuer, err := testbed.StartIssuer()
	require.NoError(t, err)
	t.Cleanup(issuer.Close)
	authCfg, err := authn.ParseAuthenticationConfig([]byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: email, prefix: ""}
    groups: {claim: groups, prefix: ""}
`, issuer.URL, strings.ReplaceAll(strings.TrimSpace(string(issuer.CAPEM)), "\n", "\n      "))))
	require.NoError(t, err)
	authenticator, err := authn.NewAuthenticator(authn.AuthenticatorOptions{Config: authCfg})
	require.NoError(t, err)
	authCtx, stopAuth := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = authenticator.Start(authCtx) }()
	t.Cleanup(func() { stopAuth(); <-done })
	require.NoError(t, testbed.WaitFor(ctx, time.Minute, authenticator.Ready))

	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(gatewayPolicy), &p))
	engine := policy.NewEngine(policy.EngineOptions{})
	require.Empty(t, engine.SetPolicies([]v1alpha1.AccessPolicy{p}))

	nc, err := h.nats.ConnectAs(natsbus.RoleProxy)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	g := &gateway{ident: trail.Identity{User: "alice@example.com", Groups: []string{"developers"}, Issuer: issuer.URL, Subject: "alice"}}
	g.pub, err = trail.NewPublisher(nc, trail.PublisherOptions{Source: "proxy/e2e"})
	require.NoError(t, err)
	recordings, err := recording.NewPublisher(nc, recording.PublisherOptions{Source: "proxy/e2e"})
	require.NoError(t, err)
	px, err := proxy.NewProxy(proxy.Options{
		Upstream:      upstream,
		Authenticator: authenticator,
		Masker:        newMasker(t),
		Recorder:      &tappedRecorder{Recorder: g.pub, g: g},
		Recordings:    recordings,
		Policy:        engine,
		Source:        "proxy/e2e",
	})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(px)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	claims := issuer.Claims(g.ident.Subject)
	claims["email"], claims["email_verified"], claims["groups"] = g.ident.User, true, g.ident.Groups
	// The session's label, in the server URL's client options as a kubeconfig carries it.
	g.config = &rest.Config{
		Host:            srv.URL + "/gatehouse/client/session=billing-refactor",
		BearerToken:     issuer.MustSign(t, claims),
		UserAgent:       "e2e-agent/1.0",
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
	}
	return g
}

// tappedRecorder passes the proxy's records to the publisher and keeps its request records.
type tappedRecorder struct {
	proxy.Recorder
	g *gateway
}

func (r *tappedRecorder) Publish(ctx context.Context, rec trail.Record) error {
	r.g.tap(rec)
	return r.Recorder.Publish(ctx, rec)
}

func (r *tappedRecorder) PublishSync(ctx context.Context, rec trail.Record) error {
	r.g.tap(rec)
	return r.Recorder.PublishSync(ctx, rec)
}

func (g *gateway) tap(rec trail.Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r := rec.(type) {
	case *trail.Request:
		g.records = append(g.records, r)
	case *trail.Session:
		g.session = r.SessionID
	}
}

func (g *gateway) clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(g.config)
	require.NoError(t, err)
	return cs
}

// auditID waits for the proxy's record of the finished request verb resource/name and returns
// its Audit-ID (its record ID when kube-apiserver never saw it).
func (g *gateway) auditID(t *testing.T, verb, resource, name string) string {
	t.Helper()
	var id string
	require.NoError(t, testbed.WaitFor(t.Context(), 30*time.Second, func(context.Context) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, r := range g.records {
			if r.Phase == "" && r.Operation.Verb == verb && r.Operation.Resource == resource && r.Operation.Name == name {
				id = cmp.Or(r.AuditID, r.ID)
				return nil
			}
		}
		return fmt.Errorf("no record of %s %s %q among %d", verb, resource, name, len(g.records))
	}))
	return id
}

// auditIDs returns the Audit-IDs of the finished requests the proxy forwarded, but for those
// named in except.
func (g *gateway) auditIDs(t *testing.T, except ...string) []string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	var ids []string
	for _, r := range g.records {
		if r.Phase == "" && !slices.Contains(except, cmp.Or(r.AuditID, r.ID)) {
			ids = append(ids, r.AuditID)
		}
	}
	require.NotEmpty(t, ids)
	return ids
}

// recordCount is how many request records (open and finished) the proxy published.
func (g *gateway) recordCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.records)
}

// sessionID is the ID the proxy gave the session, from its Session records.
func (g *gateway) sessionID(t *testing.T) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.NotEmpty(t, g.session, "the proxy published no Session record")
	return g.session
}

// standInGateway publishes what the real proxy cannot in this test: the records of an exec
// under an approval (the proxy attaches an approval ID only to a call admission held and the
// broker approved), and the records of the admission webhook (decisions) and the broker
// (approval events), which this test does not run. Like the proxy, it reaches kube-apiserver as
// the proxy's user, impersonating the session's identity with the gateway's extras, sends a
// fresh Audit-ID with every request and publishes a trail.Request.
type standInGateway struct {
	base      *rest.Config
	pub       *trail.Publisher
	sessionID string
	ident     trail.Identity

	mu  sync.Mutex
	ids []string
}

func newStandInGateway(t *testing.T, kube *testbed.Kube, pub *trail.Publisher, session string, ident trail.Identity) *standInGateway {
	t.Helper()
	cfg, err := kube.AddUser(proxyUser)
	require.NoError(t, err)
	return &standInGateway{base: cfg, pub: pub, sessionID: session, ident: ident}
}

// config returns a client configuration for the session; approvalID, when set, is forwarded as
// the approval extra.
func (g *standInGateway) config(approvalID string) *rest.Config {
	cfg := rest.CopyConfig(g.base)
	extra := map[string][]string{
		identity.ExtraSessionID: {g.sessionID},
		identity.ExtraIssuer:    {g.ident.Issuer},
		identity.ExtraSubject:   {g.ident.Subject},
		identity.ExtraClient:    {"e2e-agent/1.0"},
	}
	if approvalID != "" {
		extra[identity.ExtraApprovalID] = []string{approvalID}
	}
	cfg.Impersonate = rest.ImpersonationConfig{UserName: g.ident.User, Groups: g.ident.Groups, Extra: extra}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Header.Get("Audit-ID") != "" {
				return rt.RoundTrip(req) // wrapped twice: the outer layer records
			}
			id := trail.NewID()
			req = req.Clone(req.Context())
			req.Header.Set("Audit-ID", id)
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			code := 502
			if err == nil {
				code = resp.StatusCode
			}
			rec := &trail.Request{
				Meta: trail.Meta{ID: id, Time: start}, AuditID: id, SessionID: g.sessionID, Identity: g.ident,
				Client: "e2e-agent/1.0", SourceIP: "127.0.0.1", Operation: operationOf(req), Code: code,
				Latency: time.Since(start), ApprovalID: approvalID,
			}
			if perr := g.pub.Publish(req.Context(), rec); perr != nil {
				return nil, perr // the proxy refuses what it cannot record
			}
			g.mu.Lock()
			g.ids = append(g.ids, id)
			g.mu.Unlock()
			return resp, err
		})
	}
	return cfg
}

func (g *standInGateway) auditIDs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.ids...)
}

func (g *standInGateway) lastAuditID() string {
	ids := g.auditIDs()
	return ids[len(ids)-1]
}

// decision records an admission webhook's decision on a request.
func (g *standInGateway) decision(ctx context.Context, auditID, component string, p trail.Policy, approvalID string) {
	_ = g.pub.Publish(ctx, &trail.Decision{Component: component, AdmissionUID: auditID, SessionID: g.sessionID, Identity: g.ident,
		ViaGateway: true, Policy: p, ApprovalID: approvalID})
}

// approval records what the approval broker records for an exec held for approval.
func (g *standInGateway) approval(ctx context.Context, id, ns string, ev trail.ApprovalEvent, actor, reason string) {
	a := &trail.Approval{Meta: trail.Meta{ID: id + "-" + string(ev)}, ApprovalID: id, Event: ev, SessionID: g.sessionID, Requester: g.ident,
		Operation: trail.Operation{Verb: "CONNECT", APIVersion: "v1", Resource: "pods", Subresource: "exec", Namespace: ns, Name: "shell"},
		Policy:    trail.Policy{Policy: "default", Rule: "exec-needs-approval", Action: "requireApproval", Message: "exec needs an approval"},
		Required:  1, ApproverGroups: []string{"sre"}, Actor: actor, Reason: reason, Path: "proxy", Expires: time.Now().Add(time.Hour)}
	if ev == trail.ApprovalApproved {
		a.Approvers = []string{actor}
	}
	_ = g.pub.Publish(ctx, a)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// operationOf reads the operation of a resource request from its URL, as the proxy's request
// info does for the paths this test uses.
func operationOf(r *http.Request) trail.Operation {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var op trail.Operation
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		op.APIVersion, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		op.APIGroup, op.APIVersion, parts = parts[1], parts[2], parts[3:]
	default:
		return trail.Operation{Verb: strings.ToLower(r.Method), Path: r.URL.Path}
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		op.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		op.Resource = parts[0]
	}
	if len(parts) > 1 {
		op.Name = parts[1]
	}
	if len(parts) > 2 {
		op.Subresource = parts[2]
	}
	switch r.Method {
	case http.MethodGet:
		op.Verb = "get"
		if op.Name == "" {
			op.Verb = "list"
		}
	case http.MethodPost:
		op.Verb = "create"
	case http.MethodPut:
		op.Verb = "update"
	case http.MethodPatch:
		op.Verb = "patch"
	case http.MethodDelete:
		op.Verb = "delete"
	}
	return op
}

// canaries are secret values planted in the cluster; none may be found where the trail is kept.
type canaries struct{ data, stringData, command string }

func newCanaries() canaries {
	r := func(p string) string {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		return p + base64.RawURLEncoding.EncodeToString(b)
	}
	return canaries{data: r("cnrydata"), stringData: r("cnrystr"), command: r("cnrycmd")}
}

// all returns the canaries and the encodings they can take in stored objects.
func (c canaries) all() []string {
	var out []string
	for _, v := range []string{c.data, c.stringData, c.command} {
		out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return out
}

// setUpCluster creates, as the cluster administrator (directly), the namespace, the Secret with
// the canary, a pod on the stub kubelet and the RBAC of the gateway, alice and mallory.
func setUpCluster(t *testing.T, kube *testbed.Kube, kubelet *testbed.Kubelet, c canaries) string {
	t.Helper()
	ctx := t.Context()
	cs := kube.Clientset
	ns := kube.Namespace(t, "e2e")
	_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-credentials"},
		Data:       map[string][]byte{"password": []byte(c.data), "username": []byte("billing")},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kubelet.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	})
	require.NoError(t, err)
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-gateway-" + ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{
				"userextras/" + identity.ExtraSessionID, "userextras/" + identity.ExtraIssuer, "userextras/" + identity.ExtraSubject,
				"userextras/" + identity.ExtraClient, "userextras/" + identity.ExtraApprovalID,
			}, Verbs: []string{"impersonate"}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-gateway-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "e2e-gateway-" + ns},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: proxyUser}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	role := func(name string, rules []rbacv1.PolicyRule, user string) {
		_, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	role("developer", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get", "list", "create"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}},
	}, "alice@example.com")
	role("secret-reader", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
	}, "mallory")
	// RBAC takes effect through an informer: wait until it lets alice read the Secret.
	require.Eventually(t, func() bool {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice@example.com", ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "get", Resource: "secrets", Name: "db-credentials",
			}},
		}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed
	}, 10*time.Second, 50*time.Millisecond)
	return ns
}

type auditIDKey struct{}

func withAuditID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, auditIDKey{}, id)
}

// auditIDFromContext sends the Audit-ID withAuditID put in a request's context.
func auditIDFromContext(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if id, ok := req.Context().Value(auditIDKey{}).(string); ok {
			req = req.Clone(req.Context())
			req.Header.Set("Audit-ID", id)
		}
		return rt.RoundTrip(req)
	})
}

func userClient(t *testing.T, kube *testbed.Kube, name string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := kube.AddUser(name)
	require.NoError(t, err)
	cfg.WrapTransport = auditIDFromContext
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// intakeTap sees what kube-apiserver sent to the intake: every accepted event once, however
// often its batch was sent.
type intakeTap struct {
	mu       sync.Mutex
	seen     map[[32]byte]bool
	byKey    map[string]int // audit ID + stage -> distinct events
	refusals int
	bytes    int // of accepted events
}

func (t *intakeTap) observe(events [][]byte, code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if code != http.StatusOK {
		t.refusals++
		return
	}
	if t.seen == nil {
		t.seen, t.byKey = map[[32]byte]bool{}, map[string]int{}
	}
	for _, it := range events {
		t.bytes += len(it)
		sum := sha256.Sum256(it)
		if t.seen[sum] {
			continue
		}
		t.seen[sum] = true
		var ev struct{ AuditID, Stage string }
		_ = json.Unmarshal(it, &ev)
		t.byKey[ev.AuditID+"/"+ev.Stage]++
	}
}

func (t *intakeTap) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.byKey))
	for k, v := range t.byKey {
		out[k] = v
	}
	return out
}

func (t *intakeTap) refused() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refusals
}

// waitStored waits until kube-apiserver has sent the events of the requests ids and ClickHouse
// holds exactly the events kube-apiserver sent, per audit ID and stage, at a moment when no new
// batch arrived. It returns the counts by stage.
func waitStored(t *testing.T, h *harness, tap *intakeTap, ids []string) map[string]int {
	t.Helper()
	var sent, stored map[string]int
	var byStage map[string]int
	_ = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 45*time.Second, true, func(context.Context) (bool, error) {
		sent = tap.snapshot()
		if !sentAll(sent, ids) {
			return false, nil
		}
		stored = map[string]int{}
		for _, r := range queryRows(t, h.ch, "SELECT audit_id, stage, toString(count()) FROM "+h.db+".audit_events FINAL GROUP BY audit_id, stage") {
			var n int
			_, _ = fmt.Sscan(r[2], &n)
			stored[r[0]+"/"+r[1]] = n
		}
		if len(sent) == 0 || !reflect.DeepEqual(sent, stored) || !reflect.DeepEqual(sent, tap.snapshot()) {
			return false, nil
		}
		byStage = map[string]int{}
		for k, n := range sent {
			byStage[k[strings.LastIndexByte(k, '/')+1:]] += n
		}
		return true, nil
	})
	if byStage != nil {
		return byStage
	}
	var missing, extra []string
	for k, n := range sent {
		if stored[k] != n {
			missing = append(missing, fmt.Sprintf("%s sent %d stored %d", k, n, stored[k]))
		}
	}
	for k := range stored {
		if _, ok := sent[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	t.Fatalf("ClickHouse never matched what kube-apiserver sent: %d sent, %d stored; differing %v; not sent %v\nlog: %s",
		len(sent), len(stored), head(missing, 10), head(extra, 10), h.logs.tail(3000))
	return nil
}

func head(s []string, n int) []string { return s[:min(n, len(s))] }

// sentAll reports whether the final stage of every request ids was sent.
func sentAll(sent map[string]int, ids []string) bool {
	for _, id := range ids {
		if sent[id+"/ResponseComplete"] == 0 {
			return false
		}
	}
	return true
}

// queryRows runs a query and returns its rows, every value formatted as a string.
func queryRows(t testing.TB, conn driver.Conn, query string, args ...any) [][]string {
	t.Helper()
	return queryRowsCtx(t, context.Background(), conn, query, args...)
}

func queryRowsCtx(t testing.TB, ctx context.Context, conn driver.Conn, query string, args ...any) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, query, args...)
	require.NoError(t, err, query)
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		require.NoError(t, rows.Scan(dest...))
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = format(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}

func format(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// assertNotInStream fails if a value occurs in any message of a stream.
func assertNotInStream(t *testing.T, js jetstream.JetStream, stream string, values ...string) {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Positive(t, info.State.Msgs)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		data := m.Data
		if m.Header.Get(HeaderEncoding) == encodingS2 {
			data, err = s2.Decode(nil, data)
			require.NoError(t, err)
		}
		for _, v := range values {
			assert.False(t, bytes.Contains(data, []byte(v)), "%q in %s message %d", v, stream, seq)
		}
	}
}

// webhookKubeconfig fills the webhook kubeconfig of manifests/audit with the test's URL and
// certificates and writes it to a file for kube-apiserver.
func webhookKubeconfig(t *testing.T, manifest, url string, p *testbed.PKI) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(manifest)
	require.NoError(t, err)
	ctx := cfg.Contexts[cfg.CurrentContext]
	require.NotNil(t, ctx, "the manifest names its current context")
	cluster, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	require.NotNil(t, cluster)
	require.NotNil(t, user)
	require.True(t, strings.HasSuffix(cluster.Server, IntakePath), "the manifest's server URL ends with %s", IntakePath)
	cluster.Server, cluster.CertificateAuthority = url, p.CAFile
	user.ClientCertificate, user.ClientKey = p.ClientCertFile, p.ClientKeyFile
	path := filepath.Join(t.TempDir(), "audit-webhook.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// cannedParams are the values the canned queries' parameters take.
type cannedParams struct {
	since                                          time.Time
	session, issuer, auditID, ns, approval, execID string
}

// runCannedQueries runs every canned query of docs/auditing.md (gatehouse sql's) against the
// test's database and checks that each answers what the scenario did. test/e2e TestGroundTruth
// checks them row by row against a session through the real gateway.
func runCannedQueries(t *testing.T, h *harness, p cannedParams) {
	qs, err := schema.Queries()
	require.NoError(t, err)
	params := map[string]string{
		"since":      p.since.Format("2006-01-02 15:04:05.000000"),
		"session_id": p.session,
		"audit_id":   p.auditID,
		"namespace":  p.ns,
	}
	// What each query must show, as a substring of one of its rows joined by " | ".
	expect := map[string][]string{
		"session-timeline": {"| gateway | answered | succeeded | get | secrets |", "| gateway-only | answered | denied | delete | secrets |",
			"| exec |"},
		"who-changed-what": {"human | alice@example.com | gateway | " + p.session + " | create | configmaps |  | " + p.ns + " | agent-notes | 201"},
		"secret-reads": {"alice@example.com | human | gateway | " + p.session + " | " + p.ns + " | db-credentials | get | 1",
			"mallory | human | bypass |  | " + p.ns + " | db-credentials | get | 1"},
		"privileged-operations":      {"| exec | " + p.ns + " | shell | 101 | " + p.approval + " | Approved | [bob@example.com] | [bob@example.com: migration window agreed] |  | exec needs an approval | alice@example.com"},
		"denied-attempts":            {"| gateway-only | " + p.session + " | delete | secrets |", "| gateway | " + p.session + " | get | secrets |  | kube-system | anything | 403 | authorization"},
		"exec-sessions":              {p.execID + " | alice@example.com | " + p.session + " | gateway | " + p.ns + " | shell | exec | sh -c echo migrated # --password gatehouse:masked:"},
		"bypass-traffic":             {"mallory | human | mallory | false | get | secrets | " + p.ns + " | 1"},
		"per-identity-activity":      {"alice@example.com | human | " + p.issuer + " | alice |", "mallory | human |  |  | 1 | 0 | 0 | 0 | 0 | 1 | true"},
		"sessions-overview":          {p.session + " | alice@example.com | e2e-agent/1.0 | billing-refactor |"},
		"audit-id":                   {p.auditID},
		"rbac-changes":               nil, // the administrator's are the only ones, and the control plane's own are left out
		"approvals":                  {p.approval + " | Approved | alice@example.com |  |  | exec-needs-approval | exec needs an approval | [bob@example.com] | [bob@example.com: migration window agreed] | [] | proxy |"},
		"masked-values":              {"secrets | " + p.ns + " | db-credentials | alice@example.com | gateway |"},
		"open-streams":               nil,
		"unrecorded-gateway-traffic": nil, // must be empty
		"ingest-errors":              nil, // must be empty
		"dead-letters":               nil, // must be empty
	}
	seen := map[string]bool{}
	for _, q := range qs {
		seen[q.Name] = true
		t.Run(q.Name, func(t *testing.T) {
			sql, err := q.Render(h.db)
			require.NoError(t, err)
			given := map[string]string{}
			for _, p := range q.Params {
				given[p.Name] = params[p.Name]
			}
			values, err := auditsql.ResolveParams(q.Params, given, time.Now())
			require.NoError(t, err)
			res, err := auditsql.Run(t.Context(), h.ch, sql, values)
			require.NoError(t, err)
			want, ok := expect[q.Name]
			require.True(t, ok, "query %s has no expectation in the test", q.Name)
			var lines []string
			for _, r := range res.Rows {
				cells := make([]string, len(r))
				for i, v := range r {
					cells[i] = auditsql.Text(v)
				}
				lines = append(lines, strings.Join(cells, " | "))
			}
			all := strings.Join(lines, "\n")
			if want == nil {
				if q.Name != "rbac-changes" {
					assert.Empty(t, res.Rows, "%s:\n%s", q.Name, all)
				}
				return
			}
			for _, w := range want {
				assert.Contains(t, all, w, "%s", q.Name)
			}
		})
	}
	for name := range expect {
		assert.True(t, seen[name], "gatehouse sql has no query %s", name)
	}
}
