// Package devnode is a development node: it registers a Node with kube-apiserver and serves
// the kubelet API that kube-apiserver calls for `kubectl exec`, `attach`, `logs -f` and
// `port-forward`, using the kubelet's own server-side streaming code (k8s.io/cri-streaming)
// over SPDY and, through kube-apiserver, WebSocket. It runs no images. `gatehouse dev` uses it
// as the node of its local cluster (with Options.RunPods it also schedules pods and marks them
// Running); the integration tests use it through test/testbed.
//
// # Exec runs a built-in shell, not the host's programs
//
// A developer's machine is not a sandbox: a dev node that ran real commands would hand every
// client that can exec into a pod a shell on that machine, as that developer (confining real
// programs would need root for another user, namespaces or chroot, which a developer usually
// does not have). So exec and attach run a built-in POSIX shell (mvdan.cc/sh's interpreter,
// POSIX dialect: pipes, redirections, variables, &&, ||, quoting) whose every file, directory
// and command handler is replaced:
//
//   - the filesystem is in memory, per container and capped (Options.FSLimit): /etc/hostname,
//     a nobody-only /etc/passwd, the container's working directory, and its volumes: Secret,
//     ConfigMap and projected volumes read through the API (read-only, as the kubelet mounts
//     them), emptyDir (writable); any other volume, hostPath above all, is an empty read-only
//     directory;
//   - the environment is the pod's, resolved as the kubelet does (values, Secret and ConfigMap
//     references, envFrom, the downward API's common fields);
//   - commands are built in (cat, ls, env, printenv, tr, head, tail, wc, grep, mkdir, rm,
//     touch, tar for kubectl cp, sleep, hostname, help, ...); any other name is "command not
//     found", and $PATH lookups (type, command -v) answer from the built-ins, never the host;
//   - process substitution is refused by the parser, and the interpreter's temporary directory
//     for named pipes is a path that does not exist, so nothing reaches the host's /tmp.
//
// On a terminal (`kubectl exec -it ... -- sh`) the shell gets a pseudo-terminal of its own with
// no process behind it, for line editing, echo and the window size; Ctrl-C interrupts the
// running command.
//
// # Threat model
//
// Clients reach the dev node only through kube-apiserver (which authorizes them and calls the
// admission webhooks first); Options.ClientCAs makes it refuse any caller without
// kube-apiserver's kubelet client certificate, as a real kubelet does. What a client can see
// in a container is what a real container would show: the pod's environment and mounted
// Secrets (exec output is not masked, as it is not by a real kubelet). Port-forward connects
// to an in-memory server per pod port (HTTP page or echo), never to the machine's own ports,
// where etcd, NATS and ClickHouse listen without the gateway in front.
package devnode
