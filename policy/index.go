package policy

// ruleIndex narrows a generation's rules to those that can match a request's API group and
// resource, so that evaluating a request costs what the rules about its resource cost, however
// many rules are about other resources. It only skips rules whose match could not pass: a rule
// with no apiGroups, or with "*", is a candidate for every group, and likewise for resources.
type ruleIndex struct {
	// byGroup holds, for each group some rule names, the index of the rules that accept it.
	byGroup map[string]*resourceIndex
	// otherGroups is the index for a group no rule names: the rules that accept any group.
	otherGroups *resourceIndex
}

// resourceIndex holds, for one group, the candidates of each resource, as positions in
// generation.rules in evaluation order.
type resourceIndex struct {
	// byResource holds the candidates for each resource a rule accepting the group names.
	byResource map[string][]int
	// otherResources are the candidates for a resource none of those rules names: the rules
	// that accept any resource.
	otherResources []int
}

// ruleRef is one rule of a generation, in evaluation order.
type ruleRef struct {
	policy *compiledPolicy
	rule   *compiledRule
}

// newRuleIndex indexes rules, which are in evaluation order.
func newRuleIndex(rules []ruleRef) ruleIndex {
	groups := map[string]bool{}
	for _, r := range rules {
		for g := range r.rule.match.groups {
			groups[g] = true
		}
	}
	idx := ruleIndex{byGroup: make(map[string]*resourceIndex, len(groups))}
	for g := range groups {
		idx.byGroup[g] = newResourceIndex(rules, func(m *matcher) bool { return m.groups == nil || m.groups[g] })
	}
	idx.otherGroups = newResourceIndex(rules, func(m *matcher) bool { return m.groups == nil })
	return idx
}

// newResourceIndex indexes the rules whose match accepts the group.
func newResourceIndex(rules []ruleRef, acceptsGroup func(*matcher) bool) *resourceIndex {
	ri := &resourceIndex{byResource: map[string][]int{}}
	var accepting []int
	for i, r := range rules {
		m := r.rule.match
		if !acceptsGroup(m) {
			continue
		}
		accepting = append(accepting, i)
		for _, p := range m.resources {
			if p.resource != "*" {
				ri.byResource[p.resource] = nil
			}
		}
	}
	for _, i := range accepting {
		m := rules[i].rule.match
		if anyResource(m) {
			ri.otherResources = append(ri.otherResources, i)
		}
		for res := range ri.byResource {
			if anyResource(m) || namesResource(m, res) {
				ri.byResource[res] = append(ri.byResource[res], i)
			}
		}
	}
	return ri
}

func anyResource(m *matcher) bool {
	if m.resources == nil {
		return true
	}
	for _, p := range m.resources {
		if p.resource == "*" {
			return true
		}
	}
	return false
}

func namesResource(m *matcher, res string) bool {
	for _, p := range m.resources {
		if p.resource == res {
			return true
		}
	}
	return false
}

// candidates returns the positions of the rules that can match a request for the group and
// resource, in evaluation order.
func (idx *ruleIndex) candidates(group, resource string) []int {
	ri, ok := idx.byGroup[group]
	if !ok {
		ri = idx.otherGroups
	}
	if c, ok := ri.byResource[resource]; ok {
		return c
	}
	return ri.otherResources
}
