package identity

import "strings"

// ReservedDomain is the domain of the extra and annotation keys only Gatehouse writes. Keys under
// it, or under any of its subdomains, are reserved as kube-apiserver reserves kubernetes.io and
// k8s.io: a token's claim mappings and a client's own impersonation may never set them.
const ReservedDomain = "gatehouse.dev"

// IsReserved reports whether key (an extra or annotation key such as "gatehouse.dev/session-id")
// lies in Gatehouse's reserved domain or one of its subdomains. The comparison ignores case:
// kube-apiserver lowercases extra keys.
func IsReserved(key string) bool {
	domain, _, ok := strings.Cut(strings.ToLower(key), "/")
	if !ok {
		return false
	}
	return domain == ReservedDomain || strings.HasSuffix(domain, "."+ReservedDomain)
}
