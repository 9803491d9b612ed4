package policy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

func conditionPolicy(name, action, condition string) string {
	return fmt.Sprintf(`
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: %s}
spec:
  rules:
  - name: r
    condition: %q
    action: %s
`, name, condition, action)
}

func TestConditionVariables(t *testing.T) {
	lookup := &objects{
		pods: map[string]*corev1.Pod{"shop/web": pod("shop", "web", func(p *corev1.Pod) {
			p.Labels = map[string]string{"app": "web"}
		})},
		namespaces: map[string]*corev1.Namespace{"shop": namespace("shop", map[string]string{"tier": "gold"})},
	}
	deployment := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","labels":{"team":"a"}},"spec":{"replicas":5}}`)
	old := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"replicas":2}}`)
	update := policy.Attributes{Operation: "UPDATE", Verb: "patch", Group: "apps", Version: "v1", Resource: "deployments",
		Namespace: "shop", Name: "web", Object: deployment, OldObject: old, DryRun: true,
		User: authenticationv1.UserInfo{Username: "alice", UID: "u-1", Groups: []string{"dev"}, Extra: map[string]authenticationv1.ExtraValue{
			identity.ExtraSessionID: {"s-42"}, identity.ExtraApprovalID: {"a-7"}}},
		ViaGateway: true}
	exec := policy.Attributes{Operation: "CONNECT", Version: "v1", Resource: "pods", Subresource: "exec", Namespace: "shop", Name: "web"}

	tests := []struct {
		condition string
		attrs     policy.Attributes
		want      bool
	}{
		{"object.spec.replicas > 3", update, true},
		{"object.spec.replicas > oldObject.spec.replicas", update, true},
		{"object.metadata.labels.team == 'a'", update, true},
		{"has(oldObject.metadata.labels)", update, false},
		{"object.?spec.?paused.orValue(false)", update, false},
		{"request.operation == 'UPDATE' && request.verb == 'patch'", update, true},
		{"request.resource.group == 'apps' && request.resource.resource == 'deployments' && request.resource.version == 'v1'", update, true},
		{"request.namespace == 'shop' && request.name == 'web' && request.subResource == ''", update, true},
		{"request.dryRun && request.viaGateway", update, true},
		{"request.sessionID == 's-42' && request.approvalID == 'a-7'", update, true},
		{"request.userInfo.username == 'alice'", update, true},
		{"userInfo.username == 'alice' && userInfo.uid == 'u-1' && 'dev' in userInfo.groups", update, true},
		{"userInfo.extra['gatehouse.dev/session-id'][0] == 's-42'", update, true},
		{"pod == null", update, true},
		{"namespaceObject.metadata.labels.tier == 'gold'", update, true},
		{"object == null && oldObject == null", exec, true},
		{"pod.metadata.labels.app == 'web'", exec, true},
		{"pod.spec.containers[0].image == 'nginx'", exec, true},
		{"request.operation == 'CONNECT' && request.subResource == 'exec'", exec, true},
		// Kubernetes' CEL libraries are there.
		{"quantity('1Gi').isGreaterThan(quantity('1Mi'))", update, true},
		{"'10.0.0.1'.matches('^10\\\\.')", update, true},
		{"[1, 2, 3].sum() == 6", update, true},
		{"isCIDR('10.0.0.0/8')", update, true},
		// The newest list functions too (compiled in the full environment).
		{"['b', 'a', 'b'].distinct().sort() == ['a', 'b']", update, true},
	}
	for _, tt := range tests {
		t.Run(tt.condition, func(t *testing.T) {
			e := newEngine(t, lookup, conditionPolicy("p", "deny", tt.condition))
			d, err := e.Evaluate(t.Context(), tt.attrs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.Action == policy.ActionDeny, d.Message)
			assert.NotContains(t, d.Message, "could not be evaluated")
		})
	}
}

func TestVariablesAreComputedOnDemand(t *testing.T) {
	lookup := &objects{pods: map[string]*corev1.Pod{"shop/web": pod("shop", "web", nil)}}
	e := newEngine(t, lookup,
		conditionPolicy("a", "deny", "request.name == 'other'"),
		conditionPolicy("b", "deny", "pod.spec.hostPID == true"),
		conditionPolicy("c", "deny", "pod.metadata.name == 'nope'"))
	exec := policy.Attributes{Operation: "CONNECT", Resource: "pods", Subresource: "exec", Namespace: "shop", Name: "web"}
	d, err := e.Evaluate(t.Context(), exec)
	require.NoError(t, err)
	// b's condition fails (no hostPID field): a deny rule applies when its condition errs.
	assert.Equal(t, "b", d.Policy)
	assert.Contains(t, d.Message, "could not be evaluated")
	assert.Equal(t, 1, lookup.podCalls, "the pod is fetched once per evaluation")

	lookup.podCalls = 0
	_, err = e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "shop", Name: "c"})
	require.NoError(t, err)
	assert.Zero(t, lookup.podCalls, "no pod is fetched for a request that has none")
}

func TestConditionErrors(t *testing.T) {
	a := policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n", Name: "c", Object: []byte(`{"metadata":{"name":"c"}}`)}
	t.Run("a restricting rule applies", func(t *testing.T) {
		for _, action := range []string{"deny", "requireApproval"} {
			doc := conditionPolicy("p", action, "object.data.key == 'x'")
			if action == "requireApproval" {
				doc += "    approval: {approverGroups: [sre]}\n"
			}
			e := newEngine(t, nil, doc)
			d, err := e.Evaluate(t.Context(), a)
			require.NoError(t, err)
			assert.Equal(t, policy.Action(action), d.Action)
			assert.Contains(t, d.Message, "The rule's condition could not be evaluated, so the rule was applied: no such key: data")
		}
	})
	t.Run("an exception does not", func(t *testing.T) {
		e := newEngine(t, nil, conditionPolicy("a", "allow", "object.data.key == 'x'"), conditionPolicy("b", "deny", "true"))
		d, err := e.Evaluate(t.Context(), a)
		require.NoError(t, err)
		assert.Equal(t, policy.ActionDeny, d.Action)
		assert.Equal(t, "b", d.Policy)
	})
	t.Run("a non-bool result is an error", func(t *testing.T) {
		e := newEngine(t, nil, conditionPolicy("a", "deny", "object.metadata.name"))
		d, err := e.Evaluate(t.Context(), a)
		require.NoError(t, err)
		assert.Equal(t, policy.ActionDeny, d.Action)
		assert.Contains(t, d.Message, "did not evaluate to a bool")
	})
	t.Run("the cost limit holds", func(t *testing.T) {
		e := newEngine(t, nil, conditionPolicy("a", "deny", "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, a*b*c*d*e*f > 0))))))"))
		d, err := e.Evaluate(t.Context(), a)
		require.NoError(t, err)
		assert.Equal(t, policy.ActionDeny, d.Action)
		assert.Contains(t, d.Message, "cost limit")
	})
}

func TestEvaluateErrors(t *testing.T) {
	exec := policy.Attributes{Operation: "CONNECT", Resource: "pods", Subresource: "exec", Namespace: "shop", Name: "web"}

	_, err := policy.NewEngine(policy.EngineOptions{}).Evaluate(t.Context(), exec)
	require.ErrorIs(t, err, policy.ErrNotReady)

	privileged := conditionPolicy("p", "deny", "pod != null && pod.spec.?hostPID.orValue(false)")
	_, err = newEngine(t, nil, privileged).Evaluate(t.Context(), exec)
	require.ErrorIs(t, err, policy.ErrLookup, "without a Lookup the pod cannot be judged")

	down := &objects{err: errors.New("connection refused")}
	_, err = newEngine(t, down, privileged).Evaluate(t.Context(), exec)
	require.ErrorIs(t, err, policy.ErrLookup)
	assert.ErrorContains(t, err, "connection refused")

	selector := `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: r
    match: {namespaceSelector: {matchLabels: {env: prod}}}
    action: deny
