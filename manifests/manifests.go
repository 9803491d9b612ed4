// Package manifests embeds the shipped Kubernetes manifests (the namespace, CRD, webhook
// objects and RBAC, the proxy's RBAC, the default policies, the audit policy), rendered from
// charts/gatehouse, so that `gatehouse dev` installs exactly what a cluster administrator
// applies, without the source tree at run time.
package manifests

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// FS holds the manifests under their paths in this directory, e.g. "audit/policy.yaml".
//
//go:embed namespace.yaml crd/*.yaml webhook/*.yaml policies/*.yaml audit/*.yaml proxy/*.yaml
var FS embed.FS

// WebhookConfigurationsFile is the file holding the webhook configurations: the ConfigMap whose
// key ConfigurationsKey `gatehouse webhook --webhook-configurations` registers them from, and
// the two configurations, created empty.
const (
	WebhookConfigurationsFile = "webhook/configurations.yaml"
	ConfigurationsKey         = "configurations.yaml"
)

// WebhookConfigurations returns the webhook configurations the webhook registers: the content
// of the ConfigMap in WebhookConfigurationsFile (parse it with registration.Parse).
func WebhookConfigurations() ([]byte, error) {
	data, err := FS.ReadFile(WebhookConfigurationsFile)
	if err != nil {
		return nil, err
	}
	return ConfigurationsFromConfigMap(data)
}

// ConfigurationsFromConfigMap returns the value of key ConfigurationsKey of the first ConfigMap
// in a multi-document YAML file that has it.
func ConfigurationsFromConfigMap(data []byte) ([]byte, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no ConfigMap with key %s", ConfigurationsKey)
		}
		if err != nil {
			return nil, err
		}
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			return nil, err
		}
		if out, ok := cm.Data[ConfigurationsKey]; cm.Kind == "ConfigMap" && ok {
			return []byte(out), nil
		}
	}
}
