package webhook_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// actor is a client of the test cluster: a person or agent through the gateway (impersonated
// with the gateway's session extra, as the proxy does), a person directly, or a system
// component.
type actor struct {
	cfg     *rest.Config
	cs      kubernetes.Interface
	c       client.Client
	session string
}

func newSession() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "e2e-" + hex.EncodeToString(b)
}

func newActor(t *testing.T, user string, groups []string, extra map[string][]string) *actor {
	t.Helper()
	cfg := rest.CopyConfig(bed.kube.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups, Extra: extra}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	c, err := client.New(cfg, client.Options{Scheme: bed.kube.Client.Scheme()})
	require.NoError(t, err)
	a := &actor{cfg: cfg, cs: cs, c: c}
	if s := extra[identity.ExtraSessionID]; len(s) > 0 {
		a.session = s[0]
	}
	return a
}

// agent acts through the gateway in a session of its own, so that its decisions can be read
// back from the trail.
func agent(t *testing.T) *actor {
	t.Helper()
	return newActor(t, "agent@example.com", []string{groupAgents}, map[string][]string{identity.ExtraSessionID: {newSession()}})
}

// breakGlass acts directly as a member of the default pack's emergency group.
func breakGlass(t *testing.T) *actor {
	t.Helper()
	return newActor(t, "oncall@example.com", []string{groupAgents, "gatehouse:break-glass"}, nil)
}

// person acts directly, with credentials of their own.
func person(t *testing.T) *actor {
	t.Helper()
	return newActor(t, "alice@example.com", []string{groupAgents}, nil)
}

// lastDecision returns the trail record of the session's latest validation.
func lastDecision(t *testing.T, session string) *trail.Decision {
	t.Helper()
	subj, err := trail.Subject(&trail.Decision{SessionID: session})
	require.NoError(t, err)
	stream, err := bed.inspect.Stream(t.Context(), trail.StreamTrail)
	require.NoError(t, err)
	var d *trail.Decision
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		msg, err := stream.GetLastMsgForSubject(t.Context(), subj)
		require.NoError(c, err)
		// The last record of the last message: a message may carry several.
		var r trail.Record
		for rec, err := range trail.DecodeAll(msg.Data) {
			require.NoError(c, err)
			r = rec
		}
		var ok bool
		d, ok = r.(*trail.Decision)
		require.True(c, ok)
	}, 10*time.Second, 50*time.Millisecond, "no decision recorded for session %s", session)
	return d
}

// connect execs, attaches or port-forwards into a pod the way kubectl does (SPDY upgrade) and
// returns what the command printed.
func connect(ctx context.Context, a *actor, namespace, pod, sub string) (string, error) {
	req := a.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource(sub)
	switch sub {
	case "exec":
		req.VersionedParams(&corev1.PodExecOptions{Container: "app", Command: []string{"echo", "admitted"}, Stdout: true}, scheme.ParameterCodec)
	case "attach":
		req.VersionedParams(&corev1.PodAttachOptions{Container: "app", Stdout: true}, scheme.ParameterCodec)
	case "portforward":
		transport, upgrader, err := spdy.RoundTripperFor(a.cfg)
		if err != nil {
			return "", err
		}
		conn, _, err := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL()).
			Dial(portforward.PortForwardProtocolV1Name)
		if err != nil {
			return "", err
		}
		return "", conn.Close()
	}
	ex, err := remotecommand.NewSPDYExecutor(a.cfg, http.MethodPost, req.URL())
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out})
	return out.String(), err
}

func runPod(t *testing.T, namespace, name string, mutate func(*corev1.PodSpec)) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	_, err := bed.kubelet.RunPod(t.Context(), p)
	require.NoError(t, err)
}

