package policy

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// TestAppendQuoted compares appendQuoted with strconv.AppendQuote, which messages used before:
// names of every byte class, invalid UTF-8, and random bytes.
func TestAppendQuoted(t *testing.T) {
	inputs := []string{"", "web-7d9c5", "kube-system", `a"b`, `a\b`, "a\x00b", "tab\there", "new\nline", "\x7f", "~ !",
		"é", "日本", "\xff", "a\xc3", "\u2028", "\U0001F600", "x\u200by"}
	r := rand.New(rand.NewPCG(19, 6))
	for range 5000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(2) == 0 {
				b[i] = byte(' ' + r.IntN(95))
			}
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		require.Equal(t, string(strconv.AppendQuote([]byte("x "), s)), string(appendQuoted([]byte("x "), s)), "%q", s)
	}
}
