package policy

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// library holds the functions Gatehouse adds to the conditions' CEL environment, so that rules
// judge what an object does rather than how it is spelled:
//
//	podPrivileges(pod) list(string)
//	    Why a pod (or a Pod object) can reach its node: the Pod Security Standards' baseline
//	    checks it fails, with capabilities normalised as container runtimes read them (see
//	    PodSecurity). Empty for a pod that meets baseline, and for null.
//
//	roleEscalations(rules, clusterWide) list(string)
//	    What a list of RBAC rules (a Role's or ClusterRole's .rules) grants that lets its holder
//	    gain more than it names: wildcards, impersonate, escalate, bind, token and certificate
//	    minting, the kubelet API, admission webhooks and, when clusterWide, reading every
//	    Secret (see RoleEscalations). Empty when none, and for null.
//
// A value that cannot be read as a pod or as rules is an evaluation error, which applies a deny
// or requireApproval rule (see Engine.Evaluate).
type library struct {
	pods *PodSecurity
}

func newLibrary() (*library, error) {
	pods, err := NewPodSecurity()
	if err != nil {
		return nil, err
	}
	return &library{pods: pods}, nil
}

func (l *library) functions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.Function("podPrivileges",
			cel.Overload("podPrivileges_dyn", []*cel.Type{cel.DynType}, cel.ListType(cel.StringType),
				cel.UnaryBinding(l.podPrivileges))),
		cel.Function("roleEscalations",
			cel.Overload("roleEscalations_dyn_bool", []*cel.Type{cel.DynType, cel.BoolType}, cel.ListType(cel.StringType),
				cel.BinaryBinding(l.roleEscalations))),
	}
}

func (l *library) podPrivileges(v ref.Val) ref.Val {
	if v == types.NullValue {
		return types.NewStringList(types.DefaultTypeAdapter, nil)
	}
	var pod corev1.Pod
	if err := fromCEL(v, &pod); err != nil {
		return types.NewErr("podPrivileges: %v", err)
	}
	return types.NewStringList(types.DefaultTypeAdapter, l.pods.Violations(&pod))
}

func (l *library) roleEscalations(rules, clusterWide ref.Val) ref.Val {
	wide, ok := clusterWide.(types.Bool)
	if !ok {
		return types.NewErr("roleEscalations: clusterWide must be a bool")
	}
	if rules == types.NullValue {
		return types.NewStringList(types.DefaultTypeAdapter, nil)
	}
	lister, ok := rules.(traits.Lister)
	if !ok {
		return types.NewErr("roleEscalations: rules must be a list")
	}
	var role struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	native, err := nativeJSON(lister)
	if err != nil {
		return types.NewErr("roleEscalations: %v", err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]any{"rules": native}, &role); err != nil {
		return types.NewErr("roleEscalations: rules are not RBAC policy rules: %v", err)
	}
	return types.NewStringList(types.DefaultTypeAdapter, RoleEscalations(role.Rules, bool(wide)))
}

// fromCEL converts a CEL map (an object in a condition) into a typed Kubernetes object.
func fromCEL(v ref.Val, into any) error {
	m, ok := v.Value().(map[string]any)
	if !ok {
		native, err := nativeJSON(v)
		if err != nil {
			return fmt.Errorf("not an object: %w", err)
		}
		if m, ok = native.(map[string]any); !ok {
			return fmt.Errorf("not an object: a %s", v.Type().TypeName())
		}
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, into)
}
