package proxy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// kubectlIn runs kubectl with stdin and returns its combined output and error.
func kubectlIn(kc, stdin string, args ...string) (string, error) {
	cmd := exec.Command(env.kube.Kubectl, append([]string{"--kubeconfig", kc}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// proxyClientset is client-go through the proxy with tok, in JSON or protobuf.
func proxyClientset(t *testing.T, tok string, protobuf bool) kubernetes.Interface {
	t.Helper()
	cfg := &rest.Config{Host: env.proxy.URL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: env.proxyCA}}
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
	}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// editYAML changes an object read as YAML.
func editYAML(t *testing.T, in string, change func(o map[string]any)) string {
	t.Helper()
	var o map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(in), &o))
	change(o)
	out, err := yaml.Marshal(o)
	require.NoError(t, err)
	return string(out)
}

func labels(o map[string]any) map[string]any {
	md := o["metadata"].(map[string]any)
	l, _ := md["labels"].(map[string]any)
	if l == nil {
		l = map[string]any{}
		md["labels"] = l
	}
	return l
}

const rmwCanary = "canary-rmw-password-51c8e0"

// TestReadModifyWrite: an object read through Gatehouse, changed and written back keeps its
// secrets: the proxy puts the stored values back where the write carries their placeholders,
// whatever the client and the kind of write.
func TestReadModifyWrite(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "rmw")
	tok := token(t, "alice", nil)
	kc := kubeconfig(t, tok)
	admin := env.kube.Clientset

	tests := []struct {
		name  string
		write func(t *testing.T, name string) (string, error)
	}{
		{"kubectl get -o yaml, edit, apply", func(t *testing.T, name string) (string, error) {
			y := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "yaml")
			return kubectlIn(kc, editYAML(t, y, func(o map[string]any) { labels(o)["edited"] = "apply" }), "apply", "-f", "-")
		}},
		{"kubectl apply twice (the last-applied annotation carries the placeholder too)", func(t *testing.T, name string) (string, error) {
			y := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "yaml")
			if out, err := kubectlIn(kc, editYAML(t, y, func(o map[string]any) { labels(o)["edited"] = "first" }), "apply", "-f", "-"); err != nil {
				return out, err
			}
			y = kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "yaml")
			return kubectlIn(kc, editYAML(t, y, func(o map[string]any) { labels(o)["edited"] = "apply" }), "apply", "-f", "-")
		}},
		{"kubectl get -o yaml, edit, replace", func(t *testing.T, name string) (string, error) {
			y := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "yaml")
			return kubectlIn(kc, editYAML(t, y, func(o map[string]any) { labels(o)["edited"] = "apply" }), "replace", "-f", "-")
		}},
		{"kubectl apply --server-side", func(t *testing.T, name string) (string, error) {
			y := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "yaml")
			return kubectlIn(kc, editYAML(t, y, func(o map[string]any) { labels(o)["edited"] = "apply" }), "apply", "--server-side", "--force-conflicts", "-f", "-")
		}},
		{"kubectl patch --type=merge", func(t *testing.T, name string) (string, error) {
			ph := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "jsonpath={.data.password}")
			return kubectlIn(kc, "", "patch", "secret", name, "-n", ns, "--type=merge", "-p", `{"metadata":{"labels":{"edited":"apply"}},"data":{"password":"`+ph+`"}}`)
		}},
		{"kubectl patch --type=json", func(t *testing.T, name string) (string, error) {
			ph := kubectl(t, kc, "get", "secret", name, "-n", ns, "-o", "jsonpath={.data.password}")
			return kubectlIn(kc, "", "patch", "secret", name, "-n", ns, "--type=json", "-p",
				`[{"op":"replace","path":"/data/password","value":"`+ph+`"},{"op":"add","path":"/metadata/labels","value":{"edited":"apply"}}]`)
		}},
		{"client-go Get and Update", func(t *testing.T, name string) (string, error) {
			cs := proxyClientset(t, tok, false)
			s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			require.NotContains(t, string(s.Data["password"]), "canary")
			s.Labels = map[string]string{"edited": "apply"}
			_, err = cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return "", err
		}},
		{"client-go Get and Update in protobuf", func(t *testing.T, name string) (string, error) {
			cs := proxyClientset(t, tok, true)
			s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			s.Labels = map[string]string{"edited": "apply"}
			_, err = cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return "", err
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "rmw-" + string(rune('a'+i))
			_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
				StringData: map[string]string{"password": rmwCanary, "user": "shop"}}, metav1.CreateOptions{})
			require.NoError(t, err)
			out, err := tt.write(t, name)
			require.NoError(t, err, out)
			s, err := admin.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, rmwCanary, string(s.Data["password"]), "the secret is intact")
			assert.Equal(t, "shop", string(s.Data["user"]))
			assert.Equal(t, "apply", s.Labels["edited"], "the change was made")
			for k, v := range s.Annotations {
				assert.NotContains(t, v, "gatehouse:masked:", "annotation %s", k)
				assert.NotContains(t, v, base64.StdEncoding.EncodeToString([]byte("gatehouse:masked:"))[:20], "annotation %s", k)
			}
		})
	}

	t.Run("a Deployment's environment", func(t *testing.T) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "shop", Image: "shop:1", Env: []corev1.EnvVar{{Name: "DB_PASSWORD", Value: rmwCanary}}}}}},
		}}
		_, err := admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		require.NoError(t, err)
		y := kubectl(t, kc, "get", "deployment", "shop", "-n", ns, "-o", "yaml")
		require.NotContains(t, y, rmwCanary)
		out, err := kubectlIn(kc, strings.Replace(y, "image: shop:1", "image: shop:2", 1), "apply", "-f", "-")
		require.NoError(t, err, out)
		got, err := admin.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "shop:2", got.Spec.Template.Spec.Containers[0].Image)
		assert.Equal(t, rmwCanary, got.Spec.Template.Spec.Containers[0].Env[0].Value)
	})
}

