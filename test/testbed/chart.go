package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/gatehouse-dev/gatehouse/manifests"
	"github.com/gatehouse-dev/gatehouse/registration"
)

var (
	helmOnce  sync.Once
	helmPath  string
	helmErr   error
	helm3Once sync.Once
	helm3Path string
	helm3Err  error
)

// Helm returns the path of the helm CLI (v4) built by scripts/testbed.sh ($GATEHOUSE_HELM, else
// the cache), and checks that it exists.
func Helm() (string, error) {
	helmOnce.Do(func() { helmPath, helmErr = helmBinary("GATEHOUSE_HELM", "helm") })
	return helmPath, helmErr
}

// Helm3 returns the path of the helm CLI of the previous major version (v3) built by
// scripts/testbed.sh ($GATEHOUSE_HELM3, else the cache), and checks that it exists.
func Helm3() (string, error) {
	helm3Once.Do(func() { helm3Path, helm3Err = helmBinary("GATEHOUSE_HELM3", "helm3") })
	return helm3Path, helm3Err
}

func helmBinary(variable, target string) (string, error) {
	path := os.Getenv(variable)
	if path == "" {
		env, err := testbedEnv()
		if err != nil {
			return "", err
		}
		path = env[variable]
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: helm (%s) not found; run 'make testbed' (scripts/testbed.sh %s) to build and cache it", ErrMissing, path, target)
	}
	return path, nil
}

// ChartWebhookConfigurations returns the webhook configurations of charts/gatehouse as the plain
// manifests render them (manifests/webhook/configurations.yaml: the ConfigMap the webhook
// registers them from), for envtest's WebhookInstallOptions.
func ChartWebhookConfigurations() ([]*admissionregistrationv1.ValidatingWebhookConfiguration, []*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	data, err := ChartWebhookConfigurationsYAML()
	if err != nil {
		return nil, nil, err
	}
	v, m, err := registration.Parse([]byte(data))
	if err != nil {
		return nil, nil, fmt.Errorf("testbed: manifests/webhook/configurations.yaml: %w", err)
	}
	var (
		validating []*admissionregistrationv1.ValidatingWebhookConfiguration
		mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
	)
	for i := range v {
		validating = append(validating, &v[i])
	}
	for i := range m {
		mutating = append(mutating, &m[i])
	}
	return validating, mutating, nil
}

// ChartWebhookConfigurationsYAML returns the content of the webhook-configurations ConfigMap
// in manifests/webhook/configurations.yaml: the file `gatehouse webhook
// --webhook-configurations` reads in a pod.
func ChartWebhookConfigurationsYAML() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "manifests", filepath.FromSlash(manifests.WebhookConfigurationsFile)))
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	out, err := manifests.ConfigurationsFromConfigMap(data)
	if err != nil {
		return "", fmt.Errorf("testbed: manifests/%s: %w", manifests.WebhookConfigurationsFile, err)
	}
	return string(out), nil
}

// KubectlApply applies files (or directories) with kubectl as the cluster administrator.
func (k *Kube) KubectlApply(files ...string) (string, error) {
	args := []string{"apply"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	return k.RunKubectl(args...)
}

// KubectlCreate runs `kubectl create args...` as the cluster administrator.
func (k *Kube) KubectlCreate(args ...string) error {
	_, err := k.RunKubectl(append([]string{"create"}, args...)...)
	return err
}

// RunKubectl runs kubectl with args as the cluster administrator and returns what it wrote.
func (k *Kube) RunKubectl(args ...string) (string, error) {
	out, err := exec.Command(k.Kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
