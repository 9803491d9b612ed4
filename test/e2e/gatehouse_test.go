package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// waitForPolicies waits until kube-apiserver calls the webhook and both the webhook and the
// proxy enforce the default policies: a dry run of a cluster-admin binding (never held) is
// allowed with the warning that the binding itself needs approval, on both paths.
func waitForPolicies(ctx context.Context) error {
	kubeconfig := writeProxyKubeconfig(token("policy-probe", agentGroup))
	return bed.gatehouse.WaitForPolicies(ctx, bed.direct, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", kubeconfig,
			"create", "clusterrolebinding", "e2e-policy-probe", "--clusterrole=cluster-admin", "--user=nobody", "--dry-run=server").CombinedOutput()
		if err == nil && !strings.Contains(string(out), "requires approval") {
			err = errors.New("no approval warning")
		}
		if err != nil {
			return fmt.Errorf("proxy: %w: %s", err, out)
		}
		return nil
	})
}

// token signs a token for subject in groups.
func token(subject string, groups ...string) string {
	c := bed.issuer.Claims(subject)
	c["groups"] = groups
	tok, err := bed.issuer.Sign(c)
	if err != nil {
		panic(err)
	}
	return tok
}

// writeProxyKubeconfig writes a kubeconfig that reaches Gatehouse with tok.
func writeProxyKubeconfig(tok string) string {
	return writeProxyKubeconfigAt(tok, "")
}

// writeProxyKubeconfigAt writes a kubeconfig that reaches Gatehouse with tok at a server URL
// with path (client options such as /gatehouse/client/hold=refuse).
func writeProxyKubeconfigAt(tok, path string) string {
	path, err := testbed.WriteKubeconfig(bed.dir, &rest.Config{
		Host:            bed.proxyURL + path,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA},
	})
	if err != nil {
		panic(err)
	}
	return path
}

// user is a test user of Gatehouse: a token, and a kubeconfig with it.
type user struct {
	user       string
	token      string
	kubeconfig string
}

func newUser(subject string, groups ...string) user {
	tok := token(subject, groups...)
	return user{user: "oidc:" + subject, token: tok, kubeconfig: writeProxyKubeconfig(tok)}
}

// withOptions returns id with a kubeconfig whose server URL carries client options, e.g.
// "hold=refuse,reason=ticket%2042".
func (id user) withOptions(options string) user {
	return user{user: id.user, token: id.token, kubeconfig: writeProxyKubeconfigAt(id.token, proxyClientPrefix+options)}
}

// proxyClientPrefix is where a server URL carries client options.
const proxyClientPrefix = "/gatehouse/client/"

// kubectl runs kubectl as id through Gatehouse.
func (id user) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bed.kube.Kubectl, append([]string{"--kubeconfig", id.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// approvals runs `gatehouse approvals` as id.
func (id user) approvals(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := testbed.GatehouseBinary()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"approvals", "--kubeconfig", id.kubeconfig}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String() + stderr.String(), fmt.Errorf("gatehouse approvals %v: %w: %s", args, err, stderr.String())
	}
	return out.String(), nil
}

// pending waits until a pending approval request matching match is listed for id.
func (id user) pending(t *testing.T, match func(*approvals.Request) bool) *approvals.Request {
	t.Helper()
	var found *approvals.Request
	err := testbed.WaitFor(t.Context(), 30*time.Second, func(context.Context) error {
		out, err := id.approvals(t, "list", "-o", "json")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		var list approvals.ListResponse
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		for _, r := range list.Items {
			if match(r) {
				found = r
				return nil
			}
		}
		return fmt.Errorf("not listed: %s", out)
	})
	require.NoError(t, err, "no pending approval request appeared")
	return found
}

func forName(resource, name string) func(*approvals.Request) bool {
	return func(r *approvals.Request) bool { return r.Operation.Resource == resource && r.Operation.Name == name }
}