// TestMovedPlaceholdersAreRefused: a placeholder written anywhere but where it was read (another
// key, another object, another kind, a field Gatehouse does not mask) is refused, and nothing
// is written.
func TestMovedPlaceholdersAreRefused(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "moved")
	tok := token(t, "alice", nil)
	kc := kubeconfig(t, tok)
	admin := env.kube.Clientset
	_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": rmwCanary}}, metav1.CreateOptions{})
	require.NoError(t, err)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "shop", Image: "shop:1", Env: []corev1.EnvVar{{Name: "DB_PASSWORD", Value: rmwCanary}}}}}},
	}}
	_, err = admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	secretYAML := kubectl(t, kc, "get", "secret", "db", "-n", ns, "-o", "yaml")
	ph := kubectl(t, kc, "get", "secret", "db", "-n", ns, "-o", "jsonpath={.data.password}")
	plain, err := base64.StdEncoding.DecodeString(ph)
	require.NoError(t, err)
	deployYAML := kubectl(t, kc, "get", "deployment", "shop", "-n", ns, "-o", "yaml")

	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"to another key of the Secret", editYAML(t, secretYAML, func(o map[string]any) {
			o["data"].(map[string]any)["copy"] = ph
		}), []string{"apply", "-f", "-"}},
		{"to another Secret", editYAML(t, secretYAML, func(o map[string]any) {
			md := o["metadata"].(map[string]any)
			md["name"] = "stolen"
			for _, k := range []string{"uid", "resourceVersion", "creationTimestamp"} {
				delete(md, k)
			}
		}), []string{"create", "-f", "-"}},
		{"into a ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  password: " + string(plain) + "\n", []string{"create", "-f", "-"}},
		{"to another key by a merge patch", "", []string{"patch", "secret", "db", "--type=merge", "-p", `{"metadata":{"labels":{"leak":"` + strings.TrimPrefix(string(plain), "gatehouse:masked:") + `"}},"data":{"other":"` + ph + `"}}`}},
		{"an environment variable renamed to something not masked", strings.Replace(deployYAML, "name: DB_PASSWORD", "name: GREETING", 1), []string{"apply", "-f", "-"}},
		{"to another container", strings.Replace(deployYAML, "  containers:\n", "  containers:\n      - name: sidecar\n        image: sidecar:1\n        env:\n        - name: DB_PASSWORD\n          value: "+string(plain)+"\n", 1), []string{"apply", "-f", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := kubectlIn(kc, tt.stdin, append(tt.args, "-n", ns)...)
			require.Error(t, err, out)
			assert.Contains(t, out, "masked placeholders", "the refusal says why")
			assert.Contains(t, out, "only where its placeholder was read")
		})
	}
	s, err := admin.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"password": []byte(rmwCanary)}, s.Data, "nothing was written")
	assert.Empty(t, s.Labels)
	_, err = admin.CoreV1().Secrets(ns).Get(ctx, "stolen", metav1.GetOptions{})
	assert.True(t, isNotFound(err))
	_, err = admin.CoreV1().ConfigMaps(ns).Get(ctx, "stolen", metav1.GetOptions{})
	assert.True(t, isNotFound(err))
	got, err := admin.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, got.Spec.Template.Spec.Containers, 1)
	assert.Equal(t, "DB_PASSWORD", got.Spec.Template.Spec.Containers[0].Env[0].Name)
}

// TestRestoreReadsAsTheClient: the proxy reads the stored object as the client, so a client that
// may write a Secret but not read it gets nothing back.
func TestRestoreReadsAsTheClient(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "writer")
	admin := env.kube.Clientset
	_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": rmwCanary}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, args := range [][]string{
		{"create", "role", "secret-writer", "-n", ns, "--verb=update,patch", "--resource=secrets"},
		{"create", "rolebinding", "secret-writer", "-n", ns, "--role=secret-writer", "--user=oidc:writer"},
	} {
		out, err := exec.Command(env.kube.Kubectl, append([]string{"--kubeconfig", env.kube.Kubeconfig}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	// The writer got the placeholder somewhere (from a reader who could see it).
	read, _, err := env.masker.Body("application/json", "", mustJSON(t, mustGetSecret(t, ns, "db")), maskTarget(ns))
	require.NoError(t, err)
	var s map[string]any
	require.NoError(t, json.Unmarshal(read, &s))
	s["metadata"].(map[string]any)["labels"] = map[string]any{"by": "writer"}

	body := mustJSON(t, s)
	cs := proxyClientset(t, token(t, "writer", nil), false)
	res := cs.CoreV1().RESTClient().Put().Namespace(ns).Resource("secrets").Name("db").Body(body).SetHeader("Content-Type", "application/json").Do(ctx)
	require.Error(t, res.Error())
	assert.Contains(t, res.Error().Error(), "masked placeholders")
	got := mustGetSecret(t, ns, "db")
	assert.Equal(t, rmwCanary, string(got.Data["password"]))
	assert.Empty(t, got.Labels)
}

func mustGetSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := env.kube.Clientset.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	s.Kind, s.APIVersion = "Secret", "v1"
	return s
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func maskTarget(ns string) masking.Target {
	return masking.Target{Version: "v1", Resource: "secrets", Namespace: ns}
}
