package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

func TestConsoleFlagsValidate(t *testing.T) {
	valid := func() *consoleOptions {
		o := &consoleOptions{authConfig: "authn.yaml", clientID: "gatehouse-console", externalURL: "https://gatehouse.example.com",
			sessionKeyFile: "session.key", approvalKey: approvalKeyOptions{file: "approval.key"}}
		o.endpoint.tls.CertFile, o.endpoint.tls.KeyFile = "tls.crt", "tls.key"
		o.nats = natsbus.Options{Role: natsbus.RoleConsole, URL: "tls://nats:4222", NKeyFile: "console.nkey"}
		return o
	}
	for _, tc := range []struct {
		name   string
		change func(*consoleOptions)
		want   string
	}{
		{"valid", func(*consoleOptions) {}, ""},
		{"no authentication config", func(o *consoleOptions) { o.authConfig = "" }, "--authentication-config is required"},
		{"no client", func(o *consoleOptions) { o.clientID = "" }, "--oidc-client-id is required"},
		{"plain http", func(o *consoleOptions) { o.externalURL = "http://gatehouse.example.com" }, "--external-url must be an https URL"},
		{"no session key", func(o *consoleOptions) { o.sessionKeyFile = "" }, "--session-key-file is required"},
		{"no NATS outside dev mode", func(o *consoleOptions) { o.nats.URL = "" }, "--nats-url is required"},
		{"no approval key outside dev mode", func(o *consoleOptions) { o.approvalKey.file = "" }, "--approval-key-file is required"},
		{"dev mode needs neither key nor NATS", func(o *consoleOptions) {
			o.dev, o.sessionKeyFile, o.approvalKey.file, o.endpoint.tls.CertFile, o.endpoint.tls.KeyFile = true, "", "", "", ""
			o.nats = natsbus.Options{Role: natsbus.RoleConsole}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.change(o)
			err := o.validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConsoleCommandIsRegistered(t *testing.T) {
	cmd := NewCommand(nil, nil)
	c, _, err := cmd.Find([]string{"console"})
	require.NoError(t, err)
	assert.Equal(t, "console", c.Name())
	for _, f := range []string{"authentication-config", "oidc-client-id", "oidc-client-secret-file", "external-url", "session-key-file", "notify-slack-url-file", "notify-webhook-url-file", "viewer-groups"} {
		assert.NotNil(t, c.Flags().Lookup(f), f)
	}
}
