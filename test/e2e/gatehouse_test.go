package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// waitForPolicies waits until kube-apiserver calls the webhook and both the webhook and the
// proxy enforce the default policies: a dry run of a cluster-admin binding (never held) is
// allowed with the warning that the binding itself needs approval, on both paths.
func waitForPolicies() error {
	warnings := &testbed.WarningCollector{}
	cfg := rest.CopyConfig(bed.direct)
	cfg.WarningHandler = warnings
	direct, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crb := clusterAdminBinding("e2e-policy-probe", "nobody")
	err = testbed.WaitFor(context.Background(), 60*time.Second, func(ctx context.Context) error {
		_, errDirect := direct.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		viaProxy := exec.CommandContext(ctx, bed.kube.Kubectl, "--kubeconfig", writeProxyKubeconfig(token("policy-probe", agentGroup)),
			"create", "clusterrolebinding", "e2e-policy-probe", "--clusterrole=cluster-admin", "--user=nobody", "--dry-run=server")
		out, errProxy := viaProxy.CombinedOutput()
		if errDirect == nil && strings.Contains(warnings.String(), "requires approval") && errProxy == nil && strings.Contains(string(out), "requires approval") {
			return nil
		}
		return fmt.Errorf("direct: %v %s; proxy: %v %s", errDirect, warnings, errProxy, out)
	})
	if err != nil {
		return fmt.Errorf("the default policies are not enforced: %w", err)
	}
	return nil
}

func clusterAdminBinding(name, user string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
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
