package webhook_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestCommand runs `gatehouse webhook` in development mode with the default pack's policies
// from their file against the test cluster and NATS, and sends it reviews as kube-apiserver
// would.
func TestCommand(t *testing.T) {
	ns := bed.kube.Namespace(t, "command")
	runPod(t, ns, "privileged", func(s *corev1.PodSpec) {
		s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	})

	port, health := freePort(t), freePort(t)
	// Development mode for the self-signed serving certificate only: NATS is reached with the
	// webhook's own identity, as deployed.
	args := append([]string{"webhook", "--dev", "--log-format", "text",
		"--kubeconfig", bed.kube.Kubeconfig,
		"--policy-file", filepath.Join(bed.root, "manifests", "policies", "default.yaml"),
		"--approval-key-file", approvalKeyFile(t),
		"--bind-address", "127.0.0.1", "--secure-port", port,
		"--health-bind-address", "127.0.0.1:" + health}, bed.nats.Args(natsbus.RoleWebhook)...)
	p, err := testbed.StartGatehouse(args...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("gatehouse webhook output:\n%s", p.Output())
		}
	})
	require.NoError(t, p.WaitReady("http://127.0.0.1:"+health+"/readyz", 60*time.Second))

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// Development mode serves a self-signed certificate.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}}
	t.Cleanup(hc.CloseIdleConnections)
	send := func(path string, req admissionv1.AdmissionRequest) (*http.Response, *admissionv1.AdmissionReview) {
		t.Helper()
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: &req})
		require.NoError(t, err)
		resp, err := hc.Post("https://127.0.0.1:"+port+path, "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var review admissionv1.AdmissionReview
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(data, &review))
		}
		return resp, &review
	}
	gateway := authenticationv1.UserInfo{Username: "agent@example.com", Groups: []string{groupAgents},
		Extra: map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {newSession()}}}

	resp, review := send("/validate", admissionv1.AdmissionRequest{
		UID: "cmd-exec", Operation: admissionv1.Connect, Namespace: ns, Name: "privileged",
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, SubResource: "exec",
		Object:   runtime.RawExtension{Raw: []byte(`{"kind":"PodExecOptions","apiVersion":"v1","command":["sh"]}`)},
		UserInfo: gateway,
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "cmd-exec", string(review.Response.UID))
	assert.False(t, review.Response.Allowed)
	assert.Contains(t, review.Response.Result.Message, `[AccessPolicy "gatehouse-exec", rule "no-exec-into-privileged-pods"]`)

	resp, review = send("/mutate", admissionv1.AdmissionRequest{
		UID: "cmd-create", Operation: admissionv1.Create, Namespace: ns, Name: "c",
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Object:   runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`)},
		UserInfo: gateway,
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, review.Response.Allowed)
	assert.Contains(t, string(review.Response.Patch), identity.AnnotationSessionID)

	resp, review = send("/validate", admissionv1.AdmissionRequest{})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.False(t, review.Response.Allowed, "an empty request is refused, never decided")
	assert.Equal(t, int32(http.StatusBadRequest), review.Response.Result.Code)

	metrics, err := hc.Get("http://127.0.0.1:" + health + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), `controller_runtime_webhook_requests_total{code="200",webhook="/validate"}`,
		"controller-runtime's webhook metrics are served beside the health checks")

	require.NoError(t, p.Stop(), "gatehouse webhook stops on SIGTERM")
	assert.Zero(t, p.ExitCode(), "and exits cleanly")
	// The process has exited: everything it logged is in its output.
	out := p.Output()
	assert.Contains(t, out, "malformed admission request refused", "the empty request is logged")
	assert.NotContains(t, out, "panic")
	assert.Contains(t, out, "starting the admission webhooks")
}

// approvalKeyFile writes the tests' approval key to a file of t's own.
func approvalKeyFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "approval.key")
	require.NoError(t, os.WriteFile(f, approvalKey, 0o600))
	return f
}
