package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestClientImpersonation runs a proxy that lets clients impersonate whom RBAC lets their
// verified identity impersonate, checked with SubjectAccessReviews against the real API server.
func TestClientImpersonation(t *testing.T) {
	ctx := t.Context()
	// dave may impersonate the user bob and the group support, and any extra (which kube-apiserver
	// would refuse the proxy itself: it may impersonate Gatehouse's own only); nothing else.
	extras := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "impersonate-any-extra"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"impersonate"}}, // userextras/<key>, uids
	}}
	_, err := env.kube.Clientset.RbacV1().ClusterRoles().Create(ctx, extras, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, env.kube.Clientset.RbacV1().ClusterRoles().Delete(context.Background(), extras.Name, metav1.DeleteOptions{}))
	})
	for _, args := range [][]string{
		{"create", "clusterrolebinding", "dave-impersonates-extras", "--clusterrole=impersonate-any-extra", "--user=oidc:dave"},
		{"create", "clusterrole", "impersonate-bob", "--verb=impersonate", "--resource=users,groups", "--resource-name=bob", "--resource-name=support"},
		{"create", "clusterrolebinding", "dave-impersonates-bob", "--clusterrole=impersonate-bob", "--user=oidc:dave"},
		{"create", "clusterrolebinding", "bob-reads", "--clusterrole=gatehouse-test-reader", "--user=bob"},
	} {
		out, err := exec.Command(env.kube.Kubectl, append([]string{"--kubeconfig", env.kube.Kubeconfig}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		t.Cleanup(func() {
			// Delete what was created, so that the test can run again against the same cluster.
			out, err := exec.Command(env.kube.Kubectl, "--kubeconfig", env.kube.Kubeconfig, "delete", args[1], args[2]).CombinedOutput()
			assert.NoError(t, err, string(out))
		})
	}

	authCfg, err := authn.ParseAuthenticationConfig([]byte(authenticationConfig()))
	require.NoError(t, err)
	authCfg.JWT = authCfg.JWT[:1]
	a, err := authn.NewAuthenticator(authn.AuthenticatorOptions{Config: authCfg})
	require.NoError(t, err)
	actx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Start(actx) }()
	require.Eventually(t, func() bool { return a.Ready(ctx) == nil }, 10*time.Second, 20*time.Millisecond)
	m, err := masking.New(masking.Config{Key: []byte(testMaskingKey)})
	require.NoError(t, err)
	pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{})
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(env.proxyUser)
	require.NoError(t, err)
	p, err := proxy.NewProxy(proxy.Options{Upstream: env.proxyUser, Authenticator: a, Masker: m, Recorder: pub, Recordings: env.recordings,
		Impersonation: &authn.SubjectAccessReviewer{Client: cs}})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(p)
	defer srv.Close()

	kc, err := testbed.WriteKubeconfig(t.TempDir(), &rest.Config{Host: srv.URL, BearerToken: token(t, "dave", nil),
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(srv)}})
	require.NoError(t, err)
	whoami := func(args ...string) (authenticationv1.UserInfo, string, error) {
		out, err := exec.Command(env.kube.Kubectl, append([]string{"--kubeconfig", kc, "auth", "whoami", "-o", "json"}, args...)...).CombinedOutput()
		if err != nil {
			return authenticationv1.UserInfo{}, string(out), err
		}
		var review authenticationv1.SelfSubjectReview
		require.NoError(t, json.Unmarshal(out, &review))
		return review.Status.UserInfo, string(out), nil
	}

	ui, out, err := whoami("--as", "bob", "--as-group", "support")
	require.NoError(t, err, out)
	assert.Equal(t, "bob", ui.Username)
	assert.Contains(t, ui.Groups, "support")
	assert.Equal(t, authenticationv1.ExtraValue{"oidc:dave"}, ui.Extra[identity.ExtraOriginalUser], "the verified user is kept")
	assert.NotEmpty(t, ui.Extra[identity.ExtraSessionID])

	// Refusals carry the reason.
	dave := token(t, "dave", nil)
	get := func(hdr http.Header) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/namespaces/default/configmaps", nil)
		require.NoError(t, err)
		req.Header = hdr
		req.Header.Set("Authorization", "Bearer "+dave)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := get(http.Header{"Impersonate-User": {"carol"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "may not impersonate users carol")
	code, body = get(http.Header{"Impersonate-User": {"bob"}, "Impersonate-Group": {"system:masters"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "reserved system")
	code, body = get(http.Header{"Impersonate-User": {"bob\tadmin"}})
	assert.Equal(t, http.StatusForbidden, code, "a control character in the target is refused")
	assert.Contains(t, body, "invalid-claim-value")
	assert.NotContains(t, body, "reserved system")
	code, body = get(http.Header{"Impersonate-Group": {"support"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "Impersonate-User header is required")
	for _, name := range []string{
		"Impersonate-Extra-Gatehouse.dev%2fsession-Id",
		// A letter escaped survives lowercasing the header, but not its way to kube-apiserver,
		// where it would join the proxy's own extra of that name.
		"Impersonate-Extra-%47atehouse.dev%2Foriginal-user",
		"Impersonate-Extra-%47ATEHOUSE.DEV%2Fapproval-id",
		"Impersonate-Extra-Policy.gatehouse.dev%2fRule",
	} {
		code, body = get(http.Header{"Impersonate-User": {"bob"}, name: {"forged"}})
		assert.Equal(t, http.StatusForbidden, code, "Gatehouse's own extras cannot be impersonated: %s", name)
		assert.Contains(t, body, "Gatehouse's own", name)
	}
	code, body = get(http.Header{"Impersonate-User": {"bob"}})
	assert.Equal(t, http.StatusOK, code, "bob may read configmaps, and dave may act as bob: %s", body)

	// Without an authorizer (the default proxy), every impersonation is refused.
	_, err = exec.Command(env.kube.Kubectl, "--kubeconfig", kubeconfig(t, token(t, "dave", nil)), "--as", "bob", "auth", "whoami").CombinedOutput()
	require.Error(t, err)
}
