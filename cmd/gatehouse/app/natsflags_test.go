package app

import (
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestEveryCommandNeedsNATSCredentialsAndTLS: outside --dev, every component that connects to
// NATS needs its URL, its own credentials and TLS; an empty --nats-url never means an embedded
// server; the webhook and the console need the approval key.
func TestEveryCommandNeedsNATSCredentialsAndTLS(t *testing.T) {
	commands := []struct {
		name        string
		new         func() *cobra.Command
		base        []string // the command's other flags, as deployed
		approvalKey bool
	}{
		{"proxy", func() *cobra.Command { return newProxyCommand(&globals{}) },
			[]string{"--authentication-config", "authn.yaml", "--tls-cert-file", "c.crt", "--tls-private-key-file", "c.key"}, false},
		{"webhook", func() *cobra.Command { return newWebhookCommand(&globals{}) },
			[]string{"--cert-dir", "/certs"}, true},
		{"enricher", func() *cobra.Command { return newEnricherCommand(&globals{}) },
			[]string{"--tls-cert-file", "c.crt", "--tls-private-key-file", "c.key", "--client-ca-file", "ca.crt", "--spool-dir", "/spool"}, false},
		{"console", func() *cobra.Command { return newConsoleCommand(&globals{}) },
			[]string{"--authentication-config", "authn.yaml", "--oidc-client-id", "c", "--external-url", "https://console.example.com",
				"--session-key-file", "s.key", "--tls-cert-file", "c.crt", "--tls-private-key-file", "c.key"}, true},
	}
	for _, c := range commands {
		key := []string{}
		if c.approvalKey {
			key = []string{"--approval-key-file", "approval.key"}
		}
		nats := []string{"--nats-url", "tls://nats:4222", "--nats-nkey-file", c.name + ".nkey"}
		cases := []struct {
			name string
			args []string
			want string
		}{
			{"as deployed", cat(c.base, nats, key), ""},
			{"with a CA and mutual TLS", cat(c.base, key, []string{"--nats-url", "nats://nats:4222", "--nats-ca-file", "ca.crt",
				"--nats-nkey-file", "k", "--nats-cert-file", "c.crt", "--nats-key-file", "c.key"}), ""},
			{"with a creds file", cat(c.base, key, []string{"--nats-url", "tls://nats:4222", "--nats-creds-file", "c.creds"}), ""},
			{"no --nats-url is not an embedded server", cat(c.base, key, []string{"--nats-nkey-file", "k"}), "--nats-url is required"},
			{"no credentials", cat(c.base, key, []string{"--nats-url", "tls://nats:4222"}), "credentials are required"},
			{"no TLS", cat(c.base, key, []string{"--nats-url", "nats://nats:4222", "--nats-nkey-file", "k"}), "over TLS"},
			{"--dev: the embedded server", cat(c.base, []string{"--dev"}), ""},
		}
		if c.approvalKey {
			cases = append(cases, struct {
				name string
				args []string
				want string
			}{"no approval key", cat(c.base, nats), "--approval-key-file is required"})
		}
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				cmd := c.new()
				require.NoError(t, cmd.ParseFlags(tc.args))
				err := cmd.PreRunE(cmd, nil)
				if tc.want == "" {
					require.NoError(t, err)
					return
				}
				require.ErrorContains(t, err, tc.want)
			})
		}
	}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
