package charts_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// TestInstall installs the chart into a real kube-apiserver as an administrator would, in one
// step each: install with the defaults, upgrade (the CA a component wrote survives), switch to
// cert-manager, uninstall; then the plain manifests with kubectl.
func TestInstall(t *testing.T) {
	ctx := t.Context()
	chart := filepath.Join(bed.root, "charts", "gatehouse")
	cs := bed.kube.Clientset
	dyn, err := dynamic.NewForConfig(bed.kube.Config)
	require.NoError(t, err)
	const ns = "gatehouse"

	out := helm(t, "install", "gatehouse", chart, "--namespace", ns, "--create-namespace")
	assert.Contains(t, out, "STATUS: deployed")
	assert.Contains(t, out, "register themselves once they answer", "NOTES tell the administrator what happens next")
	assert.Contains(t, out, "--audit-webhook-config-file=/etc/kubernetes/gatehouse/audit-webhook.kubeconfig")

	for _, name := range []string{"gatehouse-webhook", "gatehouse-proxy", "gatehouse-enricher"} {
		if name == "gatehouse-enricher" {
			_, err = cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		} else {
			_, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		}
		require.NoError(t, err, name)
		_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, name)
		_, err = cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, name)
	}
	_, err = cs.AppsV1().DaemonSets(ns).Get(ctx, "gatehouse-enricher-backstop", metav1.GetOptions{})
	require.NoError(t, err, "the audit log backstop")
	policies, err := dyn.Resource(schema.GroupVersionResource{Group: "gatehouse.dev", Version: "v1alpha1", Resource: "accesspolicies"}).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, policies.Items, 3, "the default policies")
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "gatehouse-validating", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, vwc.Webhooks, "nothing is enforced before the webhook answers")
	masking, err := cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-masking-key", metav1.GetOptions{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(masking.Data["key"]), 32, "a generated masking key")

	t.Run("least privilege", func(t *testing.T) {
		sa := func(name string) string { return "system:serviceaccount:" + ns + ":" + name }
		tests := []struct {
			user    string
			attrs   authorizationv1.ResourceAttributes
			allowed bool
		}{
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: ns, Name: "gatehouse-webhook-ca"}, true},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets", Namespace: ns, Name: "gatehouse-webhook-ca"}, true},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "gatehouse-masking-key"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "gatehouse-proxy-ca"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: ns}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "gatehouse-validating"}, true},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "someone-elses"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "delete", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", Name: "gatehouse-mutating"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "update", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "gatehouse-webhook"}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: ns}, false},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "watch", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, true},
			{sa("gatehouse-webhook"), authorizationv1.ResourceAttributes{Verb: "get", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "default"}, true},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "list", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, true},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "update", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "default"}, false},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "gatehouse.dev/reason"}, true},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "authentication.kubernetes.io/credential-id"}, true},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "gatehouse.dev/approval-probe"}, false},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "patch", Resource: "configmaps", Namespace: ns, Name: "gatehouse-proxy-ca"}, true},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "gatehouse-webhook-ca"}, false},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "default"}, false},
			{sa("gatehouse-proxy"), authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}, true},
			{sa("gatehouse-enricher"), authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: ns, Name: "gatehouse-enricher-ca"}, true},
			{sa("gatehouse-enricher"), authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods", Namespace: ns}, false},
			{sa("gatehouse-enricher"), authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}, false},
		}
		for _, tc := range tests {
			review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: tc.user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}, ResourceAttributes: &tc.attrs,
			}}, metav1.CreateOptions{})
			require.NoError(t, err)
			assert.Equal(t, tc.allowed, review.Status.Allowed, "%s %s %s/%s", tc.user, tc.attrs.Verb, tc.attrs.Resource, tc.attrs.Name)
		}
	})

	// The webhook fills its CA Secret; an upgrade must not empty it (that would rotate the CA).
	ca, err := cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-webhook-ca", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, ca.Data, "created empty, for the webhook to fill")
	ca.Data = map[string][]byte{"tls.crt": []byte("ca"), "tls.key": []byte("key"), "ca.crt": []byte("ca")}
	_, err = cs.CoreV1().Secrets(ns).Update(ctx, ca, metav1.UpdateOptions{FieldManager: "gatehouse-webhook"})
	require.NoError(t, err)
	out = helm(t, "upgrade", "gatehouse", chart, "--namespace", ns, "--set", "webhook.replicas=3")
	assert.Contains(t, out, "STATUS: deployed")
	ca, err = cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-webhook-ca", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []byte("key"), ca.Data["tls.key"], "the upgrade kept the CA")

	// Switching to cert-manager: Certificates and Issuers, checked by cert-manager's own CRDs.
	out = helm(t, "upgrade", "gatehouse", chart, "--namespace", ns, "--values", valuesFile("cert-manager-values.yaml"))
	assert.Contains(t, out, "STATUS: deployed")
	certificates := dyn.Resource(schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}).Namespace(ns)
	for _, name := range []string{"gatehouse-ca", "gatehouse-webhook", "gatehouse-proxy", "gatehouse-enricher", "gatehouse-console"} {
		_, err := certificates.Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, name)
	}
	// The console, with a generated session key that an upgrade keeps.
	_, err = cs.AppsV1().Deployments(ns).Get(ctx, "gatehouse-console", metav1.GetOptions{})
	require.NoError(t, err)
	session, err := cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-console-session", metav1.GetOptions{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(session.Data["key"]), 32, "a generated session key")
	out = helm(t, "upgrade", "gatehouse", chart, "--namespace", ns, "--values", valuesFile("cert-manager-values.yaml"), "--set", "console.replicas=3")
	assert.Contains(t, out, "STATUS: deployed")
	assert.Contains(t, out, "https://gatehouse-console.gatehouse.svc/callback", "NOTES tell the administrator the console's redirect URI")
	again, err := cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-console-session", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, session.Data["key"], again.Data["key"], "the upgrade kept the session key")
	for _, tc := range []struct {
		attrs   authorizationv1.ResourceAttributes
		allowed bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "gatehouse-console-session"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "gatehouse-masking-key"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: "gatehouse.dev", Resource: "accesspolicies"}, false},
	} {
		review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "system:serviceaccount:" + ns + ":gatehouse-console", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &tc.attrs,
		}}, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.Equal(t, tc.allowed, review.Status.Allowed, "gatehouse-console %s %s/%s", tc.attrs.Verb, tc.attrs.Resource, tc.attrs.Name)
	}

	helm(t, "uninstall", "gatehouse", "--namespace", ns)
	_, err = cs.AppsV1().Deployments(ns).Get(ctx, "gatehouse-webhook", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "uninstalled: %v", err)
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "gatehouse-validating", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "no webhook configuration outlives the release: %v", err)
	_, err = cs.CoreV1().Secrets(ns).Get(ctx, "gatehouse-masking-key", metav1.GetOptions{})
	require.NoError(t, err, "the masking key outlives the release")

	t.Run("plain manifests", func(t *testing.T) {
		// As docs/deploying.md says: the CRD first, then everything else, in one step each.
		m := func(p string) string { return filepath.Join(bed.root, "manifests", p) }
		_, err := bed.kube.KubectlApply(m("crd"))
		require.NoError(t, err)
		out, err := bed.kube.KubectlApply(m("namespace.yaml"), m("webhook"), m("proxy"), m("enricher"), m("policies"))
		require.NoError(t, err)
		assert.Contains(t, out, "deployment.apps/gatehouse-webhook created")
		assert.Contains(t, out, "statefulset.apps/gatehouse-enricher created")
		assert.Contains(t, out, "daemonset.apps/gatehouse-enricher-backstop created")
		// A component fills its CA; applying the manifests again keeps it.
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "gatehouse-proxy-ca", metav1.GetOptions{})
		require.NoError(t, err)
		cm.Data = map[string]string{"ca.crt": "published"}
		_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "gatehouse-certs"})
		require.NoError(t, err)
		_, err = bed.kube.KubectlApply(m("namespace.yaml"), m("webhook"), m("proxy"), m("enricher"), m("policies"))
		require.NoError(t, err)
		cm, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "gatehouse-proxy-ca", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "published", cm.Data["ca.crt"])
		mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "gatehouse-mutating", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, mwc.Webhooks, "nothing is enforced before the webhook answers")
	})
}