`
	_, err = newEngine(t, down, selector).Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n"})
	require.ErrorIs(t, err, policy.ErrLookup)

	_, err = newEngine(t, nil, conditionPolicy("p", "deny", "object.x == 1")).Evaluate(t.Context(),
		policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n", Object: []byte(`{not json`)})
	require.ErrorIs(t, err, policy.ErrBadRequest)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = newEngine(t, nil, conditionPolicy("p", "deny", "request.name == 'x'")).Evaluate(ctx, exec)
	require.ErrorIs(t, err, context.Canceled)
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"undeclared variable", conditionPolicy("p", "deny", "objct.spec == null"), "undeclared reference to 'objct'"},
		{"unknown request field", conditionPolicy("p", "deny", "request.operaton == 'CREATE'"), "undefined field 'operaton'"},
		{"syntax", conditionPolicy("p", "deny", "object.spec ==="), "Syntax error"},
		{"not a bool", conditionPolicy("p", "deny", "'yes'"), "must evaluate to bool"},
		{"bad action", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: maybe}]}`, `unknown action "maybe"`},
		{"approval without requireApproval", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny, approval: {approverGroups: [a]}}]}`, "only valid with action requireApproval"},
		{"requireApproval without approvers", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: requireApproval}]}`, "needs approval.approverGroups"},
		{"bad operation", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny, match: {operations: [PATCH]}}]}`, `unknown operation "PATCH"`},
		{"bad resource", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny, match: {resources: ["pods/"]}}]}`, `invalid resource "pods/"`},
		{"bad service account", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny, match: {serviceAccounts: [ci]}}]}`, `invalid service account "ci"`},
		{"bad selector", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny, match: {namespaceSelector: {matchExpressions: [{key: a, operator: Maybe}]}}}]}`, "namespaceSelector"},
		{"duplicate rule", `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {rules: [{name: r, action: deny}, {name: r, action: allow}]}`, "duplicate rule name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := policy.NewEngine(policy.EngineOptions{})
			errs := e.SetPolicies(parsePolicies(t, tt.doc, conditionPolicy("ok", "deny", "request.name == 'x'")))
			require.Len(t, errs, 1)
			err := errs["p"]
			require.ErrorIs(t, err, policy.ErrInvalidPolicy)
			var ce *policy.CompileError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "p", ce.Policy)
			assert.ErrorContains(t, err, tt.want)
			assert.ErrorContains(t, err, "the policy is not in force")
			_, _, ok := e.InForce("p")
			assert.False(t, ok)
			_, rules, ok := e.InForce("ok")
			assert.True(t, ok, "the policies that compiled are in force")
			assert.Equal(t, 1, rules)
			require.NoError(t, e.Ready())
		})
	}
}

