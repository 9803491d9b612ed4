package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// reuseRules are rules that read the object, the old object, the request, the user and the
// namespace, beside the default pack: the values a reused evaluation must never carry over from
// the review before.
const reuseRules = `apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reuse}
spec:
  priority: 150
  rules:
  - name: team-label
    action: deny
    match: {operations: [CREATE, UPDATE], resources: [pods, configmaps]}
    condition: object.metadata.?labels[?'team'].orValue('') == 'blocked'
  - name: forbidden-image
    action: deny
    match: {operations: [CREATE, UPDATE], resources: [pods]}
    condition: object.spec.containers.exists(c, c.image.startsWith('forbidden.example/'))
  - name: label-change
    action: requireApproval
    approval: {approverGroups: [gatehouse:approvers]}
    match: {operations: [UPDATE], resources: [pods, configmaps]}
    condition: oldObject.metadata.?labels.orValue({}) != object.metadata.?labels.orValue({})
  - name: big-data
    action: deny
    match: {operations: [CREATE, UPDATE], resources: [configmaps]}
    condition: size(object.?data.orValue({})) > 3 || object.?data.?key.orValue('') == 'secret'
  - name: restricted-namespace
    action: deny
    match: {operations: [CREATE, UPDATE, DELETE], resources: [pods, configmaps], namespaceSelector: {matchLabels: {tier: restricted}}}
  - name: namespace-object
    action: deny
    match: {operations: [CREATE, UPDATE, DELETE], resources: [configmaps]}
    condition: namespaceObject != null && namespaceObject.metadata.name == 'shop' && namespaceObject.metadata.?labels.orValue({}).size() == 0 && object.?data.?d.orValue('') == '2'
  - name: session-writes
    action: deny
    match: {operations: [DELETE], resources: [configmaps]}
    condition: request.sessionID == 'blocked-session' || userInfo.groups.exists(g, g == 'blocked')
  - name: allow-team
    action: allow
    match: {operations: [CREATE], resources: [configmaps]}
    condition: object.metadata.name.startsWith('team-')
`

// reuseLookup is a Lookup over fixed objects.
type reuseLookup struct{}

func (reuseLookup) Pod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	if strings.HasPrefix(name, "priv") {
		p.Spec.HostPID = true
	}
	return p, nil
}

func (reuseLookup) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if name == "missing" {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if strings.HasPrefix(name, "restricted") {
		ns.Labels = map[string]string{"tier": "restricted"}
	}
	return ns, nil
}

func (reuseLookup) Role(_ context.Context, namespace, name string) (*rbacv1.Role, error) {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, nil
}

func (reuseLookup) ClusterRole(_ context.Context, name string) (*rbacv1.ClusterRole, error) {
	verbs := []string{"get"}
	if name == "wide" {
		verbs = []string{"*"}
	}
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{Verbs: verbs, APIGroups: []string{""}, Resources: []string{"pods"}}}}, nil
}

