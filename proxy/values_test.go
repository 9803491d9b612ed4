package proxy_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

var placeholderRE = regexp.MustCompile(`gatehouse:masked:[0-9a-f]{12}`)

// TestExecMasksTheSecretsTheSessionRead reads a Secret through the proxy in each shape that
// carries its values (the object, a list, a watch over HTTP and over WebSocket, a Table with
// objects), each in a session of its own, and then prints the values, as mounted files, in an
// exec session of the same session: every value, base64 data, stringData and each line of a
// value of several lines, is masked with the placeholder the client saw, also when it was read
// in the second half of a list large enough to be masked in two halves, and when the list was
// read before and its items were taken from the masker's cache. A session that read
// nothing sees the values: the test can fail.
func TestExecMasksTheSecretsTheSessionRead(t *testing.T) {
	ctx := t.Context()
	ns := env.kube.Namespace(t, "exec-values")
	// Values no detector recognises: only the Secret they came from makes them secret.
	const (
		dataValue   = "plain-data-value-8d2e"
		stringValue = "plain-string-value-3b7a"
		lineOne     = "first-line-of-a-value-5c1"
		lineTwo     = "second-line-of-a-value-9f4"
	)
	values := []string{dataValue, stringValue, lineOne, lineTwo}
	_, err := env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Data:       map[string][]byte{"data-value": []byte(dataValue), "lines": []byte(lineOne + "\n" + lineTwo + "\n")},
		StringData: map[string]string{"string-value": stringValue}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.kubelet.RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "app", MountPath: "/etc/app", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "app", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app"}}}},
		}})
	require.NoError(t, err)

	tok := token(t, "alice", nil)
	list := "/api/v1/namespaces/" + ns + "/secrets"
	httpRead := func(path string, hdr map[string]string) func(t *testing.T, label string) string {
		return func(t *testing.T, label string) string {
			h := map[string]string{"Gatehouse-Session": label}
			for k, v := range hdr {
				h[k] = v
			}
			resp, body := get(t, path, tok, h)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			require.Contains(t, string(body), `"name":"app"`)
			return string(body)
		}
	}
	reads := []struct {
		name string
		read func(t *testing.T, label string) string
	}{
		{"get", httpRead(list+"/app", nil)},
		{"list", httpRead(list, nil)},
		// The same list again: its items come from the masker's cache of masked items, and
		// their values still reach the session.
		{"list read again", httpRead(list, nil)},
		{"watch", httpRead(list+"?watch=true&timeoutSeconds=1", nil)},
		{"table with objects", httpRead(list+"?includeObject=Object", map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})},
		{"websocket watch", func(t *testing.T, label string) string {
			c, _, err := wsDial(t, "/gatehouse/client/session="+label+list+"?watch=true", tok, false)
			require.NoError(t, err)
			defer c.Close()
			return readUntil(t, c, `"name":"app"`)
		}},
	}
	script := "cat /etc/app/data-value; echo; cat /etc/app/string-value; echo; cat /etc/app/lines"
	reads = append(reads, struct {
		name string
		read func(t *testing.T, label string) string
	}{"large list", func(t *testing.T, label string) string {
		// Enough Secrets listed before it that the list is masked in two halves at once, and
		// app, the last item, is in the second.
		for i := range 64 {
			_, err := env.kube.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("a0-filler-%02d", i),
					Annotations: map[string]string{"note": strings.Repeat("filler text ", 400)}},
				Data: map[string][]byte{"filler": []byte(strconv.Itoa(i))}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
		body := httpRead(list, nil)(t, label)
		require.Greater(t, len(body), 256<<10)
		require.Greater(t, strings.Index(body, `"name":"app"`), len(body)/2)
		return body
	}}, struct {
		name string
		read func(t *testing.T, label string) string
	}{"large list read again", httpRead(list, nil)})
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			label := "exec-values-" + trail.NewID()[28:]
			seen := r.read(t, label)
			for _, v := range values {
				require.NotContains(t, seen, v, "the response is masked")
			}
			out := kubectlExec(t, sessionKubeconfig(t, tok, label), ns, "sh", "-c", script)
			for _, v := range values {
				assert.NotContains(t, out, v, "a value of a Secret the session read is masked")
			}
			phs := placeholderRE.FindAllString(out, -1)
			assert.Len(t, phs, 3, "one placeholder per value: %s", out)
			for _, ph := range phs {
				assert.True(t, strings.Contains(seen, ph) || strings.Contains(seen, base64.StdEncoding.EncodeToString([]byte(ph))),
					"the placeholder is one the client saw: %s", ph)
			}
		})
	}
	t.Run("a session that read nothing", func(t *testing.T) {
		out := kubectlExec(t, sessionKubeconfig(t, tok, "exec-values-none-"+trail.NewID()[28:]), ns, "sh", "-c", script)
		for _, v := range values {
			assert.Contains(t, out, v, "the values are the session's own: the test can fail")
		}
	})
}

// TestLargeResponsesFailClosed answers with bodies around MaxResponseBytes, with and without a
// Content-Length (which the proxy sizes its buffer by, and which an upstream could understate):
// a body over the limit is never passed on, masked or not; one at the limit is.
func TestLargeResponsesFailClosed(t *testing.T) {
	const limit = 64 << 10
	secret := func(size int) []byte {
		pad := strings.Repeat("a", size-len(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"big"},"data":{"password":"c2VjcmV0LXZhbHVlLTk5"},"pad":""}`))
		return []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"big"},"data":{"password":"c2VjcmV0LXZhbHVlLTk5"},"pad":"` + pad + `"}`)
	}
	tests := []struct {
		name          string
		size          int
		contentLength string // "" for none (streamed), "actual" or a number
		wantOK        bool
	}{
		{"at the limit, no length", limit, "", true},
		{"at the limit, with length", limit, "actual", true},
		{"over the limit, no length", limit + 1, "", false},
		{"over the limit, with length", limit + 1, "actual", false},
		{"far over the limit, no length", 4 * limit, "", false},
		{"over the limit, length understated", 4 * limit, "100", false},
	}
	tok := token(t, "alice", nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := secret(tc.size)
			require.Len(t, body, tc.size)
			u := newUpstream(t)
			u.discardRequests()
			u.setRespond(func(w http.ResponseWriter, _ *http.Request, _ []byte) bool {
				w.Header().Set("Content-Type", "application/json")
				switch tc.contentLength {
				case "actual":
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				case "":
				default:
					// A length shorter than the body: the HTTP/2 server refuses to send more.
					w.Header().Set("Content-Length", tc.contentLength)
				}
				_, _ = w.Write(body)
				return true
			})
			srv := newStubProxy(t, u, func(o *proxy.Options) { o.MaxResponseBytes = limit })
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/secrets/big", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			assert.NotContains(t, string(got), "c2VjcmV0LXZhbHVlLTk5", "the value never passes")
			if tc.wantOK {
				assert.Equal(t, http.StatusOK, resp.StatusCode, string(got))
				assert.Contains(t, string(got), `"pad":"aaaa`)
				return
			}
			assert.NotEqual(t, http.StatusOK, resp.StatusCode)
			assert.NotContains(t, string(got), `"pad":"aaaa`, "nothing of the body passes")
		})
	}
}
