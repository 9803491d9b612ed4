package policy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	rbacvalidation "k8s.io/component-helpers/auth/rbac/validation"
)

// escalation is a permission that lets its holder gain more than it names: whoever holds it can
// act as someone else, grant themselves anything, mint credentials, reach the kubelet or switch
// admission off. A role that grants one of them is judged by what it grants, whatever it is
// called.
type escalation struct {
	// reason is what the permission lets its holder do, for messages.
	reason string
	rule   rbacv1.PolicyRule
	// clusterWide marks permissions that are an escalation only when granted in every
	// namespace (a ClusterRoleBinding).
	clusterWide bool
}

var escalations = []escalation{
	{reason: "every verb on every resource", rule: rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	{reason: "impersonate users", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}}},
	{reason: "impersonate groups", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"groups"}, Verbs: []string{"impersonate"}}},
	{reason: "impersonate service accounts", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}}},
	{reason: "impersonate user UIDs", rule: rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"uids"}, Verbs: []string{"impersonate"}}},
	{reason: "impersonate user extras", rule: rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras"}, Verbs: []string{"impersonate"}}},
	{reason: "escalate roles (grant permissions it does not hold)", rule: rbacv1.PolicyRule{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}, Verbs: []string{"escalate"}}},
	{reason: "escalate cluster roles (grant permissions it does not hold)", rule: rbacv1.PolicyRule{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, Verbs: []string{"escalate"}}},
	{reason: "bind roles it does not hold", rule: rbacv1.PolicyRule{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}, Verbs: []string{"bind"}}},
	{reason: "bind cluster roles it does not hold", rule: rbacv1.PolicyRule{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}}},
	{reason: "mint service account tokens", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}}},
	{reason: "approve certificate signing requests", rule: rbacv1.PolicyRule{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/approval"}, Verbs: []string{"update"}}},
	{reason: "approve certificates for any signer", rule: rbacv1.PolicyRule{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, Verbs: []string{"approve"}}},
	{reason: "reach the kubelet API (nodes/proxy)", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}}},
	{reason: "reach the kubelet API (nodes/proxy)", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"create"}}},
	{reason: "change validating admission webhooks", rule: rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"create"}}},
	{reason: "change validating admission webhooks", rule: rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"update"}}},
	{reason: "change validating admission webhooks", rule: rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"delete"}}},
	{reason: "change mutating admission webhooks", rule: rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"create"}}},
	{reason: "change mutating admission webhooks", rule: rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"update"}}},
	{reason: "read Secrets in every namespace", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}, clusterWide: true},
	{reason: "read Secrets in every namespace", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}, clusterWide: true},
	{reason: "read Secrets in every namespace", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"watch"}}, clusterWide: true},
}

// RoleEscalations returns what rules grant that lets their holder gain more than they name,
// one reason each, or nothing. clusterWide says whether the rules are granted in every namespace
// (bound by a ClusterRoleBinding); some permissions, such as reading Secrets, are an escalation
// only then.
//
// Rules are compared with kube-apiserver's own coverage check (wildcards in verbs, API groups
// and resources included). A rule limited to resourceNames counts as if it were not: impersonating
// one named user is impersonation all the same.
func RoleEscalations(rules []rbacv1.PolicyRule, clusterWide bool) []string {
	owner := make([]rbacv1.PolicyRule, len(rules))
	for i, r := range rules {
		r.ResourceNames = nil
		owner[i] = r
	}
	var out []string
	for i, e := range escalations {
		if e.clusterWide && !clusterWide {
			continue
		}
		if covers, _ := rbacvalidation.Covers(owner, []rbacv1.PolicyRule{e.rule}); !covers {
			continue
		}
		if i == 0 {
			// Everything: the rest would only repeat it.
			return []string{e.reason}
		}
		if len(out) == 0 || out[len(out)-1] != e.reason {
			out = append(out, e.reason)
		}
	}
	return out
}
