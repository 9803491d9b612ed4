package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// The CEL variables a rule's condition sees.
const (
	varObject          = "object"
	varOldObject       = "oldObject"
	varRequest         = "request"
	varUserInfo        = "userInfo"
	varPod             = "pod"
	varNamespaceObject = "namespaceObject"
	varRoleObject      = "roleObject"
)

// celEnvs holds the CEL environment conditions are compiled in: Kubernetes' environment (the one
// ValidatingAdmissionPolicy uses, with its libraries and per-call cost limit) extended with the
// variables of a rule condition, in two versions.
//
// Full is the StoredExpressions environment: every library this build of Kubernetes has. Fast
// is the same environment at compatibility version 1.33, which lacks only the list extension
// library of 1.34 (sortBy, distinct, flatten, slice, ...). Each program evaluation builds a
// runtime cost tracker with every library's per-function cost hooks, and that library's hooks
// make it cost several times the evaluation of a typical condition. A condition that compiles in
// Fast is therefore run there; only one that needs the newer functions is compiled in Full. Fast
// is a subset of Full, so a condition means the same in both, and both enforce the same cost
// limit.
type celEnvs struct {
	fast, full *cel.Env
	// untracked is fast without runtime cost tracking, for the requests a condition's static
	// cost bound covers (see condition).
	untracked *cel.Env
}

// conditionVars declares the variables of a rule condition.
func conditionVars(userInfo, request *apiservercel.DeclType) []cel.EnvOption {
	return []cel.EnvOption{
		cel.Variable(varObject, cel.DynType),
		cel.Variable(varOldObject, cel.DynType),
		cel.Variable(varPod, cel.DynType),
		cel.Variable(varNamespaceObject, cel.DynType),
		cel.Variable(varRoleObject, cel.DynType),
		cel.Variable(varRequest, request.CelType()),
		cel.Variable(varUserInfo, userInfo.CelType()),
	}
}

func newCELEnvs(lib *library) (celEnvs, error) {
	userInfo := userInfoType()
	request := requestType(userInfo)
	vars := environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions:        conditionVars(userInfo, request),
		DeclTypes:         []*apiservercel.DeclType{request, userInfo},
	}
	vars.EnvOptions = append(vars.EnvOptions, lib.functions()...)
	var envs celEnvs
	full, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(vars)
	if err != nil {
		return envs, fmt.Errorf("policy: build CEL environment: %w", err)
	}
	if envs.full, err = full.Env(environment.StoredExpressions); err != nil {
		return envs, fmt.Errorf("policy: build CEL environment: %w", err)
	}
	fast, err := environment.MustBaseEnvSet(version.MajorMinor(1, 33)).Extend(vars)
	if err != nil {
		return envs, fmt.Errorf("policy: build CEL environment: %w", err)
	}
	if envs.fast, err = fast.Env(environment.NewExpressions); err != nil {
		return envs, fmt.Errorf("policy: build CEL environment: %w", err)
	}
	if envs.untracked, err = untrackedEnv(lib, userInfo, request); err != nil {
		return envs, err
	}
	return envs, nil
}

func declFields(fields ...*apiservercel.DeclField) map[string]*apiservercel.DeclField {
	m := make(map[string]*apiservercel.DeclField, len(fields))
	for _, f := range fields {
		m[f.Name] = f
	}
	return m
}

func field(name string, t *apiservercel.DeclType) *apiservercel.DeclField {
	return apiservercel.NewDeclField(name, t, true, nil, nil)
}

func userInfoType() *apiservercel.DeclType {
	return apiservercel.NewObjectType("gatehouse.UserInfo", declFields(
		field("username", apiservercel.StringType),
		field("uid", apiservercel.StringType),
		field("groups", apiservercel.NewListType(apiservercel.StringType, -1)),
		field("extra", apiservercel.NewMapType(apiservercel.StringType, apiservercel.NewListType(apiservercel.StringType, -1), -1)),
	))
}

func requestType(userInfo *apiservercel.DeclType) *apiservercel.DeclType {
	gvr := apiservercel.NewObjectType("gatehouse.GroupVersionResource", declFields(
		field("group", apiservercel.StringType),
		field("version", apiservercel.StringType),
		field("resource", apiservercel.StringType),
	))
	return apiservercel.NewObjectType("gatehouse.Request", declFields(
		field("operation", apiservercel.StringType),
		field("verb", apiservercel.StringType),
		field("resource", gvr),
		field("subResource", apiservercel.StringType),
		field("namespace", apiservercel.StringType),
		field("name", apiservercel.StringType),
		field("dryRun", apiservercel.BoolType),
		field("viaGateway", apiservercel.BoolType),
		field("sessionID", apiservercel.StringType),
		field("approvalID", apiservercel.StringType),
		field("userInfo", userInfo),
	))
}

