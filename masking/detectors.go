package masking

import (
	"bytes"
	"encoding/base64"
	"hash/crc32"
	"regexp"
)

// Detector and rule IDs. The core detectors come first, then the structural rules, then the
// credential formats of formats.go; custom detectors and field rules from the configuration
// follow with IDs assigned by New. Stats report the names, which are stable.
const (
	idJWT = iota
	idPEM
	idPEMBase64
	idAWSAccessKeyID
	idAWSSecretKey
	idGitHub
	idGitLab
	idSlackToken
	idSlackWebhook
	idStripe
	idGoogleAPIKey
	idGCPServiceAccount
	idAzureStorageKey
	idURLPassword
	idBearer
	idBasicAuth
	idDockerConfigAuth
	idFieldError
	idPasswordAssignment
	idKeywordEntropy
	idBase64Document
	idKubeconfig
	idJWK
	idYAMLCommand
	numCoreDetectors
)

const (
	idSecretData = numCoreDetectors + iota
	idSecretStringData
	idTokenRequest
	idTokenReview
	idLastApplied
	// idFirstFormat is the ID of formats[0]; the formats follow in table order.
	idFirstFormat
)

// numBuiltin is the number of built-in detector and rule IDs.
var numBuiltin = idFirstFormat + len(formats)

// isStructuralRule reports the IDs of the structural rules, which only configuration by name
// can exempt.
func isStructuralRule(id int) bool { return id >= idSecretData && id < idFirstFormat }

// builtinNames returns the names of the built-in IDs, which stats and configuration use.
func builtinNames() []string {
	names := make([]string, numBuiltin)
	copy(names, coreNames[:])
	for i, f := range formats {
		names[idFirstFormat+i] = f.name
	}
	return names
}

var coreNames = [idFirstFormat]string{
	idJWT:                "jwt",
	idPEM:                "pem-private-key",
	idPEMBase64:          "pem-private-key-base64",
	idAWSAccessKeyID:     "aws-access-key-id",
	idAWSSecretKey:       "aws-secret-access-key",
	idGitHub:             "github-token",
	idGitLab:             "gitlab-token",
	idSlackToken:         "slack-token",
	idSlackWebhook:       "slack-webhook",
	idStripe:             "stripe-key",
	idGoogleAPIKey:       "google-api-key",
	idGCPServiceAccount:  "gcp-service-account-key",
	idAzureStorageKey:    "azure-storage-key",
	idURLPassword:        "url-password",
	idBearer:             "bearer-token",
	idBasicAuth:          "basic-auth",
	idDockerConfigAuth:   "docker-config-auth",
	idFieldError:         "field-error-value",
	idPasswordAssignment: "password-assignment",
	idKeywordEntropy:     "keyword-entropy",
	idBase64Document:     "base64-credential-document",
	idKubeconfig:         "kubeconfig-credentials",
	idJWK:                "jwk-private-key",
	idYAMLCommand:        "yaml-command-words",
	idSecretData:         "secret-data",
	idSecretStringData:   "secret-string-data",
	idTokenRequest:       "token-request",
	idTokenReview:        "token-review",
	idLastApplied:        "last-applied-unparsable",
}

// detector finds credentials in text. A detector runs only when one of its keywords occurs in
// the text (case-insensitively), or on every text when it has none. Its regular expression
// proposes candidates; the submatch group (0 for the whole match, -1 for the first group that
// matched) is the secret, which must pass minEntropy and check to be masked.
type detector struct {
	id         int
	keywords   []string
	re         *regexp.Regexp
	group      int
	minEntropy float64
	check      func(secret []byte) bool
	// bound rejects a secret that continues a word: the byte before it is a letter or digit.
	// (RE2's \b at the start of an expression would keep it from using its literal prefix.)
	bound bool
	// find replaces the regular expression for detectors that need more than one.
	find func(text []byte, spans []span) []span
	// findW is find for detectors that use the walker (nil outside one): documents embedded
	// in base64, masked with its help, and assignments, whose keys it classifies through its
	// cache.
	findW func(w *walker, text []byte, spans []span) []span
	// multi marks a detector that reports under other IDs too; it runs even when its own ID is
	// turned off, and its findings are filtered by their IDs.
	multi bool
	// requires is a byte every match of re contains: a text without it is not searched (RE2
	// runs expressions with large counted repetitions on its slowest engine).
	requires byte
	// mayMatch, when set, is a quick test that re finds nothing in a text it returns false
	// for: Go's regexp tries an expression without a literal prefix at every byte, which costs
	// more than the whole keyword scan for a common keyword in a text without a match (token
	// path, basic settings).
	mayMatch func(text []byte) bool
	// args, when set, replaces the expression: where commands take a password among their
	// arguments (cmdargs.go).
	args *passwordArgs
	// command marks a detector that finds a secret by the command's words before it (mysql
	// -pS3cret, redis-cli -a S3cret): the words of an array of strings are read by it as a
	// command line (argv.go).
	command bool
	// lines, when set, narrows where re runs to the lines of a text it picks, a line
	// continued with a backslash together with the next: re matches within one such line, and
	// a text that holds the keyword once is not searched whole.
	lines *lineFilter
	// needsAny, for a detector without keywords, lists bytes one of which every text it finds
	// anything in contains: the engine's prefilter (engine.prefilter, its stop bytes built by
	// newStops) skips decoded texts without them. Empty when there are none, which turns that
	// prefilter off.
	needsAny string
}