func TestExecIntoPrivilegedPodsIsDenied(t *testing.T) {
	ns := bed.kube.Namespace(t, "exec")
	runPod(t, ns, "ordinary", nil)
	runPod(t, ns, "privileged", func(s *corev1.PodSpec) {
		s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	})
	runPod(t, ns, "host-pid", func(s *corev1.PodSpec) { s.HostPID = true })
	runPod(t, ns, "host-network", func(s *corev1.PodSpec) { s.HostNetwork = true })
	runPod(t, ns, "host-path", func(s *corev1.PodSpec) {
		s.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	})
	// Capabilities as runtimes accept them, and ones no deny-list named.
	for name, c := range map[string]corev1.Capability{
		"cap-sys-admin": "CAP_SYS_ADMIN", "sys-admin-lower": "sys_admin", "dac-read-search": "DAC_READ_SEARCH", "bpf": "BPF",
	} {
		runPod(t, ns, name, func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{c}}}
		})
	}
	systemPod := "e2e-" + newSession()
	runPod(t, "kube-system", systemPod, nil)

	t.Run("an ordinary pod passes admission", func(t *testing.T) {
		a := agent(t)
		out, err := connect(t.Context(), a, ns, "ordinary", "exec")
		require.NoError(t, err)
		assert.Equal(t, "admitted\n", out, "the command ran in the pod")
		d := lastDecision(t, a.session)
		assert.Equal(t, "allow", d.Policy.Action)
		assert.Empty(t, d.Policy.Policy)
	})

	tests := []struct {
		name, namespace, pod, sub, rule string
	}{
		{"exec into a privileged pod", ns, "privileged", "exec", "no-exec-into-privileged-pods"},
		{"attach to a privileged pod", ns, "privileged", "attach", "no-exec-into-privileged-pods"},
		{"port-forward to a privileged pod", ns, "privileged", "portforward", "no-exec-into-privileged-pods"},
		{"exec into a hostPID pod", ns, "host-pid", "exec", "no-exec-into-privileged-pods"},
		{"exec into a hostNetwork pod", ns, "host-network", "exec", "no-exec-into-privileged-pods"},
		{"exec into a hostPath pod", ns, "host-path", "exec", "no-exec-into-privileged-pods"},
		{"exec into a pod adding CAP_SYS_ADMIN", ns, "cap-sys-admin", "exec", "no-exec-into-privileged-pods"},
		{"exec into a pod adding sys_admin", ns, "sys-admin-lower", "exec", "no-exec-into-privileged-pods"},
		{"exec into a pod adding DAC_READ_SEARCH", ns, "dac-read-search", "exec", "no-exec-into-privileged-pods"},
		{"attach to a pod adding BPF", ns, "bpf", "attach", "no-exec-into-privileged-pods"},
		{"exec into kube-system", "kube-system", systemPod, "exec", "no-exec-into-kube-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := agent(t)
			out, err := connect(t.Context(), a, tt.namespace, tt.pod, tt.sub)
			require.Error(t, err)
			assert.Empty(t, out)
			assert.Contains(t, err.Error(), `admission webhook "connect.validate.gatehouse.dev" denied the request`)
			assert.Contains(t, err.Error(), fmt.Sprintf(`[AccessPolicy "gatehouse-exec", rule %q]`, tt.rule))

			d := lastDecision(t, a.session)
			assert.Equal(t, "validating-webhook", d.Component)
			assert.Equal(t, "admission-"+d.AdmissionUID+"-validating", d.ID)
			assert.Equal(t, trail.Policy{Policy: "gatehouse-exec", Rule: tt.rule, Action: "deny", Message: d.Policy.Message}, d.Policy)
			assert.Contains(t, err.Error(), d.Policy.Message, "the client gets the recorded message")
			assert.Equal(t, trail.Operation{Verb: "connect", APIVersion: "v1", Resource: "pods", Subresource: tt.sub,
				Namespace: tt.namespace, Name: tt.pod}, d.Operation)
			assert.True(t, d.ViaGateway)
			assert.Equal(t, "agent@example.com", d.Identity.User)
			assert.Equal(t, a.session, d.SessionID)
		})
	}

	t.Run("a person exec'ing directly is held to the same rules", func(t *testing.T) {
		_, err := connect(t.Context(), person(t), ns, "privileged", "exec")
		require.ErrorContains(t, err, `rule "no-exec-into-privileged-pods"`)
		out, err := connect(t.Context(), person(t), ns, "ordinary", "exec")
		require.NoError(t, err)
		assert.Equal(t, "admitted\n", out)
	})
}

