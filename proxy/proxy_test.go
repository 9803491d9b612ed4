package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// get sends a GET through the proxy and returns the response with its body read.
func get(t testing.TB, path, tok string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.proxy.URL+path, nil)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := proxyClient(t)
	if req.Header.Get("Connection") != "" {
		client = http1Client(t)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func TestForwardsAsTheVerifiedIdentity(t *testing.T) {
	tok := token(t, "alice", map[string]any{"groups": []string{"dev", "viewers"}})
	resp, body := get(t, "/api/v1/namespaces/default/configmaps", tok, map[string]string{"Audit-Id": "client-chosen-id"})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	auditID := resp.Header.Get("Audit-Id")
	require.NotEmpty(t, auditID)
	assert.NotEqual(t, "client-chosen-id", auditID, "the client cannot choose the audit ID")
	session := resp.Header.Get("Gatehouse-Session")
	require.NotEmpty(t, session)

	events := eventsFor(t, auditID)
	require.NotEmpty(t, events, "kube-apiserver kept the proxy's Audit-ID")
	for _, e := range events {
		assert.Equal(t, "system:serviceaccount:gatehouse:gatehouse-proxy", e.User.Username, "the proxy's own credential")
		require.NotNil(t, e.ImpersonatedUser)
		assert.Equal(t, "oidc:alice", e.ImpersonatedUser.Username)
		assert.Equal(t, "uid-alice", e.ImpersonatedUser.UID)
		assert.Subset(t, e.ImpersonatedUser.Groups, []string{"oidc:dev", "oidc:viewers"})
		assert.Equal(t, []string{session}, e.ImpersonatedUser.Extra[identity.ExtraSessionID])
		assert.Equal(t, []string{env.issuer.URL}, e.ImpersonatedUser.Extra[identity.ExtraIssuer])
		assert.Equal(t, []string{"alice"}, e.ImpersonatedUser.Extra[identity.ExtraSubject])
	}

	// The same label from the same identity is the same session; from another identity it is not.
	r1, _ := get(t, "/version", tok, map[string]string{"Gatehouse-Session": "run-42"})
	r2, _ := get(t, "/version", tok, map[string]string{"Gatehouse-Session": "run-42"})
	r3, _ := get(t, "/version", token(t, "bob", nil), map[string]string{"Gatehouse-Session": "run-42"})
	assert.Equal(t, r1.Header.Get("Gatehouse-Session"), r2.Header.Get("Gatehouse-Session"))
	assert.NotEqual(t, r1.Header.Get("Gatehouse-Session"), r3.Header.Get("Gatehouse-Session"), "a session label is bound to its identity")
	r4, _ := get(t, "/version", tok, map[string]string{"Gatehouse-Session": "bad label!"})
	assert.Equal(t, http.StatusBadRequest, r4.StatusCode)
}

// TestRefusedRequestsNeverReachTheAPIServer sends requests the proxy must refuse; each
// carries the proxy's Audit-ID back, and no audit event has it.
func TestRefusedRequestsNeverReachTheAPIServer(t *testing.T) {
	good := func() map[string]any { return map[string]any{} }
	otherIssuer, err := testbed.StartIssuer()
	require.NoError(t, err)
	defer otherIssuer.Close()
	now := time.Now()

	sign := func(claims map[string]any) string { return token(t, "mallory", claims) }
	hs256, err := env.issuer.SignHS256WithPublicKey(env.issuer.Claims("mallory"))
	require.NoError(t, err)
	unknownKid, err := env.issuer.SignUnknownKey(env.issuer.Claims("mallory"))
	require.NoError(t, err)
	foreign := otherIssuer.Claims("mallory")
	foreignTok := otherIssuer.MustSign(t, foreign)
	wrongIss := env.issuer.Claims("mallory")
	wrongIss["iss"] = "https://evil.example.com"
	wrongIssTok := env.issuer.MustSign(t, wrongIss)
	validTok := sign(good())

	tests := []struct {
		name   string
		token  string
		header map[string]string
		code   int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"garbage token", "not-a-jwt", nil, http.StatusUnauthorized},
		{"expired", sign(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), nil, http.StatusUnauthorized},
		{"not yet valid", sign(map[string]any{"nbf": now.Add(time.Hour).Unix()}), nil, http.StatusUnauthorized},
		{"wrong audience", sign(map[string]any{"aud": "someone-else"}), nil, http.StatusUnauthorized},
		{"issuer not configured", foreignTok, nil, http.StatusUnauthorized},
		{"iss claim of an unknown issuer", wrongIssTok, nil, http.StatusUnauthorized},
		{"unknown key id", unknownKid, nil, http.StatusUnauthorized},
		{"alg none", env.issuer.SignNone(env.issuer.Claims("mallory")), nil, http.StatusUnauthorized},
		{"HS256 signed with the public key", hs256, nil, http.StatusUnauthorized},
		{"tampered payload", testbed.Tamper(validTok, testbed.Claims{"iss": env.issuer.URL, "aud": "gatehouse", "sub": "alice", "exp": now.Add(time.Hour).Unix()}), nil, http.StatusUnauthorized},
		{"system:masters group claim", env.rawIssuer.MustSign(t, withClaims(env.rawIssuer.Claims("mallory"), map[string]any{"groups": []string{"system:masters"}})), nil, http.StatusUnauthorized},
		{"system: user name", env.rawIssuer.MustSign(t, env.rawIssuer.Claims("system:kube-controller-manager")), nil, http.StatusUnauthorized},
		{"system:nodes group", env.rawIssuer.MustSign(t, withClaims(env.rawIssuer.Claims("mallory"), map[string]any{"groups": []string{"dev", "system:nodes"}})), nil, http.StatusUnauthorized},
		{"claim validation rule", sign(map[string]any{"banned": true}), nil, http.StatusUnauthorized},
		{"missing username claim", sign(map[string]any{"sub": nil}), nil, http.StatusUnauthorized},
	}
	for _, h := range []string{
		"Impersonate-User", "impersonate-user", "IMPERSONATE-USER", "Impersonate-Group", "impersonate-group",
		"Impersonate-Uid", "impersonate-uid", "Impersonate-Extra-Scopes", "impersonate-extra-gatehouse.dev%2fsession-id",
		"Impersonate_User",
	} {
		tests = append(tests, struct {
			name   string
			token  string
			header map[string]string
			code   int
		}{"smuggled " + h, validTok, map[string]string{h: "system:admin"}, http.StatusForbidden})
	}
	tests = append(tests, struct {
		name   string
		token  string
		header map[string]string
		code   int
	}{"impersonation named in Connection", validTok, map[string]string{"Connection": "Impersonate-User, Impersonate-Group, Authorization"}, http.StatusForbidden})

	var refused []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/namespaces/default/configmaps?marker=" + strings.ReplaceAll(tc.name, " ", "-")
			resp, body := get(t, path, tc.token, tc.header)
			assert.Equal(t, tc.code, resp.StatusCode, string(body))
			auditID := resp.Header.Get("Audit-Id")
			require.NotEmpty(t, auditID)
			if tc.code != http.StatusOK {
				var st metav1.Status
				require.NoError(t, json.Unmarshal(body, &st), "refusals are Kubernetes Status objects")
				assert.NotEmpty(t, st.Message)
				if tc.token != "" {
					assert.NotContains(t, string(body), tc.token, "a token is never echoed")
				}
				refused = append(refused, auditID)
			}
		})
	}

	// Oversized headers are refused by the server before the proxy sees them.
	req, err := http.NewRequest(http.MethodGet, env.proxy.URL+"/api/v1/namespaces/default/configmaps?marker=oversized", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+validTok)
	req.Header.Set("X-Padding", strings.Repeat("a", 128<<10))
	resp, err := proxyClient(t).Do(req)
	if err == nil {
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
		resp.Body.Close()
	}

	// A request that does reach the API server after all of them: once its event is in the
	// log, the refused ones would be too.
	ok, _ := get(t, "/api/v1/namespaces/default/configmaps?marker=control", validTok, nil)
	require.NotEmpty(t, eventsFor(t, ok.Header.Get("Audit-Id")))
	seen := map[string]bool{}
	for _, e := range auditEvents(t) {
		seen[e.AuditID] = true
		assert.NotContains(t, e.RequestURI, "marker=smuggled", "a refused request reached the API server")
		assert.NotContains(t, e.RequestURI, "marker=oversized")
		if e.ImpersonatedUser != nil {
			assert.NotEqual(t, "system:admin", e.ImpersonatedUser.Username)
		}
	}
	for _, id := range refused {
		assert.False(t, seen[id], "refused request %s reached the API server", id)
	}
}

