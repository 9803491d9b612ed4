package testbed

// AuditWebhook returns kube-apiserver flags (for KubeOptions.APIServerFlags) that send the
// audit events policyFile selects to the webhook configured in kubeconfigFile, in batches at
// most a second old, retrying a failed batch after a second rather than ten.
func AuditWebhook(policyFile, kubeconfigFile string) map[string][]string {
	return map[string][]string{
		"audit-policy-file":             {policyFile},
		"audit-webhook-config-file":     {kubeconfigFile},
		"audit-webhook-mode":            {"batch"},
		"audit-webhook-batch-max-wait":  {"1s"},
		"audit-webhook-initial-backoff": {"1s"},
	}
}
