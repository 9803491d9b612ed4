package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// MaxScopeDuration bounds how long a scoped approval may last.
const MaxScopeDuration = 24 * time.Hour

// ApprovalScope is what a requireApproval rule lets approvers grant beyond the one operation
// held (v1alpha1.ApprovalScope): verbs on resources in the held operation's namespace, for the
// requester's session, for at most MaxDuration.
type ApprovalScope struct {
	// Verbs are lower-case Kubernetes verbs: create, update, patch, delete, deletecollection.
	Verbs []string
	// Resources are the resources offered; none means the held operation's resource only.
	Resources []ScopeResource
	// MaxDuration is the longest approvers may grant.
	MaxDuration time.Duration
}

// ScopeResource is a resource of a scope: group, resource and subresource.
type ScopeResource struct {
	Group, Resource, Subresource string
}

// String spells the resource as a scope names it: resource[.group][/subresource].
func (r ScopeResource) String() string {
	s := r.Resource
	if r.Group != "" {
		s += "." + r.Group
	}
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	return s
}

// ParseScopeResource parses resource[.group][/subresource]: secrets, deployments.apps,
// deployments.apps/scale.
func ParseScopeResource(s string) (ScopeResource, error) {
	main, sub, hasSub := strings.Cut(s, "/")
	res, group, _ := strings.Cut(main, ".")
	if res == "" || (hasSub && (sub == "" || strings.Contains(sub, "/"))) || strings.ContainsAny(s, "* ") {
		return ScopeResource{}, fmt.Errorf("invalid resource %q: want resource, resource.group or resource.group/subresource, without wildcards", s)
	}
	return ScopeResource{Group: group, Resource: res, Subresource: sub}, nil
}

// scopeVerbs are the verbs a scope may offer: writes.
var scopeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

func compileScope(s *v1alpha1.ApprovalScope) (*ApprovalScope, error) {
	var errs []error
	out := &ApprovalScope{MaxDuration: s.MaxDuration.Duration}
	if len(s.Verbs) == 0 {
		errs = append(errs, errors.New("verbs: at least one verb is required"))
	}
	for _, v := range s.Verbs {
		if !slices.Contains(scopeVerbs, v) {
			errs = append(errs, fmt.Errorf("verbs: %q is not one of %s", v, strings.Join(scopeVerbs, ", ")))
			continue
		}
		if !slices.Contains(out.Verbs, v) {
			out.Verbs = append(out.Verbs, v)
		}
	}
	for _, r := range s.Resources {
		sr, err := ParseScopeResource(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("resources: %w", err))
			continue
		}
		out.Resources = append(out.Resources, sr)
	}
	if out.MaxDuration <= 0 || out.MaxDuration > MaxScopeDuration {
		errs = append(errs, fmt.Errorf("maxDuration must be positive and at most %s", MaxScopeDuration))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *ApprovalScope) clone() *ApprovalScope {
	if s == nil {
		return nil
	}
	return &ApprovalScope{Verbs: slices.Clone(s.Verbs), Resources: slices.Clone(s.Resources), MaxDuration: s.MaxDuration}
}
