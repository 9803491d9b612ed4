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