// span is a part of a text to mask and the detector that found it.
type span struct {
	start, end int
	id         int
}

// run appends the secrets d finds in text to spans.
func (d *detector) run(w *walker, text []byte, spans []span) []span {
	switch {
	case d.findW != nil:
		return d.findW(w, text, spans)
	case d.find != nil:
		return d.find(text, spans)
	case d.args != nil:
		return d.args.find(text, d.id, spans)
	case d.requires != 0 && bytes.IndexByte(text, d.requires) < 0:
		return spans
	case d.mayMatch != nil && !d.mayMatch(text):
		return spans
	case d.lines != nil:
		return d.lines.each(text, spans, d.matches)
	}
	return d.matches(text, 0, spans)
}

// lineFilter picks the lines a detector's expression runs on: those that hold flag after a
// blank and one of words.
type lineFilter struct {
	flag  string   // a flag every match holds after a blank: -p
	words []string // one of which every match holds: the command's name
}

// each calls match on the lines of text f picks, in order, and returns the spans it appended.
// It reads text about three times, however many flags it holds.
func (f *lineFilter) each(text []byte, spans []span, match func(line []byte, off int, spans []span) []span) []span {
	for pos := 0; pos < len(text); {
		k := bytes.Index(text[pos:], []byte(f.flag))
		if k < 0 {
			break
		}
		at := pos + k
		if at == 0 || (text[at-1] != ' ' && text[at-1] != '\t') {
			pos = at + len(f.flag)
			continue
		}
		start, end := lineStart(text, at), lineEnd(text, at)
		if line := text[start:end]; f.hasWord(line) && !f.onlyReferences(line) {
			spans = match(line, start, spans)
		}
		pos = end + 1
	}
	return spans
}

// onlyReferences reports whether each time the line holds the flag after a blank, a reference
// follows it (-p$(DB_PASSWORD), -p${PW}), which the expressions' checks reject: the line need
// not be searched.
func (f *lineFilter) onlyReferences(line []byte) bool {
	for pos := 0; ; {
		k := bytes.Index(line[pos:], []byte(f.flag))
		if k < 0 {
			return true
		}
		at := pos + k
		pos = at + len(f.flag)
		if at > 0 && (line[at-1] == ' ' || line[at-1] == '\t') &&
			!bytes.HasPrefix(line[pos:], []byte("$(")) && !bytes.HasPrefix(line[pos:], []byte("${")) {
			return false
		}
	}
}

func (f *lineFilter) hasWord(line []byte) bool {
	for _, w := range f.words {
		if bytes.Contains(line, []byte(w)) {
			return true
		}
	}
	return false
}

// lineStart returns the index of the first byte of the line that holds text[i]: a newline
// after a backslash continues the line.
func lineStart(text []byte, i int) int {
	for {
		k := bytes.LastIndexByte(text[:i], '\n')
		if k <= 0 || text[k-1] != '\\' {
			return k + 1
		}
		i = k
	}
}

// lineEnd returns the index of the newline that ends the line holding text[start], or
// len(text): a newline after a backslash continues the line.
func lineEnd(text []byte, start int) int {
	for i := start; ; {
		k := bytes.IndexByte(text[i:], '\n')
		if k < 0 {
			return len(text)
		}
		if i += k; i == 0 || text[i-1] != '\\' {
			return i
		}
		i++
	}
}

