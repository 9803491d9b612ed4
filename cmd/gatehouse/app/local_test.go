package app

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
)

// testNKey is a public user NKey.
const testNKey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

func TestNATSOptions(t *testing.T) {
	tests := []struct {
		name string
		o    natsOptions
		err  string
	}{
		{"as deployed", natsOptions{bindAddress: "0.0.0.0", port: 4222, storeDir: "/d", users: natsUsers{nkeys: []string{"proxy=" + testNKey}},
			certFile: "tls.crt", keyFile: "tls.key"}, ""},
		{"no identities", natsOptions{bindAddress: "0.0.0.0", port: 4222, storeDir: "/d", certFile: "tls.crt", keyFile: "tls.key"}, "identities are required"},
		{"no TLS", natsOptions{bindAddress: "0.0.0.0", port: 4222, storeDir: "/d", users: natsUsers{nkeys: []string{"proxy=" + testNKey}}}, "--tls-cert-file"},
		{"a seed instead of a public key", natsOptions{bindAddress: "127.0.0.1", port: 4222, storeDir: "/d", users: natsUsers{nkeys: []string{"proxy=SUAB"}},
			certFile: "tls.crt", keyFile: "tls.key"}, "not the public key"},
		{"an unknown role", natsOptions{bindAddress: "127.0.0.1", port: 4222, storeDir: "/d", users: natsUsers{nkeys: []string{"root=" + testNKey}},
			certFile: "tls.crt", keyFile: "tls.key"}, "unknown role"},
		{"dev, loopback, no authentication", natsOptions{dev: true, bindAddress: "127.0.0.1", port: 4222, storeDir: "/d"}, ""},
		{"dev, remote without authentication", natsOptions{dev: true, bindAddress: "0.0.0.0", port: 4222, storeDir: "/d"}, "no authentication"},
		{"dev, remote, explicitly", natsOptions{dev: true, bindAddress: "0.0.0.0", port: 4222, storeDir: "/d", allowRemote: true}, ""},
		{"bad port", natsOptions{dev: true, bindAddress: "127.0.0.1", port: 0}, "--port"},
		{"not an IP", natsOptions{dev: true, bindAddress: "localhost", port: 4222}, "--bind-address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.validate()
			if tt.err == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.err)
			}
		})
	}
}

// TestLoginKubeconfig checks the kubeconfig `gatehouse login` writes: the exec credential
// plugin, and with --session the server URL with the client-options prefix of the proxy.
func TestLoginKubeconfig(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	caFile := filepath.Join(dir, "issuer-ca.crt")
	o := &loginOptions{server: "https://gh.example.com:8443", issuer: "https://login.example.com", clientID: "gatehouse",
		issuerCAFile: caFile, session: "fix-42", kubeconfig: kc}
	name, path, err := writeLoginKubeconfig(o, []byte("CA"), "/usr/local/bin/gatehouse")
	require.NoError(t, err)
	assert.Equal(t, "gatehouse-fix-42", name)
	assert.Equal(t, kc, path)

	// A second login without a session adds a context and keeps the first.
	o2 := *o
	o2.session = ""
	_, _, err = writeLoginKubeconfig(&o2, []byte("CA"), "/usr/local/bin/gatehouse")
	require.NoError(t, err)

	cfg, err := clientcmd.LoadFromFile(kc)
	require.NoError(t, err)
	assert.Equal(t, "gatehouse", cfg.CurrentContext)
	assert.Equal(t, "https://gh.example.com:8443/gatehouse/client/session=fix-42", cfg.Clusters["gatehouse-fix-42"].Server)
	assert.Equal(t, "https://gh.example.com:8443", cfg.Clusters["gatehouse"].Server)
	assert.Equal(t, []byte("CA"), cfg.Clusters["gatehouse"].CertificateAuthorityData)
	user := cfg.AuthInfos[cfg.Contexts["gatehouse-fix-42"].AuthInfo]
	require.NotNil(t, user.Exec)
	assert.Equal(t, "client.authentication.k8s.io/v1", user.Exec.APIVersion)
	assert.Equal(t, "/usr/local/bin/gatehouse", user.Exec.Command)
	assert.Equal(t, []string{"credential", "--issuer", "https://login.example.com", "--client-id", "gatehouse", "--issuer-certificate-authority", caFile}, user.Exec.Args)
	assert.Empty(t, user.Token, "no token is written into the kubeconfig")
}

func TestLoginValidation(t *testing.T) {
	for _, o := range []loginOptions{
		{issuer: "https://i"},
		{server: "https://s"},
		{server: "http://s", issuer: "https://i"},
		{server: "https://s", issuer: "https://i", session: "a/b"},
		{server: "https://s", issuer: "https://i", session: "-leading-dash"},
		{server: "https://s", issuer: "https://i", session: strings.Repeat("x", 65)},
	} {
		assert.Error(t, o.validate(), "%+v", o)
	}
}

func TestDevTokenNeedsARunningDev(t *testing.T) {
	cmd := NewCommand(&bytes.Buffer{}, &bytes.Buffer{})
	cmd.SetArgs([]string{"dev", "token", "agent", "--dir", t.TempDir()})
	err := cmd.Execute()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gatehouse dev is not running in")
}

func TestCredentialWithoutLogin(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("KUBERNETES_EXEC_INFO", `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`)
	var out bytes.Buffer
	cmd := NewCommand(&out, &bytes.Buffer{})
	cmd.SetArgs([]string{"credential", "--issuer", "https://127.0.0.1:1"})
	err := cmd.Execute()
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "gatehouse login"), err.Error())
	assert.False(t, json.Valid(out.Bytes()) && out.Len() > 0, "no credential printed")
}
