// Package devoidc is an OpenID Connect issuer for development and tests, on loopback HTTPS:
// discovery, a JWKS, RS256 and ES256 signing with key rotation, and tokens for named demo
// identities (an agent in group agents, an approver in gatehouse:approvers, ...).
//
// People log in the way they would with a real identity provider: the authorization code flow
// with PKCE (S256, required: every client is public) through a login page that lists the demo
// identities, or the device flow (RFC 8628) on a machine without a browser. Refresh tokens are
// single use and rotated. Redirect URIs must be registered; loopback ones match on any port
// (RFC 8252). `gatehouse dev` runs it as the issuer its proxy trusts; `gatehouse login` and the
// approvers' console log in against it; test/testbed builds its token helpers on it.
//
// # Threat model
//
// There are no passwords: whoever reaches the login page may pick any identity, and whoever can
// read the key file (Options.KeyFile, 0600 in `gatehouse dev`'s state directory) can mint any
// identity's token. That is what a development issuer is for; never trust it from a real
// cluster. What it does check is what a real issuer checks, so that clients are tested against
// the real rules: registered redirect URIs only (an invalid one gets an error page, never a
// redirect), PKCE verifier against challenge, single-use codes bound to client and redirect
// URI, expiry of codes, device codes and refresh tokens.
package devoidc
