package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// Errors of this package, for errors.Is.
var (
	// ErrNotReady is returned by Evaluate before the first SetPolicies: the engine does not
	// know the policies yet and cannot decide anything.
	ErrNotReady = errors.New("policy: no policies loaded yet")
	// ErrLookup wraps a failure to fetch what a rule needs beyond the request (the target pod,
	// the namespace's labels). The decision cannot be known.
	ErrLookup = errors.New("policy: lookup failed")
	// ErrBadRequest wraps attributes that cannot be evaluated, such as an object that is not
	// JSON.
	ErrBadRequest = errors.New("policy: malformed request attributes")
	// ErrInvalidPolicy is wrapped by every CompileError.
	ErrInvalidPolicy = errors.New("policy: invalid policy")
)

// Lookup gives the engine what a rule may need beyond the request: the target pod of a
// CONNECT (to judge privilege), namespace labels (for namespaceSelector) and the role a binding
// refers to (to judge what it grants). The webhook backs it with controller-runtime's cached
// client; the proxy with its own. Every method returns an error satisfying
// apierrors.IsNotFound for an object that does not exist.
type Lookup interface {
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	Role(ctx context.Context, namespace, name string) (*rbacv1.Role, error)
	ClusterRole(ctx context.Context, name string) (*rbacv1.ClusterRole, error)
}

// EngineOptions configures an Engine. The zero value is usable.
type EngineOptions struct {
	// Lookup fetches pods and namespaces for rules that need them. Default: none; a rule that
	// needs a lookup then fails the evaluation with ErrLookup.
	Lookup Lookup
	// Logger reports condition errors and compile errors, naming policies and rules, never
	// request contents. Default: discard.
	Logger *slog.Logger
}

func (o *EngineOptions) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine evaluates requests against the current generation of AccessPolicies. It is safe for
// concurrent use: SetPolicies compiles a new generation and swaps it in atomically, so an
// evaluation always sees one whole generation.
type Engine struct {
	opts   EngineOptions
	envs   celEnvs
	envErr error

	current atomic.Pointer[generation]
	// evaluations keeps finished evaluations for reuse: their decoding buffers (see release).
	evaluations sync.Pool

	mu       sync.Mutex                 // serializes SetPolicies
	lastGood map[string]*compiledPolicy // by policy name: the version in force
	number   int64                      // generations compiled so far
}

// generation is one immutable set of compiled policies, in evaluation order.
type generation struct {
	number   int64
	policies []*compiledPolicy
	// rules are the policies' rules in evaluation order, and index narrows them to the rules
	// that can match a request's group and resource.
	rules []ruleRef
	index ruleIndex
}

type compiledPolicy struct {
	name       string
	uid        types.UID
	generation int64
	priority   int32
	rules      []*compiledRule
}

type compiledRule struct {
	name      string
	match     *matcher
	exclude   *matcher
	condition *condition
	action    Action
	message   string
	approval  *Approval
}

// NewEngine returns an engine with no policies; it evaluates nothing (ErrNotReady) until the
// first SetPolicies.
func NewEngine(opts EngineOptions) *Engine {
	opts.setDefaults()
	e := &Engine{opts: opts, lastGood: map[string]*compiledPolicy{}}
	lib, err := newLibrary()
	if err != nil {
		e.envErr = err
		return e
	}
	e.envs, e.envErr = newCELEnvs(lib)
	return e
}

// Ready returns nil once the engine has policies to evaluate (possibly none), ErrNotReady before.
func (e *Engine) Ready() error {
	if e.current.Load() == nil {
		return ErrNotReady
	}
	return nil
}

// Generation returns the number of policy generations compiled so far: it grows by one with
// every SetPolicies.
func (e *Engine) Generation() int64 {
	if g := e.current.Load(); g != nil {
		return g.number
	}
	return 0
}