func TestApprovalIsRequired(t *testing.T) {
	ns := bed.kube.Namespace(t, "approve")
	binding := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "mallory"}}
	// Roles to bind, made in an emergency by someone who may (the pack's break-glass rule).
	everything := rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}
	super := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-super-"}, Rules: []rbacv1.PolicyRule{everything}}
	secretReader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-reader-"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}}
	oncall := breakGlass(t)
	for _, r := range []*rbacv1.ClusterRole{super, secretReader} {
		require.NoError(t, oncall.c.Create(t.Context(), r))
		t.Cleanup(func() { _ = bed.kube.Client.Delete(context.Background(), r) })
	}
	tests := []struct {
		name, webhook, rule string
		do                  func(ctx context.Context, c client.Client) error
	}{
		{"namespace deletion", "cluster", "namespace-deletion", func(ctx context.Context, c client.Client) error {
			return c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}},
		{"cluster-admin ClusterRoleBinding", "cluster", "escalating-bindings", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}, RoleRef: binding("cluster-admin"), Subjects: subjects})
		}},
		{"cluster-admin RoleBinding", "privileged", "escalating-bindings", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "e2e-"}, RoleRef: binding("cluster-admin"), Subjects: subjects})
		}},
		{"Secret creation", "privileged", "secret-changes", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token"}, StringData: map[string]string{"k": "v"}})
		}},
		{"a wildcard ClusterRole under another name", "cluster", "escalating-roles", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}, Rules: []rbacv1.PolicyRule{everything}})
		}},
		{"a Role that impersonates", "privileged", "escalating-roles", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "e2e-"}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"default"}}}})
		}},
		{"a binding to a wildcard role under another name", "cluster", "escalating-bindings", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}, RoleRef: binding(super.Name), Subjects: subjects})
		}},
		{"a namespaced binding of a wildcard cluster role", "privileged", "escalating-bindings", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "e2e-"}, RoleRef: binding(super.Name), Subjects: subjects})
		}},
		{"a cluster-wide binding of a Secret reader", "cluster", "escalating-bindings", func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}, RoleRef: binding(secretReader.Name), Subjects: subjects})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := agent(t)
			err := tt.do(t.Context(), a.c)
			require.Error(t, err)
			assert.True(t, apierrors.IsForbidden(err), "%v", err)
			msg := err.Error()
			assert.Contains(t, msg, fmt.Sprintf(`admission webhook "%s.validate.gatehouse.dev" denied the request`, tt.webhook))
			assert.Contains(t, msg, "requires approval")
			assert.Contains(t, msg, "Approvers: members of gatehouse:approvers; 1 approval(s) needed")
			assert.Contains(t, msg, "The approval flow is not configured on this cluster")
			assert.Contains(t, msg, fmt.Sprintf(`[AccessPolicy "gatehouse-approvals", rule %q]`, tt.rule))

			d := lastDecision(t, a.session)
			assert.Equal(t, trail.Policy{Policy: "gatehouse-approvals", Rule: tt.rule, Action: "requireApproval", Message: d.Policy.Message}, d.Policy)
		})
	}

	t.Run("break glass, directly, passes", func(t *testing.T) {
		require.NoError(t, oncall.c.Create(t.Context(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"},
			RoleRef: binding("cluster-admin"), Subjects: subjects}))
	})
	t.Run("a binding to another role passes", func(t *testing.T) {
		require.NoError(t, agent(t).c.Create(t.Context(), &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "e2e-"}, RoleRef: binding("view"), Subjects: subjects}))
	})
	t.Run("dry runs are decided too: allowed with a warning, never held", func(t *testing.T) {
		a := agent(t)
		warnings := &testbed.WarningCollector{}
		cfg := rest.CopyConfig(a.cfg)
		cfg.WarningHandler = warnings
		c, err := client.New(cfg, client.Options{Scheme: bed.kube.Client.Scheme()})
		require.NoError(t, err)
		require.NoError(t, c.Delete(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.DryRunAll))
		assert.Contains(t, warnings.String(), "requires approval")
		assert.Contains(t, warnings.String(), "This was a dry run")
		d := lastDecision(t, a.session)
		assert.True(t, d.DryRun)
		assert.Equal(t, "requireApproval", d.Policy.Action)
		var got corev1.Namespace
		require.NoError(t, bed.kube.Client.Get(t.Context(), client.ObjectKey{Name: ns}, &got), "a dry run changes nothing")
		assert.Nil(t, got.DeletionTimestamp)

		// Deny rules apply to dry runs.
		err = c.Create(t.Context(), validPolicy("e2e-dry"), client.DryRunAll)
		require.ErrorContains(t, err, `rule "gatehouse-policies"`)
	})
}

