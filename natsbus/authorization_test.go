package natsbus_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// TestAuthorizationConfig: the block printed for an external nats-server gives every user
// exactly its role's permissions, as nats-server itself parses it.
func TestAuthorizationConfig(t *testing.T) {
	dir := t.TempDir()
	users, err := natsbus.WriteKeys(dir, natsbus.Roles)
	require.NoError(t, err)
	conf, err := natsbus.AuthorizationConfig(users)
	require.NoError(t, err)
	file := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(file, []byte("port: -1\njetstream: {store_dir: "+dir+"}\n"+conf), 0o600))
	opts, err := server.ProcessConfigFile(file)
	require.NoError(t, err)
	require.Len(t, opts.Nkeys, len(natsbus.Roles))
	for i, u := range users {
		want, err := natsbus.Permissions(u.Role)
		require.NoError(t, err)
		got := opts.Nkeys[i]
		assert.Equal(t, u.NKey, got.Nkey)
		require.NotNil(t, got.Permissions, u.Role)
		assert.Equal(t, want.Publish.Allow, got.Permissions.Publish.Allow, "%s publishes", u.Role)
		assert.Equal(t, want.Subscribe.Allow, got.Permissions.Subscribe.Allow, "%s subscribes", u.Role)
	}
}

func TestKeysAndUsersFile(t *testing.T) {
	dir := t.TempDir()
	users, err := natsbus.WriteKeys(dir, natsbus.Roles)
	require.NoError(t, err)
	again, err := natsbus.WriteKeys(dir, natsbus.Roles)
	require.NoError(t, err)
	assert.Equal(t, users, again, "existing seeds are kept")
	info, err := os.Stat(filepath.Join(dir, natsbus.SeedFile(natsbus.RoleProxy)))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "seeds are private")
	data, err := os.ReadFile(filepath.Join(dir, natsbus.UsersFile))
	require.NoError(t, err)
	parsed, err := natsbus.ParseUsers(data)
	require.NoError(t, err)
	assert.Equal(t, users, parsed)

	bad := []struct{ name, doc string }{
		{"an unknown role", "root: [" + users[0].NKey + "]\n"},
		{"a seed instead of a public key", "proxy: [SUAAAA]\n"},
		{"one key for two roles", "proxy: [" + users[1].NKey + "]\nwebhook: [" + users[1].NKey + "]\n"},
		{"an account key", "proxy: [ADQ7Y4J5GWOB4HN3ZTFZ7VXTC7L5LQNEMXOK6XN3MLF6LL4RHMX6XE2U]\n"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsbus.ParseUsers([]byte(tc.doc))
			assert.Error(t, err)
		})
	}
}