// CompileError reports the rules of one AccessPolicy that did not compile.
type CompileError struct {
	// Policy is the AccessPolicy's name.
	Policy string
	// Errs has one error per rule that did not compile, each naming the rule.
	Errs []error
	// Kept reports that a previous version of the policy stays in force; KeptGeneration is its
	// metadata.generation (0 for policies from a file).
	Kept           bool
	KeptGeneration int64
}

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %q: %s", e.Policy, errors.Join(e.Errs...))
	switch {
	case e.Kept && e.KeptGeneration > 0:
		fmt.Fprintf(&b, "; the previous version (generation %d) stays in force", e.KeptGeneration)
	case e.Kept:
		b.WriteString("; the previous version stays in force")
	default:
		b.WriteString("; the policy is not in force")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) true.
func (e *CompileError) Unwrap() error { return ErrInvalidPolicy }

// SetPolicies compiles policies into a new generation and makes it current. It returns, by
// policy name, a *CompileError for each policy that did not compile (bad CEL, invalid match
// fields). Every policy that compiled is in force. A policy that did not compile is not in force,
// except that a previous version of it that compiled stays in force: fixing a typo must not
// open a gap. Policies are recompiled only when their UID or metadata.generation changed.
func (e *Engine) SetPolicies(policies []v1alpha1.AccessPolicy) map[string]error {
	e.mu.Lock()
	defer e.mu.Unlock()
	errs := map[string]error{}
	next := make(map[string]*compiledPolicy, len(policies))
	for i := range policies {
		p := &policies[i]
		prev := e.lastGood[p.Name]
		if prev != nil && p.Generation > 0 && prev.uid == p.UID && prev.generation == p.Generation {
			next[p.Name] = prev
			continue
		}
		cp, ruleErrs := e.compile(p)
		if len(ruleErrs) == 0 {
			next[p.Name] = cp
			continue
		}
		ce := &CompileError{Policy: p.Name, Errs: ruleErrs}
		if prev != nil && prev.uid == p.UID {
			next[p.Name] = prev
			ce.Kept, ce.KeptGeneration = true, prev.generation
		}
		errs[p.Name] = ce
		e.opts.Logger.Error("access policy did not compile", "policy", p.Name, "err", ce)
	}
	e.lastGood = next
	g := &generation{policies: make([]*compiledPolicy, 0, len(next))}
	for _, cp := range next {
		g.policies = append(g.policies, cp)
	}
	slices.SortFunc(g.policies, func(a, b *compiledPolicy) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), strings.Compare(a.name, b.name))
	})
	for _, p := range g.policies {
		for _, r := range p.rules {
			g.rules = append(g.rules, ruleRef{policy: p, rule: r})
		}
	}
	g.index = newRuleIndex(g.rules)
	e.number++
	g.number = e.number
	e.current.Store(g)
	return errs
}

// compile compiles one policy, returning one error per rule that failed.
func (e *Engine) compile(p *v1alpha1.AccessPolicy) (*compiledPolicy, []error) {
	if e.envErr != nil {
		return nil, []error{e.envErr}
	}
	cp := &compiledPolicy{name: p.Name, uid: p.UID, generation: p.Generation, priority: p.Spec.Priority}
	var errs []error
	seen := map[string]bool{}
	if len(p.Spec.Rules) == 0 {
		errs = append(errs, errors.New("no rules"))
	}
	for i := range p.Spec.Rules {
		r := &p.Spec.Rules[i]
		cr, err := e.compileRule(r)
		if err == nil && seen[r.Name] {
			err = errors.New("duplicate rule name")
		}
		seen[r.Name] = true
		if err != nil {
			name := r.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			errs = append(errs, fmt.Errorf("rule %q: %w", name, err))
			continue
		}
		cp.rules = append(cp.rules, cr)
	}
	return cp, errs
}