// TestEachRequestIsDecidedOnce checks that the webhooks' rules and matchConditions do not
// overlap: a privileged request reaches the Fail webhook only, any other the Ignore webhook
// only, so no decision (or approval grant) is taken twice.
func TestEachRequestIsDecidedOnce(t *testing.T) {
	ns := bed.kube.Namespace(t, "once")
	runPod(t, ns, "ordinary", nil)
	ctx := t.Context()
	a := agent(t)
	for _, tt := range []struct {
		name string
		do   func() error
	}{
		{"secret", func() error {
			return a.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"}})
		}},
		{"configmap", func() error {
			return a.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"}})
		}},
		{"role binding", func() error {
			return a.c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"}}})
		}},
		{"namespace deletion", func() error {
			return a.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}},
		{"exec", func() error { _, err := connect(ctx, a, ns, "ordinary", "exec"); return err }},
		{"configmap the proxy marked held", func() error {
			held := newActor(t, "agent@example.com", []string{groupAgents}, map[string][]string{
				identity.ExtraSessionID: {newSession()}, identity.ExtraHold: {"custom/configmaps"}})
			return held.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"}})
		}},
		{"secret the proxy marked held", func() error {
			held := newActor(t, "agent@example.com", []string{groupAgents}, map[string][]string{
				identity.ExtraSessionID: {newSession()}, identity.ExtraHold: {"gatehouse-approvals/secret-changes"}})
			return held.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"}})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := bed.server.reviews.Load()
			_ = tt.do()
			assert.Equal(t, int64(1), bed.server.reviews.Load()-before)
		})
	}
}

func TestGatehouseProtectsItself(t *testing.T) {
	var p v1alpha1.AccessPolicy
	require.NoError(t, bed.kube.Client.Get(t.Context(), client.ObjectKey{Name: "gatehouse-exec"}, &p))
	p.Spec.Rules = p.Spec.Rules[:1]
	err := agent(t).c.Update(t.Context(), &p)
	require.ErrorContains(t, err, `[AccessPolicy "gatehouse-self-protection", rule "gatehouse-policies"]`)
	err = agent(t).c.Delete(t.Context(), &p)
	require.ErrorContains(t, err, "AccessPolicies and other gatehouse.dev objects are Gatehouse's own configuration")
	err = person(t).c.Delete(t.Context(), &p, client.DryRunAll)
	require.ErrorContains(t, err, `rule "gatehouse-policies"`, "only administrators manage policies")
	require.NoError(t, bed.kube.Client.Update(t.Context(), &p, client.DryRunAll), "administrators do, directly")
}