// matches appends the secrets re finds in text, at off in the text the spans are of.
func (d *detector) matches(text []byte, off int, spans []span) []span {
	for _, m := range d.re.FindAllSubmatchIndex(text, -1) {
		s, e := m[0], m[1]
		switch {
		case d.group > 0:
			s, e = m[2*d.group], m[2*d.group+1]
		case d.group < 0:
			for g := 1; 2*g < len(m); g++ {
				if m[2*g] >= 0 {
					s, e = m[2*g], m[2*g+1]
					break
				}
			}
		}
		if s < 0 || s == e {
			continue
		}
		if d.bound && s > 0 && isAlnum(text[s-1]) {
			continue
		}
		secret := text[s:e]
		if d.minEntropy > 0 && entropy(secret) < d.minEntropy {
			continue
		}
		if d.check != nil && !d.check(secret) {
			continue
		}
		spans = append(spans, span{off + s, off + e, d.id})
	}
	return spans
}

// The built-in detectors. They are our own rules, written after the model of gitleaks' rule
// set: a keyword prefilter, an RE2 expression and a check (entropy, checksum, decoding).
var builtinDetectors = []*detector{
	{
		id:       idJWT,
		keywords: []string{"eyj"},
		re:       regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?`),
		check:    jwtHeader,
	},
	{
		// The whole block, markers included; an unterminated block is masked to the end.
		id:       idPEM,
		keywords: []string{"private key"},
		re:       regexp.MustCompile(`-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\z)`),
	},
	{
		// "LS0tLS1CRUdJTi" is base64 for "-----BEGIN", as in kubeconfig client-key-data.
		id:       idPEMBase64,
		keywords: []string{"ls0tls1crudjti"},
		re:       regexp.MustCompile(`LS0tLS1CRUdJTi[A-Za-z0-9+/=\r\n]{30,}`),
		check:    base64PrivateKey,
	},
	{
		id:         idAWSAccessKeyID,
		keywords:   []string{"akia", "asia", "abia", "acca", "a3t"},
		re:         regexp.MustCompile(`\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`),
		group:      1,
		minEntropy: 3,
	},
	{
		id:         idAWSSecretKey,
		keywords:   []string{"aws"},
		re:         regexp.MustCompile(`(?i)aws[a-z0-9_.\- ]{0,32}?(?:secret|private|sk)[a-z0-9_.\- ]{0,24}?["']?\s*(?::=|=>|[:=])\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|\z)`),
		group:      1,
		minEntropy: 3.5,
	},
	{
		id:       idGitHub,
		keywords: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		re:       regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,255})\b`),
		group:    1,
		check:    githubToken,
	},
	{
		id:         idGitLab,
		keywords:   []string{"glpat-", "gldt-", "glrt-", "glptt-", "gloas-", "glft-", "glsoat-", "glcbt-", "glimt-", "glagent-", "glffct-", "gr1348941"},
		re:         regexp.MustCompile(`\b((?:gl(?:pat|dt|rt|ptt|oas|ft|soat|cbt|imt|agent|ffct)-|GR1348941)[0-9A-Za-z_-]{20,}(?:\.[0-9a-z]{9}\b)?)`),
		group:      1,
		minEntropy: 3,
	},
	{
		id:       idSlackToken,
		keywords: []string{"xox", "xapp-"},
		re:       regexp.MustCompile(`\b((?:xoxe\.)?(?:xox[abcoprse]|xapp)-[0-9A-Za-z-]{10,250})`),
		group:    1,
		check:    hasDigit,
	},
	{
		id:       idSlackWebhook,
		keywords: []string{"hooks.slack.com"},
		re:       regexp.MustCompile(`hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9+/_-]{20,})`),
		group:    1,
	},
	{
		id:       idStripe,
		keywords: []string{"sk_live_", "rk_live_", "sk_test_", "rk_test_", "sk_prod_", "rk_prod_"},
		re:       regexp.MustCompile(`\b((?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,247})\b`),
		group:    1,
	},
	{
		id:       idGoogleAPIKey,
		keywords: []string{"aiza"},
		re:       regexp.MustCompile(`\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|\z)`),
		group:    1,
	},
	{
		id:       idGCPServiceAccount,
		keywords: []string{"service_account"},
		find:     findServiceAccountKey,
	},
	{
		id:       idAzureStorageKey,
		keywords: []string{"accountkey", "sharedaccesskey"},
		re:       regexp.MustCompile(`(?i)\b(?:AccountKey|SharedAccessKey)\s*=\s*([A-Za-z0-9+/]{20,}={0,2})`),
		group:    1,
	},
	{
		// Only the password of scheme://user:password@host; greedy so that an unencoded @ in
		// the password is masked too.
		id:       idURLPassword,
		keywords: []string{"://"},
		re:       regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/?#@"'<>]{0,256}:([^\s/?#"'<>]{1,256})@[^\s/?#@"'<>]`),
		requires: '@',
		group:    1,
		check:    notReference,
	},
	{
		id:         idBearer,
		keywords:   []string{"bearer", "token"},
		re:         regexp.MustCompile(`(?i)\b(?:bearer|token)[ \t]+([A-Za-z0-9._~+/-]{16,}=*)`),
		group:      1,
		minEntropy: 3,
		mayMatch:   newWordRun([]string{"bearer", "token"}, bearerRunes, 16).mayHold,
	},
	{
		id:       idBasicAuth,
		keywords: []string{"basic"},
		re:       regexp.MustCompile(`(?i)\bbasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})`),
		group:    1,
		check:    basicCredentials,
		mayMatch: newWordRun([]string{"basic"}, basicRunes, 8).mayHold,
	},
	{
		// Registry credentials in a .dockerconfigjson or .dockercfg document found as text.
		id:       idDockerConfigAuth,
		keywords: []string{`"auth`},
		re:       regexp.MustCompile(`"(?:auth|password|identitytoken|registrytoken)"\s*:\s*"((?:[^"\\]|\\.)+)"`),
		group:    1,
	},
	{
		// The value the API server echoes in a validation error for a secret field:
		// data[password]: Invalid value: "...".
		id:       idFieldError,
		keywords: []string{"invalid value"},
		find:     findFieldErrors,
	},
	{
		// Documents in base64 that hold a credential: a docker config, a service account key,
		// a kubeconfig.
		id:       idBase64Document,
		keywords: []string{"eyj", "ewo", "w3s", "yxbpvmvyc2lvbj", "w2rlzmf1bhrd", "zxlk"},
		findW:    findBase64Documents,
	},
	{
		// The users of a kubeconfig held as YAML text, whole, when one has a credential.
		id:       idKubeconfig,
		keywords: []string{"users:"},
		find:     findKubeconfigUsers,
	},
	{
		// The private members of a JSON Web Key held as text that does not parse.
		id:       idJWK,
		keywords: []string{`"kty"`},
		find:     findJWKText,
	},
	{
		// Commands written as YAML sequences of words in text (command: [mysql, -pS3cret]),
		// read by the detectors of commands; reports under their IDs.
		id:       idYAMLCommand,
		keywords: commandFormatKeywords(),
		findW:    findYAMLCommands,
		multi:    true,
	},
	{
		// password=..., token: ..., --api-key ... in free text; reports password-assignment or
		// keyword-entropy.
		id:       idPasswordAssignment,
		keywords: []string{"pass", "pwd", "pw", "secret", "token", "key", "auth", "cred", "sig", "cookie"},
		findW:    findAssignments,
		multi:    true,
	},
}