// reuseReview generates a review: pods, ConfigMaps, bindings, Secrets and exec, with objects
// that do and do not trip the rules, and objects that are not JSON objects at all.
func reuseReview(r *rand.Rand) Attributes {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	a := Attributes{
		Namespace: pick("shop", "restricted-a", "missing", "gatehouse", ""),
		Name:      pick("web", "team-web", "priv-db", ""),
		User: authenticationv1.UserInfo{Username: pick("agent", "admin", "system:serviceaccount:shop:ci"),
			Groups: []string{pick("agents", "blocked", "system:masters", "gatehouse:break-glass")}},
		DryRun: r.IntN(8) == 0,
	}
	if r.IntN(2) == 0 {
		a.User.Extra = map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {pick("s-1", "blocked-session")}}
		a.ViaGateway = true
	}
	a.Operation = pick("CREATE", "UPDATE", "DELETE", "CONNECT")
	a.Verb = strings.ToLower(a.Operation)
	a.Version = "v1"
	switch a.Resource = pick("pods", "configmaps", "secrets", "rolebindings", "clusterroles"); a.Resource {
	case "rolebindings", "clusterroles":
		a.Group = rbacv1.GroupName
	case "pods":
		if a.Operation == "CONNECT" {
			a.Subresource = pick("exec", "attach", "log")
		}
	}
	object := func() []byte {
		switch r.IntN(12) {
		case 0:
			return nil
		case 1:
			return []byte(pick(`[1,2]`, `"text"`, `null`, `{"a":`, `{"a":1e999}`, `{"metadata":{"labels":{"team":"blocked"}}} x`))
		}
		labels := map[string]string{}
		for range r.IntN(3) {
			labels[pick("team", "app", "te\u0061m")] = pick("blocked", "shop", "")
		}
		var containers []string
		for range r.IntN(3) {
			containers = append(containers, fmt.Sprintf(`{"name":"c","image":%q}`, pick("nginx", "forbidden.example/x", "registry.example/y")))
		}
		data := ""
		for i := range r.IntN(5) {
			data += fmt.Sprintf(`,"k%d":%q`, i, pick("v", "secret"))
		}
		if r.IntN(3) == 0 {
			data += `,"key":"secret"`
		}
		var lb strings.Builder
		lb.WriteByte('{')
		i := 0
		for k, v := range labels {
			if i > 0 {
				lb.WriteByte(',')
			}
			fmt.Fprintf(&lb, "%q:%q", k, v)
			i++
		}
		lb.WriteByte('}')
		name := a.Name
		if r.IntN(4) == 0 {
			name = "team-x"
		}
		return fmt.Appendf(nil, `{"kind":"X","metadata":{"name":%q,"labels":%s},"spec":{"containers":[%s]},"data":{"d":%q%s},"roleRef":{"kind":"ClusterRole","name":%q}}`,
			name, lb.String(), strings.Join(containers, ","), pick("1", "2"), data, pick("view", "wide", "cluster-admin"))
	}
	if a.Operation != "CONNECT" && a.Operation != "DELETE" {
		a.Object = object()
	}
	if a.Operation == "UPDATE" || (a.Operation == "DELETE" && r.IntN(2) == 0) {
		a.OldObject = object()
	}
	return a
}