// TestClientCannotChooseTheSourceIP: kube-apiserver takes a request's first source IP from
// X-Forwarded-For or X-Real-Ip; whatever address a client claims, the audit log shows where the
// proxy's connection came from.
func TestClientCannotChooseTheSourceIP(t *testing.T) {
	tok := token(t, "alice", nil)
	claims := map[string]string{
		"X-Real-Ip": "203.0.113.1", "X-Forwarded-For": "203.0.113.2", "Forwarded": "for=203.0.113.3",
		"True-Client-Ip": "203.0.113.4", "X-Client-Ip": "203.0.113.5", "X-Cluster-Client-Ip": "203.0.113.6",
	}
	resp, body := get(t, "/api/v1/namespaces/default/configmaps?marker=source-ip", tok, claims)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	events := eventsFor(t, resp.Header.Get("Audit-Id"))
	require.NotEmpty(t, events)
	for _, e := range events {
		require.NotEmpty(t, e.SourceIPs)
		for _, ip := range e.SourceIPs {
			assert.NotContains(t, ip, "203.0.113.", "a client-claimed address reached the audit log")
		}
		assert.Equal(t, "127.0.0.1", e.SourceIPs[0], "the proxy's own address")
	}
}

func TestServiceAccountTokenThroughTheClusterIssuer(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "sa")
	_, err := env.kube.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	tr, err := env.kube.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "agent", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"gatehouse"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	out := kubectl(t, kubeconfig(t, tr.Status.Token), "auth", "whoami", "-o", "json")
	var review authenticationv1.SelfSubjectReview
	require.NoError(t, json.Unmarshal([]byte(out), &review))
	assert.Equal(t, "system:serviceaccount:"+ns+":agent", review.Status.UserInfo.Username)
	assert.Contains(t, review.Status.UserInfo.Groups, "system:serviceaccounts:"+ns, "groups mapped by the CEL expression")

	// A token for another audience is refused.
	other, err := env.kube.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "agent", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"kubernetes"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	resp, _ := get(t, "/api/v1/namespaces/"+ns+"/pods", other.Status.Token, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestKeyRotation(t *testing.T) {
	before := env.issuer.JWKSRequests()
	kid, err := env.issuer.AddKey(jose.ES256)
	require.NoError(t, err)
	defer env.issuer.RemoveKey(kid)
	tok := env.issuer.MustSign(t, withClaims(env.issuer.Claims("rotated"), map[string]any{"uid": "rotated"}), kid)
	resp, body := get(t, "/version", tok, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a token signed with a new key verifies after the key set is refetched: %s", body)
	assert.Greater(t, env.issuer.JWKSRequests(), before)

	// A cached token costs no verification: the key set is not fetched again.
	after := env.issuer.JWKSRequests()
	for range 20 {
		resp, _ := get(t, "/version", tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, after, env.issuer.JWKSRequests())
}

func TestSecretsAreMasked(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "mask")
	const canary = "canary-password-9f8e7d6c"
	_, err := env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": canary},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tok := token(t, "alice", nil)

	for _, path := range []string{
		"/api/v1/namespaces/" + ns + "/secrets/db",
		"/api/v1/namespaces/" + ns + "/secrets",
		"/api/v1/secrets",
	} {
		resp, body := get(t, path, tok, map[string]string{"Accept": "application/vnd.kubernetes.protobuf, application/json"})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Contains(t, resp.Header.Get("Content-Type"), "application/json", "the proxy asks for JSON where secrets may be")
		assert.NotContains(t, string(body), canary)
		assert.NotContains(t, string(body), base64.StdEncoding.EncodeToString([]byte(canary)))
		assert.Contains(t, resp.Header.Get("Warning"), "sizes (kubectl describe) are the placeholder's", "the client is told its sizes are not the values'")
	}
	kc := kubeconfig(t, tok)
	describe := exec.Command(env.kube.Kubectl, "--kubeconfig", kc, "describe", "secret", "db", "-n", ns)
	out, err := describe.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "Warning: Gatehouse masked the values of these Secrets", "kubectl describe says its sizes are the placeholders'")
	resp, _ := get(t, "/api/v1/namespaces/"+ns+"/configmaps", tok, nil)
	assert.Empty(t, resp.Header.Values("Warning"), "no warning where no Secret was read")
	resp, body := get(t, "/api/v1/namespaces/"+ns+"/secrets", tok, map[string]string{"User-Agent": "Helm/3.22.0"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(body), canary, "Helm gets masked Secrets too")
	assert.Empty(t, resp.Header.Values("Warning"), "Helm, which reads its release records on every command, is spared the warning")
	for _, args := range [][]string{
		{"get", "secret", "db", "-n", ns, "-o", "yaml"},
		{"get", "secrets", "-n", ns},
		{"describe", "secret", "db", "-n", ns},
		{"get", "secret", "db", "-n", ns, "-o", "jsonpath={.data.password}"},
	} {
		out := kubectl(t, kc, args...)
		assert.NotContains(t, out, canary, "kubectl %v", args)
		assert.NotContains(t, out, base64.StdEncoding.EncodeToString([]byte(canary)), "kubectl %v", args)
	}
	enc := kubectl(t, kc, "get", "secret", "db", "-n", ns, "-o", "jsonpath={.data.password}")
	dec, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(t, err, "masked data stays valid base64")
	assert.Contains(t, string(dec), "gatehouse:masked:")

	// Writing back what was read puts the stored values back where their placeholders are
	// (restore_test.go): the secret stays intact.
	yamlOut := kubectl(t, kc, "get", "secret", "db", "-n", ns, "-o", "yaml")
	cmd := exec.Command(env.kube.Kubectl, "--kubeconfig", kc, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(yamlOut)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	stored, err := env.kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, canary, string(stored.Data["password"]), "the secret is intact")

	// A watch stream is masked event by event.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(wctx, http.MethodGet, env.proxy.URL+"/api/v1/namespaces/"+ns+"/secrets?watch=true", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = proxyClient(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	dec2 := json.NewDecoder(resp.Body)
	var ev struct {
		Type   string
		Object corev1.Secret
	}
	require.NoError(t, dec2.Decode(&ev), "the first event arrives without waiting for the stream to end")
	assert.Equal(t, "ADDED", ev.Type)
	assert.NotContains(t, string(ev.Object.Data["password"]), canary)
	_, err = env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db2"}, StringData: map[string]string{"token": canary + "-2"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, dec2.Decode(&ev))
	assert.Equal(t, "db2", ev.Object.Name)
	assert.NotContains(t, string(ev.Object.Data["token"]), canary)
}

// TestKubectl drives the proxy with the kubectl built from the API server's release.
func TestKubectl(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "kubectl")
	tok := token(t, "alice", map[string]any{"groups": []string{"dev"}})
	kc := kubeconfig(t, tok)
	runKubectlSuite(t, env.kube.Kubectl, kc, ns)

	t.Run("cp", func(t *testing.T) {
		// Into the pod's filesystem (the dev node's, in memory) and back out.
		src := filepath.Join(t.TempDir(), "notes.txt")
		require.NoError(t, os.WriteFile(src, []byte("copied through the gateway\n"), 0o600))
		kubectl(t, kc, "cp", src, ns+"/work:/tmp/notes.txt")
		assert.Equal(t, "copied through the gateway\n", kubectl(t, kc, "exec", "-n", ns, "work", "--", "cat", "/tmp/notes.txt"))
		back := filepath.Join(t.TempDir(), "back.txt")
		kubectl(t, kc, "cp", ns+"/work:/tmp/notes.txt", back)
		got, err := os.ReadFile(back)
		require.NoError(t, err)
		assert.Equal(t, "copied through the gateway\n", string(got))
	})
	t.Run("auth whoami shows the impersonated identity", func(t *testing.T) {
		out := kubectl(t, kc, "auth", "whoami", "-o", "json")
		var review authenticationv1.SelfSubjectReview
		require.NoError(t, json.Unmarshal([]byte(out), &review))
		ui := review.Status.UserInfo
		assert.Equal(t, "oidc:alice", ui.Username)
		assert.Equal(t, "uid-alice", ui.UID)
		assert.Contains(t, ui.Groups, "oidc:dev")
		assert.NotEmpty(t, ui.Extra[identity.ExtraSessionID])
		assert.Contains(t, ui.Extra[identity.ExtraClient][0], "kubectl")
	})
	t.Run("kubectl --as is refused", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, env.kube.Kubectl, "--kubeconfig", kc, "--as", "system:admin", "get", "pods", "-n", ns)
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), "Impersonate")
	})
}

