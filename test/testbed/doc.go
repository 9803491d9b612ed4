// Package testbed starts the real components Gatehouse's integration and end-to-end tests run
// against: kube-apiserver and etcd (through controller-runtime's envtest), the development node
// (package devnode: real exec, attach, logs and port-forward streams, a built-in shell behind
// exec), an embedded NATS JetStream server, a ClickHouse server and the development OIDC issuer
// (package devoidc: real signed tokens, plus deliberately bad ones here).
//
// Nothing here is mocked: the binaries are built from the same Kubernetes release as the
// client libraries (scripts/testbed.sh) and the ClickHouse engine is the real one. A component
// that is missing fails the test with the command that provides it; tests never skip because
// of it.
//
// Deployment runs Gatehouse itself on top of them as the chart deploys it (the enricher, the
// webhook, the console and the proxy as processes, with the chart's flags), for the end-to-end
// and scale tests.
//
// Start each component once per test package, in TestMain, and share it:
//
//	func TestMain(m *testing.M) {
//		kube, err := testbed.StartKube(testbed.KubeOptions{})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		kube.Stop()
//		os.Exit(code)
//	}
package testbed
