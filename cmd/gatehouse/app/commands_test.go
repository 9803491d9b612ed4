package app

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// parse runs the command newCmd builds with args and a run that keeps the options it gets: the
// validated options, or the error that stopped the command before run.
func parse[O any](t *testing.T, newCmd func(*globals, func(context.Context, *slog.Logger, O) error) *cobra.Command, args ...string) (O, error) {
	t.Helper()
	var got O
	ran := false
	cmd := newCmd(&globals{logger: slog.New(slog.DiscardHandler)}, func(_ context.Context, _ *slog.Logger, o O) error {
		got, ran = o, true
		return nil
	})
	cmd.SetArgs(args)
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	if err == nil {
		require.True(t, ran, "a command without error ran")
	}
	return got, err
}

// without returns args without the --name=value and --name arguments of names.
func without(args []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		name, _, _ := strings.Cut(a, "=")
		return slices.Contains(names, strings.TrimPrefix(name, "--"))
	})
}

// serverCommands are the long-running commands that use NATS, with the arguments of a valid
// production command line and of a valid development one. approvalKey says whether the
// command holds the approval key (--approval-key-file).
var serverCommands = []struct {
	name        string
	parse       func(*testing.T, ...string) error
	prod, dev   []string
	approvalKey bool
}{
	{
		name: "proxy",
		parse: func(t *testing.T, args ...string) error {
			_, err := parse(t, newProxyCommand, args...)
			return err
		},
		prod: []string{"--authentication-config=authn.yaml", "--nats-url=tls://nats:4222", "--nats-nkey-file=proxy.nkey", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key", "--masking-key-file=key"},
		dev:  []string{"--dev", "--authentication-config=authn.yaml"},
	},
	{
		name: "webhook",
		parse: func(t *testing.T, args ...string) error {
			_, err := parse(t, newWebhookCommand, args...)
			return err
		},
		prod: []string{"--nats-url=tls://nats:4222", "--nats-nkey-file=webhook.nkey", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key", "--masking-key-file=key",
			"--approval-key-file=approval.key"},
		dev:         []string{"--dev"},
		approvalKey: true,
	},
	{
		name: "enricher",
		parse: func(t *testing.T, args ...string) error {
			_, err := parse(t, newEnricherCommand, args...)
			return err
		},
		prod: []string{"--nats-url=tls://nats:4222", "--nats-nkey-file=enricher.nkey", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key", "--client-ca-file=ca.crt", "--spool-dir=/var/lib/gatehouse/spool"},
		dev:  []string{"--dev"},
	},
	{
		name: "console",
		parse: func(t *testing.T, args ...string) error {
			_, err := parse(t, newConsoleCommand, args...)
			return err
		},
		prod: []string{"--authentication-config=authn.yaml", "--oidc-client-id=gatehouse-console", "--external-url=https://gatehouse.example.com",
			"--session-key-file=session.key", "--nats-url=tls://nats:4222", "--nats-nkey-file=console.nkey", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key",
			"--approval-key-file=approval.key"},
		dev:         []string{"--dev", "--authentication-config=authn.yaml", "--oidc-client-id=gatehouse-console", "--external-url=https://localhost:8443"},
		approvalKey: true,
	},
}

// TestDevelopmentModeIsExplicit checks the one rule of every command that uses NATS: without
// --dev it needs --nats-url and a serving certificate; --dev alone lets it start an embedded NATS
// server and a self-signed certificate, and does not override what is configured.
func TestDevelopmentModeIsExplicit(t *testing.T) {
	for _, c := range serverCommands {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"production", c.prod, ""},
				{"no NATS URL", without(c.prod, "nats-url"), "--nats-url is required"},
				{"no serving certificate", without(c.prod, "tls-cert-file", "tls-private-key-file"), "a serving certificate is required"},
				{"development", c.dev, ""},
				{"development with NATS", append(slices.Clone(c.dev), "--nats-url=nats://127.0.0.1:4222"), ""},
				{"development is not implied", without(c.dev, "dev"), "--nats-url is required"},
				{"NATS files without a URL", append(slices.Clone(c.dev), "--nats-ca-file=ca.crt"), "need --nats-url"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					err := c.parse(t, tc.args...)
					if tc.want == "" {
						require.NoError(t, err)
						return
					}
					require.ErrorContains(t, err, tc.want)
				})
			}
		})
	}
}

