package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// Values the index tests draw matches and requests from: names rules use, wildcards, and names
// no rule uses.
var (
	indexGroups       = []string{"", "apps", "batch", "example.dev", "unnamed.dev"}
	indexResources    = []string{"pods", "deployments", "statefulsets", "secrets", "widgets", "unnamed"}
	indexSubresources = []string{"", "exec", "scale", "status", "log", "unnamed"}
	indexOps          = []string{"CREATE", "UPDATE", "DELETE", "CONNECT", "GET", "LIST", "WATCH", "PATCH"}
)

// TestRuleIndex checks the index against walking every rule: for each group, resource,
// subresource and operation, the candidates are exactly the rules whose apiGroups, resources
// and operations accept them, in order.
func TestRuleIndex(t *testing.T) {
	matches := []string{
		`{}`,
		`{apiGroups: [apps], resources: [deployments, statefulsets]}`,
		`{apiGroups: ["*"], resources: [deployments]}`,
		`{apiGroups: [""], resources: [pods, "pods/exec"]}`,
		`{resources: ["*"], users: [alice]}`,
		`{resources: ["*/scale"]}`,
		`{resources: ["pods/*"], operations: [CONNECT]}`,
		`{apiGroups: [apps, batch]}`,
		`{resources: [secrets], operations: [GET, LIST, WATCH]}`,
		`{apiGroups: [example.dev], resources: [widgets, "widgets/status"], operations: ["*"]}`,
		`{resources: ["deployments/scale"], operations: [UPDATE]}`,
		`{operations: [DELETE]}`,
	}
	var rules []ruleRef
	for i, m := range matches {
		var match v1alpha1.Match
		require.NoError(t, yaml.UnmarshalStrict([]byte(m), &match))
		c, err := compileMatch(&match)
		require.NoError(t, err)
		rules = append(rules, ruleRef{rule: &compiledRule{name: fmt.Sprint(i), match: c}})
	}
	idx := newRuleIndex(rules)
	accepts := func(m *matcher, group, resource, sub, op string) bool {
		if m.groups != nil && !m.groups[group] {
			return false
		}
		if m.ops != nil && !m.ops[op] {
			return false
		}
		if m.resources == nil {
			return true
		}
		for _, p := range m.resources {
			if p.matches(resource, sub) {
				return true
			}
		}
		return false
	}
	for _, group := range indexGroups {
		for _, resource := range indexResources {
			for _, sub := range indexSubresources {
				for _, op := range indexOps {
					var want []int
					for i, r := range rules {
						if accepts(r.rule.match, group, resource, sub, op) {
							want = append(want, i)
						}
					}
					got := idx.candidates(group, resource, sub, op)
					if len(want) == 0 {
						assert.Empty(t, got, "%s %s/%s %s", op, group, resource, sub)
						continue
					}
					assert.Equal(t, want, got, "%s %s/%s %s", op, group, resource, sub)
				}
			}
		}
	}
}

// randomMatch returns a random Match over the index tests' values, with wildcards of every kind
// and the fields the index does not look at.
func randomMatch(r *rand.Rand) string {
	pick := func(values []string, extra ...string) []string {
		all := append(slices.Clone(values), extra...)
		var out []string
		for range r.IntN(3) {
			out = append(out, all[r.IntN(len(all))])
		}
		return out
	}
	var fields []string
	quote := func(vs []string) string {
		q := make([]string, len(vs))
		for i, v := range vs {
			q[i] = fmt.Sprintf("%q", v)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	if g := pick(indexGroups, "*"); len(g) > 0 {
		fields = append(fields, "apiGroups: "+quote(g))
	}
	if n := r.IntN(3); n > 0 {
		var res []string
		for range n {
			resource := append(slices.Clone(indexResources), "*")[r.IntN(len(indexResources)+1)]
			switch sub := append(slices.Clone(indexSubresources), "*")[r.IntN(len(indexSubresources)+1)]; sub {
			case "":
				res = append(res, resource)
			default:
				res = append(res, resource+"/"+sub)
			}
		}
		fields = append(fields, "resources: "+quote(res))
	}
	if ops := pick([]string{"CREATE", "UPDATE", "DELETE", "CONNECT", "GET", "LIST", "WATCH"}, "*"); len(ops) > 0 {
		fields = append(fields, "operations: "+quote(ops))
	}
	if r.IntN(4) == 0 {
		fields = append(fields, `users: [alice, "system:*"]`)
	}
	if r.IntN(4) == 0 {
		fields = append(fields, `namespaces: [shop, "team-*"]`)
	}
	if r.IntN(4) == 0 {
		fields = append(fields, `names: [web, "db-*"]`)
	}
	return "{" + strings.Join(fields, ", ") + "}"
}

// TestRuleIndexSkipsOnlyRulesThatCannotMatch draws random rules and requests: every rule whose
// match passes (matchStatic, the unindexed matcher) must be among the candidates, and the
// candidates must be in evaluation order.
func TestRuleIndexSkipsOnlyRulesThatCannotMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 3))
	users := []string{"alice", "bob", "system:serviceaccount:shop:web"}
	namespaces := []string{"", "shop", "team-a", "other"}
	names := []string{"", "web", "db-0", "other"}
	for round := range 300 {
		var rules []ruleRef
		var srcs []string
		for i := range 1 + r.IntN(30) {
			src := randomMatch(r)
			var match v1alpha1.Match
			require.NoError(t, yaml.UnmarshalStrict([]byte(src), &match), src)
			c, err := compileMatch(&match)
			require.NoError(t, err, src)
			rules = append(rules, ruleRef{rule: &compiledRule{name: fmt.Sprint(i), match: c}})
			srcs = append(srcs, src)
		}
		idx := newRuleIndex(rules)
		for range 200 {
			a := Attributes{
				Group: indexGroups[r.IntN(len(indexGroups))], Resource: indexResources[r.IntN(len(indexResources))],
				Subresource: indexSubresources[r.IntN(len(indexSubresources))],
				Namespace:   namespaces[r.IntN(len(namespaces))], Name: names[r.IntN(len(names))],
				User: authenticationv1.UserInfo{Username: users[r.IntN(len(users))]},
			}
			if r.IntN(2) == 0 {
				a.Operation = indexOps[r.IntN(4)]
			} else {
				a.Verb = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "connect", "escalate"}[r.IntN(10)]
			}
			op := a.Op()
			got := idx.candidates(a.Group, a.Resource, a.Subresource, op)
			require.True(t, slices.IsSorted(got), "round %d: candidates out of order: %v", round, got)
			require.Equal(t, len(got), len(slices.Compact(slices.Clone(got))), "round %d: duplicate candidates: %v", round, got)
			for i, rr := range rules {
				if rr.rule.match.matchStatic(&a, op) {
					require.Contains(t, got, i, "round %d: rule %s matches %+v (op %s) but is not a candidate", round, srcs[i], a, op)
				}
			}
		}
	}
}