func TestBrokenUpdateKeepsPreviousVersion(t *testing.T) {
	e := policy.NewEngine(policy.EngineOptions{})
	v1 := parsePolicies(t, conditionPolicy("p", "deny", "request.name == 'blocked'"))[0]
	v1.UID, v1.Generation = types.UID("uid-1"), 1
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{v1}))
	gen := e.Generation()

	blocked := policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n", Name: "blocked"}
	d, err := e.Evaluate(t.Context(), blocked)
	require.NoError(t, err)
	require.Equal(t, policy.ActionDeny, d.Action)

	v2 := parsePolicies(t, conditionPolicy("p", "deny", "request.nam == 'blocked'"))[0]
	v2.UID, v2.Generation = types.UID("uid-1"), 2
	errs := e.SetPolicies([]v1alpha1.AccessPolicy{v2})
	require.ErrorContains(t, errs["p"], "the previous version (generation 1) stays in force")
	assert.Greater(t, e.Generation(), gen)
	g, _, ok := e.InForce("p")
	require.True(t, ok)
	assert.Equal(t, int64(1), g)
	d, err = e.Evaluate(t.Context(), blocked)
	require.NoError(t, err)
	assert.Equal(t, policy.ActionDeny, d.Action, "a typo must not open a gap")

	// A new object under the same name does not inherit the old one's rules.
	v3 := v2
	v3.UID = "uid-2"
	errs = e.SetPolicies([]v1alpha1.AccessPolicy{v3})
	require.ErrorContains(t, errs["p"], "not in force")
	d, err = e.Evaluate(t.Context(), blocked)
	require.NoError(t, err)
	assert.Equal(t, policy.ActionAllow, d.Action)

	// Deleting a policy removes it.
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{v1}))
	require.Empty(t, e.SetPolicies(nil))
	_, _, ok = e.InForce("p")
	assert.False(t, ok)
}