// TestKubectlVersions runs the same suite with older kubectl releases: those scripts/testbed.sh
// builds (1.27, SPDY only; 1.30, the first on WebSocket by default) and those the machine carries.
func TestKubectlVersions(t *testing.T) {
	releases, err := testbed.KubectlReleases(t.Context())
	require.NoError(t, err)
	tok := token(t, "alice", nil)
	kc := kubeconfig(t, tok)
	for _, r := range releases {
		t.Run(r.Version, func(t *testing.T) {
			ns := env.kube.Namespace(t, "kubectl-"+r.Name())
			runKubectlSuite(t, r.Path, kc, ns)
		})
	}
}

func runKubectlSuite(t *testing.T, bin, kc, ns string) {
	ctx := t.Context()
	k := func(t *testing.T, env []string, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kc, "-n", ns}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s %v: %s", filepath.Base(bin), args, stderr.String())
		return string(out)
	}
	_, err := env.kubelet.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "work", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	})
	require.NoError(t, err)

	t.Run("apply get patch delete", func(t *testing.T) {
		k(t, nil, `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: safe
`, "apply", "-f", "-")
		assert.Equal(t, "safe", k(t, nil, "", "get", "configmap", "settings", "-o", "jsonpath={.data.mode}"))
		k(t, nil, "", "patch", "configmap", "settings", "--type=merge", "-p", `{"data":{"mode":"patched"}}`)
		assert.Equal(t, "patched", k(t, nil, "", "get", "configmap", "settings", "-o", "jsonpath={.data.mode}"))
		assert.Contains(t, k(t, nil, "", "get", "configmaps"), "settings")
		k(t, nil, "", "delete", "configmap", "settings")
	})
	t.Run("watch", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// kubectl lists, then watches from the list's resource version: an object created once
		// the list is printed reaches the watch, however long opening it takes.
		k(t, nil, "", "create", "configmap", "listed", "--from-literal=a=b")
		cmd := exec.CommandContext(wctx, bin, "--kubeconfig", kc, "-n", ns, "get", "configmaps", "--watch", "-o", "name")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		defer func() { cancel(); _ = cmd.Wait() }()
		var buf []byte
		readUntil := func(s string) {
			t.Helper()
			for !strings.Contains(string(buf), s) {
				chunk := make([]byte, 1024)
				n, err := stdout.Read(chunk)
				buf = append(buf, chunk[:n]...)
				if err != nil {
					break
				}
			}
		}
		readUntil("configmap/listed")
		require.Contains(t, string(buf), "configmap/listed", "the watch lists first")
		k(t, nil, "", "create", "configmap", "watched", "--from-literal=a=b")
		readUntil("configmap/watched")
		assert.Contains(t, string(buf), "configmap/watched", "the watch delivered the new object while the stream stays open")
	})
	for _, ws := range []string{"false", "true"} {
		t.Run("exec websockets="+ws, func(t *testing.T) {
			out := k(t, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}, "through the gateway\n", "exec", "-i", "work", "--", "tr", "a-z", "A-Z")
			assert.Equal(t, "THROUGH THE GATEWAY\n", out)
		})
		t.Run("port-forward websockets="+ws, func(t *testing.T) {
			testbed.CheckPortForward(t, bin, kc, ns, "work", ws == "true")
		})
	}
	t.Run("logs -f", func(t *testing.T) {
		testbed.CheckLogsFollow(t, env.kubelet, bin, kc, ns, "work")
	})
}

