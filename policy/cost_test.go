package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	k8slib "k8s.io/apiserver/pkg/cel/library"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// TestUntrackedEnvMatchesFast checks that the untracked environment is the fast one without
// cost tracking: the same functions with the same overloads, macros and variables, and no
// tracking. A Kubernetes upgrade that changes the base environment fails here.
func TestUntrackedEnvMatchesFast(t *testing.T) {
	envs := NewEngine(EngineOptions{}).envs
	require.NotNil(t, envs.untracked)
	overloads := func(env *cel.Env) map[string][]string {
		out := map[string][]string{}
		for name, fn := range env.Functions() {
			var ids []string
			for _, o := range fn.OverloadDecls() {
				ids = append(ids, o.ID())
			}
			slices.Sort(ids)
			out[name] = ids
		}
		return out
	}
	macros := func(env *cel.Env) []string {
		var out []string
		for _, m := range env.Macros() {
			out = append(out, m.MacroKey())
		}
		slices.Sort(out)
		return out
	}
	variables := func(env *cel.Env) map[string]string {
		out := map[string]string{}
		for _, v := range env.Variables() {
			out[v.Name()] = v.Type().String()
		}
		return out
	}
	assert.Equal(t, overloads(envs.fast), overloads(envs.untracked))
	assert.Equal(t, macros(envs.fast), macros(envs.untracked))
	assert.Equal(t, variables(envs.fast), variables(envs.untracked))

	c, err := envs.compile("object.metadata.name == 'a'")
	require.NoError(t, err)
	require.NotNil(t, c.untracked)
	ev := testEvaluation(envs, []byte(`{"metadata":{"name":"a"}}`))
	_, det, err := c.tracked.ContextEval(t.Context(), ev)
	require.NoError(t, err)
	require.NotNil(t, det.ActualCost(), "the fast environment tracks cost")
	_, det, err = c.untracked.ContextEval(t.Context(), ev)
	require.NoError(t, err)
	assert.True(t, det == nil || det.ActualCost() == nil, "the untracked environment does not")
}

func testEvaluation(envs celEnvs, object []byte) *evaluation {
	a := Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "pods", Namespace: "shop", Name: "web",
		Object: object, User: authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"agents", "system:authenticated"},
			Extra: map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {"s-1"}}}}
	return &evaluation{ctx: context.Background(), attrs: a, op: a.Op(), adapter: envs.adapter()}
}

// podObject returns a pod with n containers, each with an image, env vars and labels, as JSON.
func podObject(n int) []byte {
	containers := make([]map[string]any, n)
	for i := range containers {
		containers[i] = map[string]any{"name": fmt.Sprintf("c-%d", i), "image": fmt.Sprintf("registry.example/app-%d:1.%d", i, i),
			"args": []any{"--port", fmt.Sprint(8000 + i)}, "env": []any{map[string]any{"name": "MODE", "value": strings.Repeat("x", i%50)}}}
	}
	labels := map[string]any{"team": "shop"}
	for i := range n {
		labels[fmt.Sprintf("l-%d", i)] = fmt.Sprint(i)
	}
	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "labels": labels},
		"spec":     map[string]any{"containers": containers, "serviceAccountName": "web"}})
	if err != nil {
		panic(err)
	}
	return data
}