// The alphabets of the bearer-token and basic-auth expressions' secrets as bytes: under (?i)
// an ASCII class holds the runes Unicode folds onto its letters too, the Kelvin sign (U+212A,
// E2 84 AA) onto k and the long s (U+017F, C5 BF) onto s, and a run of n runes of the class
// is a run of at least n bytes of these sets.
var (
	bearerRunes = newByteSet("-A-Za-z0-9._~+/\xe2\x84\xaa\xc5\xbf") // - first: not a range
	basicRunes  = newByteSet("A-Za-z0-9+/\xe2\x84\xaa\xc5\xbf")
)

// wordRun describes an expression (?i)\b(?:word|...)[ \t]+([set]{n,}...) for its quick
// test, mayHold.
type wordRun struct {
	words []string // lower-case letters
	set   *byteSet // the expression's class, with the bytes of the runes folded onto its letters
	n     int
	first byteSet // the first bytes of the words, in either case
}

func newWordRun(words []string, set *byteSet, n int) *wordRun {
	r := &wordRun{words: words, set: set, n: n}
	for _, w := range words {
		if w[0] == 'k' || w[0] == 's' {
			// A rune folded onto the first letter would not be in first.
			panic("masking: a word of a quick test starts with k or s: " + w)
		}
		r.first[w[0]], r.first[w[0]-'a'+'A'] = true, true
	}
	return r
}

