// Package console is the approvers' web console: a live inbox of the operations that
// Gatehouse policies hold for approval, each request's page with the object as admission sees
// it (masked) and, for updates, the change against the live object, approve and deny with a
// required reason, and a filtered history. It serves the approvals API on the same listener.
//
// Pages are rendered on the server with html/template. The browser runs only files the console
// serves itself: htmx with its server-sent-events extension (vendored from npm, pinned and
// checked by subresource integrity) and a small script for countdowns, keyboard shortcuts and
// confirmations; every page works as plain HTML forms and links too. The inbox follows the
// approval broker's JetStream key-value watch through one in-memory hub per process: every
// event carries the key-value revision as its id, so a browser that reconnects with
// Last-Event-ID receives exactly the changes it missed, or the whole state when the hub's log
// does not reach back that far.
//
// # Threat model
//
// The console decides who may approve privileged operations, so its sessions are as valuable
// as an approver's token.
//
//   - Login is the OpenID Connect authorization code flow with PKCE, state and nonce, against
//     issuers the proxy trusts; the ID token is verified and mapped to an identity by the same
//     authn.Authenticator (and AuthenticationConfiguration) as the proxy's bearer tokens, so the
//     console knows no identity the proxy would not.
//   - The session is an AES-GCM sealed cookie (__Host- prefix, HttpOnly, Secure,
//     SameSite=Strict) under a key from a file, bound to the verified identity and expiring with
//     the ID token (at most SessionMaxAge); logout revokes its ID. Nothing in it can be read or
//     changed without the key.
//   - Every state change checks Sec-Fetch-Site/Origin (net/http's CrossOriginProtection) and a
//     synchronizer token derived from the session ID, so neither another site nor another
//     user's session can post a decision.
//   - The approvals API accepts bearer tokens only, never the cookie: it cannot be driven by
//     a page in the approver's browser.
//   - The Content-Security-Policy allows scripts, styles and connections from the console's own
//     origin only, no inline script and no framing. Templates escape every value; objects were
//     masked at admission and free text that approvers type is masked before it is stored.
//   - The broker re-checks every decision (approver group, own request, one vote each, expiry),
//     so what the page offers is never what authorizes.
package console
