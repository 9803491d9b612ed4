// Package v1alpha1 holds the AccessPolicy API (gatehouse.dev/v1alpha1): the rules Gatehouse's
// front proxy and admission webhooks evaluate before a request reaches the cluster.
//
// The types carry controller-tools markers; `make generate` writes zz_generated.deepcopy.go and
// manifests/crd/gatehouse.dev_accesspolicies.yaml from them.
//
// +kubebuilder:object:generate=true
// +groupName=gatehouse.dev
package v1alpha1
