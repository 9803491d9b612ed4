// Package registration registers Gatehouse's admission webhook configurations with
// kube-apiserver once the webhook answers, and keeps their CA bundle current.
//
// The configurations are fail-closed for privileged requests (failurePolicy Fail): registered
// before a webhook serves them, they refuse those requests for everyone, including the
// administrator installing Gatehouse. So the chart creates them empty (no webhooks, which
// kube-apiserver ignores) and renders their webhooks into a ConfigMap the webhook reads (Load);
// the webhook's Registrar writes the webhooks into them (server-side apply, one field manager)
// only when
//
//   - the webhook is ready to decide (Options.Ready: its server started, its policies loaded, its
//     trail connected), and
//   - a request to the address kube-apiserver will call (the Service, or Options.URL) completes a
//     TLS handshake verified with the CA bundle being registered, for the name kube-apiserver
//     will check, and gets an HTTP answer.
//
// From then on the Registrar re-applies them every Options.Resync (someone edited them) and at
// once when the CA bundle changes (SetCABundle), so caBundle is always the bundle of the CA that
// signs the serving certificate: the self-managed CA of package certs, or the ca.crt of a
// cert-manager Secret (then cert-manager's CA injector, named by the configurations'
// cert-manager.io/inject-ca-from annotation, writes the same value).
//
// A Registrar never creates a configuration (ErrDeleted). The release owns them: uninstalling
// deletes them with everything else. And an administrator who deletes them (break-glass,
// docs/deploying.md) switches enforcement off until they restore them (helm upgrade), whatever
// the webhook replicas do meanwhile.
//
// # Threat model
//
// The configurations decide which requests Gatehouse sees; whoever changes them can route
// around it, which is why kube-apiserver never sends them to webhooks and why the default
// policies hold changes to them for approval through the gateway. The webhook's own RBAC allows
// get and patch on these two configurations by name and nothing else of admissionregistration:
// no create. A Registrar never removes a configuration or a webhook from one: a replica that
// stops must not switch enforcement off for the others.
package registration
