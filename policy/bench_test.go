package policy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/policy"
)

// benchRules returns an AccessPolicy of n rules of which the same seven can match a pod create
// (five with a condition on the object, two by subject); the others are about pods too, but
// about other operations or subresources, or about other resources.
func benchRules(n int) string {
	var rules strings.Builder
	for i := range n {
		fmt.Fprintf(&rules, "  - name: r%d\n    action: deny\n", i)
		switch {
		case i < 5:
			fmt.Fprintf(&rules, "    match: {operations: [CREATE, UPDATE], resources: [pods]}\n"+
				"    condition: object.metadata.?labels[?'team'].orValue('') == 'team-%d' || object.spec.containers.exists(c, c.image.startsWith('forbidden.example/%d'))\n", i, i)
		case i < 7:
			fmt.Fprintf(&rules, "    match: {resources: [\"*\"], users: [intruder-%d]}\n", i)
		case i%4 == 0:
			fmt.Fprintf(&rules, "    match: {operations: [DELETE], resources: [pods], names: [db-%d]}\n", i)
		case i%4 == 1:
			fmt.Fprintf(&rules, "    match: {operations: [CONNECT], resources: [pods/exec, pods/attach], namespaces: [team-%d]}\n", i)
		case i%4 == 2:
			fmt.Fprintf(&rules, "    match: {operations: [UPDATE], resources: [pods/status, pods/ephemeralcontainers]}\n"+
				"    condition: object.metadata.?labels[?'team'].orValue('') == 'team-%d'\n", i)
		default:
			fmt.Fprintf(&rules, "    match: {apiGroups: [apps], resources: [deployments], namespaces: [team-%d]}\n", i)
		}
	}
	return "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: bench}\nspec:\n  rules:\n" + rules.String()
}

// BenchmarkEvaluateRules evaluates a pod create against 10, 50 and 200 rules of which the same
// seven can match it (benchRules), against a baseline whose one rule cannot: the engine's cost
// should grow with the rules that can match the request's resource, subresource and operation,
// not with all rules, so the ratios stay flat.
func BenchmarkEvaluateRules(b *testing.B) {
	obj := []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-7d9c5","namespace":"bench","labels":{"app":"web","team":"shop"}},` +
		`"spec":{"containers":[{"name":"web","image":"registry.example/shop/web:1.4.2","ports":[{"name":"http","containerPort":8080}],` +
		`"env":[{"name":"MODE","value":"production"},{"name":"PORT","value":"8080"}],"resources":{}},` +
		`{"name":"sidecar","image":"registry.example/proxy:2.0","resources":{}}],"serviceAccountName":"web"},"status":{}}`)
	a := policy.Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "pods", Namespace: "bench", Name: "web-7d9c5",
		User: authenticationv1.UserInfo{Username: "agent", Groups: []string{"agents"}}, Object: obj}
	// The baseline is a policy whose one rule is about another resource: what an evaluation
	// costs before any rule that can match.
	other := "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: bench}\nspec:\n  rules:\n" +
		"  - name: other\n    action: deny\n    match: {apiGroups: [apps], resources: [deployments]}\n"
	for _, n := range []int{0, 10, 50, 200} {
		name, rules := fmt.Sprintf("rules=%d", n), benchRules(n)
		if n == 0 {
			name, rules = "baseline=no-matching-rule", other
		}
		e := newEngine(b, nil, rules)
		b.Run(name, func(b *testing.B) {
			d, err := e.Evaluate(context.Background(), a)
			if err != nil || d.Action != policy.ActionAllow {
				b.Fatalf("want allowed, got %+v, %v", d, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Evaluate(context.Background(), a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluateNamespaceSelector evaluates a pod create against a rule with a
// namespaceSelector that the namespace's labels do not match, against a baseline whose rule
// names another namespace: a selector needs the namespace's labels, looked up (here from a
// fixed Lookup), not the namespace as a CEL value, so the ratio stays near 1.
func BenchmarkEvaluateNamespaceSelector(b *testing.B) {
	a := policy.Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "pods", Namespace: "bench", Name: "web-7d9c5",
		User: authenticationv1.UserInfo{Username: "agent", Groups: []string{"agents"}}, Object: []byte(`{"kind":"Pod","apiVersion":"v1"}`)}
	lookup := &objects{namespaces: map[string]*corev1.Namespace{"bench": namespace("bench", map[string]string{"tier": "gold", "team": "shop"})}}
	for _, tc := range []struct{ name, match string }{
		{"baseline=other-namespace", "{resources: [pods], namespaces: [restricted]}"},
		{"selector", "{resources: [pods], namespaceSelector: {matchLabels: {tier: restricted}}}"},
	} {
		e := newEngine(b, lookup, "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: bench}\nspec:\n  rules:\n"+
			"  - name: restricted\n    action: deny\n    match: "+tc.match+"\n")
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, err := e.Evaluate(context.Background(), a); err != nil || d.Action != policy.ActionAllow {
					b.Fatalf("want allowed, got %+v, %v", d, err)
				}
			}
		})
	}
}
