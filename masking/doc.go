// Package masking replaces secret values in Kubernetes API responses, audit events and text with
// placeholders, so that secrets never reach a Gatehouse client or a log while kubectl and
// client-go keep working on what they get back.
//
// The front proxy masks every response it forwards ([Masker.Body], [Masker.Stream]); the
// enricher masks audit events before they enter the trail ([Masker.JSON]). A [Masker] is built
// once from a [Config] and is safe for concurrent use. [Masker.Body] masks the items of a large
// list (256 KiB or more) in two halves at once when the machine has more than one CPU, with the
// same result as one goroutine would have.
//
// # Threat model
//
// The client (an automated tool acting for a user) is allowed to read and change objects, but
// not to learn secret values: Secret data, service account tokens, credentials in ConfigMaps,
// environment variables, arguments, annotations and logs. Neither may the audit trail, which
// many more people read. The engine therefore fails closed: a body that should be masked but
// cannot be parsed is an error ([ErrMalformed], [ErrTooLarge]), never passed through, and a
// body it cannot rewrite structurally (protobuf, CBOR, YAML, unknown types of resources that may
// carry secrets) is refused with [ErrUnmaskable]. When it cannot tell what an object is (no kind,
// no hint, kinds named twice, fields before the kind), it applies the union of all rules. Error
// messages carry offsets, never content.
//
// What the engine does not defend against: a client that can write a Secret can test guesses
// against the placeholder of another value of the same key (one write per guess; rate limits and
// admission policy are the defence); placeholders written back (an object read through Gatehouse
// and applied unchanged would store placeholders in place of secrets; admission control should
// refuse writes for which [ContainsPlaceholder] is true); credentials no rule or detector
// recognises (an unlabelled password in free text, or a key of a format without a shape of its
// own, such as a 32-digit hex API key, under a name that does not sound secret); object keys,
// which are never masked; and what the proxy does not pass through the engine (see The
// proxy's side).
//
// # What is masked
//
// Structural rules, applied wherever the object appears (single objects, SecretList, v1 List,
// Table rows with includeObject=Object, watch events, audit requestObject and responseObject,
// AdmissionReview object and oldObject, JSON patches, the last-applied annotation):
//
//   - Secret data (secret-data) and stringData (secret-string-data): every value, whatever it is.
//     data values stay valid base64, so client-go decodes the object and
//     `kubectl get secret -o jsonpath='{.data.x}' | base64 -d` prints the placeholder.
//   - TokenRequest status.token (token-request) and TokenReview spec.token (token-review).
//   - kubectl.kubernetes.io/last-applied-configuration, on any object: the JSON document it holds
//     is masked with the same rules, the enclosing object's type as hint, and encoded again. If
//     it does not parse it is replaced by a placeholder (last-applied-unparsable).
//   - ConfigMap binaryData: a value is masked whole when its key sounds secret or a detector
//     finds a credential in the decoded bytes; other binary values (images) are kept.
//   - Docker config "auths" objects: every value of each registry's entry (auth, username,
//     password, identitytoken, email) (docker-config-auth).
//   - Credential documents, every value of them, wherever they appear as JSON objects: a GCP
//     service account key ("type": "service_account" with a private_key;
//     gcp-service-account-key), a private JSON Web Key ("kty" with "d" or "k";
//     jwk-private-key), the users of a kubeconfig (kind Config; kubeconfig-credentials).
//   - Operator field rules: fields of a group/kind, by path (see [FieldRule]).
//
// Keyword rules, for every string value named by a secret-sounding key: an object member name,
// the name of a name/value pair (container env), the preceding flag of an argument list
// (["--password", "x"]), an annotation key, a query parameter. A key sounds like a password when
// its last word is password, passwd, passphrase, pwd or pass; its value is then masked unless it
// is obviously not a secret (empty, a boolean, a $(VAR) or {{ template }} reference, ***)
// (password-assignment). A key sounds secret when its last word is secret, token, api key,
// access key, private key, credential(s), auth, signature, cookie, or key after another word
// (API_KEY, tls.key, but not publicKey or sortKey); its value is masked when it is at least 8
// bytes with a Shannon entropy of at least 3 bits per byte (keyword-entropy).
//
// Nested documents: a JSON document held in a string value (a ConfigMap key, an annotation, an
// environment variable, a field of a JSON log line) or written in free text (a structured log
// line, JSON after a prefix, an indented JSON record over several lines of a log) is masked as
// a document by the same rules, to four levels of nesting; below that, its text still goes
// through the detectors. What it changes is carried into the enclosing string, escaped as the
// string requires: the outer document stays valid, and every byte that was not masked is kept
// as it was. A base64 token that decodes to a document in which anything would be masked (a
// docker config, a service account key, a kubeconfig, an AWS credentials file, a JWT) is masked
// whole (base64-credential-document).
//
// Detectors, for every string value and for free text; only the secret part of a match is
// replaced:
//
//	jwt                     eyJ… JSON Web Tokens whose header decodes to a JOSE header
//	pem-private-key         -----BEGIN … PRIVATE KEY----- blocks, whole (to the end if unterminated)
//	pem-private-key-base64  the same, base64-encoded (kubeconfig client-key-data)
//	aws-access-key-id       AKIA/ASIA/ABIA/ACCA/A3T… key IDs
//	aws-secret-access-key   40-character keys assigned to aws…secret… names
//	github-token            ghp_/gho_/ghu_/ghs_/ghr_ (CRC32 checksum checked), github_pat_
//	gitlab-token            glpat-, gldt-, glrt-, glptt-, gloas-, … tokens
//	slack-token             xoxb-/xoxp-/xoxa-/… and xapp- tokens
//	slack-webhook           the secret path of hooks.slack.com URLs
//	stripe-key              sk_live_, rk_live_, sk_test_, rk_test_ keys
//	google-api-key          AIza… keys
//	gcp-service-account-key private_key and private_key_id of a service account key file
//	azure-storage-key       AccountKey= and SharedAccessKey= of connection strings
//	url-password            the password of scheme://user:password@host
//	bearer-token            Bearer and token authorization values
//	basic-auth              Basic authorization values that decode to user:password
//	docker-config-auth      auth, password, identitytoken of a docker config held as text
//	field-error-value       values echoed by validation errors for secret fields
//	password-assignment     password=…, pwd: …, --password … in text (see keyword rules)
//	keyword-entropy         token=…, api_key: … with high-entropy values in text
//	kubeconfig-credentials  the users section of a kubeconfig held as YAML, when a user has a
//	                        token, client key, password or auth provider tokens
//	jwk-private-key         the private members of a JSON Web Key held as text
//
// and more than a hundred credential formats recognised by their shape alone, whatever the
// name beside them (formats.go; README.md has the table): the API keys of AI providers
// (OpenAI, Anthropic, Google/Gemini, Hugging Face, Groq, Replicate, xAI, Perplexity, …), cloud
// credentials (AWS session tokens, Azure keys with their identifiable signatures, Azure AD
// client secrets, Alibaba, DigitalOcean, Heroku, Fly.io, Terraform Cloud, Databricks,
// OpenShift, Kubernetes bootstrap tokens, …), VCS and CI tokens (Bitbucket, Atlassian,
// Sourcegraph, CircleCI, Buildkite, SonarQube, …), package registry tokens (npm, PyPI,
// RubyGems, NuGet, Docker Hub, crates.io, Artifactory, …), e-mail, telephony and chat
// (SendGrid, Mailgun, Mailchimp, Brevo, Twilio, Telegram, Discord, Teams, …), payment (Stripe
// webhook secrets, Square, Braintree, Plaid, Shopify, …), secret managers (Vault, Doppler,
// 1Password, Bitwarden, age), private key files (PuTTY), password hashes (bcrypt, crypt
// (md5, apr1, sha-crypt, yescrypt), argon2, PBKDF2, SCRAM, LDAP) and Secret manifests held as
// YAML.
//
// Each detector is a keyword prefilter (one Aho-Corasick pass over the text, so the regular
// expressions only run on texts that can match), an RE2 expression or a hand-written scanner
// for formats whose keyword is common ("sk", "api-"), and a check (entropy, checksum,
// decoding). The rules follow the model of gitleaks' rule set; they are our own. A GitHub token
// whose checksum does not verify is still masked when it looks random, so that a checksum
// mistake cannot leak a token; only low-entropy documentation placeholders are kept. Keys that
// name a checksum (checksum/secret, token_sha256) do not make their values secret.
//
// [Stats] count the masked values per rule or detector name, so that the trail records that
// something was masked, and by what, but not what.
//
// # Placeholders
//
// A masked value becomes
//
//	gatehouse:masked:<12 hex digits>
//
// where the digits are the first 6 bytes of HMAC-SHA256 under the operator's key ([Config].Key)
// of the value (of the decoded bytes for Secret data). Secret data values become the base64 of
// that text. A placeholder tells a human that something was masked and allows equality checks
// (two fields with the same value have the same placeholder) without revealing the value or its
// length; without the key it cannot be checked against guesses.
//
// # The proxy's side
//
// The proxy passes through the engine what the API server answers: objects, lists, Tables,
// watch streams and pod logs, over HTTP and frame by frame over WebSocket, and the output of
// exec and attach through the text detectors (package proxy). Port-forward traffic is the
// application's own protocol and is not masked. While it masks a response for Secrets, the
// engine hands each Secret value it replaces, with its placeholder, to [Target].SecretValue,
// in the same pass; the proxy keeps them for the session, whose exec and attach output is then
// masked with them too.
//
// Protobuf and CBOR responses cannot be masked structurally. The proxy therefore asks the API
// server for JSON for every request whose response may carry secrets ([Masker.NeedsMasking]):
// it rewrites the Accept header to application/json (keeping ;as=Table;g=meta.k8s.io;v=v1 and
// similar parameters, which select JSON Tables) and passes the response through [Masker.Body]
// or [Masker.Stream], which refuse anything else with [ErrUnmaskable]. The proxy may keep
// Accept-Encoding: gzip; the result is always uncompressed, so it drops Content-Encoding and
// sets Content-Length (or streams). Watch responses and logs (text/plain) are masked as they
// pass, event by event and line by line (a private key block or an indented JSON record is held
// back to its end), with memory bounded by [Limits]; the API server labels
// JSON watches plain application/json, so the proxy sets [Target].Watch for watch requests
// ([Masker.Stream] masks JSON document by document in any case). A watch event that cannot be
// masked ends the stream with an error, and the proxy then closes the connection (clients
// re-establish watches). On any error before the response started, the proxy answers 502 Bad
// Gateway with a fixed message and logs the error (which holds no content).
//
// A list read whole ([Masker.Body]) is masked in runs of items, and the Masker remembers how it
// masked each run: an object that did not change is the same bytes in the next response, and is
// not masked again (an agent polling a list, kubectl get after kubectl apply). The memory keeps
// hashes of the items' bytes (keyed with seeds made when the Masker is created) and what replaced
// parts of them in the response (placeholders, or a string rewritten around them); never a value
// masking hid: a Secret taken from it passes its values to [Target].SecretValue read from the
// response itself.
// A run is taken only when its length and hashes match one masked before for the same request
// type, and a changed byte anywhere in it masks it anew. [Limits].ItemCacheBytes bounds it, and
// [Masker.ItemCacheStats] says how it does.
//
// kubectl keeps working: get -o yaml/json, describe, get (Tables), apply, edit and create token
// all decode what they get. Applying an object read through Gatehouse would write placeholders;
// see the threat model.
//
// # Configuration
//
// A [Config] can be loaded from a file with [LoadConfig]:
//
//	apiVersion: masking.gatehouse.dev/v1alpha1
//	kind: MaskingConfig
//	keyFile: masking.key
//	rules:
//	- name: database-credential
//	  group: example.com
//	  kind: DatabaseCredential
//	  paths: [spec.password, "spec.connection.*"]
//	detectors:
//	- name: acme-api-key
//	  regex: 'acme_(?P<secret>[0-9a-f]{32})'
//	  keywords: [acme_]
//	  minEntropy: 3
//	exemptions:
//	- kind: ConfigMap
//	  keys: [ca.crt]
//
// See testdata/config.yaml for a complete example.
//
// # Adding a rule or a detector
//
// Operators add field rules and detectors in the configuration. To add a built-in credential
// format, add it to formats in formats.go with a stable name (it appears in stats and
// exemptions and must never change), lower-case keywords that every match contains, and an
// RE2 expression whose first group is the secret (or a token shape, for formats whose keyword
// is common), with a check that rejects look-alikes; then add a generator for it to the corpus
// (internal/fakecreds), which plants it in every place in the recall tests, and harmless
// look-alikes to the negative corpus. Detectors that need more than a match (documents,
// keyword rules) are in detectors.go.
// Structural rules live in walker.go (memberCtx decides what the members of a known kind are).
package masking
