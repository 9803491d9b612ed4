package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// newScheme returns the scheme of Gatehouse's controller managers: Kubernetes' types and
// AccessPolicy.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return nil, err
	}
	return scheme, nil
}

// setupPolicies adds to mgr what keeps a policy engine current: a watcher of file (development
// mode) or a controller of the cluster's AccessPolicies, which writes their status unless
// readOnly. Pods, namespaces and roles, which rules may look up, are cached by mgr.
func setupPolicies(ctx context.Context, mgr ctrl.Manager, file string, readOnly bool, log *slog.Logger) (*policy.Engine, error) {
	engine := policy.NewEngine(policy.EngineOptions{
		Lookup: policy.ClientLookup{Cached: mgr.GetClient(), Live: mgr.GetAPIReader()},
		Logger: log,
	})
	var err error
	if file != "" {
		log.Warn("reading AccessPolicies from a file (development mode)", "path", file)
		err = mgr.Add(&policy.FileWatcher{Path: file, Engine: engine, Logger: log})
	} else {
		err = (&policy.Controller{Client: mgr.GetClient(), Engine: engine, ReadOnly: readOnly, Logger: log}).SetupWithManager(mgr)
	}
	if err != nil {
		return nil, err
	}
	// Start the informers of the objects rules look up with the manager, so the first exec
	// does not wait for a cache to fill.
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Namespace{}, &rbacv1.Role{}, &rbacv1.ClusterRole{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	return engine, nil
}
