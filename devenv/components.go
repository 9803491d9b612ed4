package devenv

import (
	"net"
	"strconv"
)

// The command lines of the parts `gatehouse dev` runs as child processes of its own binary.
// This file is the one place that knows their flags: when a component's flags change, change
// them here. Every part gets its certificates, NATS URL and masking key explicitly, so none runs
// with --dev: they run as configured in production.

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
	natsURL, clickhouseAddr     string
	maskingKeyFile, gatewayUser string
}

func enricherArgs(p enricherParams) []string {
	host, port, _ := net.SplitHostPort(p.addr)
	return []string{"enricher", "--log-format", "text",
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", p.certFile, "--tls-private-key-file", p.keyFile,
		"--client-ca-file", p.clientCAFile,
		"--spool-dir", p.spoolDir,
		"--nats-url", p.natsURL,
		"--clickhouse-addr", p.clickhouseAddr,
		"--masking-key-file", p.maskingKeyFile,
		"--gateway-users", p.gatewayUser,
		"--batch-max-wait", "500ms",
		"--health-bind-address", p.health,
	}
}

type webhookParams struct {
	kubeconfig, host, certDir string
	port                      int
	natsURL, maskingKeyFile   string
	health                    string
}

func webhookArgs(p webhookParams) []string {
	return []string{"webhook", "--log-format", "text",
		"--kubeconfig", p.kubeconfig,
		"--bind-address", p.host, "--secure-port", strconv.Itoa(p.port),
		"--cert-dir", p.certDir,
		"--nats-url", p.natsURL,
		"--masking-key-file", p.maskingKeyFile,
		"--health-bind-address", p.health,
	}
}

type proxyParams struct {
	kubeconfig, authConfig  string
	addr, health            string
	certFile, keyFile       string
	natsURL, maskingKeyFile string
	approvalTimeout         string
}

func proxyArgs(p proxyParams) []string {
	host, port, _ := net.SplitHostPort(p.addr)
	return []string{"proxy", "--log-format", "text",
		"--kubeconfig", p.kubeconfig,
		"--authentication-config", p.authConfig,
		"--bind-address", host, "--secure-port", port,
		"--tls-cert-file", p.certFile, "--tls-private-key-file", p.keyFile,
		"--nats-url", p.natsURL,
		"--masking-key-file", p.maskingKeyFile,
		"--approval-timeout", p.approvalTimeout,
		"--health-bind-address", p.health,
	}
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
