package policy

import (
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/ext"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	k8slib "k8s.io/apiserver/pkg/cel/library"
)

// Runtime cost tracking, and when a condition can do without it.
//
// Kubernetes' CEL environment tracks the cost of every evaluation and stops one that exceeds
// the per-call limit (celconfig.PerCallLimit): a condition that iterates over an attacker-sized
// object must not hold admission for long. Tracking observes every step of the evaluation and
// costs more than evaluating a typical condition.
//
// The same limit can be enforced before the evaluation: cel-go's static cost estimator, with
// Kubernetes' function costs, gives an upper bound of the cost the tracker would count, given an
// upper bound of the size of every list, map and string the condition can see. Every value a
// condition sees comes from the request (object, oldObject, request, userInfo): none is longer
// than the JSON it was decoded from, or than the request's own strings, so the larger of those
// sizes bounds them all (the size bound of the request, evaluation.sizeBound). At compile time
// each condition gets the largest size bound for which its estimated cost stays within the
// limit (condition.untrackedUpTo); a request within it is evaluated by a program without cost
// tracking, compiled in an environment that is the fast one without the tracking (untrackedEnv),
// and any other request by the tracked program. A condition that reads what the engine looks up
// (pod, namespaceObject, roleObject), whose size the request does not bound, is always tracked.
// TestUntrackedCostBound checks that the estimate bounds the tracked cost.

// condition is a compiled rule condition.
type condition struct {
	// tracked runs with Kubernetes' runtime cost tracking and limit.
	tracked cel.Program
	// untracked is the same condition without cost tracking, for requests whose size bound is
	// at most untrackedUpTo; nil when there is no such bound.
	untracked     cel.Program
	untrackedUpTo int
}

// program returns the program to evaluate the condition with, for a request whose size bound
// (evaluation.sizeBound) is size, and whether it is the tracked one.
func (c *condition) program(size int) (prog cel.Program, tracked bool) {
	if c.untracked != nil && size <= c.untrackedUpTo {
		return c.untracked, false
	}
	return c.tracked, true
}

// maxSizeBound is the largest size bound conditions are estimated for: beyond kube-apiserver's
// largest request (3 MiB) and controller-runtime's admission body limit (7 MiB).
const maxSizeBound = 64 << 20

// lookupVars are the variables whose values the engine looks up: their size is not bounded by
// the request's.
var lookupVars = []string{varPod, varNamespaceObject, varRoleObject}

// untrackedUpTo returns the largest size bound for which the estimated cost of ast, checked in
// env (the tracked environment), is within the per-call limit, and whether there is one.
func untrackedUpTo(env *cel.Env, ast *cel.Ast) (int, bool) {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		for _, v := range lookupVars {
			if ref.Name == v {
				return 0, false
			}
		}
	}
	within := func(size int) bool {
		est, err := env.EstimateCost(ast, &k8slib.CostEstimator{SizeEstimator: sizeBoundEstimator(size)})
		return err == nil && est.Max <= celconfig.PerCallLimit
	}
	if !within(0) {
		return 0, false
	}
	if within(maxSizeBound) {
		return maxSizeBound, true
	}
	lo, hi := 0, maxSizeBound // within(lo), !within(hi): the estimate grows with the size
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if within(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, true
}

// sizeBoundEstimator estimates every list, map and string a condition reads to have at most
// that many elements, entries or code points.
type sizeBoundEstimator int

func (s sizeBoundEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: uint64(s)}
}

func (s sizeBoundEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// untrackedEnv returns the environment of untracked conditions: the options of Kubernetes' base
// environment at compatibility version 1.33 (environment.MustBaseEnvSet, which is what the fast
// environment is built on) with the same program options except cost tracking and its limit,
// extended with the variables and functions of a rule condition. TestUntrackedEnvMatchesFast
// checks that it declares exactly the fast environment's functions, macros and variables, so
// that a Kubernetes upgrade that changes the base environment fails that test rather than
// drifting.
func untrackedEnv(lib *library, userInfo, request *apiservercel.DeclType) (*cel.Env, error) {
	base, err := cel.NewEnv(
		// Introduced in Kubernetes 1.0.
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		k8slib.URLs(),
		k8slib.Regex(),
		k8slib.Lists(),
		cel.CostEstimatorOptions(checker.PresenceTestHasCost(false)),
		cel.Lib(programOptions{cel.EvalOptions(cel.OptOptimize)}),
		// 1.27
		k8slib.Authz(),
		// 1.28
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		k8slib.Quantity(),
		// 1.29
		cel.ASTValidators(
			cel.ValidateDurationLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateRegexLiterals(),
			cel.ValidateHomogeneousAggregateLiterals(),
		),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		// 1.30
		k8slib.IP(),
		k8slib.CIDR(),
		// 1.31
		k8slib.Format(),
		k8slib.AuthzSelectors(),
		// 1.32
		ext.TwoVarComprehensions(),
		// 1.33
		k8slib.SemverLib(k8slib.SemverVersion(1)),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: build the untracked CEL environment: %w", err)
	}
	provider := apiservercel.NewDeclTypeProvider(request, userInfo)
	provider.SetRecognizeKeywordAsFieldName(true)
	providerOpts, err := provider.EnvOptions(base.CELTypeProvider())
	if err != nil {
		return nil, fmt.Errorf("policy: build the untracked CEL environment: %w", err)
	}
	opts := append(conditionVars(userInfo, request), lib.functions()...)
	env, err := base.Extend(append(opts, providerOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("policy: build the untracked CEL environment: %w", err)
	}
	return env, nil
}

// programOptions is a cel.Library of program options only.
type programOptions []cel.ProgramOption

func (programOptions) CompileOptions() []cel.EnvOption       { return nil }
func (p programOptions) ProgramOptions() []cel.ProgramOption { return p }

// sizeBound returns the request's size bound: no list, map or string in object, oldObject,
// request or userInfo is longer.
func (ev *evaluation) sizeBound() int {
	if ev.sized {
		return ev.size
	}
	a := &ev.attrs
	n := max(len(a.Object), len(a.OldObject))
	// request and userInfo: every string they hold and the number of their groups and extras
	// (each at least one), and the number of request's fields, so that also bounds each of their
	// lists and maps.
	m := 16 + len(ev.op) + len(a.Verb) + len(a.Group) + len(a.Version) + len(a.Resource) + len(a.Subresource) +
		len(a.Namespace) + len(a.Name) + len(a.User.Username) + len(a.User.UID) + len(a.User.Groups) + len(a.User.Extra)
	for _, g := range a.User.Groups {
		m += len(g)
	}
	for k, vs := range a.User.Extra {
		m += len(k) + len(vs)
		for _, v := range vs {
			m += len(v)
		}
	}
	ev.size, ev.sized = min(max(n, m), math.MaxInt32), true
	return ev.size
}