func TestOp(t *testing.T) {
	for _, tt := range []struct {
		a    policy.Attributes
		want string
	}{
		{policy.Attributes{Operation: "CREATE", Verb: "whatever"}, "CREATE"},
		{policy.Attributes{Verb: "create"}, "CREATE"},
		{policy.Attributes{Verb: "update"}, "UPDATE"},
		{policy.Attributes{Verb: "patch"}, "UPDATE"},
		{policy.Attributes{Verb: "delete"}, "DELETE"},
		{policy.Attributes{Verb: "deletecollection"}, "DELETE"},
		{policy.Attributes{Verb: "get"}, "GET"},
		{policy.Attributes{Verb: "list"}, "LIST"},
		{policy.Attributes{Verb: "watch"}, "WATCH"},
		{policy.Attributes{Verb: "create", Resource: "pods", Subresource: "exec"}, "CONNECT"},
		{policy.Attributes{Verb: "get", Resource: "pods", Subresource: "portforward"}, "CONNECT"},
		{policy.Attributes{Verb: "get", Resource: "pods", Subresource: "log"}, "GET"},
		{policy.Attributes{Verb: "get", Resource: "nodes", Subresource: "proxy"}, "CONNECT"},
	} {
		assert.Equal(t, tt.want, tt.a.Op(), "%+v", tt.a)
	}
}

