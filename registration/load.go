package registration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Load reads the webhook configurations to register from a multi-document YAML file (the
// chart's ConfigMap <release>-webhook-configurations, mounted into the webhook's pod).
func Load(path string) ([]admissionregistrationv1.ValidatingWebhookConfiguration, []admissionregistrationv1.MutatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook configurations: %w", err)
	}
	v, m, err := Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, m, nil
}

// Parse decodes ValidatingWebhookConfigurations and MutatingWebhookConfigurations
// (admissionregistration.k8s.io/v1) from multi-document YAML. Unknown fields and other kinds
// are errors: a typo must not silently drop a webhook.
func Parse(data []byte) ([]admissionregistrationv1.ValidatingWebhookConfiguration, []admissionregistrationv1.MutatingWebhookConfiguration, error) {
	var (
		validating []admissionregistrationv1.ValidatingWebhookConfiguration
		mutating   []admissionregistrationv1.MutatingWebhookConfiguration
	)
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, nil, err
		}
		if tm == (metav1.TypeMeta{}) {
			continue // an empty document or only comments
		}
		if tm.APIVersion != admissionregistrationv1.SchemeGroupVersion.String() {
			return nil, nil, fmt.Errorf("unexpected apiVersion %q", tm.APIVersion)
		}
		switch tm.Kind {
		case "ValidatingWebhookConfiguration":
			var c admissionregistrationv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &c); err != nil {
				return nil, nil, err
			}
			validating = append(validating, c)
		case "MutatingWebhookConfiguration":
			var c admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &c); err != nil {
				return nil, nil, err
			}
			mutating = append(mutating, c)
		default:
			return nil, nil, fmt.Errorf("unexpected kind %q: only webhook configurations are registered", tm.Kind)
		}
	}
	if len(validating)+len(mutating) == 0 {
		return nil, nil, errors.New("no webhook configuration")
	}
	return validating, mutating, nil
}
