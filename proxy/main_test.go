package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// env is the test bed every test of this package shares: a real kube-apiserver writing an audit
// log, the stub kubelet, NATS, an OIDC issuer and the proxy in front of the API server.
var env struct {
	kube    *testbed.Kube
	kubelet *testbed.Kubelet
	nats    *testbed.NATS
	// nc and js are the proxy's: its NATS identity, as deployed.
	nc *nats.Conn
	js jetstream.JetStream
	// inspect reads what the proxy recorded, and stands in for admission and the console, as
	// the test's own identity.
	inspect jetstream.JetStream
	issuer  *testbed.Issuer
	// rawIssuer's claims map to names without a prefix, so a token can claim system: names.
	rawIssuer *testbed.Issuer
	auditLog  string
	proxy     *httptest.Server
	proxyCA   []byte
	// proxyUser is the proxy's own credential: the service account of manifests/proxy/rbac.yaml.
	proxyUser *rest.Config
	metrics   *prometheus.Registry
	// recordings stores the recordings of the proxy's sessions.
	recordings *recording.Publisher
	// masker is the proxy's masker.
	masker *masking.Masker
	// saIssuer is the cluster's service-account token issuer.
	saIssuer string
	// opts are the options env.proxy runs with, for tests that run another proxy like it.
	opts proxy.Options
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "authn tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "gatehouse-authn-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return 0, err
	}
	env.auditLog = filepath.Join(dir, "audit.log")
	if env.kube, err = testbed.StartKube(testbed.KubeOptions{APIServerFlags: map[string][]string{
		"audit-policy-file":   {policy},
		"audit-log-path":      {env.auditLog},
		"audit-log-format":    {"json"},
		"audit-log-mode":      {"blocking"},
		"audit-log-maxbackup": {"1"},
	}}); err != nil {
		return 0, err
	}
	defer env.kube.Stop()
	env.saIssuer = strings.TrimSuffix(env.kube.Config.Host, "/") + "/"

	// The proxy's RBAC as shipped, applied with kubectl: the proxy runs as that service account.
	root, err := testbed.RepoRoot()
	if err != nil {
		return 0, err
	}
	if out, err := exec.Command(env.kube.Kubectl, "--kubeconfig", env.kube.Kubeconfig, "apply",
		"-f", filepath.Join(root, "manifests", "namespace.yaml"),
		"-f", filepath.Join(root, "manifests", "proxy", "rbac.yaml")).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("apply manifests/proxy/rbac.yaml: %w: %s", err, out)
	}
	if env.proxyUser, err = env.kube.AddUser("system:serviceaccount:gatehouse:gatehouse-proxy"); err != nil {
		return 0, err
	}
	// The test identities' own rights. (envtest runs no controller manager, so the aggregated
	// roles view/edit/admin are empty: grant explicit ones.)
	for _, args := range [][]string{
		{"create", "clusterrole", "gatehouse-test-reader", "--verb=get,list,watch", "--resource=configmaps,pods"},
		{"create", "clusterrolebinding", "oidc-alice-admin", "--clusterrole=cluster-admin", "--user=oidc:alice"},
		{"create", "clusterrolebinding", "oidc-readers", "--clusterrole=gatehouse-test-reader", "--group=oidc:viewers"},
	} {
		args = append([]string{"--kubeconfig", env.kube.Kubeconfig}, args...)
		if out, err := exec.Command(env.kube.Kubectl, args...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("kubectl %v: %w: %s", args, err, out)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if env.kubelet, err = testbed.StartKubelet(ctx, env.kube, "proxy-node"); err != nil {
		return 0, err
	}
	defer env.kubelet.Close()
	if env.nats, err = testbed.StartNATS(); err != nil {
		return 0, err
	}
	defer env.nats.Stop()
	// Reconnects without nats.go's TLS jitter (up to a second): the tests time NATS outages.
	if env.nc, err = env.nats.ConnectAs(natsbus.RoleProxy, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond), nats.ReconnectBufSize(-1)); err != nil {
		return 0, err
	}
	defer env.nc.Close()
	if env.js, err = jetstream.New(env.nc); err != nil {
		return 0, err
	}
	inspect, err := env.nats.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer inspect.Close()
	if env.inspect, err = jetstream.New(inspect); err != nil {
		return 0, err
	}
	pub, err := trail.NewPublisher(env.nc, trail.PublisherOptions{Source: "proxy/test"})
	if err != nil {
		return 0, err
	}
	if env.recordings, err = recording.NewPublisher(env.nc, recording.PublisherOptions{Source: "proxy/test"}); err != nil {
		return 0, err
	}
	if env.issuer, err = testbed.StartIssuer(); err != nil {
		return 0, err
	}
	defer env.issuer.Close()
	if env.rawIssuer, err = testbed.StartIssuer(); err != nil {
		return 0, err
	}
	defer env.rawIssuer.Close()

	authCfg, err := authn.ParseAuthenticationConfig([]byte(authenticationConfig()))
	if err != nil {
		return 0, err
	}
	kubeClient, err := rest.HTTPClientFor(env.proxyUser)
	if err != nil {
		return 0, err
	}
	authenticator, err := authn.NewAuthenticator(authn.AuthenticatorOptions{
		Config:                authCfg,
		IssuerClients:         map[string]*http.Client{env.saIssuer: kubeClient},
		AllowedSystemPrefixes: []string{"system:serviceaccount:", "system:serviceaccounts"},
	})
	if err != nil {
		return 0, err
	}
	go func() { _ = authenticator.Start(ctx) }()
	if err := testbed.WaitFor(ctx, time.Minute, authenticator.Ready); err != nil {
		return 0, fmt.Errorf("the authenticator is not ready: %w", err)
	}
	masker, err := masking.New(masking.Config{Key: []byte(testMaskingKey)})
	if err != nil {
		return 0, err
	}
	env.masker = masker
	env.metrics = prometheus.NewRegistry()
	env.opts = proxy.Options{
		Upstream:      env.proxyUser,
		Authenticator: authenticator,
		Masker:        masker,
		Recorder:      pub,
		Recordings:    env.recordings,
	}
	o := env.opts
	o.Metrics = env.metrics
	proxy, err := proxy.NewProxy(o)
	if err != nil {
		return 0, err
	}
	env.proxy = httptest.NewUnstartedServer(proxy)
	env.proxy.EnableHTTP2 = true
	env.proxy.Config.MaxHeaderBytes = 64 << 10
	env.proxy.StartTLS()
	defer env.proxy.Close()
	env.proxyCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.proxy.Certificate().Raw})

	code := m.Run()
	defer benchNATS.Stop()
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelFlush()
	_ = pub.Close(flushCtx)
	return code, nil
}

