// Package captures_test masks what a real kube-apiserver returns: Secrets, ConfigMaps, Pods and
// token requests, as objects, lists, Tables (with and without includeObject) and watch streams,
// through the REST API exactly as kubectl and client-go receive them.
package captures_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/masking/internal/fakecreds"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

var kube *testbed.Kube

func TestMain(m *testing.M) {
	var err error
	if kube, err = testbed.StartKube(testbed.KubeOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

// Canaries planted in every place a secret can hide.
const (
	secretValue  = "canary-secret-value-7f3a91"
	tokenKeyword = "canary-configmap-password-55d2"
	envPassword  = "canary-env-password-c81e0f"
	awsKeyID     = "AKIAQWERTYUIOPASDFGH"
)

// get fetches path from the API server as kubectl would, with accept.
func get(t *testing.T, path, accept string) []byte {
	t.Helper()
	hc, err := rest.HTTPClientFor(kube.Config)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(kube.Config.Host, "/")+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", accept)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return body
}

func setUp(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	ns := kube.Namespace(t, "captures")
	cs := kube.Clientset
	_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": secretValue, "url": "postgres://app:" + secretValue + "@db/app"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{
			"DATABASE_URL":      "mysql://root:" + tokenKeyword + "@mysql:3306/shop",
			"AWS_ACCESS_KEY_ID": awsKeyID,
			"mode":              "safe",
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// A pod applied with kubectl, so it carries last-applied-configuration with its env.
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: %s
spec:
  containers:
  - name: app
    image: app:1
    args: ["--db-password=%s"]
    env:
    - name: DB_PASSWORD
      value: %s
    - name: LOG_LEVEL
      value: debug
`, ns, envPassword, envPassword)
	cmd := exec.Command(kube.Kubectl, "--kubeconfig", kube.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(pod)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return ns
}

func newMasker(t *testing.T) *masking.Masker {
	t.Helper()
	m, err := masking.New(masking.Config{Key: []byte("captures-test-key-0123456789")})
	require.NoError(t, err)
	return m
}

// assertClean checks that masked output is valid JSON without any canary, plain or base64.
func assertClean(t *testing.T, what string, out []byte) {
	t.Helper()
	for _, c := range []string{secretValue, tokenKeyword, envPassword, awsKeyID} {
		assert.NotContains(t, string(out), c, "%s leaks %s", what, c)
		assert.NotContains(t, string(out), base64.StdEncoding.EncodeToString([]byte(c)), "%s leaks base64 of %s", what, c)
	}
}

func TestCapturedResponses(t *testing.T) {
	ns := setUp(t)
	m := newMasker(t)
	const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
	tests := []struct {
		name     string
		path     string
		accept   string
		target   masking.Target
		minMasks int
	}{
		{"secret", "/api/v1/namespaces/" + ns + "/secrets/db", "application/json",
			masking.Target{Version: "v1", Resource: "secrets", Namespace: ns, Name: "db"}, 2},
		{"secret list", "/api/v1/namespaces/" + ns + "/secrets", "application/json",
			masking.Target{Version: "v1", Resource: "secrets", Namespace: ns}, 2},
		{"secret table with objects", "/api/v1/namespaces/" + ns + "/secrets?includeObject=Object", tableAccept,
			masking.Target{Version: "v1", Resource: "secrets", Namespace: ns}, 2},
		{"secret table", "/api/v1/namespaces/" + ns + "/secrets", tableAccept,
			masking.Target{Version: "v1", Resource: "secrets", Namespace: ns}, 0},
		{"configmap", "/api/v1/namespaces/" + ns + "/configmaps/settings", "application/json",
			masking.Target{Version: "v1", Resource: "configmaps", Namespace: ns, Name: "settings"}, 2},
		{"pod with last-applied", "/api/v1/namespaces/" + ns + "/pods/app", "application/json",
			masking.Target{Version: "v1", Resource: "pods", Namespace: ns, Name: "app"}, 3},
		{"pod table with objects", "/api/v1/namespaces/" + ns + "/pods?includeObject=Object", tableAccept,
			masking.Target{Version: "v1", Resource: "pods", Namespace: ns}, 3},
		{"pod list", "/api/v1/namespaces/" + ns + "/pods", "application/json",
			masking.Target{Version: "v1", Resource: "pods", Namespace: ns}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := get(t, tc.path, tc.accept)
			require.True(t, m.NeedsMasking(tc.target))
			out, stats, err := m.Body("application/json", "", raw, tc.target)
			require.NoError(t, err)
			require.True(t, json.Valid(out))
			assertClean(t, tc.name, out)
			assert.GreaterOrEqual(t, stats.Fields, tc.minMasks, "stats count what was masked: %v", stats.Detectors)
			// client-go still decodes what it gets.
			_, _, err = scheme.Codecs.UniversalDeserializer().Decode(out, nil, nil)
			if !strings.Contains(tc.accept, "as=Table") {
				require.NoError(t, err)
			}
		})
	}
}

func TestCapturedTokenRequest(t *testing.T) {
	ns := setUp(t)
	m := newMasker(t)
	_, err := kube.Clientset.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The raw response of POST .../serviceaccounts/agent/token.
	body, err := json.Marshal(&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"gatehouse"}}})
	require.NoError(t, err)
	raw, err := kube.Clientset.CoreV1().RESTClient().Post().Namespace(ns).Resource("serviceaccounts").Name("agent").
		SubResource("token").Body(body).SetHeader("Content-Type", "application/json").DoRaw(t.Context())
	require.NoError(t, err)
	var tr authenticationv1.TokenRequest
	require.NoError(t, json.Unmarshal(raw, &tr))
	require.NotEmpty(t, tr.Status.Token)

	out, stats, err := m.Body("application/json", "", raw, masking.Target{Version: "v1", Resource: "serviceaccounts", Subresource: "token", Namespace: ns, Name: "agent"})
	require.NoError(t, err)
	assert.NotContains(t, string(out), tr.Status.Token)
	assert.NotContains(t, string(out), strings.Split(tr.Status.Token, ".")[1], "not even the claims")
	assert.Positive(t, stats.Fields)
}

func TestCapturedWatchStream(t *testing.T) {
	ns := setUp(t)
	m := newMasker(t)
	hc, err := rest.HTTPClientFor(kube.Config)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(kube.Config.Host, "/")+"/api/v1/namespaces/"+ns+"/secrets?watch=true", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	rd, err := m.Stream(resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"), resp.Body,
		masking.Target{Version: "v1", Resource: "secrets", Namespace: ns, Watch: true})
	require.NoError(t, err)
	dec := json.NewDecoder(rd)
	var ev struct {
		Type   string
		Object corev1.Secret
	}
	require.NoError(t, dec.Decode(&ev), "the first event arrives while the stream stays open")
	assert.Equal(t, "ADDED", ev.Type)
	_, err = kube.Clientset.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "later"}, StringData: map[string]string{"token": secretValue},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for ev.Object.Name != "later" {
		require.NoError(t, dec.Decode(&ev))
	}
	got, err := json.Marshal(ev.Object)
	require.NoError(t, err)
	assertClean(t, "watch event", got)
	assert.True(t, bytes.Contains(ev.Object.Data["token"], []byte("gatehouse:masked:")))
	assert.Positive(t, rd.Stats().Fields)
}

var labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// TestRecallThroughTheAPIServer plants a fake of every credential format of the corpus under
// a neutral name (value007, example.com/value007) in objects of a real kube-apiserver and in a
// pod's log, reads them as kubectl and client-go do (objects, lists, Tables, watches, logs) and
// checks that nothing of a credential with a distinctive shape survives masking.
func TestRecallThroughTheAPIServer(t *testing.T) {
	ctx := t.Context()
	ns := kube.Namespace(t, "recall")
	m := newMasker(t)
	kl, err := testbed.StartKubelet(ctx, kube, "node-"+ns)
	require.NoError(t, err)
	t.Cleanup(kl.Close)

	formats := fakecreds.Formats()
	fakes := make([]fakecreds.Fake, len(formats))
	data := map[string]string{}
	annotations := map[string]string{}
	labels := map[string]string{"app": "recall"}
	var env []corev1.EnvVar
	var logs strings.Builder
	for i, f := range formats {
		fk := f.Gen(fakecreds.NewGen(uint64(1000 * i)))
		fakes[i] = fk
		key := fmt.Sprintf("value%03d", i)
		data[key] = fk.Value
		annotations["example.com/"+key] = fk.Value
		if len(fk.Value) <= 63 && labelValue.MatchString(fk.Value) {
			labels["example.com/"+key] = fk.Value
		}
		env = append(env, corev1.EnvVar{Name: strings.ToUpper(key), Value: fk.Value})
		fmt.Fprintf(&logs, "2026-03-14T09:26:53.123Z INFO loaded %s %s from the remote store\n", key, fk.Value)
		line, err := json.Marshal(map[string]any{"time": "2026-03-14T09:26:53.123Z", "level": "INFO", "msg": "loaded", key: fk.Value})
		require.NoError(t, err)
		logs.Write(append(line, '\n'))
		_, err = kube.Clientset.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "app." + key},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "app"},
			Reason:         "BackOff", Type: "Warning",
			Message: "Container app exited with code 1; last output: " + fk.Value + " (restarting)",
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = kube.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: data}, metav1.CreateOptions{})
	require.NoError(t, err)
	// A ConfigMap applied with kubectl carries its data again in last-applied-configuration.
	applied, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "applied", "namespace": ns}, "data": data})
	require.NoError(t, err)
	cmd := exec.Command(kube.Kubectl, "--kubeconfig", kube.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = bytes.NewReader(applied)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	_, err = kl.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1", Env: env}}},
	})
	require.NoError(t, err)
	kl.AppendLog(ns, "app", "app", logs.String())

	const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
	cms := masking.Target{Version: "v1", Resource: "configmaps", Namespace: ns}
	pods := masking.Target{Version: "v1", Resource: "pods", Namespace: ns}
	places := []struct {
		name   string
		path   string
		accept string
		target masking.Target
		text   bool
	}{
		{"configmap data", "/api/v1/namespaces/" + ns + "/configmaps/settings", "application/json", cms, false},
		{"last-applied", "/api/v1/namespaces/" + ns + "/configmaps/applied", "application/json", cms, false},
		{"configmap list", "/api/v1/namespaces/" + ns + "/configmaps", "application/json", cms, false},
		{"configmap table", "/api/v1/namespaces/" + ns + "/configmaps?includeObject=Object", tableAccept, cms, false},
		{"configmap watch", "/api/v1/namespaces/" + ns + "/configmaps?watch=true&resourceVersion=0&timeoutSeconds=2", "application/json", withWatch(cms), false},
		{"env, annotations and labels", "/api/v1/namespaces/" + ns + "/pods/app", "application/json", pods, false},
		{"pod table", "/api/v1/namespaces/" + ns + "/pods?includeObject=Object", tableAccept, pods, false},
		{"events", "/api/v1/namespaces/" + ns + "/events", "application/json", masking.Target{Version: "v1", Resource: "events", Namespace: ns}, false},
		{"pod log", "/api/v1/namespaces/" + ns + "/pods/app/log", "*/*", masking.Target{Version: "v1", Resource: "pods", Subresource: "log", Namespace: ns, Name: "app"}, true},
	}
	var table strings.Builder
	table.WriteString("\n| place (real kube-apiserver) | recall by shape |\n|---|---|\n")
	for _, p := range places {
		t.Run(p.name, func(t *testing.T) {
			raw, ct := getWithType(t, p.path, p.accept)
			var masked [][]byte
			body, _, err := m.Body(ct, "", raw, p.target)
			require.NoError(t, err)
			masked = append(masked, body)
			// Streamed as the proxy streams watches and logs.
			rd, err := m.Stream(ct, "", bytes.NewReader(raw), p.target)
			require.NoError(t, err)
			streamed, err := io.ReadAll(rd)
			require.NoError(t, err)
			masked = append(masked, streamed)
			if !p.text {
				require.True(t, json.Valid(body) || p.target.Watch, "invalid JSON")
			}
			rawSurfaces, bodySurfaces, streamSurfaces := fakecreds.Surfaces(raw), fakecreds.Surfaces(masked[0]), fakecreds.Surfaces(masked[1])
			n, hit := 0, 0
			for i, f := range formats {
				if !f.Shape {
					continue
				}
				n++
				require.NotEmpty(t, fakecreds.Survivors(rawSurfaces, fakes[i]), "%s holds %s before masking", p.name, f.Name)
				left := append(fakecreds.Survivors(bodySurfaces, fakes[i]), fakecreds.Survivors(streamSurfaces, fakes[i])...)
				if assert.Empty(t, left, "%s leaks %s", p.name, f.Name) {
					hit++
				}
			}
			fmt.Fprintf(&table, "| %s | %d/%d |\n", p.name, hit, n)
		})
	}
	t.Log(table.String())
}

func withWatch(t masking.Target) masking.Target {
	t.Watch = true
	return t
}

// getWithType fetches path from the API server as kubectl would and returns the body and its
// Content-Type.
func getWithType(t *testing.T, path, accept string) ([]byte, string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(kube.Config)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(kube.Config.Host, "/")+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", accept)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return body, resp.Header.Get("Content-Type")
}
