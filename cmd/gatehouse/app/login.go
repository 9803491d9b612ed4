package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gatehouse-dev/gatehouse/login"
)

// sessionLabel is what the proxy accepts as a session label.
var sessionLabel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

type loginOptions struct {
	server, issuer, clientID string
	caFile, issuerCAFile     string
	session                  string
	device, noBrowser        bool
	kubeconfig, context      string
	listenAddress            string
}

func newLoginCommand() *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a Gatehouse proxy and add it to your kubeconfig",
		Long: `Log in with the OIDC issuer the Gatehouse proxy trusts - in the browser (authorization code
with PKCE and a loopback redirect), or with the device flow on a machine without a browser - and
write a kubeconfig context whose user runs ` + "`gatehouse credential`" + `: kubectl then gets your ID
token from the cache in your user cache directory, refreshed with the refresh token, and you
log in again only when that no longer works.

--session NAME names a Gatehouse session for everything done with the context: kubectl cannot
send the Gatehouse-Session header, so the server URL gets the client-options path prefix the
proxy strips (https://proxy/gatehouse/client/session=NAME).`,
		Example: `  gatehouse login --server https://gatehouse.example.com --issuer https://login.example.com
  gatehouse login --server https://127.0.0.1:8443 --issuer https://127.0.0.1:8444 \
      --certificate-authority .gatehouse-dev/proxy-ca.crt --issuer-certificate-authority .gatehouse-dev/issuer-ca.crt --session fix-42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.server, "server", "", "URL of the Gatehouse proxy. Required.")
	fs.StringVar(&o.issuer, "issuer", "", "URL of the OIDC issuer the proxy trusts. Required.")
	fs.StringVar(&o.clientID, "client-id", login.DefaultClientID, "OAuth client ID registered with the issuer.")
	fs.StringVar(&o.caFile, "certificate-authority", "", "CA bundle of the proxy's certificate. Default: the system's.")
	fs.StringVar(&o.issuerCAFile, "issuer-certificate-authority", "", "CA bundle of the issuer's certificate. Default: the system's.")
	fs.StringVar(&o.session, "session", "", "Name a Gatehouse session for this context (server URL path prefix).")
	fs.BoolVar(&o.device, "device-code", false, "Use the device flow: open a URL on any device and enter a code. The default on a machine without a display, when the issuer offers it.")
	fs.BoolVar(&o.noBrowser, "no-browser", false, "Print the login URL instead of opening a browser.")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "The kubeconfig to write. Default: $KUBECONFIG's first file, then ~/.kube/config.")
	fs.StringVar(&o.context, "context", "", "Name of the kubeconfig context. Default: gatehouse, or gatehouse-SESSION.")
	fs.StringVar(&o.listenAddress, "listen-address", "127.0.0.1:0", "Loopback address for the browser's redirect.")
	return cmd
}

func (o *loginOptions) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"--server", o.server}, {"--issuer", o.issuer}} {
		u, err := url.Parse(f.v)
		switch {
		case f.v == "":
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		case err != nil || u.Scheme != "https" || u.Host == "":
			errs = append(errs, fmt.Errorf("%s must be an https URL, not %q", f.name, f.v))
		}
	}
	if o.session != "" && !sessionLabel.MatchString(o.session) {
		errs = append(errs, errors.New("--session must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"))
	}
	return errors.Join(errs...)
}

func readOptional(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

func (o *loginOptions) run(cmd *cobra.Command, prompt io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	issuerCA, err := readOptional(o.issuerCAFile)
	if err != nil {
		return fmt.Errorf("--issuer-certificate-authority: %w", err)
	}
	ca, err := readOptional(o.caFile)
	if err != nil {
		return fmt.Errorf("--certificate-authority: %w", err)
	}
	lo := login.Options{Issuer: o.issuer, ClientID: o.clientID, IssuerCA: issuerCA, Device: o.device || headless(),
		ListenAddress: o.listenAddress, Prompt: prompt}
	if !o.noBrowser {
		lo.OpenBrowser = openBrowser
	}
	tok, err := login.Login(cmd.Context(), lo)
	if err != nil && lo.Device && !o.device && strings.Contains(err.Error(), "does not offer the device flow") {
		lo.Device = false
		tok, err = login.Login(cmd.Context(), lo)
	}
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	name, path, err := writeLoginKubeconfig(o, ca, bin)
	if err != nil {
		return err
	}
	who := tok.Subject
	if tok.Name != "" {
		who = tok.Name
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "Logged in as %s. Context %q in %s is now current:\n  kubectl get pods\n", who, name, path)
	return err
}

// headless says whether no browser can be opened here (Linux without a display).
func headless() bool {
	return runtime.GOOS == "linux" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == ""
}

func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	return cmd.Start()
}

// writeLoginKubeconfig adds (or replaces) the cluster, user and context of the login and makes
// the context current. It returns the context's name and the file.
func writeLoginKubeconfig(o *loginOptions, ca []byte, bin string) (string, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	path := o.kubeconfig
	if path == "" {
		path = rules.GetDefaultFilename()
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, os.ErrNotExist) {
		cfg, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", path, err)
	}
	name := o.context
	if name == "" {
		name = "gatehouse"
		if o.session != "" {
			name += "-" + o.session
		}
	}
	user := "gatehouse-" + hostOf(o.issuer)
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: login.SessionServer(o.server, o.session), CertificateAuthorityData: ca}
	args := []string{"credential", "--issuer", o.issuer, "--client-id", o.clientID}
	if o.issuerCAFile != "" {
		abs, err := filepath.Abs(o.issuerCAFile)
		if err != nil {
			return "", "", err
		}
		args = append(args, "--issuer-certificate-authority", abs)
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion:      clientauthv1.SchemeGroupVersion.String(),
		Command:         bin,
		Args:            args,
		InteractiveMode: clientcmdapi.IfAvailableExecInteractiveMode,
		InstallHint:     "gatehouse login writes this entry; install the gatehouse binary at " + bin,
	}}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", "", err
	}
	return name, path, os.Chmod(path, 0o600)
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "issuer"
	}
	return strings.NewReplacer(":", "-", ".", "-").Replace(p.Host)
}

func newCredentialCommand() *cobra.Command {
	var issuer, clientID, issuerCAFile string
	cmd := &cobra.Command{
		Use:   "credential",
		Short: "kubectl exec credential plugin: print the ID token of `gatehouse login`",
		Long: `Print an ExecCredential with a valid ID token for kubectl: the cached one, a refreshed one,
