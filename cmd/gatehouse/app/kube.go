package app

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeOptions say how a component reaches kube-apiserver: a kubeconfig, or the in-cluster
// service account when none is given, as every Kubernetes component does.
type kubeOptions struct {
	kubeconfig string
	context    string
}

func (o *kubeOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to a kubeconfig. Default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config.")
	fs.StringVar(&o.context, "context", "", "The kubeconfig context to use.")
}

func (o *kubeOptions) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	if o.kubeconfig == "" && o.context == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver connection: %w (set --kubeconfig, or run in a pod)", err)
	}
	return cfg, nil
}
