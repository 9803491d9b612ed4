package app

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// TestNATSClusterFlags: `gatehouse nats` joins a cluster only with routes over mutual TLS
// (outside --dev), and does not provision at start there, where the replicated streams need
// the whole cluster.
func TestNATSClusterFlags(t *testing.T) {
	_, pub, err := natsbus.NewUser()
	require.NoError(t, err)
	base := []string{"--store-dir", t.TempDir(), "--nkey", "proxy=" + pub, "--tls-cert-file", "tls.crt", "--tls-private-key-file", "tls.key"}
	cluster := []string{"--cluster-name", "gatehouse", "--server-name", "nats-0", "--routes", "nats-route://nats-0:6222,nats-route://nats-1:6222"}
	for _, tc := range []struct {
		name      string
		args      []string
		want      string
		provision bool
	}{
		{name: "one server provisions at start", args: base, provision: true},
		{name: "a cluster server", args: slices.Concat(base, cluster, []string{"--cluster-ca-file", "ca.crt"})},
		{name: "routes without mutual TLS", args: slices.Concat(base, cluster), want: "--cluster-ca-file is required"},
		{name: "--dev routes in the clear", args: slices.Concat(base, cluster, []string{"--dev"})},
		{name: "provisioning at start asked for", args: slices.Concat(base, cluster, []string{"--cluster-ca-file", "ca.crt", "--provision"}), want: "gatehouse nats provision --replicas"},
		{name: "no routes", args: slices.Concat(base, []string{"--cluster-name", "gatehouse", "--cluster-ca-file", "ca.crt"}), want: "--routes is required"},
		{name: "routes without a cluster", args: slices.Concat(base, []string{"--routes", "nats-route://nats-1:6222"}), want: "need --cluster-name"},
		{name: "cluster port on the client port", args: slices.Concat(base, cluster, []string{"--cluster-ca-file", "ca.crt", "--cluster-port", "4222"}), want: "--cluster-port"},
		{name: "replicas", args: slices.Concat(base, []string{"--replicas", "7"}), want: "--replicas must be between 1 and 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, newNATSCommand, tc.args...)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.provision, o.provision)
		})
	}
}
