package policy

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// matcher is a compiled v1alpha1.Match. Nil fields match everything.
type matcher struct {
	ops        map[string]bool
	groups     map[string]bool
	resources  []resourcePattern
	namespaces *patterns
	selector   labels.Selector
	names      *patterns
	// Subjects: a request matches when any of the three matches; all nil matches everyone.
	users, groupsOf *patterns
	serviceAccounts *patterns
	viaGateway      *bool
}

// resourcePattern is one entry of Match.Resources, split at the slash.
type resourcePattern struct {
	resource, sub string
	hasSub        bool
}

func (p resourcePattern) matches(resource, sub string) bool {
	if p.resource != "*" && p.resource != resource {
		return false
	}
	if !p.hasSub {
		return sub == ""
	}
	return (p.sub == "*" && sub != "") || p.sub == sub
}

// patterns matches strings exactly, by prefix (entries ending in "*") or by suffix (entries
// starting with "*").
type patterns struct {
	exact              map[string]bool
	prefixes, suffixes []string
	all                bool
}

func newPatterns(values []string) *patterns {
	if len(values) == 0 {
		return nil
	}
	p := &patterns{exact: map[string]bool{}}
	for _, v := range values {
		switch {
		case v == "*":
			p.all = true
		case strings.HasSuffix(v, "*"):
			p.prefixes = append(p.prefixes, strings.TrimSuffix(v, "*"))
		case strings.HasPrefix(v, "*"):
			p.suffixes = append(p.suffixes, strings.TrimPrefix(v, "*"))
		default:
			p.exact[v] = true
		}
	}
	return p
}

func (p *patterns) match(s string) bool {
	if p.all || p.exact[s] {
		return true
	}
	for _, prefix := range p.prefixes {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	for _, suffix := range p.suffixes {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}

func (p *patterns) matchAny(ss []string) bool {
	for _, s := range ss {
		if p.match(s) {
			return true
		}
	}
	return false
}

// compileMatch validates m and builds its matcher.
func compileMatch(m *v1alpha1.Match) (*matcher, error) {
	c := &matcher{
		namespaces: newPatterns(m.Namespaces),
		names:      newPatterns(m.Names),
		users:      newPatterns(m.Users),
		groupsOf:   newPatterns(m.Groups),
		viaGateway: m.ViaGateway,
	}
	if len(m.Operations) > 0 {
		ops, all := map[string]bool{}, false
		for _, op := range m.Operations {
			switch op {
			case v1alpha1.OperationAll:
				all = true
			case v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete, v1alpha1.OperationConnect,
				v1alpha1.OperationGet, v1alpha1.OperationList, v1alpha1.OperationWatch:
				ops[string(op)] = true
			default:
				return nil, fmt.Errorf("unknown operation %q", op)
			}
		}
		if !all {
			c.ops = ops
		}
	}
	if len(m.APIGroups) > 0 {
		c.groups = map[string]bool{}
		for _, g := range m.APIGroups {
			if g == "*" {
				c.groups = nil
				break
			}
			c.groups[g] = true
		}
	}
	for _, r := range m.Resources {
		res, sub, hasSub := strings.Cut(r, "/")
		if res == "" || (hasSub && (sub == "" || strings.Contains(sub, "/"))) {
			return nil, fmt.Errorf("invalid resource %q: want resource, resource/subresource, with * for any", r)
		}
		c.resources = append(c.resources, resourcePattern{resource: res, sub: sub, hasSub: hasSub})
	}
	if m.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(m.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		c.selector = sel
	}
	if len(m.ServiceAccounts) > 0 {
		users := make([]string, 0, len(m.ServiceAccounts))
		for _, sa := range m.ServiceAccounts {
			ns, name, ok := strings.Cut(sa, "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return nil, fmt.Errorf("invalid service account %q: want namespace/name or namespace/*", sa)
			}
			users = append(users, "system:serviceaccount:"+ns+":"+name)
		}
		c.serviceAccounts = newPatterns(users)
	}
	return c, nil
}

// matchStatic checks everything that needs no lookup: all but the namespace selector.
func (m *matcher) matchStatic(a *Attributes, op string) bool {
	if m.ops != nil && !m.ops[op] {
		return false
	}
	if m.groups != nil && !m.groups[a.Group] {
		return false
	}
	if m.resources != nil {
		ok := false
		for _, p := range m.resources {
			if p.matches(a.Resource, a.Subresource) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if m.namespaces != nil && (a.Namespace == "" || !m.namespaces.match(a.Namespace)) {
		return false
	}
	if m.names != nil && !m.names.match(a.Name) && !nameUnknown(a, op) {
		return false
	}
	if m.viaGateway != nil && *m.viaGateway != a.ViaGateway {
		return false
	}
	if m.users != nil || m.groupsOf != nil || m.serviceAccounts != nil {
		ok := (m.users != nil && m.users.match(a.User.Username)) ||
			(m.groupsOf != nil && m.groupsOf.matchAny(a.User.Groups)) ||
			(m.serviceAccounts != nil && m.serviceAccounts.match(a.User.Username))
		if !ok {
			return false
		}
	}
	return true
}

// match checks the whole matcher, looking up namespace labels when it has a selector.
func (m *matcher) match(ev *evaluation) (bool, error) {
	if !m.matchStatic(&ev.attrs, ev.op) {
		return false, nil
	}
	if m.names != nil && nameUnknown(&ev.attrs, ev.op) {
		ev.unknown = true
	}
	if m.selector == nil {
		return true, nil
	}
	lbls, ok, err := ev.namespaceLabels()
	if err != nil || !ok {
		return false, err
	}
	return m.selector.Matches(labels.Set(lbls)), nil
}

// nameUnknown reports a create whose name is in its body, which the caller does not know.
func nameUnknown(a *Attributes, op string) bool {
	return a.Name == "" && a.ObjectUnknown && op == string(v1alpha1.OperationCreate)
}