func TestGatewayObjectsAreAnnotated(t *testing.T) {
	ns := bed.kube.Namespace(t, "stamp")
	ctx := t.Context()
	get := func(name string) *corev1.ConfigMap {
		t.Helper()
		var cm corev1.ConfigMap
		require.NoError(t, bed.kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm))
		return &cm
	}

	a := agent(t)
	sent := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "settings", Labels: map[string]string{"app": "shop"},
			Annotations: map[string]string{"note": "kept"}},
		Data: map[string]string{"color": "blue"},
	}
	require.NoError(t, a.c.Create(ctx, sent.DeepCopy()))
	cm := get("settings")
	assert.Equal(t, map[string]string{"note": "kept", identity.AnnotationSessionID: a.session}, cm.Annotations)
	assert.Equal(t, sent.Labels, cm.Labels, "nothing else changes")
	assert.Equal(t, sent.Data, cm.Data, "nothing else changes")

	// `kubectl get -o yaml` shows where the object came from.
	out, err := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", bed.kube.Kubeconfig, "get", "configmap", "settings", "-n", ns, "-o", "yaml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "gatehouse.dev/session-id: "+a.session)

	// An approved change carries the approval; the next unapproved one drops it.
	approved := newActor(t, "agent@example.com", []string{groupAgents}, map[string][]string{
		identity.ExtraSessionID: {newSession()}, identity.ExtraApprovalID: {"approval-42"}})
	cm.Data["color"] = "green"
	require.NoError(t, approved.c.Update(ctx, cm))
	cm = get("settings")
	assert.Equal(t, approved.session, cm.Annotations[identity.AnnotationSessionID])
	assert.Equal(t, "approval-42", cm.Annotations[identity.AnnotationApprovalID])

	b := agent(t)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"data":{"color":"red"}}`))
	require.NoError(t, b.c.Patch(ctx, cm, patch))
	cm = get("settings")
	assert.Equal(t, map[string]string{"note": "kept", identity.AnnotationSessionID: b.session}, cm.Annotations)
	assert.Equal(t, "red", cm.Data["color"])

	// Changes made directly are not stamped, and leave the stamp of the last gateway change.
	cm.Data["color"] = "black"
	require.NoError(t, person(t).c.Update(ctx, cm))
	assert.Equal(t, b.session, get("settings").Annotations[identity.AnnotationSessionID])
	direct := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "direct"}}
	require.NoError(t, person(t).c.Create(ctx, direct))
	assert.Empty(t, get("direct").Annotations)

	// Nobody forges the stamps: not a direct client, on create or update, nor a client of the
	// gateway through a subresource (a pods/status patch).
	forged := map[string]string{identity.AnnotationApprovalID: "ap-forged", identity.AnnotationSessionID: "s-forged", "gatehouse.dev/owner": "mallory"}
	require.NoError(t, person(t).c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged", Annotations: forged}}))
	assert.Empty(t, get("forged").Annotations, "a direct create cannot carry Gatehouse's annotations")
	cm = get("settings")
	for k, v := range forged {
		cm.Annotations[k] = v
	}
	require.NoError(t, person(t).c.Update(ctx, cm))
	assert.Equal(t, map[string]string{"note": "kept", identity.AnnotationSessionID: b.session}, get("settings").Annotations,
		"a direct update cannot change them")

	runPod(t, ns, "web-0", nil)
	statusPatch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"gatehouse.dev/approval-id":"ap-forged","gatehouse.dev/session-id":"s-forged"}},"status":{"message":"patched"}}`))
	for _, who := range []*actor{agent(t), person(t)} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-0"}}
		require.NoError(t, who.c.Status().Patch(ctx, pod, statusPatch))
		var got corev1.Pod
		require.NoError(t, bed.kube.Client.Get(ctx, client.ObjectKeyFromObject(pod), &got))
		assert.Equal(t, "patched", got.Status.Message)
		assert.Empty(t, got.Annotations[identity.AnnotationApprovalID], "no forged approval through a status patch")
		assert.NotEqual(t, "s-forged", got.Annotations[identity.AnnotationSessionID])
	}

	// Any kind of object, in any group.
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}
	c := agent(t)
	require.NoError(t, c.c.Create(ctx, d))
	var got appsv1.Deployment
	require.NoError(t, bed.kube.Client.Get(ctx, client.ObjectKeyFromObject(d), &got))
	assert.Equal(t, map[string]string{identity.AnnotationSessionID: c.session}, got.Annotations)
	assert.Empty(t, got.Spec.Template.Annotations, "only the object's own metadata")
}

