package policy

// ruleIndex narrows a generation's rules to those that can match a request's API group,
// resource, subresource and operation, so that evaluating a request costs what the rules about
// its resource and operation cost, however many rules are about other resources or operations.
// It only skips rules whose match could not pass (matcher.matchStatic fails on the group, the
// resources or the operations): a rule with no apiGroups, or with "*", is a candidate for every
// group, and likewise for resources, subresources ("pods/*", "*/scale") and operations.
//
// Each level maps the values some rule names to the candidates for that value, and holds the
// candidates for any other value: the rules that accept any.
type ruleIndex struct {
	byGroup     map[string]*resourceIndex
	otherGroups *resourceIndex
}

// resourceIndex holds, for one group, the candidates of each resource.
type resourceIndex struct {
	byResource     map[string]*subresourceIndex
	otherResources *subresourceIndex
}

// subresourceIndex holds, for one group and resource, the candidates of each subresource; ""
// is the resource itself.
type subresourceIndex struct {
	bySub     map[string]*opIndex
	otherSubs *opIndex
}

// opIndex holds, for one group, resource and subresource, the candidates of each operation, as
// positions in generation.rules in evaluation order.
type opIndex struct {
	byOp     map[string][]int
	otherOps []int
}

// ruleRef is one rule of a generation, in evaluation order.
type ruleRef struct {
	policy *compiledPolicy
	rule   *compiledRule
}

// newRuleIndex indexes rules, which are in evaluation order.
func newRuleIndex(rules []ruleRef) ruleIndex {
	all := make([]int, len(rules))
	groups := map[string]bool{}
	for i, r := range rules {
		all[i] = i
		for g := range r.rule.match.groups {
			groups[g] = true
		}
	}
	idx := ruleIndex{byGroup: make(map[string]*resourceIndex, len(groups))}
	for g := range groups {
		idx.byGroup[g] = newResourceIndex(rules, filterRules(rules, all, func(m *matcher) bool { return m.groups == nil || m.groups[g] }))
	}
	idx.otherGroups = newResourceIndex(rules, filterRules(rules, all, func(m *matcher) bool { return m.groups == nil }))
	return idx
}

// newResourceIndex indexes candidates, the rules that accept a group.
func newResourceIndex(rules []ruleRef, candidates []int) *resourceIndex {
	named := map[string]bool{}
	for _, i := range candidates {
		for _, p := range rules[i].rule.match.resources {
			if p.resource != "*" {
				named[p.resource] = true
			}
		}
	}
	ri := &resourceIndex{byResource: make(map[string]*subresourceIndex, len(named))}
	for res := range named {
		ri.byResource[res] = newSubresourceIndex(rules, candidates, func(p resourcePattern) bool {
			return p.resource == "*" || p.resource == res
		})
	}
	ri.otherResources = newSubresourceIndex(rules, candidates, func(p resourcePattern) bool { return p.resource == "*" })
	return ri
}

// newSubresourceIndex indexes candidates, the rules that accept a group, for a resource: the
// resource patterns forResource accepts are the ones that can match it.
func newSubresourceIndex(rules []ruleRef, candidates []int, forResource func(resourcePattern) bool) *subresourceIndex {
	accepting := func(matches func(resourcePattern) bool) []int {
		return filterRules(rules, candidates, func(m *matcher) bool {
			if m.resources == nil {
				return true
			}
			for _, p := range m.resources {
				if forResource(p) && matches(p) {
					return true
				}
			}
			return false
		})
	}
	named := map[string]bool{"": true}
	for _, i := range candidates {
		for _, p := range rules[i].rule.match.resources {
			if forResource(p) && p.hasSub && p.sub != "*" {
				named[p.sub] = true
			}
		}
	}
	si := &subresourceIndex{bySub: make(map[string]*opIndex, len(named))}
	for sub := range named {
		si.bySub[sub] = newOpIndex(rules, accepting(func(p resourcePattern) bool {
			if sub == "" {
				return !p.hasSub
			}
			return p.hasSub && (p.sub == "*" || p.sub == sub)
		}))
	}
	si.otherSubs = newOpIndex(rules, accepting(func(p resourcePattern) bool { return p.hasSub && p.sub == "*" }))
	return si
}

// newOpIndex indexes candidates, the rules that can match a group, resource and subresource,
// by operation.
func newOpIndex(rules []ruleRef, candidates []int) *opIndex {
	named := map[string]bool{}
	for _, i := range candidates {
		for op := range rules[i].rule.match.ops {
			named[op] = true
		}
	}
	oi := &opIndex{byOp: make(map[string][]int, len(named))}
	for op := range named {
		oi.byOp[op] = filterRules(rules, candidates, func(m *matcher) bool { return m.ops == nil || m.ops[op] })
	}
	oi.otherOps = filterRules(rules, candidates, func(m *matcher) bool { return m.ops == nil })
	return oi
}

// filterRules returns the candidates whose match keep accepts, in order.
func filterRules(rules []ruleRef, candidates []int, keep func(*matcher) bool) []int {
	var out []int
	for _, i := range candidates {
		if keep(rules[i].rule.match) {
			out = append(out, i)
		}
	}
	return out
}

// candidates returns the positions of the rules that can match a request for the group,
// resource, subresource and operation (Attributes.Op), in evaluation order.
func (idx *ruleIndex) candidates(group, resource, sub, op string) []int {
	ri, ok := idx.byGroup[group]
	if !ok {
		ri = idx.otherGroups
	}
	si, ok := ri.byResource[resource]
	if !ok {
		si = ri.otherResources
	}
	oi, ok := si.bySub[sub]
	if !ok {
		oi = si.otherSubs
	}
	if c, ok := oi.byOp[op]; ok {
		return c
	}
	return oi.otherOps
}
