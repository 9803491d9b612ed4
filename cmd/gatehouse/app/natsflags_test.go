package app

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryCommandNeedsNATSCredentialsAndTLS: outside --dev, every component that connects to
// NATS needs its URL, its own credentials and TLS; an empty --nats-url never means an embedded
// server; the webhook and the console need the approval key.
func TestEveryCommandNeedsNATSCredentialsAndTLS(t *testing.T) {
	for _, c := range serverCommands {
		base := without(c.prod, "nats-url", "nats-nkey-file")
		cases := []struct {
			name string
			args []string
			want string
		}{
			{"as deployed", c.prod, ""},
			{"with a CA and mutual TLS", append(slices.Clone(base), "--nats-url=nats://nats:4222", "--nats-ca-file=ca.crt",
				"--nats-nkey-file=k", "--nats-cert-file=c.crt", "--nats-key-file=c.key"), ""},
			{"with a creds file", append(slices.Clone(base), "--nats-url=tls://nats:4222", "--nats-creds-file=c.creds"), ""},
			{"an NKey and a creds file", append(slices.Clone(c.prod), "--nats-creds-file=c.creds"), "are alternatives"},
			{"no --nats-url is not an embedded server", append(slices.Clone(base), "--nats-nkey-file=k"), "--nats-url is required"},
			{"no credentials", append(slices.Clone(base), "--nats-url=tls://nats:4222"), "credentials are required"},
			{"no TLS", append(slices.Clone(base), "--nats-url=nats://nats:4222", "--nats-nkey-file=k"), "over TLS"},
			{"a client certificate without its key", append(slices.Clone(c.prod), "--nats-cert-file=c.crt"), "go together"},
			{"--dev: the embedded server", c.dev, ""},
		}
		if c.approvalKey {
			cases = append(cases, struct {
				name string
				args []string
				want string
			}{"no approval key", without(c.prod, "approval-key-file"), "--approval-key-file is required"})
		}
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				err := c.parse(t, tc.args...)
				if tc.want == "" {
					require.NoError(t, err)
					return
				}
				require.ErrorContains(t, err, tc.want)
			})
		}
	}
}