func TestPolicyStatusAndReload(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "reload")
	admin := bed.kube.Client
	p := &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-reload"},
		Spec: v1alpha1.AccessPolicySpec{Priority: 50, Rules: []v1alpha1.Rule{{
			Name:    "no-reload-configmaps",
			Match:   v1alpha1.Match{Operations: []v1alpha1.Operation{v1alpha1.OperationCreate}, Resources: []string{"configmaps"}, Namespaces: []string{ns}, Names: []string{"reload-*"}},
			Action:  v1alpha1.ActionDeny,
			Message: "Reload test.",
		}}},
	}
	require.NoError(t, admin.Create(ctx, p))
	reload := p // p names the policy under test, which changes below
	t.Cleanup(func() { _ = admin.Delete(context.Background(), reload) })

	ready := func(status metav1.ConditionStatus, reason string, generation int64, contains ...string) *v1alpha1.AccessPolicy {
		t.Helper()
		var got v1alpha1.AccessPolicy
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			require.NoError(c, admin.Get(ctx, client.ObjectKeyFromObject(p), &got))
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			require.NotNil(c, cond)
			assert.Equal(c, status, cond.Status)
			assert.Equal(c, reason, cond.Reason)
			assert.Equal(c, generation, cond.ObservedGeneration)
			for _, s := range contains {
				assert.Contains(c, cond.Message, s)
			}
		}, 15*time.Second, 50*time.Millisecond)
		return &got
	}
	create := func(name string) error {
		return person(t).c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	}
	denied := func(name string) bool {
		err := create(name)
		return err != nil && strings.Contains(err.Error(), `[AccessPolicy "e2e-reload", rule "no-reload-configmaps"]`)
	}

	got := ready(metav1.ConditionTrue, v1alpha1.ReasonCompiled, 1, "1 rules in force")
	assert.Equal(t, int32(1), got.Status.Rules)
	assert.Equal(t, int64(1), got.Status.ObservedGeneration)
	require.Eventually(t, func() bool { return denied("reload-1") }, 10*time.Second, 50*time.Millisecond)

	// A bad expression surfaces on the status; the version in force stays.
	got.Spec.Rules[0].Condition = "request.nam == 'x'"
	require.NoError(t, admin.Update(ctx, got))
	ready(metav1.ConditionFalse, v1alpha1.ReasonCompileError, 2,
		`rule "no-reload-configmaps"`, "undefined field 'nam'", "the previous version (generation 1) stays in force")
	assert.True(t, denied("reload-2"))

	// The fix takes effect without a restart.
	got = ready(metav1.ConditionFalse, v1alpha1.ReasonCompileError, 2)
	got.Spec.Rules[0].Condition = "request.name != 'reload-exempt'"
	got.Spec.Rules[0].Match.Names = []string{"reload-*", "other-*"}
	require.NoError(t, admin.Update(ctx, got))
	ready(metav1.ConditionTrue, v1alpha1.ReasonCompiled, 3)
	require.Eventually(t, func() bool { return denied("other-1") }, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, create("reload-exempt"))

	// kubectl shows the state.
	out, err := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", bed.kube.Kubeconfig, "get", "accesspolicies", "e2e-reload").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `(?m)^NAME\s+PRIORITY\s+RULES\s+READY\s+REASON\s+AGE$`, string(out))
	assert.Regexp(t, `(?m)^e2e-reload\s+50\s+1\s+True\s+Compiled\s`, string(out))

	// A new policy that never compiled is not in force.
	broken := &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-broken"},
		Spec: v1alpha1.AccessPolicySpec{Rules: []v1alpha1.Rule{{
			Name: "r", Action: v1alpha1.ActionDeny, Condition: "request.name.startsWith(1)",
		}}},
	}
	require.NoError(t, admin.Create(ctx, broken))
	t.Cleanup(func() { _ = admin.Delete(context.Background(), broken) })
	p = broken
	ready(metav1.ConditionFalse, v1alpha1.ReasonCompileError, 1, "found no matching overload for 'startsWith'", "the policy is not in force")
	require.NoError(t, create("unaffected"))

	// The CRD's own validation refuses rules that cannot work at all.
	err = admin.Create(ctx, &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-invalid"},
		Spec:       v1alpha1.AccessPolicySpec{Rules: []v1alpha1.Rule{{Name: "r", Action: v1alpha1.ActionRequireApproval}}},
	})
	require.ErrorContains(t, err, "a requireApproval rule needs an approval block")
}

