package policy

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAttributesString compares Attributes.String with the fmt formatting it replaces, for
// names that need quoting.
func TestAttributesString(t *testing.T) {
	reference := func(a Attributes) string {
		s := a.Op() + " " + a.Resource
		if a.Group != "" {
			s += "." + a.Group
		}
		if a.Subresource != "" {
			s += "/" + a.Subresource
		}
		if a.Name != "" {
			s += fmt.Sprintf(" %q", a.Name)
		}
		if a.Namespace != "" && !(a.Group == "" && a.Resource == "namespaces") {
			s += fmt.Sprintf(" in namespace %q", a.Namespace)
		}
		return s
	}
	for _, a := range []Attributes{
		{},
		{Operation: "CREATE", Resource: "pods", Namespace: "shop", Name: "web"},
		{Verb: "get", Group: "apps", Resource: "deployments", Subresource: "scale", Namespace: "a\"b", Name: "x\\y\n\x00\u00e9\xff"},
		{Operation: "DELETE", Resource: "namespaces", Name: "prod", Namespace: "prod"},
		{Operation: "CONNECT", Resource: "pods", Subresource: "exec", Name: "web-0", Namespace: "shop"},
		{Verb: "list", Group: "gatehouse.dev", Resource: "accesspolicies"},
	} {
		assert.Equal(t, reference(a), a.String())
	}
}
