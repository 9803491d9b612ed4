package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// auditIDs remembers the Audit-ID and session Gatehouse returned for each call of a client.
type auditIDs struct {
	mu      sync.Mutex
	ids     []string
	session string
}

func (a *auditIDs) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Header.Set("Gatehouse-Session", "trail-e2e")
		resp, err := rt.RoundTrip(r)
		if err == nil {
			a.mu.Lock()
			a.ids = append(a.ids, resp.Header.Get("Audit-Id"))
			a.session = resp.Header.Get("Gatehouse-Session")
			a.mu.Unlock()
		}
		return resp, err
	})
}

func (a *auditIDs) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[len(a.ids)-1]
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTrailInClickHouse drives a session through the real proxy and some direct calls past it,
// and reads the joined trail the enricher stored in ClickHouse from the API server's audit
// events and Gatehouse's records.
func TestTrailInClickHouse(t *testing.T) {
	ctx := t.Context()
	const canary = "trail-canary-5e3f1a9b7c"

	// A controller (a service account not coming through the gateway) sets up a Secret.
	setupCfg, err := bed.kube.AddUser("system:serviceaccount:" + setupServiceAccount)
	require.NoError(t, err)
	setup, err := kubernetes.NewForConfig(setupCfg)
	require.NoError(t, err)
	ns := bed.kube.Namespace(t, "trail")
	_, err = setup.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": canary},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The agent's session through Gatehouse.
	ids := &auditIDs{}
	agentCfg := &rest.Config{Host: bed.proxyURL, BearerToken: token("agent-trail", agentGroup),
		TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}, QPS: -1, WrapTransport: ids.wrap}
	agent, err := kubernetes.NewForConfig(agentCfg)
	require.NoError(t, err)
	_, err = agent.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	listID := ids.last()
	secret, err := agent.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, canary, string(secret.Data["password"]))
	secretID := ids.last()
	_, err = agent.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"DATABASE_URL": "postgres://app:" + canary + "@db:5432/app"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	createID := ids.last()

	// An approved operation through the gateway.
	approverCfg := &rest.Config{Host: bed.consoleURL, BearerToken: token("approver-trail", approverGroup), TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}}
	hc, err := rest.HTTPClientFor(approverCfg)
	require.NoError(t, err)
	approver := &approvals.Client{BaseURL: bed.consoleURL, HTTP: hc}
	done := make(chan error, 1)
	go func() {
		_, err := agent.RbacV1().ClusterRoleBindings().Create(context.Background(), testbed.ClusterAdminBinding("trail-admin", "agent-trail"), metav1.CreateOptions{})
		done <- err
	}()
	var approvalID string
	require.Eventually(t, func() bool {
		items, err := approver.List(ctx, approvals.StatePending)
		for _, r := range items {
			if err == nil && r.Operation.Name == "trail-admin" {
				approvalID = r.ID
			}
		}
		return approvalID != ""
	}, 30*time.Second, 50*time.Millisecond)
	_, err = approver.Decide(ctx, approvalID, approvals.Approve, "trail test")
	require.NoError(t, err)
	require.NoError(t, <-done)
	approvedID := ids.last()

	// Direct calls, past the gateway.
	direct, err := kubernetes.NewForConfig(bed.direct)
	require.NoError(t, err)
	_, err = direct.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "direct"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{bed.clickhouse.NativeAddr}})
	require.NoError(t, err)
	defer conn.Close()
	type row struct {
		route, user, session, issuer, approval string
		approvers                              []string
	}
	rows := map[string]row{}
	want := []string{listID, secretID, createID, approvedID}
	require.Eventually(t, func() bool {
		rs, err := conn.Query(ctx, `SELECT audit_id, route, user, session_id, issuer, approval_id, approvers
			FROM gatehouse.trail WHERE stage = 'ResponseComplete' AND audit_id IN {ids:Array(String)}`, clickhouse.Named("ids", want))
		if err != nil {
			return false
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			var r row
			if rs.Scan(&id, &r.route, &r.user, &r.session, &r.issuer, &r.approval, &r.approvers) == nil {
				rows[id] = r
			}
		}
		return len(rows) == len(want) && rows[approvedID].approval != "" && rows[approvedID].route == "gateway"
	}, 60*time.Second, 250*time.Millisecond, "the session's calls reach ClickHouse, joined: %v", rows)
	for _, id := range want {
		r := rows[id]
		assert.Equal(t, "gateway", r.route, id)
		assert.Equal(t, "oidc:agent-trail", r.user, id)
		assert.Equal(t, ids.session, r.session, id)
		assert.Equal(t, bed.issuer.URL, r.issuer, id)
	}
	assert.Equal(t, approvalID, rows[approvedID].approval)
	assert.Equal(t, []string{"oidc:approver-trail"}, rows[approvedID].approvers)

	// The webhook's decision on the approved call says it was admitted, under which approval.
	var admitted uint64
	require.Eventually(t, func() bool {
		err := conn.QueryRow(ctx, `SELECT count() FROM gatehouse.gateway_decisions FINAL
			WHERE approval_id = {id:String} AND action = 'requireApproval' AND admitted`, clickhouse.Named("id", approvalID)).Scan(&admitted)
		return err == nil && admitted > 0
	}, 30*time.Second, 250*time.Millisecond, "the admitted decision of approval %s", approvalID)

	var bypass uint64
	require.Eventually(t, func() bool {
		err := conn.QueryRow(ctx, `SELECT count() FROM gatehouse.trail WHERE route = 'bypass' AND user = {u:String}
			AND resource = 'configmaps' AND name = 'direct' AND verb = 'create'`, clickhouse.Named("u", directUser)).Scan(&bypass)
		return err == nil && bypass > 0
	}, 60*time.Second, 250*time.Millisecond, "the direct call is stored and marked as bypassing the gateway")

	// No secret value anywhere in ClickHouse: every table, every column.
	for _, v := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))} {
		for _, table := range clickhouseTables(t) {
			dump := clickhouseHTTP(t, fmt.Sprintf("SELECT * FROM gatehouse.%s FORMAT TSV", table))
			assert.NotContains(t, dump, v, "a secret value reached table %s", table)
		}
	}
}

func clickhouseTables(t *testing.T) []string {
	t.Helper()
	out := clickhouseHTTP(t, "SELECT name FROM system.tables WHERE database = 'gatehouse' AND engine NOT LIKE '%View' FORMAT TSV")
	tables := strings.Fields(out)
	require.NotEmpty(t, tables)
	return tables
}

func clickhouseHTTP(t *testing.T, query string) string {
	t.Helper()
	resp, err := http.Get("http://" + bed.clickhouse.HTTPAddr + "/?query=" + url.QueryEscape(query))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}
