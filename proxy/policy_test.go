package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/serving"
)

const proxyPolicies = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: proxy-test}
spec:
  rules:
  - name: no-unsafe-configmaps
    match: {resources: [configmaps]}
    condition: "object != null && object.data.mode == 'unsafe'"
    action: deny
    message: No unsafe settings.
  - name: no-prod-writes
    match: {operations: [CREATE, UPDATE, DELETE], namespaces: [prod]}
    action: deny
    message: Not in prod.
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    approval: {approverGroups: [sre]}
`

func proxyEngine(t *testing.T) *policy.Engine {
	t.Helper()
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(proxyPolicies), &p))
	e := policy.NewEngine(policy.EngineOptions{})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{p}))
	return e
}

// send sends a request through the proxy at base and returns its status code, Warning headers
// and Status (for failures).
func send(t *testing.T, client *http.Client, base, method, path, contentType, body string) (int, []string, metav1.Status) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, "policy-agent", nil))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	if resp.StatusCode >= 300 {
		require.NoError(t, json.Unmarshal(data, &st), string(data))
	}
	return resp.StatusCode, resp.Header.Values("Warning"), st
}

// TestPolicyAtTheProxy: the proxy evaluates the policies once, refuses what a deny rule refuses,
// leaves to admission what it cannot know, and never holds a dry run.
func TestPolicyAtTheProxy(t *testing.T) {
	u := newUpstream(t)
	srv := newStubProxy(t, u, func(o *proxy.Options) { o.Policy = proxyEngine(t) })
	do := func(method, path, contentType, body string) (int, []string, metav1.Status) {
		t.Helper()
		return send(t, srv.Client(), srv.URL, method, path, contentType, body)
	}
	const unsafe = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"mode":"unsafe"}}`
	tests := []struct {
		name, method, path, contentType, body string
		code                                  int
		want                                  string // in the Status message or a warning
		forwarded                             bool
	}{
		{"a known object a deny rule judges", http.MethodPost, "/api/v1/namespaces/dev/configmaps", "application/json", unsafe,
			http.StatusForbidden, "No unsafe settings", false},
		{"the same in YAML", http.MethodPost, "/api/v1/namespaces/dev/configmaps", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {mode: unsafe}\n",
			http.StatusForbidden, "No unsafe settings", false},
		{"a merge patch: the object is unknown here, admission decides", http.MethodPatch, "/api/v1/namespaces/dev/configmaps/c", "application/merge-patch+json", `{"data":{"mode":"unsafe"}}`,
			http.StatusOK, "", true},
		{"an apply: likewise", http.MethodPatch, "/api/v1/namespaces/dev/configmaps/c?fieldManager=x", "application/apply-patch+yaml", "data: {mode: unsafe}\n",
			http.StatusOK, "", true},
		{"a CBOR body: likewise", http.MethodPost, "/api/v1/namespaces/dev/configmaps", "application/cbor", "\xd9\xd9\xf7\xa0",
			http.StatusOK, "", true},
		{"a patch in prod: a rule that does not judge the object decides", http.MethodPatch, "/api/v1/namespaces/prod/secrets/s", "application/merge-patch+json", `{}`,
			http.StatusForbidden, "Not in prod", false},
		{"a dry run is denied by a deny rule too", http.MethodPost, "/api/v1/namespaces/prod/secrets?dryRun=All", "application/json", `{"metadata":{"name":"s"}}`,
			http.StatusForbidden, "Not in prod", false},
		{"a dry run of what needs approval is forwarded with a warning", http.MethodPost, "/api/v1/namespaces/dev/secrets?dryRun=All", "application/json", `{"metadata":{"name":"s"}}`,
			http.StatusOK, "This was a dry run", true},
		{"a dry-run delete, by its DeleteOptions", http.MethodDelete, "/api/v1/namespaces/dev/secrets/s", "application/json", `{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}`,
			http.StatusOK, "This was a dry run", true},
		{"what needs approval is left to admission", http.MethodPost, "/api/v1/namespaces/dev/secrets", "application/json", `{"metadata":{"name":"s"}}`,
			http.StatusOK, "", true},
		{"what needs approval where admission cannot see it is refused", http.MethodGet, "/api/v1/namespaces/dev/secrets/s", "", "",
			http.StatusForbidden, "does not see this operation", false},
		{"likewise in a namespace the webhooks skip", http.MethodPost, "/api/v1/namespaces/kube-system/secrets", "application/json", `{"metadata":{"name":"s"}}`,
			http.StatusForbidden, "does not see this operation", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.setRespond(nil)
			code, warnings, st := do(tt.method, tt.path, tt.contentType, tt.body)
			assert.Equal(t, tt.code, code, st.Message)
			assert.Equal(t, tt.forwarded, len(u.seen()) == 1, "forwarded")
			if tt.want != "" {
				assert.Contains(t, st.Message+strings.Join(warnings, " "), tt.want)
			}
		})
	}
}

// TestPolicyErrorsAreRefusals: when the policies cannot be evaluated, the proxy refuses every
// request with the reason, reads included, and forwards nothing.
func TestPolicyErrorsAreRefusals(t *testing.T) {
	u := newUpstream(t)
	notReady := policy.NewEngine(policy.EngineOptions{})
	srv := newStubProxy(t, u, func(o *proxy.Options) { o.Policy = notReady })
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		code, _, st := send(t, srv.Client(), srv.URL, method, "/api/v1/namespaces/dev/configmaps", "application/json", `{"metadata":{"name":"c"}}`)
		assert.Equal(t, http.StatusServiceUnavailable, code, method)
		assert.Contains(t, st.Message, "its policies are not loaded yet", method)
	}
	assert.Empty(t, u.seen(), "nothing is forwarded")
}

// failingApprovals cannot reach NATS.
type failingApprovals struct{}

func (failingApprovals) Get(context.Context, string) (*approvals.Request, error) {
	return nil, errors.New("nats: connection closed to nats://10.0.0.7:4222 (secret-internal-detail)")
}

func (failingApprovals) Wait(context.Context, string) (*approvals.Request, error) {
	return nil, errors.New("nats: timeout")
}

// TestInternalErrorsAreSummarised: what went wrong inside (NATS texts) goes to the log; the
// client gets a summary, with the approval ID it was held for.
func TestInternalErrorsAreSummarised(t *testing.T) {
	u := newUpstream(t)
	srv := newStubProxy(t, u, func(o *proxy.Options) { o.Approvals = failingApprovals{} })
	u.setRespond(func(w http.ResponseWriter, _ *http.Request, _ []byte) bool {
		serving.WriteStatus(w, serving.FailureStatus(http.StatusForbidden, metav1.StatusReasonForbidden, "held", approvals.StatusDetails("ap-aaaaaaaaaaaaaaaa")))
		return true
	})
	start := time.Now()
	code, _, st := send(t, srv.Client(), srv.URL, http.MethodPost, "/api/v1/namespaces/dev/secrets", "application/json", `{"metadata":{"name":"s"}}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, st.Message, "cannot reach its approval broker")
	assert.Contains(t, st.Message, "ap-aaaaaaaaaaaaaaaa")
	assert.NotContains(t, st.Message, "nats:")
	assert.NotContains(t, st.Message, "secret-internal-detail")
	assert.Less(t, time.Since(start), 10*time.Second)
}