// mayHold returns false only when text holds no word of r.words (matched as foldedWordAt
// matches it) followed by spaces or tabs and then r.n bytes of r.set: then the expression finds
// nothing in text. It is a superset of the expression's matches: word boundaries are not
// checked. Each word is read from the letters that start it, its blanks whole, and at most r.n
// bytes after them: runs of blanks after distinct words do not overlap, so the read is linear.
func (r *wordRun) mayHold(text []byte) bool {
	words, set, n := r.words, r.set, r.n
	for i, c := range text {
		if !r.first[c] {
			continue
		}
		for _, w := range words {
			if c|0x20 != w[0] {
				continue
			}
			j := foldedWordAt(text, i, w)
			if j < 0 || j >= len(text) || (text[j] != ' ' && text[j] != '\t') {
				continue
			}
			for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
				j++
			}
			k := j
			for k < len(text) && k-j < n && set[text[k]] {
				k++
			}
			if k-j == n {
				return true
			}
		}
	}
	return false
}

// foldedWordAt returns the end of word (lower-case ASCII letters) at text[i] as an expression
// under (?i) matches it, or -1: each letter in either case, and k and s also as the runes
// Unicode folds onto them, the Kelvin sign and the long s.
func foldedWordAt(text []byte, i int, word string) int {
	for j := 0; j < len(word); j++ {
		switch {
		case i < len(text) && text[i]|0x20 == word[j]: // only the letter's two cases
			i++
		case word[j] == 'k' && bytes.HasPrefix(text[i:], []byte("\u212a")):
			i += len("\u212a")
		case word[j] == 's' && bytes.HasPrefix(text[i:], []byte("\u017f")):
			i += len("\u017f")
		default:
			return -1
		}
	}
	return i
}

func hasDigit(b []byte) bool {
	for _, c := range b {
		if isDigit(c) {
			return true
		}
	}
	return false
}

func notReference(b []byte) bool { return !obviouslyNotSecret(b) }

// jwtHeader reports whether the first segment of a JWT candidate decodes to a JOSE header.
func jwtHeader(tok []byte) bool {
	seg := tok
	if i := bytes.IndexByte(tok, '.'); i >= 0 {
		seg = tok[:i]
	}
	var buf [512]byte
	if base64.RawURLEncoding.DecodedLen(len(seg)) > len(buf) {
		seg = seg[:base64.RawURLEncoding.EncodedLen(len(buf))/4*4]
	}
	n, err := base64.RawURLEncoding.Decode(buf[:], seg)
	if err != nil && n == 0 {
		return false
	}
	h := buf[:n]
	return len(h) > 0 && h[0] == '{' && (bytes.Contains(h, []byte(`"alg"`)) || bytes.Contains(h, []byte(`"typ"`)))
}

// base64PrivateKey reports whether the start of a base64 text decodes to a private key marker.
func base64PrivateKey(b []byte) bool {
	var clean [96]byte
	n := 0
	for _, c := range b {
		if c == '\r' || c == '\n' {
			continue
		}
		if n == len(clean) {
			break
		}
		clean[n] = c
		n++
	}
	n = n / 4 * 4
	var out [72]byte
	m, _ := base64.StdEncoding.Decode(out[:], clean[:n])
	return bytes.Contains(out[:m], []byte("PRIVATE KEY"))
}

