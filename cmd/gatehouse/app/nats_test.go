package app

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestStandaloneNATS runs `gatehouse nats keys`, then `gatehouse nats` with those identities
// and TLS, and connects as components: each gets in with its own key, and the server made the
// streams and the bucket at start. `gatehouse nats provision` runs as the administrator, and
// `gatehouse nats authorization` prints the same identities.
func TestStandaloneNATS(t *testing.T) {
	dir := t.TempDir()
	run := func(ctx context.Context, args ...string) (string, error) {
		// NATS' callbacks log after a connection closes, while the output is read.
		out := &testbed.SyncBuffer{}
		cmd := NewCommand(out, out)
		cmd.SetArgs(append([]string{"--log-format", "text", "--log-level", "error"}, args...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	keys := filepath.Join(dir, "keys")
	out, err := run(t.Context(), "nats", "keys", "--dir", keys)
	require.NoError(t, err, out)
	for _, r := range natsbus.Roles {
		assert.Contains(t, out, string(r))
	}
	certPEM, keyPEM, err := serving.SelfSignedPEM("localhost", "127.0.0.1")
	require.NoError(t, err)
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(cert, certPEM, 0o600))
	require.NoError(t, os.WriteFile(key, keyPEM, 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, "nats", "--store-dir", filepath.Join(dir, "js"), "--port", port,
			"--users-file", filepath.Join(keys, natsbus.UsersFile), "--tls-cert-file", cert, "--tls-private-key-file", key)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	url := "tls://127.0.0.1:" + port
	for _, role := range []natsbus.Role{natsbus.RoleProxy, natsbus.RoleWebhook, natsbus.RoleEnricher, natsbus.RoleConsole} {
		c, err := natsbus.Connect(t.Context(), natsbus.Options{URL: url, Role: role, CAFile: cert, NKeyFile: filepath.Join(keys, natsbus.SeedFile(role))})
		require.NoError(t, err)
		wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
		require.NoError(t, c.WaitReady(wctx), role)
		wcancel()
		js, err := c.JetStream()
		require.NoError(t, err)
		require.NoError(t, natsbus.CheckStreams(t.Context(), js, role), "%s: the server provisioned at start", role)
		c.Close()
	}
	stranger, _, err := natsbus.NewUser()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stranger.nkey"), stranger, 0o600))
	c, err := natsbus.Connect(t.Context(), natsbus.Options{URL: url, Role: natsbus.RoleProxy, CAFile: cert, NKeyFile: filepath.Join(dir, "stranger.nkey")})
	require.NoError(t, err, "a component starts while NATS refuses it")
	wctx, wcancel := context.WithTimeout(t.Context(), 2*time.Second)
	err = c.WaitReady(wctx)
	wcancel()
	require.Error(t, err, "an unknown key is refused")
	assert.Contains(t, strings.ToLower(err.Error()), "authorization", "readiness says why")
	c.Close()

	out, err = run(t.Context(), "nats", "provision", "--nats-url", url, "--nats-ca-file", cert,
		"--nats-nkey-file", filepath.Join(keys, natsbus.SeedFile(natsbus.RoleAdmin)), "--timeout", "30s")
	require.NoError(t, err, out)
	assert.Contains(t, out, trail.StreamTrail)
	out, err = run(t.Context(), "nats", "provision", "--nats-url", url, "--nats-ca-file", cert,
		"--nats-nkey-file", filepath.Join(keys, natsbus.SeedFile(natsbus.RoleProxy)), "--timeout", "3s")
	require.Error(t, err, "a component's identity cannot provision: %s", out)

	out, err = run(t.Context(), "nats", "authorization", "--users-file", filepath.Join(keys, natsbus.UsersFile))
	require.NoError(t, err, out)
	assert.Contains(t, out, "authorization {")
	assert.Equal(t, len(natsbus.Roles), strings.Count(out, "nkey:"))
	out, err = run(t.Context(), "nats", "authorization", "--format", "json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"console": {`)
}
