package devnode

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNodeRegistersAndBuildsContainers(t *testing.T) {
	ctx := t.Context()
	optional := true
	cs := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Data: map[string][]byte{"password": []byte("s3cr3t"), "user": []byte("app")}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "shop"}, Data: map[string]string{"MODE": "prod"}},
	)
	n, err := Start(ctx, Options{Client: cs, NodeName: "n1"})
	require.NoError(t, err)
	defer n.Close()
	node, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(n.Port()), node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	assert.Equal(t, []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}, node.Status.Addresses, "loopback only: no name kube-apiserver would resolve")

	pod, err := n.RunPod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: "nginx", WorkingDir: "/srv",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				Env: []corev1.EnvVar{
					{Name: "DB_USER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "user"}}},
					{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "db", MountPath: "/etc/db"}, {Name: "host", MountPath: "/host"}, {Name: "scratch", MountPath: "/scratch"}, {Name: "gone", MountPath: "/gone"}},
			}},
			Volumes: []corev1.Volume{
				{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "gone", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "missing", Optional: &optional}}},
			},
		},
	})
	require.NoError(t, err)
	assert.Equal(t, corev1.PodRunning, pod.Status.Phase)

	c, err := n.container(ctx, "shop", "web", "main")
	require.NoError(t, err)
	out, errOut, err := run(t, c, "", "sh", "-c", `echo "$MODE $DB_USER $POD $PWD"; cat /etc/db/password; echo; ls /host | wc -l; echo x > /scratch/f && cat /scratch/f; echo y > /host/f`)
	require.Error(t, err)
	assert.Equal(t, "prod app web /srv\ns3cr3t\n0\nx\n", out)
	assert.Contains(t, errOut, "read-only", "a hostPath volume is an empty read-only directory")

	_, err = n.container(ctx, "shop", "web", "sidecar")
	assert.ErrorContains(t, err, `container "sidecar" not found`)
}

// TestNodeRequiresKubeAPIServersCertificate: with ClientCAs, nothing reaches a pod's shell
// without kube-apiserver's kubelet client certificate.
func TestNodeRequiresKubeAPIServersCertificate(t *testing.T) {
	ca, err := newTestCA()
	require.NoError(t, err)
	n, err := Start(t.Context(), Options{Client: fake.NewClientset(), ClientCAs: ca})
	require.NoError(t, err)
	defer n.Close()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the attacker does not care
	_, err = hc.Post("https://"+n.Addr()+"/exec/shop/web/main?command=sh&input=1&output=1", "", nil)
	require.Error(t, err, "a caller without a client certificate is refused")
}

func TestServePodPort(t *testing.T) {
	tests := []struct {
		name, send string
		check      func(t *testing.T, reply string)
	}{
		{"echo", "ping\n", func(t *testing.T, reply string) { assert.Equal(t, "ping\n", reply) }},
		{"http", "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", func(t *testing.T, reply string) {
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(reply)), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, string(body), "Hello from shop/web")
			assert.Contains(t, string(body), "GET /hello")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- ServePodPort(context.Background(), "shop", "web", 80, server) }()
			go func() { _, _ = client.Write([]byte(tt.send)) }()
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			buf := make([]byte, 4096)
			for {
				k, err := client.Read(buf)
				got = append(got, buf[:k]...)
				if err != nil || (tt.name == "echo" && len(got) >= len(tt.send)) {
					break
				}
			}
			_ = client.Close()
			<-done
			tt.check(t, string(got))
		})
	}
}

func newTestCA() (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return pool, nil
}
