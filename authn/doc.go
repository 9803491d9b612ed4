// Package authn turns bearer tokens into Kubernetes identities: it verifies OIDC tokens from the
// issuers of a structured AuthenticationConfiguration (the file kube-apiserver reads with
// --authentication-config) with kube-apiserver's own OIDC token authenticator
// (k8s.io/apiserver/plugin/pkg/authenticator/token/oidc), so claim mappings, prefixes and CEL rules
// mean exactly what they mean there; it caches verified tokens by hash, and refuses identities in
// the reserved system: namespace, identities whose names hold control characters, and claim
// mappings onto Gatehouse's own gatehouse.dev/ extras.
// It also decides whether a verified identity may act as another (a client's own impersonation,
// kubectl --as), with SubjectAccessReviews as kube-apiserver's impersonation filter does.
//
// The front proxy (package proxy) calls it for every request; nothing here talks HTTP to clients.
//
// # Threat model
//
// An identity from this package is what Gatehouse impersonates at kube-apiserver, so a mistake
// here hands out someone else's rights. The package therefore
//
//   - never accepts unsigned or HMAC-signed tokens: only the asymmetric algorithms kube-apiserver
//     accepts, with keys from the issuer's discovery document (refetched on rotation);
//   - checks issuer, audience, expiry and not-before, and the configuration's CEL claim and user
//     validation rules, exactly as the AuthenticationConfiguration means them;
//   - refuses identities in the system: namespace unless explicitly allowed
//     (AllowedSystemPrefixes), and system:masters always, whether they come from a token or from
//     a client's impersonation (CheckIdentity);
//   - authorizes a client's impersonation only when SubjectAccessReviews of the verified identity
//     allow exactly the requested user, groups, UID and extras, and keeps the verified user in
//     the extra gatehouse.dev/original-user (Impersonate);
//   - keeps only SHA-256 hashes of tokens in its cache, never the tokens, and reports failures by
//     reason (Reason) without the token or its claims.
package authn