// TestIndexedEvaluationAsUnindexed evaluates requests with the index and with every rule as a
// candidate (the engine before the index): the decisions must be the same. The policies mix
// wildcards, subresources, operations, exclusions and conditions; the requests include
// subresources and operations no rule names.
func TestIndexedEvaluationAsUnindexed(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 4))
	actions := []string{"allow", "deny"}
	for round := range 40 {
		var rules strings.Builder
		for i := range 1 + r.IntN(25) {
			fmt.Fprintf(&rules, "  - name: r%d\n    action: %s\n    match: %s\n", i, actions[r.IntN(2)], randomMatch(r))
			if r.IntN(3) == 0 {
				fmt.Fprintf(&rules, "    exclude: %s\n", randomMatch(r))
			}
			if r.IntN(3) == 0 {
				fmt.Fprintf(&rules, "    condition: \"has(object.metadata) && object.metadata.?labels[?'team'].orValue('') == 'team-%d'\"\n", r.IntN(3))
			}
		}
		var p v1alpha1.AccessPolicy
		src := "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: random}\nspec:\n  rules:\n" + rules.String()
		require.NoError(t, yaml.UnmarshalStrict([]byte(src), &p), src)
		indexed := NewEngine(EngineOptions{})
		require.Empty(t, indexed.SetPolicies([]v1alpha1.AccessPolicy{p}), src)
		unindexed := NewEngine(EngineOptions{})
		require.Empty(t, unindexed.SetPolicies([]v1alpha1.AccessPolicy{p}), src)
		g := *unindexed.current.Load()
		all := make([]int, len(g.rules))
		for i := range all {
			all[i] = i
		}
		g.index = ruleIndex{otherGroups: &resourceIndex{otherResources: &subresourceIndex{otherSubs: &opIndex{otherOps: all}}}}
		unindexed.current.Store(&g)

		for range 100 {
			a := Attributes{
				Group: indexGroups[r.IntN(len(indexGroups))], Resource: indexResources[r.IntN(len(indexResources))],
				Subresource: indexSubresources[r.IntN(len(indexSubresources))],
				Namespace:   []string{"", "shop", "team-a"}[r.IntN(3)], Name: []string{"", "web", "db-1"}[r.IntN(3)],
				User:   authenticationv1.UserInfo{Username: []string{"alice", "bob"}[r.IntN(2)]},
				Object: []byte(fmt.Sprintf(`{"metadata":{"labels":{"team":"team-%d"}}}`, r.IntN(3))),
			}
			if r.IntN(2) == 0 {
				a.Operation = indexOps[r.IntN(4)]
			} else {
				a.Verb = []string{"get", "list", "watch", "create", "update", "patch", "delete", "connect"}[r.IntN(8)]
			}
			want, wantErr := unindexed.Evaluate(context.Background(), a)
			got, err := indexed.Evaluate(context.Background(), a)
			require.Equal(t, wantErr, err, "round %d: %+v\n%s", round, a, src)
			require.Equal(t, want, got, "round %d: %+v\n%s", round, a, src)
		}
	}
}