func TestProxyFlags(t *testing.T) {
	prod := serverCommands[0].prod
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no authentication config", without(prod, "authentication-config"), "--authentication-config is required"},
		{"unrecorded requests allowed", append(slices.Clone(prod), "--unrecorded-requests=Allow"), ""},
		{"unrecorded requests garbled", append(slices.Clone(prod), "--unrecorded-requests=maybe"), "--unrecorded-requests must be Refuse or Allow"},
		{"self-managed certificate without a ConfigMap", append(without(prod, "tls-cert-file", "tls-private-key-file"),
			"--self-managed-ca-secret=gatehouse/proxy-ca", "--self-managed-dns-names=proxy"), "needs --self-managed-ca-configmap"},
		{"self-managed certificate", append(without(prod, "tls-cert-file", "tls-private-key-file"),
			"--self-managed-ca-secret=gatehouse/proxy-ca", "--self-managed-dns-names=proxy", "--self-managed-ca-configmap=gatehouse/proxy-ca"), ""},
		{"arguments", append(slices.Clone(prod), "extra"), "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, newProxyCommand, tc.args...)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "tls://nats:4222", o.nats.URL)
			assert.Equal(t, ":8081", o.server.healthAddress, "health and metrics on one address")
			assert.Equal(t, "0.0.0.0:8443", o.endpoint.address())
		})
	}
}

