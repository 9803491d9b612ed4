package devenv

import (
	"net"
	"strconv"
)

// The command lines of the parts `gatehouse dev` runs as child processes of its own binary.
// This file is the one place that knows their flags: when a component's flags change, change
// them here. Every part gets its certificates, its NATS identity (its own NKey, over TLS) and its
// keys explicitly, so none runs with --dev: they run as configured in production.

// natsConn is how a component reaches the development NATS: the URL, the CA of the server's
// certificate and the component's seed file.
type natsConn struct {
	url, caFile, nkeyFile string
}

func (n natsConn) args() []string {
	return []string{"--nats-url", n.url, "--nats-ca-file", n.caFile, "--nats-nkey-file", n.nkeyFile}
}

func clickhouseArgs(library, dataDir string, tcpPort, httpPort int) []string {
	return []string{"clickhouse", "--log-format", "text",
		"--library", library,
		"--data-dir", dataDir,
		"--listen-host", "127.0.0.1",
		"--tcp-port", strconv.Itoa(tcpPort),
		"--http-port", strconv.Itoa(httpPort),
	}
}

type enricherParams struct {
	addr, health                string // host:port of the audit intake (HTTPS) and of /readyz
	certFile, keyFile           string
	clientCAFile, spoolDir      string
	nats                        natsConn
	clickhouseAddr              string
	maskingKeyFile, gatewayUser string
}

func enricherArgs(p enricherParams) []string {
	host, port, _ := net.SplitHostPort(p.addr)
	return append([]string{"enricher", "--log-format", "text",
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", p.certFile, "--tls-private-key-file", p.keyFile,
		"--client-ca-file", p.clientCAFile,
		"--spool-dir", p.spoolDir,
		"--clickhouse-addr", p.clickhouseAddr,
		"--masking-key-file", p.maskingKeyFile,
		"--gateway-users", p.gatewayUser,
		"--batch-max-wait", "500ms",
		"--health-bind-address", p.health,
	}, p.nats.args()...)
}

type webhookParams struct {
	kubeconfig, host, certDir       string
	port                            int
	nats                            natsConn
	maskingKeyFile, approvalKeyFile string
	health, consoleURL              string
}

func webhookArgs(p webhookParams) []string {
	return append([]string{"webhook", "--log-format", "text",
		"--kubeconfig", p.kubeconfig,
		"--bind-address", p.host, "--secure-port", strconv.Itoa(p.port),
		"--cert-dir", p.certDir,
		"--masking-key-file", p.maskingKeyFile,
		"--approval-key-file", p.approvalKeyFile,
		"--approvals-url", p.consoleURL,
		"--health-bind-address", p.health,
	}, p.nats.args()...)
}

type proxyParams struct {
	kubeconfig, authConfig string
	addr, health           string
	certFile, keyFile      string
	nats                   natsConn
	maskingKeyFile         string
	approvalTimeout        string
	consoleURL             string
}

func proxyArgs(p proxyParams) []string {
	host, port, _ := net.SplitHostPort(p.addr)
	return append([]string{"proxy", "--log-format", "text",
		"--kubeconfig", p.kubeconfig,
		"--authentication-config", p.authConfig,
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", p.certFile, "--tls-private-key-file", p.keyFile,
		"--masking-key-file", p.maskingKeyFile,
		"--approval-timeout", p.approvalTimeout,
		"--console-url", p.consoleURL,
		"--health-bind-address", p.health,
	}, p.nats.args()...)
}

type consoleParams struct {
	authConfig, clientID, externalURL string
	addr, health                      string
	certFile, keyFile                 string
	nats                              natsConn
	maskingKeyFile, approvalKeyFile   string
	sessionKeyFile                    string
	// clickhouseAddr is the session log of the session pages (native protocol).
	clickhouseAddr string
}

func consoleArgs(p consoleParams) []string {
	host, port, _ := net.SplitHostPort(p.addr)
	return append([]string{"console", "--log-format", "text",
		"--authentication-config", p.authConfig,
		"--oidc-client-id", p.clientID,
		"--external-url", p.externalURL,
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", p.certFile, "--tls-private-key-file", p.keyFile,
		"--masking-key-file", p.maskingKeyFile,
		"--approval-key-file", p.approvalKeyFile,
		"--session-key-file", p.sessionKeyFile,
		"--clickhouse-addr", p.clickhouseAddr,
		"--health-bind-address", p.health,
	}, p.nats.args()...)
}

// auditFlags are kube-apiserver's flags that send the audit events policyFile selects to the
// enricher, in batches at most a second old.
func auditFlags(policyFile, webhookKubeconfig string) map[string][]string {
	return map[string][]string{
		"audit-policy-file":             {policyFile},
		"audit-webhook-config-file":     {webhookKubeconfig},
		"audit-webhook-mode":            {"batch"},
		"audit-webhook-batch-max-wait":  {"1s"},
		"audit-webhook-initial-backoff": {"1s"},
	}
}
