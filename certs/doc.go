// Package certs gives a Gatehouse component a serving certificate it manages itself, for
// clusters where nothing else (cert-manager, a Secret the administrator provides) issues one.
//
// A Source keeps a certificate authority in a Secret with cert-manager's own code for its
// webhook: pkg/server/tls/authority's DynamicAuthority fills the Secret with a CA when it is
// empty or damaged and regenerates the CA when two thirds of its lifetime have passed, and
// pkg/server/tls's DynamicSource serves certificates signed by it through GetCertificate,
// renewed at two thirds of their lifetime and whenever the CA changes. Replicas share the
// Secret, so a certificate from any of them verifies against the same bundle.
//
// What Source adds is the order of a CA rotation, so that no client is shown a certificate it
// cannot verify yet:
//
//  1. A new CA appears in the Secret. Publish receives the bundle [new CA, previous CA]. Until
//     Publish has returned and RotationGrace has passed (time for every kube-apiserver to load
//     a changed webhook configuration, for clients to read a changed ConfigMap), the new CA
//     signs nothing: the previous certificate stays in use.
//  2. Serving certificates are then signed by the new CA.
//  3. RotationGrace later, when no replica serves a certificate of the previous CA any more,
//     Publish receives [new CA] alone.
//
// A CA rotation can be forced by removing the data of the Secret (never the Secret itself: the
// component may update its Secret, not create one).
//
// # Threat model
//
// Whoever reads the CA's Secret can impersonate the component to every client that trusts the
// bundle. The component's RBAC names that one Secret (get, list, watch, update: the chart
// creates it empty, so no right to create Secrets is needed), and nothing else in this package
// reads a Secret. The bundle is public; the private keys never leave the Secret and the
// process, and are never logged.
package certs