func TestWebhookFlags(t *testing.T) {
	prod := serverCommands[1].prod
	noTLS := without(prod, "tls-cert-file", "tls-private-key-file")
	for _, tc := range []struct {
		name string
		args []string
		want string
		// check, when set, looks at the validated options.
		check func(*testing.T, *webhookOptions)
	}{
		{"cert-manager's Secret", append(slices.Clone(noTLS), "--cert-dir=/etc/gatehouse/tls"), "", func(t *testing.T, o *webhookOptions) {
			assert.Equal(t, "/etc/gatehouse/tls/tls.crt", o.endpoint.tls.CertFile)
			assert.Equal(t, "/etc/gatehouse/tls/tls.key", o.endpoint.tls.KeyFile)
			assert.Equal(t, "0.0.0.0:9443", o.endpoint.address())
		}},
		{"cert-dir and files", append(slices.Clone(prod), "--cert-dir=/etc/gatehouse/tls"), "are alternatives", nil},
		{"bad port", append(slices.Clone(prod), "--secure-port=0"), "--secure-port must be between 1 and 65535", nil},
		{"decisions packed by default", slices.Clone(prod), "", func(t *testing.T, o *webhookOptions) {
			assert.Equal(t, trail.PackedRecords, o.recordsPerMessage)
		}},
		{"one decision per message", append(slices.Clone(prod), "--trail-records-per-message=1"), "", func(t *testing.T, o *webhookOptions) {
			assert.Equal(t, 1, o.recordsPerMessage)
		}},
		{"no decision per message", append(slices.Clone(prod), "--trail-records-per-message=0"), "--trail-records-per-message must be at least 1, not 0", nil},
		{"negative decisions per message", append(slices.Clone(prod), "--trail-records-per-message=-1"), "--trail-records-per-message must be at least 1, not -1", nil},
		{"missing policy file", append(slices.Clone(prod), "--policy-file=/nonexistent/policies.yaml"), "--policy-file", nil},
		{"self-managed without registration", append(slices.Clone(noTLS), "--self-managed-ca-secret=gatehouse/webhook-ca", "--self-managed-dns-names=webhook"),
			"needs --webhook-configurations or --self-managed-ca-configmap", nil},
		{"self-managed and registered", append(slices.Clone(noTLS), "--self-managed-ca-secret=gatehouse/webhook-ca", "--self-managed-dns-names=webhook",
			"--webhook-configurations=configurations.yaml"), "", nil},
		{"self-managed and files", append(slices.Clone(prod), "--self-managed-ca-secret=gatehouse/webhook-ca", "--self-managed-dns-names=webhook",
			"--webhook-configurations=configurations.yaml"), "are alternatives", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, newWebhookCommand, tc.args...)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestEnricherFlags(t *testing.T) {
	prod := serverCommands[2].prod
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no client CA", without(prod, "client-ca-file"), "--client-ca-file is required"},
		{"no spool", without(prod, "spool-dir"), "--spool-dir is required"},
		{"memory limit size", append(slices.Clone(prod), "--memory-limit=900Mi"), ""},
		{"memory limit off", append(slices.Clone(prod), "--memory-limit=off"), ""},
		{"memory limit garbage", append(slices.Clone(prod), "--memory-limit=lots"), "--memory-limit must be"},
		{"memory limit negative", append(slices.Clone(prod), "--memory-limit=-1Gi"), "--memory-limit must be"},
		{"retention per table", append(slices.Clone(prod), "--retention=audit_events=730,session_recordings=-1"), ""},
		{"retention of a view", append(slices.Clone(prod), "--retention=trail=30"), `no table "trail" has a retention`},
		{"roles", append(slices.Clone(prod), "--clickhouse-roles=on", "--clickhouse-auditor-role=readers"), ""},
		{"roles garbage", append(slices.Clone(prod), "--clickhouse-roles=yes"), "roles must be off, auto or on"},
		{"keep rows forever", append(slices.Clone(prod), "--retention-days=-1"), ""},
		{"keep no rows", append(slices.Clone(prod), "--retention-days=0"), "--retention-days must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, newEnricherCommand, tc.args...)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestConsoleFlags(t *testing.T) {
	prod := serverCommands[3].prod
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no authentication config", without(prod, "authentication-config"), "--authentication-config is required"},
		{"no client", without(prod, "oidc-client-id"), "--oidc-client-id is required"},
		{"plain http", append(without(prod, "external-url"), "--external-url=http://gatehouse.example.com"), "--external-url must be an https URL"},
		{"no session key", without(prod, "session-key-file"), "--session-key-file is required"},
		{"no approval key", without(prod, "approval-key-file"), "--approval-key-file is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, newConsoleCommand, tc.args...)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestNATSFlags: outside --dev, `gatehouse nats` refuses to serve without the components'
// identities or without TLS; with --dev and no identities it serves loopback only, unless told
// otherwise.
func TestNATSFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"as deployed", []string{"--store-dir=/d", "--bind-address=0.0.0.0", "--nkey=proxy=" + testNKey, "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key"}, ""},
		{"no identities", []string{"--store-dir=/d", "--bind-address=0.0.0.0", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key"}, "only --dev serves without authentication"},
		{"no TLS", []string{"--store-dir=/d", "--bind-address=0.0.0.0", "--nkey=proxy=" + testNKey}, "components reach NATS over TLS"},
		{"a seed instead of a public key", []string{"--store-dir=/d", "--nkey=proxy=SUAB", "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key"}, "not the public key"},
		{"an unknown role", []string{"--store-dir=/d", "--nkey=root=" + testNKey, "--tls-cert-file=tls.crt", "--tls-private-key-file=tls.key"}, "unknown role"},
		{"development is not implied", []string{"--store-dir=/d"}, "only --dev serves without authentication"},
		{"dev, loopback, no authentication", []string{"--dev", "--store-dir=/d"}, ""},
		{"dev, remote without authentication", []string{"--dev", "--store-dir=/d", "--bind-address=0.0.0.0"}, "no authentication"},
		{"dev, remote, explicitly", []string{"--dev", "--store-dir=/d", "--bind-address=0.0.0.0", "--allow-unauthenticated-remote-clients"}, ""},
		{"bad port", []string{"--dev", "--store-dir=/d", "--port=0"}, "--port"},
		{"not an IP", []string{"--dev", "--store-dir=/d", "--bind-address=localhost"}, "--bind-address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, newNATSCommand, tc.args...)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "/d", o.storeDir)
		})
	}
}

// testNKey is a public user NKey.
const testNKey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

func TestCommandsAreRegistered(t *testing.T) {
	root := NewCommand(nil, nil)
	for name, flags := range map[string][]string{
		"proxy":    {"dev", "nats-url", "health-bind-address", "shutdown-grace-period", "tls-cert-file", "self-managed-ca-secret", "authentication-config", "nats-nkey-file", "console-url"},
		"webhook":  {"dev", "nats-url", "health-bind-address", "shutdown-grace-period", "cert-dir", "self-managed-ca-secret", "webhook-configurations", "nats-nkey-file", "approval-key-file"},
		"enricher": {"dev", "nats-url", "health-bind-address", "shutdown-grace-period", "client-ca-file", "spool-dir", "nats-nkey-file"},
		"console":  {"dev", "nats-url", "health-bind-address", "shutdown-grace-period", "oidc-client-id", "oidc-client-secret-file", "external-url", "session-key-file", "notify-slack-url-file", "notify-webhook-url-file", "viewer-groups", "nats-nkey-file", "approval-key-file"},
	} {
		c, _, err := root.Find([]string{name})
		require.NoError(t, err)
		assert.Equal(t, name, c.Name())
		for _, f := range flags {
			assert.NotNil(t, c.Flags().Lookup(f), "%s --%s", name, f)
		}
	}
}