func TestSystemComponentsAreNeverBlocked(t *testing.T) {
	ns := bed.kube.Namespace(t, "system")
	runPod(t, ns, "ordinary", nil)
	// System components as kube-controller-manager's controllers and a node run.
	controller := newActor(t, "system:serviceaccount:kube-system:e2e-controller",
		[]string{groupControllers, "system:serviceaccounts", "system:serviceaccounts:kube-system"}, nil)
	manager := newActor(t, "system:kube-controller-manager", []string{groupControllers}, nil)
	alice := person(t)

	// churn creates and deletes objects as controllers do, privileged ones included, and
	// returns the number of calls and the slowest one.
	churn := func(t *testing.T, a *actor, n int) (int, time.Duration) {
		t.Helper()
		var slowest time.Duration
		calls := 0
		timed := func(f func() error) {
			start := time.Now()
			require.NoError(t, f())
			slowest = max(slowest, time.Since(start))
			calls++
		}
		ctx := t.Context()
		for i := range n {
			name := fmt.Sprintf("churn-%s-%d", newSession(), i)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			timed(func() error { return a.c.Create(ctx, cm) })
			timed(func() error { return a.c.Create(ctx, secret) })
			timed(func() error { return a.c.Delete(ctx, cm) })
			timed(func() error { return a.c.Delete(ctx, secret) })
		}
		crb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "churn-"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}}
		timed(func() error { return a.c.Create(ctx, crb) })
		tmp := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "churn-"}}
		timed(func() error { return a.c.Create(ctx, tmp) })
		timed(func() error { return a.c.Delete(ctx, tmp) })
		return calls, slowest
	}
	failsClosed := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "failed calling webhook")
	}
	kubeSystemObject := func() client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-" + newSession()}}
	}

	t.Run("webhook down", func(t *testing.T) {
		bed.server.stop()
		t.Cleanup(func() { require.NoError(t, bed.server.start()) })
		ctx := t.Context()

		start := time.Now()
		n1, _ := churn(t, controller, 25)
		n2, _ := churn(t, manager, 5)
		t.Logf("system components: %d calls in %s with the webhook down", n1+n2, time.Since(start).Round(time.Millisecond))

		// Everyone else: ordinary objects pass (failurePolicy Ignore) and so does anything in
		// kube-system (not sent), privileged operations fail closed.
		require.NoError(t, alice.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"}}))
		require.NoError(t, alice.c.Create(ctx, kubeSystemObject()))
		require.NoError(t, alice.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "e2e-" + newSession()}}))
		failsClosed(t, alice.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"}}))
		failsClosed(t, alice.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
		_, err := connect(ctx, alice, ns, "ordinary", "exec")
		failsClosed(t, err)
		// Changes through the gateway are not made unattributed (the mutating webhook fails).
		failsClosed(t, agent(t).c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"}}))
	})

	t.Run("webhook slower than its timeout", func(t *testing.T) {
		bed.server.delay.Store(int64(7 * time.Second))
		t.Cleanup(func() { bed.server.delay.Store(0) })
		ctx := t.Context()

		var wg sync.WaitGroup
		var ordinary, secret, kubeSystem error
		var ordinaryTook time.Duration
		wg.Go(func() {
			start := time.Now()
			ordinary = alice.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"}})
			ordinaryTook = time.Since(start)
		})
		wg.Go(func() {
			secret = alice.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"}})
		})
		wg.Go(func() { kubeSystem = alice.c.Create(ctx, kubeSystemObject()) })

		// Meanwhile system components are not slowed down at all: they are never sent.
		_, slowest := churn(t, controller, 10)
		assert.Less(t, slowest, 2*time.Second, "a system component waited for the webhook")
		wg.Wait()

		require.NoError(t, ordinary, "an ordinary object passes once the call times out")
		assert.GreaterOrEqual(t, ordinaryTook, 4*time.Second, "it did wait for the webhook's timeout")
		assert.Less(t, ordinaryTook, 10*time.Second)
		require.NoError(t, kubeSystem)
		failsClosed(t, secret)
	})

	t.Run("webhook back", func(t *testing.T) {
		a := agent(t)
		require.NoError(t, a.c.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "back"}}))
		err := a.c.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "back"}})
		require.ErrorContains(t, err, "requires approval")
	})
}