// authenticationConfig trusts the test issuer (claims mapped with the oidc: prefix, and a CEL
// validation rule) and the cluster's own service-account issuer (groups built with CEL).
func authenticationConfig() string {
	indent := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") }
	return fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimValidationRules:
  - expression: "!has(claims.banned) || claims.banned != true"
    message: banned identities may not use the cluster
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {claim: uid}
- issuer:
    url: %s
    audiences: ["gatehouse"]
  claimMappings:
    username: {claim: sub, prefix: ""}
    groups:
      expression: "['system:serviceaccounts', 'system:serviceaccounts:' + claims['kubernetes.io'].namespace]"
- issuer:
    url: %s
    audiences: ["gatehouse"]
    certificateAuthority: |
      %s
  claimMappings:
    username: {claim: sub, prefix: ""}
    groups: {claim: groups, prefix: ""}
`, env.issuer.URL, indent(string(env.issuer.CAPEM)), env.saIssuer, env.rawIssuer.URL, indent(string(env.rawIssuer.CAPEM)))
}

// token signs claims for subject with extra claims merged in.
func token(t testing.TB, subject string, extra map[string]any) string {
	t.Helper()
	c := env.issuer.Claims(subject)
	c["uid"] = "uid-" + subject
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return env.issuer.MustSign(t, c)
}

// proxyClient is an HTTP client trusting the proxy.
func proxyClient(t testing.TB) *http.Client {
	t.Helper()
	return env.proxy.Client()
}

// http1Client trusts the proxy and speaks HTTP/1.1 only, which allows Connection headers.
func http1Client(t testing.TB) *http.Client {
	t.Helper()
	tr := env.proxy.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return &http.Client{Transport: tr}
}

// kubeconfig writes a kubeconfig that reaches the proxy with tok.
func kubeconfig(t testing.TB, tok string) string {
	t.Helper()
	path, err := testbed.WriteKubeconfig(t.TempDir(), &rest.Config{
		Host:            env.proxy.URL,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.proxyCA},
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	AuditID    string   `json:"auditID"`
	Stage      string   `json:"stage"`
	RequestURI string   `json:"requestURI"`
	Verb       string   `json:"verb"`
	SourceIPs  []string `json:"sourceIPs"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string              `json:"username"`
		UID      string              `json:"uid"`
		Groups   []string            `json:"groups"`
		Extra    map[string][]string `json:"extra"`
	} `json:"impersonatedUser"`
}

// auditEvents returns the audit log's events so far.
func auditEvents(t testing.TB) []auditEvent {
	t.Helper()
	f, err := os.Open(env.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// eventsFor waits until the audit log holds a ResponseComplete event with auditID and returns
// all events with that ID.
func eventsFor(t testing.TB, auditID string) []auditEvent {
	t.Helper()
	var found []auditEvent
	_ = testbed.WaitFor(t.Context(), 10*time.Second, func(context.Context) error {
		found = nil
		complete := false
		for _, e := range auditEvents(t) {
			if e.AuditID == auditID {
				found = append(found, e)
				complete = complete || e.Stage == "ResponseComplete" || e.Stage == "Panic"
			}
		}
		if !complete {
			return errors.New("no ResponseComplete event yet")
		}
		return nil
	})
	return found
}