func TestTrailRecordsEveryRequest(t *testing.T) {
	ctx := t.Context()
	tok := token(t, "carol", map[string]any{"groups": []string{"viewers"}})
	// A label of its own: a session is named by identity and label, and the records of an
	// earlier run (go test -count) must not count.
	label := "trail-test-" + trail.NewID()[28:]
	resp, _ := get(t, "/api/v1/namespaces/default/configmaps", tok, map[string]string{"Gatehouse-Session": label})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	refused, _ := get(t, "/api/v1/namespaces/default/configmaps", tok, map[string]string{"Gatehouse-Session": label, "Impersonate-User": "x"})
	require.Equal(t, http.StatusForbidden, refused.StatusCode)
	session := resp.Header.Get("Gatehouse-Session")

	cons, err := env.inspect.OrderedConsumer(ctx, trail.StreamTrail, jetstreamFilter(trail.SubjectSession(session)))
	require.NoError(t, err)
	records := map[string]trail.Record{}
	var started int
	deadline := time.Now().Add(10 * time.Second)
	for len(records) < 2 && time.Now().Before(deadline) {
		msgs, err := cons.Fetch(10, jetstreamWait(time.Second))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			for r, err := range trail.DecodeAll(m.Data()) {
				require.NoError(t, err)
				switch r := r.(type) {
				case *trail.Request:
					records[r.AuditID] = r
				case *trail.Session:
					if r.Event == trail.SessionStarted {
						started++
						assert.Equal(t, label, r.Label)
						assert.Equal(t, "oidc:carol", r.Identity.User)
					}
				}
			}
		}
	}
	assert.Equal(t, 1, started, "one Started record per session")
	ok, isReq := records[resp.Header.Get("Audit-Id")].(*trail.Request)
	require.True(t, isReq, "the forwarded request is recorded under its Audit-ID")
	assert.Equal(t, "oidc:carol", ok.Identity.User)
	assert.Equal(t, []string{"oidc:viewers"}, ok.Identity.Groups)
	assert.Equal(t, env.issuer.URL, ok.Identity.Issuer)
	assert.Equal(t, "list", ok.Operation.Verb)
	assert.Equal(t, "configmaps", ok.Operation.Resource)
	assert.Equal(t, 200, ok.Code)
	assert.Positive(t, ok.BytesOut)
	bad, isReq := records[refused.Header.Get("Audit-Id")].(*trail.Request)
	require.True(t, isReq, "a refused request is recorded too")
	assert.Equal(t, 403, bad.Code)
	assert.Contains(t, bad.Error, "impersonation")
}