// adapter converts Go values to CEL values for both environments.
func (envs celEnvs) adapter() types.Adapter {
	if envs.fast == nil {
		return types.DefaultTypeAdapter
	}
	return envs.fast.CELTypeAdapter()
}

// compile compiles a rule condition, which must return a bool: in the fast environment when it
// can, else in the full one, whose error is reported when both fail. A condition compiled in the
// fast environment also gets its untracked program when its cost has a static bound.
func (envs celEnvs) compile(expr string) (*condition, error) {
	ast, prog, err := compileIn(envs.fast, expr)
	if err != nil {
		if _, prog, err = compileIn(envs.full, expr); err != nil {
			return nil, err
		}
		return &condition{tracked: prog}, nil
	}
	c := &condition{tracked: prog}
	if envs.untracked == nil {
		return c, nil
	}
	upTo, ok := untrackedUpTo(envs.fast, ast)
	if !ok {
		return c, nil
	}
	if _, c.untracked, err = compileIn(envs.untracked, expr); err != nil {
		// The untracked environment declares what the fast one does: this is a bug, and the
		// tracked program still evaluates the condition.
		return c, nil
	}
	c.untrackedUpTo = upTo
	return c, nil
}

func compileIn(env *cel.Env, expr string) (*cel.Ast, cel.Program, error) {
	ast, issues := env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		return nil, nil, fmt.Errorf("condition: %s", issues.String())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, nil, fmt.Errorf("condition must evaluate to bool, not %s", t)
	}
	prog, err := env.Program(ast, cel.InterruptCheckFrequency(celconfig.CheckFrequency))
	if err != nil {
		return nil, nil, fmt.Errorf("condition: %w", err)
	}
	return ast, prog, nil
}

// evaluation holds one request's evaluation state: the attributes and the values rules need,
// computed on first use and kept for the following rules.
type evaluation struct {
	ctx     context.Context
	attrs   Attributes
	op      string
	lookup  Lookup
	adapter types.Adapter

	// The variables, converted to CEL values once for all the conditions that use them.
	object, oldObject, pod, namespace, role, request, userInfo ref.Val
	nsLabels                                                   map[string]string
	nsFound                                                    bool
	// nsObject is the namespace found, converted to namespace (its CEL value) only when a
	// condition reads namespaceObject: a namespaceSelector needs only its labels.
	nsObject *corev1.Namespace
	done     uint8 // bits of the computed values
	// size is the request's size bound (sizeBound) once sized is set. A zero evaluation (a
	// released one) computes it again: a bound of 0 would run every condition untracked.
	size  int
	sized bool
	// err is the first lookup failure. It fails the whole evaluation: a rule's match cannot be
	// known without the value.
	err error
	// unknown is set when a rule read a value the caller marked unknown: that rule, and so the
	// evaluation, cannot be decided.
	unknown bool
	// docs hold the lazily decoded object and oldObject; their buffers are kept for the
	// engine's next evaluation (Engine.release). Nil: each is decoded into a new document.
	docs *evalDocs
	// eager decodes the objects with decodeJSONValue, all at once into fresh values: the
	// reference tests compare the lazy, reused documents with.
	eager bool
}

// evalDocs are the documents of an evaluation's object and oldObject.
type evalDocs struct{ object, oldObject jsonDoc }

// document returns the document to decode the object (or the old object) into.
func (ev *evaluation) document(old bool) *jsonDoc {
	switch {
	case ev.docs == nil:
		return new(jsonDoc)
	case old:
		return &ev.docs.oldObject
	}
	return &ev.docs.object
}

const (
	doneObject = 1 << iota
	doneOldObject
	donePod
	doneNamespace
	doneRequest
	doneUserInfo
	doneRole
)

func (ev *evaluation) once(bit uint8) bool {
	if ev.done&bit != 0 {
		return false
	}
	ev.done |= bit
	return true
}

func (ev *evaluation) fail(err error) {
	if ev.err == nil {
		ev.err = err
	}
}

