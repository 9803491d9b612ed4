package testbed

import "strconv"

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

// AuditLog returns kube-apiserver flags (for KubeOptions.APIServerFlags) that also write every
// audit event to path (the log backend, JSON lines, blocking), rotated at maxSizeMB megabytes
// and keeping every rotated file: the ground truth of the audit path's drills, and the
// backstop the enricher follows.
func AuditLog(path string, maxSizeMB int) map[string][]string {
	return map[string][]string{
		"audit-log-path":      {path},
		"audit-log-format":    {"json"},
		"audit-log-mode":      {"blocking"},
		"audit-log-maxsize":   {strconv.Itoa(maxSizeMB)},
		"audit-log-maxbackup": {"0"},
		"audit-log-maxage":    {"0"},
	}
}

// MergeFlags returns the union of flag sets; later sets win.
func MergeFlags(sets ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}