func TestNoUnrecordedAction(t *testing.T) {
	tok := token(t, "alice", nil)
	env.nats.Shutdown()
	restarted := false
	defer func() {
		if !restarted {
			require.NoError(t, env.nats.Start())
		}
	}()
	require.Eventually(t, func() bool { return !env.nc.IsConnected() }, 5*time.Second, 10*time.Millisecond)
	resp, body := get(t, "/api/v1/namespaces/default/configmaps?marker=unrecorded", tok, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "cannot record")
	require.NoError(t, env.nats.Start())
	restarted = true
	require.Eventually(t, func() bool { return env.nc.IsConnected() }, 10*time.Second, 20*time.Millisecond)
	resp, _ = get(t, "/api/v1/namespaces/default/configmaps?marker=recorded-again", tok, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for _, e := range auditEvents(t) {
		assert.NotContains(t, e.RequestURI, "marker=unrecorded", "an unrecorded request reached the API server")
	}
}

// TestFailedUpgradeClosesTheConnection: after an upgrade the API server refused, the client
// connection must not stay usable (CVE-2018-1002105).
func TestFailedUpgradeClosesTheConnection(t *testing.T) {
	tok := token(t, "alice", nil)
	cfg := env.proxy.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(env.proxy.URL, "https://"), cfg)
	require.NoError(t, err)
	defer conn.Close()
	req := "POST /api/v1/namespaces/default/pods/does-not-exist/exec?command=sh&stdin=true&stdout=true HTTP/1.1\r\n" +
		"Host: gatehouse\r\nAuthorization: Bearer " + tok + "\r\n" +
		"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
	_, err = conn.Write([]byte(req))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.True(t, resp.Close, "the response announces the close")
	_, _ = conn.Write([]byte("GET /version HTTP/1.1\r\nHost: gatehouse\r\n\r\n"))
	n, err := conn.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "the connection is closed after a failed upgrade")
}