// TestUntrackedCostBound checks the premise of untracked evaluation: for requests within a
// condition's bound, the cost the tracker counts never exceeds the static estimate at the
// request's size bound, which is within the per-call limit, and both programs agree. Past the
// bound, requests are evaluated by the tracked program, so the limit still stops a condition whose
// cost grows with an attacker-sized object.
func TestUntrackedCostBound(t *testing.T) {
	envs := NewEngine(EngineOptions{}).envs
	conditions := []string{
		"object.metadata.?labels[?'team'].orValue('') == 'team-1' || object.spec.containers.exists(c, c.image.startsWith('forbidden.example/'))",
		"object.spec.containers.all(c, c.image.contains(':') && !c.image.endsWith(':latest'))",
		"object.spec.containers.all(a, object.spec.containers.all(b, a.name != b.name || a == b))",
		"object.spec.containers.map(c, c.name).join(',').size() < 200",
		"object.metadata.labels.all(k, v, k.size() + v.size() < 100)",
		"object.spec.containers.filter(c, c.env.exists(e, e.name == 'MODE' && e.value.lowerAscii() == 'debug')).size() == 0",
		"size(object.metadata.labels) < 10 && object.metadata.labels.exists(k, k.startsWith('l-1'))",
		"request.userInfo.groups.exists(g, g == 'agents') && request.sessionID != '' && userInfo.username.endsWith('@example.com')",
		"request.userInfo.extra.exists(k, userInfo.extra[k].exists(v, v.contains('s-')))",
		"string(object.spec.containers.size()) + object.metadata.name + object.metadata.name != 'x'",
		"object.spec.containers.exists(c, c.image.split(':')[0] in ['docker.io/library/nginx'])",
		"oldObject == null || oldObject.metadata.name == object.metadata.name",
	}
	sizes := []int{0, 1, 3, 10, 50, 200, 1000}
	for _, expr := range conditions {
		c, err := envs.compile(expr)
		require.NoError(t, err, expr)
		require.NotNil(t, c.untracked, "%s has a static cost bound", expr)
		ast, iss := envs.fast.Compile(expr)
		require.NoError(t, iss.Err())
		untrackedSeen := false
		for _, n := range sizes {
			obj := podObject(n)
			ev, uev := testEvaluation(envs, obj), testEvaluation(envs, obj)
			size := ev.sizeBound()
			want, det, wantErr := c.tracked.ContextEval(t.Context(), ev)
			require.NotNil(t, det)
			if size > c.untrackedUpTo {
				prog, tracked := c.program(size)
				assert.True(t, tracked, "%s at %d containers: past its bound, tracked", expr, n)
				assert.Same(t, c.tracked, prog)
				continue
			}
			untrackedSeen = true
			require.NoError(t, wantErr, "%s at %d containers: within its bound, within the limit", expr, n)
			est, err := envs.fast.EstimateCost(ast, &k8slib.CostEstimator{SizeEstimator: sizeBoundEstimator(size)})
			require.NoError(t, err)
			assert.LessOrEqual(t, *det.ActualCost(), est.Max, "%s at %d containers: the estimate bounds the tracked cost", expr, n)
			assert.LessOrEqual(t, est.Max, uint64(celconfig.PerCallLimit))
			prog, tracked := c.program(size)
			require.False(t, tracked)
			require.Same(t, c.untracked, prog)
			got, _, err := c.untracked.ContextEval(t.Context(), uev)
			require.NoError(t, err)
			assert.Equal(t, want.Value(), got.Value(), "%s at %d containers", expr, n)
		}
		assert.True(t, untrackedSeen, "%s: a small pod is evaluated untracked", expr)
	}

	// A condition whose cost is quadratic in the object's size is untracked for small objects
	// only: a large one meets the limit.
	quadratic, err := envs.compile("object.spec.containers.all(a, object.spec.containers.all(b, a.name != b.name || a == b))")
	require.NoError(t, err)
	big := podObject(1000)
	ev := testEvaluation(envs, big)
	require.Greater(t, ev.sizeBound(), quadratic.untrackedUpTo)
	_, condErr, err := ev.evalCondition(quadratic)
	require.NoError(t, err)
	require.ErrorContains(t, condErr, "cost limit")

	// One size bound for every list and string is coarse: a regular expression matched against
	// the elements of a list in a list is estimated as if each could be as long as the whole
	// object, so such a condition is tracked for every real pod.
	nested, err := envs.compile("object.spec.containers.exists(c, c.?args.orValue([]).exists(a, a.matches('^--(privileged|host)')))")
	require.NoError(t, err)
	assert.Less(t, nested.untrackedUpTo, len(podObject(0)))

	// Conditions on looked-up objects, whose size the request does not bound, are always
	// tracked.
	for _, expr := range []string{"pod != null && pod.metadata.name == 'x'", "namespaceObject.metadata.name == 'x'", "roleObject == null"} {
		c, err := envs.compile(expr)
		require.NoError(t, err)
		assert.Nil(t, c.untracked, expr)
	}
	// So is a condition whose cost exceeds the limit whatever the request.
	c, err := envs.compile("[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, a*b*c*d*e*f > 0))))))")
	require.NoError(t, err)
	assert.Nil(t, c.untracked)
}

// TestSizeBound checks that the request's size bound covers its object, old object and every
// string of request and userInfo.
func TestSizeBound(t *testing.T) {
	long := strings.Repeat("g", 5000)
	for _, tc := range []struct {
		name  string
		attrs Attributes
		min   int
	}{
		{"object", Attributes{Object: podObject(30)}, len(podObject(30))},
		{"old object", Attributes{Object: []byte(`{}`), OldObject: podObject(30)}, len(podObject(30))},
		{"a long group", Attributes{User: authenticationv1.UserInfo{Groups: []string{"a", long}}}, len(long)},
		{"many groups", Attributes{User: authenticationv1.UserInfo{Groups: make([]string, 3000)}}, 3000},
		{"extras", Attributes{User: authenticationv1.UserInfo{Extra: map[string]authenticationv1.ExtraValue{long: {"a"}, "b": make([]string, 6000)}}}, 6000},
		{"a long name", Attributes{Name: long, Namespace: "n"}, len(long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &evaluation{attrs: tc.attrs}
			assert.GreaterOrEqual(t, ev.sizeBound(), tc.min)
			assert.GreaterOrEqual(t, ev.sizeBound(), 11, "at least the number of request's fields")
		})
	}
}