// TestReusedEvaluationsDecideAsFreshOnes is a differential test of reusing an evaluation's
// buffers (Engine.release) and of decoding objects lazily into them: thousands of generated
// reviews, evaluated in random order on two goroutines by one engine, get exactly the decision
// (action, policy, rule, message, approval, unknown) or error that a fresh evaluation of each
// gives, with its objects decoded at once. A review must never see what the
// review before it decoded: a label, an image or a whole object of another request.
func TestReusedEvaluationsDecideAsFreshOnes(t *testing.T) {
	policies, err := LoadFile("../manifests/policies/default.yaml")
	require.NoError(t, err)
	var extra v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(reuseRules), &extra))
	e := NewEngine(EngineOptions{Lookup: reuseLookup{}})
	require.Empty(t, e.SetPolicies(append(policies, extra)))
	g := e.current.Load()

	type outcome struct {
		d   Decision
		err string
	}
	result := func(d Decision, err error) outcome {
		o := outcome{d: d}
		if err != nil {
			o.err = err.Error()
		}
		return o
	}
	r := rand.New(rand.NewPCG(19, 3))
	reviews := make([]Attributes, 3000)
	want := make([]outcome, len(reviews))
	actions := map[string]int{}
	for i := range reviews {
		reviews[i] = reuseReview(r)
		// The reference: fresh state, and the objects decoded at once into values of their own
		// (decodeJSONValue), not lazily into reused documents.
		a := reviews[i]
		fresh := &evaluation{ctx: context.Background(), attrs: a, op: a.Op(), lookup: e.opts.Lookup, adapter: e.envs.adapter(), eager: true}
		want[i] = result(e.evaluate(g, fresh))
		switch {
		case want[i].err != "":
			actions["error"]++
		default:
			actions[string(want[i].d.Action)+"/"+want[i].d.Rule]++
		}
	}
	// Every kind of outcome occurs, so the comparison covers each.
	for _, k := range []string{"error", "allow/", "deny/team-label", "deny/forbidden-image", "requireApproval/label-change",
		"deny/big-data", "deny/restricted-namespace", "deny/namespace-object", "deny/session-writes", "allow/allow-team", "requireApproval/secret-changes"} {
		require.Positive(t, actions[k], "no review decided %s: %v", k, actions)
	}

	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			order := rand.New(rand.NewPCG(uint64(w), 7)).Perm(len(reviews))
			for round := range 3 {
				for _, i := range order {
					got := result(e.Evaluate(context.Background(), reviews[i]))
					if !reflect.DeepEqual(want[i], got) {
						t.Errorf("round %d, review %d (%s): got %+v, want %+v", round, i, reviews[i].String(), got, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestReleasedEvaluationHoldsNothingOfTheRequest checks that an evaluation kept for reuse holds
// no reference into the request it evaluated, nor any value decoded from it: a pooled buffer must
// not keep a Secret's data alive, or hand it to the next review.
func TestReleasedEvaluationHoldsNothingOfTheRequest(t *testing.T) {
	var extra v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(reuseRules), &extra))
	e := NewEngine(EngineOptions{Lookup: reuseLookup{}})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{extra}))
	object := []byte(`{"metadata":{"name":"cm","labels":{"te\u0061m":"shop"}},"data":{"key":"s3cr3t","k\u0031":"v"},` +
		`"spec":{"containers":[{"image":"nginx"},{"image":"registry.example/y"}]}}`)
	a := Attributes{Operation: "UPDATE", Verb: "update", Version: "v1", Resource: "configmaps", Namespace: "restricted-a", Name: "cm",
		User: authenticationv1.UserInfo{Username: "agent", Groups: []string{"agents"}}, Object: object, OldObject: object}
	ev := e.evaluation(context.Background(), a)
	d, err := e.evaluate(e.current.Load(), ev)
	require.NoError(t, err)
	require.Equal(t, "restricted-namespace", d.Rule)
	require.NotEmpty(t, ev.docs.object.objects, "the evaluation decoded the object")
	require.NotEmpty(t, ev.docs.oldObject.objects, "the evaluation decoded the old object")
	e.release(ev)

	require.Equal(t, evaluation{docs: ev.docs}, *ev, "released: only the documents' buffers are kept")
	for _, doc := range []*jsonDoc{&ev.docs.object, &ev.docs.oldObject} {
		assert.Nil(t, doc.data)
		assert.Nil(t, doc.adapter)
		for _, o := range doc.objects[:cap(doc.objects)] {
			assert.Zero(t, o)
		}
		for _, m := range doc.members[:cap(doc.members)] {
			assert.Zero(t, m)
		}
		for _, l := range doc.arrays[:cap(doc.arrays)] {
			assert.Zero(t, l)
		}
		for _, v := range doc.items[:cap(doc.items)] {
			assert.Nil(t, v)
		}
		for _, b := range doc.scratch[:cap(doc.scratch)] {
			assert.Zero(t, b)
		}
	}
}

// TestReleasedEvaluationDropsLargeBuffers checks that the buffers a large object needed are not
// kept for reuse: one such request must not make every idle evaluation hold as much.
func TestReleasedEvaluationDropsLargeBuffers(t *testing.T) {
	var extra v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(reuseRules), &extra))
	e := NewEngine(EngineOptions{Lookup: reuseLookup{}})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{extra}))
	var data strings.Builder
	for i := range 2 * maxKept {
		fmt.Fprintf(&data, `,"k%d":[{"v":%d}]`, i, i)
	}
	object := []byte(`{"metadata":{"name":"cm"},"data":{"d":"1"` + data.String() + `}}`)
	a := Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "configmaps", Namespace: "shop", Name: "cm",
		User: authenticationv1.UserInfo{Username: "agent"}, Object: object}
	ev := e.evaluation(context.Background(), a)
	d, err := e.evaluate(e.current.Load(), ev)
	require.NoError(t, err)
	require.Equal(t, "big-data", d.Rule, "the condition iterated over the large map")
	require.Greater(t, cap(ev.docs.object.spans), maxKept)
	require.Greater(t, cap(ev.docs.object.members), maxKept)
	e.release(ev)
	assert.Nil(t, ev.docs.object.spans)
	assert.Nil(t, ev.docs.object.members)
	assert.LessOrEqual(t, cap(ev.docs.object.objects), maxKept)
	assert.LessOrEqual(t, cap(ev.docs.object.arrays), maxKept)
	assert.LessOrEqual(t, cap(ev.docs.object.items), maxKept)
}