func kubectl(t testing.TB, kc string, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.kube.Kubectl, append([]string{"--kubeconfig", kc}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kubectl %v: %s", args, stderr.String())
	return string(out)
}

// TestMaskingTimeIsObserved: the time masking takes is exported for each response read whole,
// an object and a list alike; a watch, masked as it streams, is not counted.
func TestMaskingTimeIsObserved(t *testing.T) {
	ns := env.kube.Namespace(t, "masking-time")
	_, err := env.kube.Clientset.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "production"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tok := token(t, "alice", nil)
	n0, sum0 := maskingTime(t, env.metrics)
	for _, path := range []string{"/api/v1/namespaces/" + ns + "/configmaps/settings", "/api/v1/namespaces/" + ns + "/secrets"} {
		resp, body := get(t, path, tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	}
	n1, sum1 := maskingTime(t, env.metrics)
	assert.Equal(t, n0+2, n1, "one observation a response")
	assert.Greater(t, sum1, sum0)

	resp, body := get(t, "/api/v1/namespaces/"+ns+"/secrets?watch=true&timeoutSeconds=1", tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	n2, _ := maskingTime(t, env.metrics)
	assert.Equal(t, n1, n2, "a watch is not read whole")
}

// TestJSONPatchCannotRelocateValues: a JSON patch's copy and move put a stored value where the
// patch does not show it, such as a Secret's data in an annotation, which the answer then shows
// unmasked (in a dry run too, which is never held). They are refused, however the patch type is
// spelt; other operations and patch types go through.
func TestJSONPatchCannotRelocateValues(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "relocate")
	const password = "relocated-password-4f1c9a"
	_, err := env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": password},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.kube.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string]string{"DB_PASSWORD": password},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tok := token(t, "alice", nil)
	patch := func(path, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, env.proxy.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", contentType)
		resp, err := proxyClient(t).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	secret := "/api/v1/namespaces/" + ns + "/secrets/db"
	configMap := "/api/v1/namespaces/" + ns + "/configmaps/app"
	const jsonPatch = "application/json-patch+json"
	tests := []struct {
		name, path, contentType, body string
		code                          int
	}{
		{"a Secret's data copied into an annotation, in a dry run", secret + "?dryRun=All", jsonPatch,
			`[{"op":"copy","from":"/data/password","path":"/metadata/annotations/note"}]`, http.StatusForbidden},
		{"a Secret's data moved", secret + "?dryRun=All", jsonPatch,
			`[{"op":"move","from":"/data/password","path":"/metadata/labels/note"}]`, http.StatusForbidden},
		{"a ConfigMap's password copied under a plain key", configMap, jsonPatch,
			`[{"op":"copy","from":"/data/DB_PASSWORD","path":"/data/note"}]`, http.StatusForbidden},
		{"the type in capitals, with parameters", configMap, "Application/JSON-Patch+JSON; charset=utf-8",
			`[{"op":"copy","from":"/data/DB_PASSWORD","path":"/data/note"}]`, http.StatusForbidden},
		{"parameters kube-apiserver ignores and a MIME parser refuses", configMap, jsonPatch + ";;",
			`[{"op":"copy","from":"/data/DB_PASSWORD","path":"/data/note"}]`, http.StatusForbidden},
		{"op repeated: kube-apiserver reads the last", configMap, jsonPatch,
			`[{"op":"add","op":"copy","from":"/data/DB_PASSWORD","path":"/data/note"}]`, http.StatusForbidden},
		{"a patch Gatehouse cannot read", configMap, jsonPatch, `{"op":"copy"}`, http.StatusForbidden},
		{"add and test go through", configMap + "?dryRun=All", jsonPatch,
			`[{"op":"test","path":"/metadata/name","value":"app"},{"op":"add","path":"/data/mode","value":"production"}]`, http.StatusOK},
		{"a merge patch goes through", configMap + "?dryRun=All", "application/merge-patch+json", `{"data":{"mode":"production"}}`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := patch(tt.path, tt.contentType, tt.body)
			require.Equal(t, tt.code, code, body)
			assert.NotContains(t, body, password)
			assert.NotContains(t, body, base64.StdEncoding.EncodeToString([]byte(password)))
			if code == http.StatusForbidden {
				assert.Contains(t, body, "copy or move")
			}
		})
	}
	cm, err := env.kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "app", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"DB_PASSWORD": password}, cm.Data, "nothing was changed")
}

// TestUpstreamWarningsAreMasked: a Warning kube-apiserver passes on (an admission webhook's, a
// ValidatingAdmissionPolicy's, which can quote the object written) is masked as free text;
// other warnings pass as they came.
func TestUpstreamWarningsAreMasked(t *testing.T) {
	const ghToken = "ghp_" + "Qw8eR7tY6uI5oP4aS3dF2gH1jK0lZ9xC8vB7" // made up, GitHub's shape
	u := newUpstream(t)
	u.setRespond(func(w http.ResponseWriter, _ *http.Request, _ []byte) bool {
		w.Header().Add("Warning", `299 - "policy check-token: the token `+ghToken+` is not allowed"`)
		w.Header().Add("Warning", `299 - "an ordinary warning"`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","namespace":"default"}}`))
		return true
	})
	srv := newStubProxy(t, u, nil)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/namespaces/default/configmaps/c", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, "alice", nil))
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	warnings := resp.Header.Values("Warning")
	require.Len(t, warnings, 2)
	assert.NotContains(t, warnings[0], ghToken)
	assert.Contains(t, warnings[0], "gatehouse:masked:")
	assert.Equal(t, `299 - "an ordinary warning"`, warnings[1])
}