func (e *Engine) compileRule(r *v1alpha1.Rule) (*compiledRule, error) {
	if r.Name == "" {
		return nil, errors.New("name is required")
	}
	cr := &compiledRule{name: r.Name, action: Action(r.Action), message: r.Message}
	switch r.Action {
	case v1alpha1.ActionAllow, v1alpha1.ActionDeny:
		if r.Approval != nil {
			return nil, errors.New("approval is only valid with action requireApproval")
		}
	case v1alpha1.ActionRequireApproval:
		if r.Approval == nil || len(r.Approval.ApproverGroups) == 0 {
			return nil, errors.New("action requireApproval needs approval.approverGroups")
		}
		cr.approval = &Approval{
			ApproverGroups: slices.Clone(r.Approval.ApproverGroups),
			Approvals:      max(1, int(r.Approval.Approvals)),
			GrantTTL:       15 * time.Minute,
		}
		if r.Approval.GrantTTL != nil {
			if r.Approval.GrantTTL.Duration <= 0 {
				return nil, errors.New("approval.grantTTL must be positive")
			}
			cr.approval.GrantTTL = r.Approval.GrantTTL.Duration
		}
		if r.Approval.Scope != nil {
			sc, err := compileScope(r.Approval.Scope)
			if err != nil {
				return nil, fmt.Errorf("approval.scope: %w", err)
			}
			cr.approval.Scope = sc
		}
	default:
		return nil, fmt.Errorf("unknown action %q: want allow, deny or requireApproval", r.Action)
	}
	var err error
	if cr.match, err = compileMatch(&r.Match); err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	if r.Exclude != nil {
		if cr.exclude, err = compileMatch(r.Exclude); err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
	}
	if strings.TrimSpace(r.Condition) != "" {
		if cr.condition, err = e.envs.compile(r.Condition); err != nil {
			return nil, err
		}
	}
	return cr, nil
}

// Evaluate decides a request: it walks the policies in ascending priority, then name order, and
// each policy's rules in order, and returns the decision of the first rule that matches. A
// request no rule matches is allowed (Decision.Policy and Rule empty).
//
// A rule matches when Match matches, Exclude (if set) does not, and Condition (if set) is true.
// When a condition cannot be evaluated, a deny or requireApproval rule matches (its message says
// so) and an allow rule does not.
//
// Evaluate returns an error, and no decision, when it cannot know the outcome: ErrNotReady
// before the first SetPolicies, ErrLookup when a pod or namespace a rule needs cannot be
// fetched, ErrBadRequest for an object that is not JSON, or the context's error. Callers fail
// closed for privileged operations (Privileged).
func (e *Engine) Evaluate(ctx context.Context, a Attributes) (Decision, error) {
	g := e.current.Load()
	if g == nil {
		return Decision{}, ErrNotReady
	}
	ev := e.evaluation(ctx, a)
	defer e.release(ev)
	return e.evaluate(g, ev)
}

// evaluate is Evaluate with the generation and the evaluation's state.
func (e *Engine) evaluate(g *generation, ev *evaluation) (Decision, error) {
	a := &ev.attrs
	// Only the rules that can match the request's group, resource, subresource and operation,
	// still in order: the others' match would fail before anything else about them is looked
	// at.
	for _, i := range g.index.candidates(a.Group, a.Resource, a.Subresource, ev.op) {
		p, r := g.rules[i].policy, g.rules[i].rule
		ok, condErr, err := r.matches(ev)
		if err != nil {
			return Decision{}, fmt.Errorf("policy %q rule %q: %w", p.name, r.name, err)
		}
		if ev.unknown {
			// The rule judged a value the caller does not know: whether it matches, and so
			// what decides, is unknown here.
			return Decision{Unknown: true, Policy: p.name, Rule: r.name,
				Message: fmt.Sprintf("Gatehouse cannot decide %s here: rule %q of AccessPolicy %q judges the object, which admission decides.", a.String(), r.name, p.name)}, nil
		}
		if condErr != nil {
			e.opts.Logger.Warn("access policy condition could not be evaluated",
				"policy", p.name, "rule", r.name, "action", r.action, "err", condErr)
			if r.action == ActionAllow {
				continue
			}
		}
		if ok || condErr != nil {
			return r.decide(p.name, &ev.attrs, condErr), nil
		}
	}
	var scratch [160]byte
	what := a.appendString(scratch[:0])
	var msg strings.Builder
	msg.Grow(len("Gatehouse allowed ") + len(what) + len(": no AccessPolicy rule matched"))
	msg.WriteString("Gatehouse allowed ")
	msg.Write(what)
	msg.WriteString(": no AccessPolicy rule matched")
	return Decision{Action: ActionAllow, Message: msg.String()}, nil
}