// basicCredentials reports whether b is the base64 encoding of user:password.
func basicCredentials(b []byte) bool {
	var out [256]byte
	if base64.StdEncoding.DecodedLen(len(b)) > len(out) {
		return false
	}
	n, err := base64.StdEncoding.Decode(out[:], b)
	if err != nil {
		return false
	}
	cred := out[:n]
	i := bytes.IndexByte(cred, ':')
	if i < 1 {
		return false
	}
	for _, c := range cred {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// githubChecksum reports whether a classic GitHub token (gh?_ + 30 random + 6 checksum
// characters) carries a valid checksum: the CRC32 of the 30 random characters, in base62
// (digits, upper, lower), left-padded with zeros to six characters.
func githubChecksum(tok []byte) bool {
	if len(tok) != 40 || tok[3] != '_' {
		return false
	}
	sum := crc32.ChecksumIEEE(tok[4:34])
	var enc [6]byte
	for i := 5; i >= 0; i-- {
		enc[i] = base62[sum%62]
		sum /= 62
	}
	return sum == 0 && bytes.Equal(enc[:], tok[34:])
}

// githubToken confirms a GitHub token by its checksum. Because a false rejection would leak a
// real token, a token whose checksum does not verify is still masked when it looks random;
// only low-entropy look-alikes (ghp_xxxx… in documentation) are left alone.
func githubToken(tok []byte) bool {
	return githubChecksum(tok) || entropy(tok) >= 3
}

var (
	serviceAccountType = regexp.MustCompile(`"type"\s*:\s*"service_account"`)
	jsonStringMember   = regexp.MustCompile(`"[A-Za-z0-9_]+"\s*:\s*"((?:[^"\\]|\\.)*)"`)
)

// findServiceAccountKey masks every string value of a GCP service account key file held as
// text that does not parse as JSON (one that does is masked as a document): its parts are one
// secret.
func findServiceAccountKey(text []byte, spans []span) []span {
	if !serviceAccountType.Match(text) || !bytes.Contains(text, []byte(`"private_key`)) {
		return spans
	}
	for _, m := range jsonStringMember.FindAllSubmatchIndex(text, -1) {
		if m[3] > m[2] {
			spans = append(spans, span{m[2], m[3], idGCPServiceAccount})
		}
	}
	return spans
}

var jwkPrivateMember = regexp.MustCompile(`"(?:d|p|q|dp|dq|qi|k)"\s*:\s*"([A-Za-z0-9_-]{16,})"`)

// findJWKText masks the private members of a JSON Web Key held as text.
func findJWKText(text []byte, spans []span) []span {
	for _, m := range jwkPrivateMember.FindAllSubmatchIndex(text, -1) {
		spans = append(spans, span{m[2], m[3], idJWK})
	}
	return spans
}

// kubeconfigCredentialKeys are the keys of a kubeconfig user that hold a credential.
var kubeconfigCredentialKeys = [][]byte{
	[]byte("token:"), []byte("client-key-data:"), []byte("password:"), []byte("id-token:"),
	[]byte("refresh-token:"), []byte("client-secret:"), []byte("access-token:"),
}

// findKubeconfigUsers masks the users section of a kubeconfig held as YAML (a ConfigMap key,
// an annotation) whole when a user in it holds a credential: the lines after "users:" up to
// the next top-level key.
func findKubeconfigUsers(text []byte, spans []span) []span {
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte("users:"))
		if i < 0 {
			return spans
		}
		p := off + i
		off = p + 1
		if p > 0 && text[p-1] != '\n' {
			continue
		}
		nl := bytes.IndexByte(text[p:], '\n')
		if nl < 0 {
			continue
		}
		s := p + nl + 1
		e := s
		for e < len(text) {
			if c := text[e]; c != ' ' && c != '\t' && c != '-' && c != '\n' && c != '\r' {
				break // a top-level key
			}
			nl := bytes.IndexByte(text[e:], '\n')
			if nl < 0 {
				e = len(text)
				break
			}
			e += nl + 1
		}
		for e > s && (text[e-1] == '\n' || text[e-1] == '\r') {
			e--
		}
		found := false
		for _, k := range kubeconfigCredentialKeys {
			found = found || bytes.Contains(text[s:e], k)
		}
		if found {
			spans = append(spans, span{s, e, idKubeconfig})
			off = e
		}
	}
}

var fieldError = regexp.MustCompile(`([A-Za-z0-9_.\[\]/-]{1,256}): Invalid value: (?:"((?:[^"\\]|\\.)*)"|([^\s:,"]+))`)

// findFieldErrors masks the values API server validation errors echo for fields of Secrets
// (data[...], stringData[...]) and for fields with secret-sounding names.
func findFieldErrors(text []byte, spans []span) []span {
	for _, m := range fieldError.FindAllSubmatchIndex(text, -1) {
		path := text[m[2]:m[3]]
		s, e := m[4], m[5]
		if s < 0 {
			s, e = m[6], m[7]
		}
		if s == e {
			continue
		}
		secret := bytes.HasPrefix(path, []byte("data[")) || bytes.HasPrefix(path, []byte("stringData[")) ||
			bytes.Contains(path, []byte(".data[")) || bytes.Contains(path, []byte(".stringData["))
		if !secret {
			last := path
			if i := bytes.LastIndexAny(path, ".["); i >= 0 {
				last = bytes.TrimRight(path[i+1:], "]")
			}
			secret = classifyKey(last) != keyPlain
		}
		if secret {
			spans = append(spans, span{s, e, idFieldError})
		}
	}
	return spans
}
