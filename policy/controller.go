package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// Controller keeps an Engine in step with the cluster's AccessPolicies: on every change (and
// once at start, so an empty cluster also makes the engine ready) it lists them all, compiles a
// new generation with SetPolicies and writes each policy's Ready condition.
//
// It runs on every replica (no leader election), since every replica's engine needs the
// policies; the status it writes is the same from each, so concurrent writes agree.
type Controller struct {
	// Client lists AccessPolicies (the manager's cached client) and patches their status.
	// Required.
	Client client.Client
	// Engine receives the policies. Required.
	Engine *Engine
	// ReadOnly loads the policies without writing their status: for the proxy, which leaves
	// status to the webhook and needs no write access to AccessPolicies.
	ReadOnly bool
	// Logger reports reloads and status write failures. Default: discard.
	Logger *slog.Logger
}

// reloadAll is the single work item: any change reloads every policy.
var reloadAll = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all-accesspolicies"}}

// SetupWithManager registers the controller with mgr.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	if c.Client == nil || c.Engine == nil {
		return errors.New("policy: Controller needs Client and Engine")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{reloadAll}
	})
	start := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reloadAll)
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("accesspolicy").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: 1}).
		// Status writes do not change the generation and so do not reload.
		Watches(&v1alpha1.AccessPolicy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(start).
		Complete(c)
}

// Reconcile loads every AccessPolicy into the engine and updates their status.
func (c *Controller) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var list v1alpha1.AccessPolicyList
	if err := c.Client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("policy: list AccessPolicies: %w", err)
	}
	compileErrs := c.Engine.SetPolicies(list.Items)
	c.Logger.Info("access policies loaded", "policies", len(list.Items), "invalid", len(compileErrs),
		"generation", c.Engine.Generation())
	if c.ReadOnly {
		return reconcile.Result{}, nil
	}
	var errs []error
	for i := range list.Items {
		if err := c.writeStatus(ctx, &list.Items[i], compileErrs[list.Items[i].Name]); err != nil {
			errs = append(errs, err)
		}
	}
	return reconcile.Result{}, errors.Join(errs...)
}

// maxConditionMessage is the API's limit on metav1.Condition.Message.
const maxConditionMessage = 32768

func (c *Controller) writeStatus(ctx context.Context, p *v1alpha1.AccessPolicy, compileErr error) error {
	cond := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonCompiled,
		ObservedGeneration: p.Generation,
	}
	_, rules, _ := c.Engine.InForce(p.Name)
	if compileErr != nil {
		cond.Status = metav1.ConditionFalse
		cond.Reason = v1alpha1.ReasonCompileError
		cond.Message = compileErr.Error()
		if len(cond.Message) > maxConditionMessage {
			cond.Message = cond.Message[:maxConditionMessage-3] + "..."
		}
	} else {
		cond.Message = fmt.Sprintf("%d rules in force", rules)
	}
	orig := p.DeepCopy()
	changed := meta.SetStatusCondition(&p.Status.Conditions, cond)
	if !changed && p.Status.ObservedGeneration == p.Generation && p.Status.Rules == int32(rules) {
		return nil
	}
	p.Status.ObservedGeneration = p.Generation
	p.Status.Rules = int32(rules)
	if err := c.Client.Status().Patch(ctx, p, client.MergeFrom(orig)); err != nil {
		c.Logger.Warn("writing AccessPolicy status failed", "policy", p.Name, "err", err)
		return fmt.Errorf("policy: status of %s: %w", p.Name, client.IgnoreNotFound(err))
	}
	return nil
}
