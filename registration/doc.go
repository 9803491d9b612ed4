// Package registration registers Gatehouse's admission webhook configurations with
// kube-apiserver once the webhook answers, and keeps their CA bundle current.
//
// The configurations are fail-closed for privileged requests (failurePolicy Fail): registered
// before a webhook serves them, they refuse those requests for everyone, including the
// administrator installing Gatehouse. So the chart does not create them; it renders them into a
// ConfigMap the webhook reads (Load), and the webhook's Registrar applies them (server-side
// apply, one field manager) only when
//
//   - the webhook is ready to decide (Options.Ready: its server started, its policies loaded, its
//     trail connected), and
//   - a request to the address kube-apiserver will call (the Service, or Options.URL) completes a
//     TLS handshake verified with the CA bundle being registered, for the name kube-apiserver
//     will check, and gets an HTTP answer.
//
// From then on the Registrar re-applies them every Options.Resync (someone edited or deleted
// them) and at once when the CA bundle changes (SetCABundle), so caBundle is always the bundle of
// the CA that signs the serving certificate: the self-managed CA of package certs, or the ca.crt
// of a cert-manager Secret (then cert-manager's CA injector, named by the configurations'
// cert-manager.io/inject-ca-from annotation, writes the same value).
//
// Each configuration carries an owner reference to the webhook's ClusterRole (Options.Owner),
// which the chart creates: when `helm uninstall` deletes the ClusterRole, the garbage collector
// deletes the configurations, so a removed Gatehouse cannot keep refusing requests.
//
// # Threat model
//
// The configurations decide which requests Gatehouse sees; whoever changes them can route
// around it, which is why kube-apiserver never sends them to webhooks and why the default
// policies hold changes to them for approval through the gateway. The webhook's own RBAC allows
// get and patch on these two configurations by name and nothing else of admissionregistration.
// A Registrar never removes a configuration: a webhook replica that stops must not switch
// enforcement off for the others. Recovering from a broken webhook is an administrator's act
// (docs/deploying.md, break-glass): scale the webhook to zero, then delete the configurations.
package registration