// ResolveName implements interpreter.Activation, computing each variable on first use.
func (ev *evaluation) ResolveName(name string) (any, bool) {
	switch name {
	case varObject:
		if ev.attrs.ObjectUnknown {
			ev.unknown = true
		}
		if ev.once(doneObject) {
			ev.object = ev.value(ev.decode(ev.document(false), ev.attrs.Object, "object"))
		}
		return ev.object, true
	case varOldObject:
		if ev.attrs.OldObjectUnknown {
			ev.unknown = true
		}
		if ev.once(doneOldObject) {
			ev.oldObject = ev.value(ev.decode(ev.document(true), ev.attrs.OldObject, "oldObject"))
		}
		return ev.oldObject, true
	case varPod:
		if ev.once(donePod) {
			ev.pod = ev.value(ev.lookupPod())
		}
		return ev.pod, true
	case varNamespaceObject:
		ev.lookupNamespace()
		if ev.namespace == nil {
			ev.namespace = types.NullValue
			if ev.nsObject != nil {
				ev.namespace = ev.value(toUnstructured(ev, ev.nsObject))
			}
		}
		return ev.namespace, true
	case varRoleObject:
		if ev.once(doneRole) {
			ev.role = ev.value(ev.lookupRole())
		}
		return ev.role, true
	case varRequest:
		if ev.once(doneRequest) {
			ev.request = ev.value(ev.requestValue())
		}
		return ev.request, true
	case varUserInfo:
		if ev.once(doneUserInfo) {
			ev.userInfo = ev.value(userInfoValue(&ev.attrs))
		}
		return ev.userInfo, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (ev *evaluation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*evaluation)(nil)

// value converts a Go value (maps, slices, scalars, or null) to a CEL value.
func (ev *evaluation) value(v any) ref.Val {
	if rv, ok := v.(ref.Val); ok {
		return rv
	}
	return ev.adapter.NativeToValue(v)
}

// decode decodes raw, the request's object or oldObject (what), lazily into doc.
func (ev *evaluation) decode(doc *jsonDoc, raw []byte, what string) ref.Val {
	if len(raw) == 0 {
		return types.NullValue
	}
	var (
		v   ref.Val
		err error
	)
	if ev.eager {
		v, err = decodeJSONValue(ev.adapter, raw)
	} else {
		v, err = doc.load(ev.adapter, raw)
	}
	if err == nil && v != types.NullValue {
		if _, ok := v.(traits.Mapper); !ok {
			err = fmt.Errorf("a JSON %s", v.Type().TypeName())
		}
	}
	if err != nil {
		ev.fail(fmt.Errorf("%w: %s is not a JSON object: %w", ErrBadRequest, what, err))
		return types.NullValue
	}
	return v
}

// lookupPod returns the target pod of a CONNECT to a pod subresource, or null.
func (ev *evaluation) lookupPod() any {
	a := &ev.attrs
	if ev.op != "CONNECT" || a.Group != "" || a.Resource != "pods" || a.Namespace == "" || a.Name == "" {
		return types.NullValue
	}
	if ev.lookup == nil {
		ev.fail(fmt.Errorf("%w: no Lookup configured to fetch pod %s/%s", ErrLookup, a.Namespace, a.Name))
		return types.NullValue
	}
	pod, err := ev.lookup.Pod(ev.ctx, a.Namespace, a.Name)
	if (err == nil && pod == nil) || (err != nil && apierrors.IsNotFound(err)) {
		return types.NullValue
	}
	if err != nil {
		ev.fail(fmt.Errorf("%w: pod %s/%s: %w", ErrLookup, a.Namespace, a.Name, err))
		return types.NullValue
	}
	return toUnstructured(ev, pod)
}

// lookupRole returns the Role or ClusterRole a RoleBinding or ClusterRoleBinding being written
// refers to, or null (not a binding, no roleRef yet, or a role that does not exist).
func (ev *evaluation) lookupRole() any {
	a := &ev.attrs
	if a.Group != rbacv1.GroupName || (a.Resource != "rolebindings" && a.Resource != "clusterrolebindings") || a.Subresource != "" || len(a.Object) == 0 {
		return types.NullValue
	}
	var binding struct {
		RoleRef rbacv1.RoleRef `json:"roleRef"`
	}
	if err := utiljson.Unmarshal(a.Object, &binding); err != nil {
		ev.fail(fmt.Errorf("%w: object is not a role binding: %w", ErrBadRequest, err))
		return types.NullValue
	}
	ref := binding.RoleRef
	if ref.Name == "" || (ref.Kind != "Role" && ref.Kind != "ClusterRole") {
		return types.NullValue
	}
	if ev.lookup == nil {
		ev.fail(fmt.Errorf("%w: no Lookup configured to fetch %s %s", ErrLookup, ref.Kind, ref.Name))
		return types.NullValue
	}
	var (
		obj runtime.Object
		err error
	)
	if ref.Kind == "Role" {
		var r *rbacv1.Role
		if r, err = ev.lookup.Role(ev.ctx, a.Namespace, ref.Name); err == nil && r != nil {
			obj = r
		}
	} else {
		var r *rbacv1.ClusterRole
		if r, err = ev.lookup.ClusterRole(ev.ctx, ref.Name); err == nil && r != nil {
			obj = r
		}
	}
	if (err == nil && obj == nil) || (err != nil && apierrors.IsNotFound(err)) {
		return types.NullValue
	}
	if err != nil {
		ev.fail(fmt.Errorf("%w: %s %s: %w", ErrLookup, ref.Kind, ref.Name, err))
		return types.NullValue
	}
	return toUnstructured(ev, obj)
}

// lookupNamespace finds the labels and object of the request's namespace: for a Namespace
// object its own (from the request's object when there is one), else the namespace it lives in.
func (ev *evaluation) lookupNamespace() {
	if !ev.once(doneNamespace) {
		return
	}
	a := &ev.attrs
	name := a.Namespace
	if a.Group == "" && a.Resource == "namespaces" {
		if a.ObjectUnknown || a.OldObjectUnknown {
			// A Namespace's own labels are in the unknown object.
			ev.unknown = true
		}
		for _, raw := range [][]byte{a.Object, a.OldObject} {
			if len(raw) == 0 {
				continue
			}
			var ns corev1.Namespace
			if err := utiljson.Unmarshal(raw, &ns); err != nil {
				ev.fail(fmt.Errorf("%w: object is not a Namespace: %w", ErrBadRequest, err))
				return
			}
			ev.setNamespace(&ns)
			return
		}
		if a.Name != "" {
			name = a.Name
		}
	}
	if name == "" {
		return
	}
	if ev.lookup == nil {
		ev.fail(fmt.Errorf("%w: no Lookup configured to fetch namespace %s", ErrLookup, name))
		return
	}
	ns, err := ev.lookup.Namespace(ev.ctx, name)
	if (err == nil && ns == nil) || (err != nil && apierrors.IsNotFound(err)) {
		return
	}
	if err != nil {
		ev.fail(fmt.Errorf("%w: namespace %s: %w", ErrLookup, name, err))
		return
	}
	ev.setNamespace(ns)
}

func (ev *evaluation) setNamespace(ns *corev1.Namespace) {
	ev.nsFound = true
	ev.nsLabels = ns.Labels
	ev.nsObject = ns
}

// namespaceLabels returns the labels of the request's namespace and whether it has one.
func (ev *evaluation) namespaceLabels() (map[string]string, bool, error) {
	ev.lookupNamespace()
	if ev.err != nil {
		return nil, false, ev.err
	}
	return ev.nsLabels, ev.nsFound, nil
}

func toUnstructured(ev *evaluation, obj runtime.Object) any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		ev.fail(fmt.Errorf("%w: convert %T: %w", ErrLookup, obj, err))
		return types.NullValue
	}
	return m
}

