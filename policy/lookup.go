package policy

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClientLookup is a Lookup backed by controller-runtime readers: Cached (the manager's client,
// reading from informers) first and, when the cache does not hold the object, Live (the
// manager's API reader). The fallback matters for security: a pod created a moment ago may not
// be in the cache yet, and judging it as absent would let an exec into it pass unjudged.
type ClientLookup struct {
	// Cached is read first. Required.
	Cached client.Reader
	// Live is read when Cached reports NotFound. Default: none (Cached's answer stands).
	Live client.Reader
}

var _ Lookup = ClientLookup{}

// Pod implements Lookup.
func (l ClientLookup) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := l.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// Namespace implements Lookup.
func (l ClientLookup) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := l.get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, err
	}
	return ns, nil
}

// Role implements Lookup.
func (l ClientLookup) Role(ctx context.Context, namespace, name string) (*rbacv1.Role, error) {
	r := &rbacv1.Role{}
	if err := l.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, r); err != nil {
		return nil, err
	}
	return r, nil
}

// ClusterRole implements Lookup.
func (l ClientLookup) ClusterRole(ctx context.Context, name string) (*rbacv1.ClusterRole, error) {
	r := &rbacv1.ClusterRole{}
	if err := l.get(ctx, client.ObjectKey{Name: name}, r); err != nil {
		return nil, err
	}
	return r, nil
}

func (l ClientLookup) get(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := l.Cached.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && l.Live != nil {
		err = l.Live.Get(ctx, key, obj)
	}
	return err
}