or, when kubectl lets it ask you (an interactive terminal), one from a new login. ` + "`gatehouse login`" + `
writes the kubeconfig entry that runs it.`,
		Args:   cobra.NoArgs,
		Hidden: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := readOptional(issuerCAFile)
			if err != nil {
				return fmt.Errorf("--issuer-certificate-authority: %w", err)
			}
			o := login.Options{Issuer: issuer, ClientID: clientID, IssuerCA: ca, Prompt: cmd.ErrOrStderr(), Device: headless()}
			if !headless() {
				o.OpenBrowser = openBrowser
			}
			tok, err := login.Credential(cmd.Context(), o, execInteractive())
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(&clientauthv1.ExecCredential{
				TypeMeta: execCredentialType,
				Status:   &clientauthv1.ExecCredentialStatus{Token: tok.IDToken, ExpirationTimestamp: metaTime(tok.Expiry)},
			})
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "URL of the OIDC issuer. Required.")
	cmd.Flags().StringVar(&clientID, "client-id", login.DefaultClientID, "OAuth client ID.")
	cmd.Flags().StringVar(&issuerCAFile, "issuer-certificate-authority", "", "CA bundle of the issuer's certificate.")
	_ = cmd.MarkFlagRequired("issuer")
	return cmd
}

// execInteractive says whether kubectl lets the plugin talk to the person (KUBERNETES_EXEC_INFO's
// spec.interactive), or, run by hand, whether stdin is a terminal.
func execInteractive() bool {
	if info := os.Getenv("KUBERNETES_EXEC_INFO"); info != "" {
		var c clientauthv1.ExecCredential
		if json.Unmarshal([]byte(info), &c) == nil {
			return c.Spec.Interactive
		}
		return false
	}
	return term.IsTerminal(int(os.Stdin.Fd()))
}