func (ev *evaluation) requestValue() any {
	a := &ev.attrs
	ex := identity.FromExtra(a.User.Extra)
	return map[string]any{
		"operation": ev.op,
		"verb":      a.Verb,
		"resource": map[string]any{
			"group":    a.Group,
			"version":  a.Version,
			"resource": a.Resource,
		},
		"subResource": a.Subresource,
		"namespace":   a.Namespace,
		"name":        a.Name,
		"dryRun":      a.DryRun,
		"viaGateway":  a.ViaGateway,
		"sessionID":   ex.SessionID,
		"approvalID":  ex.ApprovalID,
		"userInfo":    userInfoValue(a),
	}
}

func userInfoValue(a *Attributes) any {
	groups := a.User.Groups
	if groups == nil {
		groups = []string{}
	}
	extra := make(map[string][]string, len(a.User.Extra))
	for k, v := range a.User.Extra {
		extra[k] = v
	}
	return map[string]any{
		"username": a.User.Username,
		"uid":      a.User.UID,
		"groups":   groups,
		"extra":    extra,
	}
}

// evalCondition runs a compiled condition. A lookup failure is returned as err; a condition
// that fails or returns no bool is returned as condErr.
func (ev *evaluation) evalCondition(c *condition) (matched bool, condErr, err error) {
	var (
		val     ref.Val
		evalErr error
	)
	if prog, tracked := c.program(ev.sizeBound()); tracked {
		val, _, evalErr = prog.ContextEval(ev.ctx, ev)
	} else {
		// Its cost is bounded by the per-call limit before it starts: no interrupt checks,
		// whose per-evaluation context costs more than such a condition. A cancelled request
		// stops before the next condition.
		val, _, evalErr = prog.Eval(ev)
	}
	if ev.err != nil {
		return false, nil, ev.err
	}
	if ctxErr := ev.ctx.Err(); ctxErr != nil {
		return false, nil, ctxErr
	}
	if evalErr != nil {
		return false, evalErr, nil
	}
	b, ok := val.Value().(bool)
	if !ok {
		return false, errors.New("condition did not evaluate to a bool"), nil
	}
	return b, nil, nil
}
