// Package manifests embeds the shipped Kubernetes manifests (CRD, webhook configurations and
// RBAC, the proxy's RBAC, the default policies, the audit policy) so that `gatehouse dev`
// installs exactly what a cluster administrator applies, without the source tree at run time.
package manifests

import "embed"

// FS holds the manifests under their paths in this directory, e.g. "audit/policy.yaml".
//
//go:embed crd/*.yaml webhook/*.yaml policies/*.yaml audit/*.yaml proxy/*.yaml
var FS embed.FS