func TestTrailUnavailableFailsClosed(t *testing.T) {
	ns := bed.kube.Namespace(t, "trail")
	runPod(t, ns, "ordinary", nil)
	ctx := t.Context()

	bed.nats.Shutdown()
	restarted := false
	restart := func() {
		if !restarted {
			restarted = true
			require.NoError(t, bed.nats.Start())
			require.Eventually(t, func() bool { return bed.publisher.Ready() == nil }, 20*time.Second, 50*time.Millisecond)
		}
	}
	t.Cleanup(restart)
	require.Eventually(t, func() bool { return bed.conn.Status() != nats.CONNECTED }, 10*time.Second, 10*time.Millisecond)

	// A privileged operation the policies allow is refused: it could not be recorded.
	_, err := connect(ctx, agent(t), ns, "ordinary", "exec")
	require.ErrorContains(t, err, "Gatehouse cannot record this operation in its audit trail right now")
	// Dry runs change nothing and need no record.
	require.NoError(t, agent(t).c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "dry-"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "bob"}}}, client.DryRunAll))
	// Ordinary operations go on; kube-apiserver's audit log records them.
	require.NoError(t, agent(t).c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "meanwhile"}}))
	require.NoError(t, person(t).c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "meanwhile-direct"}}))

	restart()
	a := agent(t)
	out, err := connect(ctx, a, ns, "ordinary", "exec")
	require.NoError(t, err)
	assert.Equal(t, "admitted\n", out)
	assert.Equal(t, "allow", lastDecision(t, a.session).Policy.Action)
}

// TestMalformedReviewsAreRefused: what is not a well-formed review gets an error response from
// controller-runtime's admission.Webhook (or Gatehouse's check of the request), never a decision.
func TestMalformedReviewsAreRefused(t *testing.T) {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(bed.kube.Env.WebhookInstallOptions.LocalServingCAData))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	base := "https://" + net.JoinHostPort(bed.server.host, strconv.Itoa(bed.server.port))

	for _, tt := range []struct {
		name, path, contentType, body, want string
		code                                int32
	}{
		{"not JSON", "/validate", "application/json", "{not json", "", http.StatusBadRequest},
		{"no request", "/validate", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "malformed AdmissionReview: request.uid is empty", http.StatusBadRequest},
		{"no uid", "/mutate", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE","resource":{"resource":"pods"}}}`, "malformed AdmissionReview: request.uid is empty", http.StatusBadRequest},
		{"no resource", "/validate", "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1"}}`, "malformed AdmissionReview: request.resource is empty", http.StatusBadRequest},
		{"wrong content type", "/validate", "text/plain", `{}`, "expected application/json", http.StatusBadRequest},
		{"empty body", "/validate", "application/json", ``, "request body is empty", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := hc.Post(base+tt.path, tt.contentType, strings.NewReader(tt.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var review admissionv1.AdmissionReview
			require.NoError(t, json.Unmarshal(body, &review), string(body))
			require.NotNil(t, review.Response, string(body))
			assert.False(t, review.Response.Allowed)
			require.NotNil(t, review.Response.Result)
			assert.Equal(t, tt.code, review.Response.Result.Code)
			assert.Contains(t, review.Response.Result.Message, tt.want)
		})
	}
}
