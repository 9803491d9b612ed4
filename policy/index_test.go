package policy

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// TestRuleIndex checks the index against walking every rule: for each group and resource, the
// candidates are exactly the rules whose apiGroups and resources accept them, in order.
func TestRuleIndex(t *testing.T) {
	matches := []string{
		`{}`,
		`{apiGroups: [apps], resources: [deployments, statefulsets]}`,
		`{apiGroups: ["*"], resources: [deployments]}`,
		`{apiGroups: [""], resources: [pods, "pods/exec"]}`,
		`{resources: ["*"], users: [alice]}`,
		`{resources: ["*/scale"]}`,
		`{apiGroups: [apps, batch]}`,
		`{resources: [secrets]}`,
		`{apiGroups: [example.dev], resources: [widgets]}`,
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
	accepts := func(m *matcher, group, resource string) bool {
		if m.groups != nil && !m.groups[group] {
			return false
		}
		if m.resources == nil {
			return true
		}
		for _, p := range m.resources {
			if p.resource == "*" || p.resource == resource {
				return true
			}
		}
		return false
	}
	for _, group := range []string{"", "apps", "batch", "example.dev", "unnamed.dev"} {
		for _, resource := range []string{"pods", "deployments", "statefulsets", "secrets", "widgets", "unnamed"} {
			var want []int
			for i, r := range rules {
				if accepts(r.rule.match, group, resource) {
					want = append(want, i)
				}
			}
			got := idx.candidates(group, resource)
			if len(want) == 0 {
				assert.Empty(t, got, "%s/%s", group, resource)
				continue
			}
			assert.Equal(t, want, got, "%s/%s", group, resource)
		}
	}
}