func TestPrivileged(t *testing.T) {
	for _, tt := range []struct {
		op, group, resource, sub string
		want                     bool
	}{
		{"CONNECT", "", "pods", "exec", true},
		{"CONNECT", "", "nodes", "proxy", true},
		{"CREATE", "", "secrets", "", true},
		{"DELETE", "", "secrets", "", true},
		{"CREATE", "rbac.authorization.k8s.io", "clusterrolebindings", "", true},
		{"UPDATE", "rbac.authorization.k8s.io", "rolebindings", "", true},
		{"DELETE", "rbac.authorization.k8s.io", "rolebindings", "", false},
		{"CREATE", "rbac.authorization.k8s.io", "clusterroles", "", true},
		{"UPDATE", "rbac.authorization.k8s.io", "roles", "", true},
		{"DELETE", "rbac.authorization.k8s.io", "clusterroles", "", false},
		{"DELETE", "", "namespaces", "", true},
		{"CREATE", "", "namespaces", "", false},
		{"UPDATE", "apiextensions.k8s.io", "customresourcedefinitions", "", true},
		{"DELETE", "gatehouse.dev", "accesspolicies", "", true},
		{"CREATE", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", true},
		{"CREATE", "", "configmaps", "", false},
		{"CREATE", "apps", "deployments", "", false},
		{"", "", "secrets", "", false}, // a read (verb get)
	} {
		a := policy.Attributes{Operation: tt.op, Group: tt.group, Resource: tt.resource, Subresource: tt.sub}
		if tt.op == "" {
			a.Verb = "get"
		}
		assert.Equal(t, tt.want, policy.Privileged(a), "%s %s/%s", tt.op, tt.resource, tt.sub)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name, yaml, err string
		n               int
	}{
		{"documents and comments", "# only a comment\n---\n" + conditionPolicy("a", "deny", "true") + "---\n" + conditionPolicy("b", "deny", "true") + "---\n", "", 2},
		{"unknown field", conditionPolicy("a", "deny", "true") + "    mesage: typo\n", `unknown field "mesage"`, 0},
		{"wrong kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "want apiVersion gatehouse.dev/v1alpha1, kind AccessPolicy", 0},
		{"no name", "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nspec: {rules: []}\n", "metadata.name is required", 0},
		{"duplicate", conditionPolicy("a", "deny", "true") + "---\n" + conditionPolicy("a", "deny", "true"), `duplicate AccessPolicy "a"`, 0},
		{"not yaml", "a: [b\n", "document 1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := policy.Load(strings.NewReader(tt.yaml))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, ps, tt.n)
		})
	}
	_, err := policy.LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestFileWatcherReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policies.yaml")
	write := func(s string) {
		t.Helper()
		// Rename over the file, as editors and ConfigMap volume updates do.
		tmp := path + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	write(conditionPolicy("p", "deny", "request.name == 'one'"))
	e := policy.NewEngine(policy.EngineOptions{})
	var logs syncBuffer
	w := &policy.FileWatcher{Path: path, Engine: e, Interval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	denied := func(name string) func() bool {
		return func() bool {
			d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n", Name: name})
			return err == nil && d.Action == policy.ActionDeny
		}
	}
	require.Eventually(t, denied("one"), 5*time.Second, 10*time.Millisecond)

	write(conditionPolicy("p", "deny", "request.name == 'two'"))
	require.Eventually(t, denied("two"), 5*time.Second, 10*time.Millisecond)
	assert.False(t, denied("one")())

	// A broken file leaves the policies in force.
	gen := e.Generation()
	write("apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p}\nspec: {rules: [{name: r, action: deny, oops: 1}]}\n")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reloading access policies failed") }, 5*time.Second, 10*time.Millisecond,
		"the watcher read the broken file")
	assert.Equal(t, gen, e.Generation())
	assert.True(t, denied("two")())

	// A bad condition keeps the previous version of the policy.
	write(conditionPolicy("p", "deny", "request.nme == 'three'"))
	require.Eventually(t, func() bool { return e.Generation() > gen }, 5*time.Second, 10*time.Millisecond)
	assert.True(t, denied("two")())
	assert.False(t, denied("three")())
}

func TestFileWatcherFailsOnUnreadableFile(t *testing.T) {
	w := &policy.FileWatcher{Path: filepath.Join(t.TempDir(), "missing.yaml"), Engine: policy.NewEngine(policy.EngineOptions{})}
	require.ErrorIs(t, w.Start(t.Context()), os.ErrNotExist)
}

// TestConcurrentReload evaluates while generations are swapped in; run with -race.
func TestConcurrentReload(t *testing.T) {
	e := newEngine(t, nil, conditionPolicy("p", "deny", "request.name == 'x'"))
	a := policy.Attributes{Operation: "CREATE", Resource: "configmaps", Namespace: "n", Name: "x",
		Object: []byte(`{"metadata":{"name":"x"}}`)}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				d, err := e.Evaluate(context.Background(), a)
				if err != nil || d.Action != policy.ActionDeny {
					t.Errorf("evaluation during reload: %v %v", d.Action, err)
					return
				}
			}
		})
	}
	for i := 0; ctx.Err() == nil; i++ {
		p := parsePolicies(t, conditionPolicy("p", "deny", fmt.Sprintf("request.name == 'x' || request.name == 'y%d'", i)))
		p[0].ObjectMeta = metav1.ObjectMeta{Name: "p", UID: "u", Generation: int64(i + 1)}
		require.Empty(t, e.SetPolicies(p))
	}
	wg.Wait()
}

// syncBuffer collects what a goroutine logs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