// evaluation returns the state of a new evaluation of a, with the buffers of a finished one when
// there is one.
func (e *Engine) evaluation(ctx context.Context, a Attributes) *evaluation {
	ev, _ := e.evaluations.Get().(*evaluation)
	if ev == nil {
		ev = &evaluation{docs: new(evalDocs)}
	}
	ev.ctx, ev.attrs, ev.op, ev.lookup, ev.adapter = ctx, a, a.Op(), e.opts.Lookup, e.envs.adapter()
	return ev
}

// release keeps a finished evaluation's decoding buffers for the next one. Nothing Evaluate
// returns refers to an evaluation's values (decisions and errors carry strings), and nothing of
// the request stays: the documents drop their references and the rest is zeroed.
func (e *Engine) release(ev *evaluation) {
	docs := ev.docs
	docs.object.reset()
	docs.oldObject.reset()
	*ev = evaluation{docs: docs}
	e.evaluations.Put(ev)
}

// matches reports whether r matches; condErr is a condition that could not be evaluated.
func (r *compiledRule) matches(ev *evaluation) (ok bool, condErr, err error) {
	if ok, err = r.match.match(ev); !ok || err != nil {
		return false, nil, err
	}
	if r.exclude != nil {
		excluded, err := r.exclude.match(ev)
		if err != nil || excluded {
			return false, nil, err
		}
	}
	if r.condition == nil {
		return true, nil, nil
	}
	return ev.evalCondition(r.condition)
}

// decide builds the decision of a matching rule.
func (r *compiledRule) decide(policy string, a *Attributes, condErr error) Decision {
	d := Decision{Action: r.action, Policy: policy, Rule: r.name}
	var b strings.Builder
	switch r.action {
	case ActionAllow:
		fmt.Fprintf(&b, "Gatehouse allowed %s", a)
	case ActionDeny:
		fmt.Fprintf(&b, "Gatehouse denied %s", a)
	case ActionRequireApproval:
		fmt.Fprintf(&b, "%s requires approval", a)
	}
	if r.message != "" {
		b.WriteString(": ")
		b.WriteString(strings.TrimSpace(r.message))
	}
	if !strings.HasSuffix(b.String(), ".") {
		b.WriteByte('.')
	}
	if r.approval != nil {
		d.Approval = &Approval{
			ApproverGroups: slices.Clone(r.approval.ApproverGroups),
			Approvals:      r.approval.Approvals,
			GrantTTL:       r.approval.GrantTTL,
			Scope:          r.approval.Scope.clone(),
		}
		fmt.Fprintf(&b, " Approvers: members of %s; %d approval(s) needed; an approval is valid for %s.",
			strings.Join(r.approval.ApproverGroups, ", "), r.approval.Approvals, r.approval.GrantTTL)
	}
	if condErr != nil {
		fmt.Fprintf(&b, " (The rule's condition could not be evaluated, so the rule was applied: %v.)", condErr)
	}
	fmt.Fprintf(&b, " [AccessPolicy %q, rule %q]", policy, r.name)
	d.Message = b.String()
	return d
}

// InForce reports whether a policy of that name is in force and, if so, the metadata.generation
// of the version in force (0 for policies from a file) and its number of rules.
func (e *Engine) InForce(name string) (generation int64, rules int, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cp := e.lastGood[name]
	if cp == nil {
		return 0, 0, false
	}
	return cp.generation, len(cp.rules), true
}
