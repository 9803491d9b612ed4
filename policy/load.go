package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

// LoadFile reads AccessPolicies from a multi-document YAML (or JSON) file, for dev mode: the
// same files as manifests/policies. See Load.
func LoadFile(path string) ([]v1alpha1.AccessPolicy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	ps, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %w", path, err)
	}
	return ps, nil
}

// Load reads AccessPolicies from multi-document YAML. Every document must be a
// gatehouse.dev/v1alpha1 AccessPolicy with a unique name; unknown fields are errors, as a typo
// in a security rule must not go unnoticed. Empty documents are skipped.
func Load(r io.Reader) ([]v1alpha1.AccessPolicy, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []v1alpha1.AccessPolicy
	names := map[string]bool{}
	for i := 1; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var p v1alpha1.AccessPolicy
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if p.APIVersion != v1alpha1.GroupVersion.String() || p.Kind != "AccessPolicy" {
			return nil, fmt.Errorf("document %d: want apiVersion %s, kind AccessPolicy; got %q, %q",
				i, v1alpha1.GroupVersion, p.APIVersion, p.Kind)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("document %d: metadata.name is required", i)
		}
		if names[p.Name] {
			return nil, fmt.Errorf("document %d: duplicate AccessPolicy %q", i, p.Name)
		}
		names[p.Name] = true
		out = append(out, p)
	}
}

// stripComments drops YAML comment lines, so a document of comments only counts as empty.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		b.Write(line)
	}
	return b.Bytes()
}