// TestPooledEvaluationTracksCost checks that an evaluation from the pool still tracks the cost of
// a condition whose static bound the request exceeds: the per-call limit stops it and the deny
// rule applies, on the first evaluation and on reused ones.
func TestPooledEvaluationTracksCost(t *testing.T) {
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(`apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: unique-names
    action: deny
    match: {operations: [CREATE], resources: [pods]}
    condition: "!object.spec.containers.all(a, object.spec.containers.all(b, a.name != b.name || a == b))"
`), &p))
	e := NewEngine(EngineOptions{})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{p}))
	c := e.current.Load().rules[0].rule.condition
	require.NotNil(t, c.untracked, "the condition has a static bound")
	obj := podObject(1500)
	require.Greater(t, len(obj), c.untrackedUpTo)
	a := Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "pods", Namespace: "shop", Name: "web",
		User: authenticationv1.UserInfo{Username: "agent"}, Object: obj}
	for i := range 3 {
		d, err := e.Evaluate(context.Background(), a)
		require.NoError(t, err)
		require.Equal(t, ActionDeny, d.Action, "evaluation %d: %s", i, d.Message)
		require.Contains(t, d.Message, "cost", "evaluation %d", i)
	}
}

// TestReleasedEvaluationHoldsNothingOfItsArrays is TestReleasedEvaluationHoldsNothingOfTheRequest
// for a request whose arrays a condition reads, and for an escaped key compared before a shorter
// one (the scratch buffer keeps the longer one's tail past its length).
func TestReleasedEvaluationHoldsNothingOfItsArrays(t *testing.T) {
	var extra, keys v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(reuseRules), &extra))
	require.NoError(t, yaml.UnmarshalStrict([]byte(`apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: keys}
spec:
  rules:
  - name: r
    action: deny
    match: {operations: [CREATE], resources: [configmaps]}
    condition: object.metadata.labels['sup3r-s3cret-label-key'] == 'y' || object.data['key'] == 'z'
`), &keys))
	tests := []struct {
		name     string
		policy   v1alpha1.AccessPolicy
		resource string
		object   string
	}{
		{"arrays", extra, "pods", `{"metadata":{"name":"web"},"spec":{"containers":[{"image":"nginx"},{"image":"registry.example/s3cr3t"}]}}`},
		{"escaped keys", keys, "configmaps", `{"metadata":{"name":"cm","labels":{"sup3r-s3cret-l\u0061bel-key":"x"}},"data":{"key":"v","k\u0031":"v"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(EngineOptions{Lookup: reuseLookup{}})
			require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{tt.policy}))
			a := Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: tt.resource, Namespace: "shop", Name: "web",
				User: authenticationv1.UserInfo{Username: "agent"}, Object: []byte(tt.object)}
			ev := e.evaluation(context.Background(), a)
			_, err := e.evaluate(e.current.Load(), ev)
			require.NoError(t, err)
			doc := &ev.docs.object
			if tt.resource == "pods" {
				require.NotEmpty(t, doc.arrays)
				require.NotEmpty(t, doc.items)
			} else {
				require.NotEmpty(t, doc.scratch)
			}
			e.release(ev)
			for _, l := range doc.arrays[:cap(doc.arrays)] {
				assert.Zero(t, l)
			}
			for _, v := range doc.items[:cap(doc.items)] {
				assert.Nil(t, v)
			}
			for _, b := range doc.scratch[:cap(doc.scratch)] {
				require.Zero(t, b, "released scratch holds bytes of the request")
			}
		})
	}
}
