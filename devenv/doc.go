// Package devenv runs the whole of Gatehouse on one machine for development and demos: what
// `gatehouse dev` (and `make demo`) starts.
//
// In order, each step printing a progress line with its duration: NATS JetStream (in-process,
// package natsbus), ClickHouse (`gatehouse clickhouse`, a child process), the development OIDC
// issuer (in-process, package devoidc), the enricher, kube-apiserver and etcd (controller-runtime's
// envtest, from the binaries scripts/testbed.sh caches; the audit webhook points at the enricher
// with the shipped audit policy, and kube-apiserver's kubelet client certificate is the only one
// the dev node accepts), the dev node (in-process, package devnode), Gatehouse's RBAC and the
// demo's objects, the admission webhooks (registered with the shipped configurations), the
// proxy, and the default policy pack, applied and then proven enforced on both paths.
//
// The proxy, the webhooks and the enricher run as child processes of the same binary with the
// command-line flags they have in production (components.go is the one place that knows
// them), each logging to a file of the state directory: they are exercised as deployed, and
// their signal handling and shutdown are the real ones. Children get a process group of their
// own (a Ctrl-C in the terminal reaches only `gatehouse dev`, which stops the parts in the
// reverse order: the proxy first, the enricher after kube-apiserver has flushed its audit
// events, NATS last) and die with it if it is killed.
//
// The state directory (default ./.gatehouse-dev) is locked while a run uses it; it holds the
// kubeconfigs, keys, component data and logs, and a clean stop leaves only the logs. A directory
// a crashed run left is refused until --reset, which also ends the processes that run left (the
// processes whose command line names the directory). Nothing is written outside it, and every
// part listens on loopback.
//
// Scenario plays the scripted agent session of `make demo` with real kubectl through the proxy
// and prints the session's trail from ClickHouse with the SQL it ran (TrailSQL).
package devenv
