// Package fakecreds generates Fake credentials of every format the masking engine knows by
// shape, and of formats only a key name identifies, for the masking tests: never real keys,
// generated at test time by a seeded generator, with prefixes assembled from parts so that the
// source holds no complete token for other scanners to find. It also holds harmless values
// that look random but are no secrets, and the check that a credential survived masking.
package fakecreds

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"math/rand/v2"
	"strings"
)

// Gen generates Fake credentials deterministically.
type Gen struct{ r *rand.Rand }

// NewGen returns a generator seeded with seed.
func NewGen(seed uint64) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Alphabets of generated strings.
const (
	SetAlnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	SetLower   = "abcdefghijklmnopqrstuvwxyz0123456789"
	SetUpper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	SetHex     = "0123456789abcdef"
	SetHexU    = "0123456789ABCDEF"
	SetB64     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	SetB64URL  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	SetDigits  = "0123456789"
	SetBech32  = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
	SetCrypt   = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	SetLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// S returns n random bytes of set. Every string has a letter and a digit when the set has both,
// as real tokens of that length practically always do.
func (g *Gen) S(set string, n int) string {
	for {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[g.r.IntN(len(set))]
		}
		if n < 8 || !strings.ContainsAny(set, "0123456789") || !strings.ContainsAny(set, "abcdefABCDEF") || lettersAndDigits(b) {
			return string(b)
		}
	}
}

// IntN returns a random number in [0, n).
func (g *Gen) IntN(n int) int { return g.r.IntN(n) }

// UUID returns a random version 4 UUID.
func (g *Gen) UUID() string {
	return g.S(SetHex, 8) + "-" + g.S(SetHex, 4) + "-4" + g.S(SetHex, 3) + "-a" + g.S(SetHex, 3) + "-" + g.S(SetHex, 12)
}

// B64 returns the standard base64 of n random bytes.
func (g *Gen) B64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// cat joins the parts of a prefix.
func cat(parts ...string) string { return strings.Join(parts, "") }

// Fake is one generated credential: the text planted, and the parts of it that must not
// survive masking (the whole value when empty).
type Fake struct {
	Value   string
	Secrets []string
}

// MustVanish returns what must not survive masking.
func (f Fake) MustVanish() []string {
	if len(f.Secrets) > 0 {
		return f.Secrets
	}
	return []string{f.Value}
}

// Format is a format of the corpus.
type Format struct {
	Name string
	// Shape is set for formats recognisable by their shape alone; the others are only
	// recognised next to a secret-sounding name.
	Shape bool
	// Detector is the name the stats should report; empty when any will do.
	Detector string
	Gen      func(g *Gen) Fake
}

func v(s string) Fake { return Fake{Value: s} }

func ghClassic(g *Gen, prefix string) string {
	random := g.S(SetAlnum, 30)
	sum := crc32.ChecksumIEEE([]byte(random))
	var enc [6]byte
	for i := 5; i >= 0; i-- {
		enc[i] = base62[sum%62]
		sum /= 62
	}
	return prefix + random + string(enc[:])
}

func fakeJWT(g *Gen, claims string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + g.S(SetAlnum, 20) + `","typ":"JWT"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(claims))
	return h + "." + p + "." + g.S(SetB64URL, 342)
}

func fakePEM(g *Gen, kind string) string {
	var b strings.Builder
	b.WriteString("-----BEGIN " + kind + "-----\n")
	body := g.B64(600)
	for len(body) > 64 {
		b.WriteString(body[:64] + "\n")
		body = body[64:]
	}
	b.WriteString(body + "\n-----END " + kind + "-----\n")
	return b.String()
}

// pemBody returns a line of the body of a PEM block, which must vanish with it.
func pemBody(p string) string { return strings.Split(p, "\n")[3] }

func saKeyJSON(g *Gen, pretty bool) Fake {
	keyID := g.S(SetHex, 40)
	pem := fakePEM(g, "PRIVATE KEY")
	email := "deployer-" + g.S(SetLower, 6) + "@proj-" + g.S(SetLower, 6) + ".iam.gserviceaccount.com"
	clientID := "1" + g.S(SetDigits, 20)
	fields := [][2]string{
		{"type", "service_account"}, {"project_id", "proj-" + g.S(SetLower, 6)}, {"private_key_id", keyID},
		{"private_key", pem}, {"client_email", email}, {"client_id", clientID},
		{"auth_uri", "https://accounts.google.com/o/oauth2/auth"}, {"token_uri", "https://oauth2.googleapis.com/token"},
	}
	var b strings.Builder
	b.WriteString("{")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(",")
		}
		if pretty {
			b.WriteString("\n  ")
		}
		b.WriteString(quote(f[0]))
		b.WriteString(":")
		if pretty {
			b.WriteString(" ")
		}
		b.WriteString(quote(f[1]))
	}
	if pretty {
		b.WriteString("\n")
	}
	b.WriteString("}")
	return Fake{Value: b.String(), Secrets: []string{keyID, pemBody(pem), email, clientID}}
}

func dockerConfigJSON(g *Gen) Fake {
	user, pass := "robot-"+g.S(SetLower, 6), g.S(SetAlnum, 24)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	doc := `{"auths":{"registry.example.com":{"username":"` + user + `","password":"` + pass + `","auth":"` + auth + `"}}}`
	return Fake{Value: doc, Secrets: []string{pass, auth}}
}

func kubeconfigYAML(g *Gen) Fake {
	tok := g.S(SetAlnum, 48)
	doc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: deployer\n  name: prod\ncurrent-context: prod\nusers:\n- name: deployer\n  user:\n    token: " + tok + "\n"
	return Fake{Value: doc, Secrets: []string{tok}}
}

func kubeconfigClientKey(g *Gen) Fake {
	pem := fakePEM(g, "EC PRIVATE KEY")
	data := base64.StdEncoding.EncodeToString([]byte(pem))
	doc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\nusers:\n- name: admin\n  user:\n    client-certificate-data: " + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")) + "\n    client-key-data: " + data + "\n"
	return Fake{Value: doc, Secrets: []string{data[20:80]}}
}

func awsCredentialsFile(g *Gen) Fake {
	id := cat("AK", "IA") + g.S("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	secret := g.S(SetB64, 40)
	doc := "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\nregion = eu-west-1\n"
	return Fake{Value: doc, Secrets: []string{id, secret}}
}

func jwkPrivate(g *Gen) Fake {
	d := g.S(SetB64URL, 43)
	doc := `{"kty":"EC","crv":"P-256","x":"` + g.S(SetB64URL, 43) + `","y":"` + g.S(SetB64URL, 43) + `","d":"` + d + `","kid":"` + g.S(SetAlnum, 8) + `"}`
	return Fake{Value: doc, Secrets: []string{d}}
}

func puttyKey(g *Gen) Fake {
	priv := g.B64(48)
	doc := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n" + g.B64(40) + "\n" + g.B64(10) + "\nPrivate-Lines: 1\n" + priv + "\nPrivate-MAC: " + g.S(SetHex, 64) + "\n"
	return Fake{Value: doc, Secrets: []string{priv}}
}

// Formats returns the formats of the corpus.
func Formats() []Format {
	sh := func(name, det string, gen func(g *Gen) Fake) Format {
		return Format{Name: name, Shape: true, Detector: det, Gen: gen}
	}
	kw := func(name string, gen func(g *Gen) Fake) Format {
		return Format{Name: name, Gen: gen}
	}
	return []Format{
		// AI providers.
		sh("openai project key", "openai-api-key", func(g *Gen) Fake {
			return v(cat("sk-", "proj-") + g.S(SetB64URL, 74) + cat("T3Blbk", "FJ") + g.S(SetB64URL, 74))
		}),
		sh("openai service account key", "openai-api-key", func(g *Gen) Fake {
			return v(cat("sk-", "svcacct-") + g.S(SetB64URL, 58) + cat("T3Blbk", "FJ") + g.S(SetB64URL, 58))
		}),
		sh("openai legacy key", "openai-api-key", func(g *Gen) Fake {
			return v("sk-" + g.S(SetAlnum, 20) + cat("T3Blbk", "FJ") + g.S(SetAlnum, 20))
		}),
		sh("anthropic api key", "anthropic-api-key", func(g *Gen) Fake {
			return v(cat("sk-", "ant-", "api03-") + g.S(SetB64URL, 93) + "AA")
		}),
		sh("anthropic admin key", "anthropic-api-key", func(g *Gen) Fake {
			return v(cat("sk-", "ant-", "admin01-") + g.S(SetB64URL, 93) + "AA")
		}),
		sh("anthropic oauth token", "anthropic-api-key", func(g *Gen) Fake {
			return v(cat("sk-", "ant-", "oat01-") + g.S(SetB64URL, 93) + "AA")
		}),
		sh("deepseek key", "sk-api-key", func(g *Gen) Fake { return v("sk-" + g.S(SetHex, 32)) }),
		sh("moonshot key", "sk-api-key", func(g *Gen) Fake { return v("sk-" + g.S(SetAlnum, 48)) }),
		sh("openrouter key", "openrouter-api-key", func(g *Gen) Fake { return v(cat("sk-", "or-v1-") + g.S(SetHex, 64)) }),
		sh("gemini api key", "google-api-key", func(g *Gen) Fake { return v(cat("AI", "za") + "Sy" + g.S(SetB64URL, 33)) }),
		sh("google oauth client secret", "google-oauth-client-secret", func(g *Gen) Fake { return v(cat("GOC", "SPX-") + g.S(SetB64URL, 28)) }),
		sh("google oauth access token", "google-oauth-token", func(g *Gen) Fake { return v(cat("ya", "29.") + g.S(SetB64URL, 150)) }),
		sh("google oauth refresh token", "google-oauth-token", func(g *Gen) Fake { return v(cat("1//", "0") + g.S(SetB64URL, 100)) }),
		sh("hugging face token", "huggingface-token", func(g *Gen) Fake { return v(cat("hf", "_") + g.S(SetLetters, 34)) }),
		sh("hugging face org token", "huggingface-token", func(g *Gen) Fake { return v(cat("api_", "org_") + g.S(SetLetters, 34)) }),
		sh("groq api key", "groq-api-key", func(g *Gen) Fake { return v(cat("gs", "k_") + g.S(SetAlnum, 52)) }),
		sh("replicate token", "replicate-api-token", func(g *Gen) Fake { return v(cat("r8", "_") + g.S(SetAlnum, 37)) }),
		sh("xai api key", "xai-api-key", func(g *Gen) Fake { return v(cat("xa", "i-") + g.S(SetAlnum, 80)) }),
		sh("perplexity api key", "perplexity-api-key", func(g *Gen) Fake { return v(cat("pp", "lx-") + g.S(SetAlnum, 48)) }),
		sh("langsmith api key", "langsmith-api-key", func(g *Gen) Fake {
			return v(cat("lsv2", "_pt_") + g.S(SetHex, 32) + "_" + g.S(SetHex, 10))
		}),
		sh("pinecone api key", "pinecone-api-key", func(g *Gen) Fake {
			return v(cat("pc", "sk_") + g.S(SetAlnum, 6) + "_" + g.S(SetAlnum, 64))
		}),
		sh("aws bedrock api key", "aws-bedrock-api-key", func(g *Gen) Fake { return v(cat("AB", "SK") + g.S(SetB64, 130)) }),
		kw("cohere api key", func(g *Gen) Fake { return v(g.S(SetAlnum, 40)) }),
		kw("mistral api key", func(g *Gen) Fake { return v(g.S(SetAlnum, 32)) }),

		// Cloud.
		sh("aws access key id", "aws-access-key-id", func(g *Gen) Fake {
			return v(cat("AK", "IA") + g.S("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
		}),
		sh("aws temporary access key id", "aws-access-key-id", func(g *Gen) Fake {
			return v(cat("AS", "IA") + g.S("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
		}),
		sh("aws session token", "aws-session-token", func(g *Gen) Fake { return v(cat("IQoJb3JpZ2", "luX2Vj") + g.S(SetB64, 300)) }),
		kw("aws secret access key", func(g *Gen) Fake { return v(g.S(SetB64, 40)) }),
		sh("gcp service account key", "gcp-service-account-key", func(g *Gen) Fake { return saKeyJSON(g, false) }),
		sh("gcp service account key, indented", "gcp-service-account-key", func(g *Gen) Fake { return saKeyJSON(g, true) }),
		sh("azure storage connection string", "azure-storage-key", func(g *Gen) Fake {
			key := g.B64(64)
			return Fake{Value: "DefaultEndpointsProtocol=https;AccountName=st" + g.S(SetLower, 8) + ";" + cat("Account", "Key=") + key + ";EndpointSuffix=core.windows.net", Secrets: []string{key}}
		}),
		sh("azure service bus connection string", "azure-storage-key", func(g *Gen) Fake {
			key := g.B64(32)
			return Fake{Value: "Endpoint=sb://ns-" + g.S(SetLower, 6) + ".servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;" + cat("SharedAccess", "Key=") + key, Secrets: []string{key}}
		}),
		sh("azure storage account key", "azure-identifiable-key", func(g *Gen) Fake { return v(g.S(SetB64, 76) + "+ASt" + g.S(SetB64, 5) + "w==") }),
		sh("azure cosmos db key", "azure-identifiable-key", func(g *Gen) Fake { return v(g.S(SetB64, 76) + "ACDb" + g.S(SetB64, 5) + "Q==") }),
		sh("azure function key", "azure-identifiable-key", func(g *Gen) Fake { return v(g.S(SetB64URL, 44) + "AzFu" + g.S(SetB64URL, 5) + "g==") }),
		sh("azure ad client secret", "azure-ad-client-secret", func(g *Gen) Fake {
			return v(g.S(SetAlnum, 3) + g.S(SetDigits, 1) + "Q~" + g.S(SetAlnum, 34))
		}),
		sh("azure sas url", "", func(g *Gen) Fake {
			sig := g.B64(32)
			return Fake{Value: "https://st" + g.S(SetLower, 8) + ".blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2027-01-01T00:00:00Z&" + "sig=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sig), Secrets: []string{strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sig)[:30]}}
		}),
		sh("azure devops pat", "azure-devops-pat", func(g *Gen) Fake { return v(g.S(SetAlnum, 76) + "AZDO" + g.S(SetAlnum, 4)) }),
		kw("azure devops legacy pat", func(g *Gen) Fake { return v(g.S("abcdefghijklmnopqrstuvwxyz234567", 52)) }),
		sh("alibaba access key id", "alibaba-access-key-id", func(g *Gen) Fake { return v(cat("LT", "AI") + g.S(SetAlnum, 20)) }),
		sh("digitalocean pat", "digitalocean-token", func(g *Gen) Fake { return v(cat("do", "p_v1_") + g.S(SetHex, 64)) }),
		sh("heroku api key", "heroku-api-key", func(g *Gen) Fake { return v(cat("HR", "KU-AA") + g.S(SetB64URL, 58)) }),
		sh("cloudflare origin ca key", "cloudflare-origin-ca-key", func(g *Gen) Fake {
			return v(cat("v1", ".0-") + g.S(SetHex, 24) + "-" + g.S(SetHex, 146))
		}),
		sh("fly.io token", "flyio-token", func(g *Gen) Fake { return v(cat("fm", "2_") + g.S(SetB64, 180)) }),
		sh("yandex cloud api key", "yandex-cloud-key", func(g *Gen) Fake { return v(cat("AQ", "VN") + g.S(SetB64URL, 36)) }),
		sh("netlify token", "netlify-token", func(g *Gen) Fake { return v(cat("nf", "p_") + g.S(SetAlnum, 40)) }),
		sh("supabase token", "supabase-token", func(g *Gen) Fake { return v(cat("sb", "p_") + g.S(SetHex, 40)) }),
		sh("render api key", "render-api-key", func(g *Gen) Fake { return v(cat("rn", "d_") + g.S(SetAlnum, 32)) }),
		sh("terraform cloud token", "terraform-cloud-token", func(g *Gen) Fake {
			return v(g.S(SetAlnum, 14) + cat(".atlas", "v1.") + g.S(SetB64URL, 67))
		}),
		sh("pulumi token", "pulumi-access-token", func(g *Gen) Fake { return v(cat("pu", "l-") + g.S(SetHex, 40)) }),
		sh("databricks token", "databricks-token", func(g *Gen) Fake { return v(cat("da", "pi") + g.S(SetHex, 32)) }),
		sh("openshift token", "openshift-token", func(g *Gen) Fake { return v(cat("sha256", "~") + g.S(SetB64URL, 43)) }),
		sh("rancher token", "rancher-token", func(g *Gen) Fake { return v(cat("tok", "en-") + g.S(SetLower, 5) + ":" + g.S(SetLower, 54)) }),
		sh("kubernetes service account token", "jwt", func(g *Gen) Fake {
			return v(fakeJWT(g, `{"aud":["https://kubernetes.default.svc"],"exp":1773480413,"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:apps:`+g.S(SetLower, 6)+`"}`))
		}),
		sh("kubernetes bootstrap token", "kubernetes-bootstrap-token", func(g *Gen) Fake { return v(g.S(SetLower, 6) + "." + g.S(SetLower, 16)) }),
		sh("kubeconfig with a token", "", kubeconfigYAML),
		sh("kubeconfig with a client key", "", kubeconfigClientKey),
		sh("aws credentials file", "", awsCredentialsFile),

		// Version control and CI.
		sh("github classic pat", "github-token", func(g *Gen) Fake { return v(ghClassic(g, cat("gh", "p_"))) }),
		sh("github oauth token", "github-token", func(g *Gen) Fake { return v(ghClassic(g, cat("gh", "o_"))) }),
		sh("github app token", "github-token", func(g *Gen) Fake { return v(ghClassic(g, cat("gh", "s_"))) }),
		sh("github fine-grained pat", "github-token", func(g *Gen) Fake {
			return v(cat("github", "_pat_") + "11" + g.S(SetUpper, 20) + "_" + g.S(SetAlnum, 59))
		}),
		sh("gitlab pat", "gitlab-token", func(g *Gen) Fake { return v(cat("gl", "pat-") + g.S(SetB64URL, 20)) }),
		sh("gitlab routable pat", "gitlab-token", func(g *Gen) Fake {
			return v(cat("gl", "pat-") + g.S(SetAlnum, 27) + "." + g.S("0123456789abcdefghijklmnopqrstuvwxyz", 9))
		}),
		sh("gitlab runner token", "gitlab-token", func(g *Gen) Fake { return v(cat("gl", "rt-") + g.S(SetB64URL, 20)) }),
		sh("gitlab runner registration token", "gitlab-token", func(g *Gen) Fake { return v(cat("GR1348", "941") + g.S(SetB64URL, 20)) }),
		sh("gitlab deploy token", "gitlab-token", func(g *Gen) Fake { return v(cat("gl", "dt-") + g.S(SetB64URL, 20)) }),
		sh("gitlab agent token", "gitlab-token", func(g *Gen) Fake { return v(cat("gl", "agent-") + g.S(SetB64URL, 50)) }),
		sh("bitbucket app password", "bitbucket-app-password", func(g *Gen) Fake { return v(cat("AT", "BB") + g.S(SetAlnum, 32)) }),
		sh("atlassian api token", "atlassian-api-token", func(g *Gen) Fake { return v(cat("ATA", "TT3") + g.S(SetB64URL, 186)) }),
		sh("sourcegraph token", "sourcegraph-token", func(g *Gen) Fake { return v(cat("sg", "p_") + g.S(SetHex, 16) + "_" + g.S(SetHex, 40)) }),
		sh("circleci token", "circleci-token", func(g *Gen) Fake { return v(cat("CCI", "PAT_") + g.S(SetAlnum, 22) + "_" + g.S(SetHex, 40)) }),
		sh("buildkite token", "buildkite-token", func(g *Gen) Fake { return v(cat("bk", "ua_") + g.S(SetHex, 40)) }),
		sh("sonarqube token", "sonarqube-token", func(g *Gen) Fake { return v(cat("sq", "p_") + g.S(SetHex, 40)) }),
		sh("harness token", "harness-token", func(g *Gen) Fake {
			return v(cat("pa", "t.") + g.S(SetB64URL, 22) + "." + g.S(SetAlnum, 24) + "." + g.S(SetAlnum, 20))
		}),
		sh("octopus deploy api key", "octopus-deploy-api-key", func(g *Gen) Fake { return v(cat("AP", "I-") + g.S(SetUpper, 26)) }),
		sh("infracost token", "infracost-api-token", func(g *Gen) Fake { return v(cat("ic", "o-") + g.S(SetAlnum, 32)) }),
		sh("postman api key", "postman-api-key", func(g *Gen) Fake { return v(cat("PM", "AK-") + g.S(SetHex, 24) + "-" + g.S(SetHex, 34)) }),
		sh("prefect api key", "prefect-api-key", func(g *Gen) Fake { return v(cat("pn", "u_") + g.S(SetAlnum, 36)) }),
		sh("linear api key", "linear-api-key", func(g *Gen) Fake { return v(cat("lin_", "api_") + g.S(SetAlnum, 40)) }),
		sh("notion token", "notion-token", func(g *Gen) Fake { return v(cat("nt", "n_") + g.S(SetDigits, 11) + g.S(SetAlnum, 35)) }),
		sh("airtable token", "airtable-token", func(g *Gen) Fake { return v(cat("pa", "t") + g.S(SetAlnum, 14) + "." + g.S(SetHex, 64)) }),
		sh("figma token", "figma-token", func(g *Gen) Fake { return v(cat("fi", "gd_") + g.S(SetB64URL, 40)) }),
		sh("hubspot private app token", "hubspot-token", func(g *Gen) Fake {
			return v(cat("pat-", "na1-") + g.S(SetHex, 8) + "-" + g.S(SetHex, 4) + "-" + g.S(SetHex, 4) + "-" + g.S(SetHex, 4) + "-" + g.S(SetHex, 12))
		}),
		sh("mapbox secret token", "mapbox-secret-token", func(g *Gen) Fake { return v(cat("sk", ".eyJ") + g.S(SetB64URL, 60) + "." + g.S(SetB64URL, 22)) }),
		sh("dropbox token", "dropbox-token", func(g *Gen) Fake { return v(cat("s", "l.") + g.S(SetB64URL, 138)) }),
		sh("facebook access token", "facebook-access-token", func(g *Gen) Fake { return v(cat("EA", "AC") + g.S(SetAlnum, 180)) }),
		sh("facebook app access token", "facebook-access-token", func(g *Gen) Fake { return v("1" + g.S(SetDigits, 14) + "|" + g.S(SetB64URL, 32)) }),
		sh("salesforce access token", "salesforce-access-token", func(g *Gen) Fake { return v(cat("00", "D") + g.S(SetAlnum, 15) + "!" + g.S(SetAlnum, 96)) }),
		sh("contentful token", "contentful-token", func(g *Gen) Fake { return v(cat("CF", "PAT-") + g.S(SetB64URL, 43)) }),
		sh("typeform token", "typeform-token", func(g *Gen) Fake { return v(cat("tf", "p_") + g.S(SetB64URL, 59)) }),
		sh("planetscale token", "planetscale-token", func(g *Gen) Fake { return v(cat("pscale", "_tkn_") + g.S(SetB64URL, 43)) }),
		sh("clickhouse cloud key", "clickhouse-cloud-key", func(g *Gen) Fake { return v(cat("4b", "1d") + g.S(SetAlnum, 38)) }),
		sh("authress service key", "authress-key", func(g *Gen) Fake {
			return v(cat("sc", "_") + g.S(SetAlnum, 12) + "." + g.S(SetAlnum, 5) + ".acc_" + g.S(SetLower, 16) + "." + g.S(SetB64, 60))
		}),
		sh("42 intra client secret", "intra42-client-secret", func(g *Gen) Fake { return v(cat("s-s4t2", "ud-") + g.S(SetHex, 64)) }),
		sh("settlemint token", "settlemint-token", func(g *Gen) Fake { return v(cat("sm_", "pat_") + g.S(SetAlnum, 16)) }),
		sh("defined networking token", "defined-networking-token", func(g *Gen) Fake {
			return v(cat("dn", "key-") + g.S(SetLower, 26) + "-" + g.S(SetLower, 52))
		}),
		sh("gitlab session cookie", "gitlab-session-cookie", func(g *Gen) Fake {
			c := g.S(SetLower, 32)
			return Fake{Value: "Cookie: _gitlab_" + "session=" + c, Secrets: []string{c}}
		}),
		sh("sidekiq credentials", "sidekiq-credentials", func(g *Gen) Fake {
			c := g.S(SetHex, 8) + ":" + g.S(SetHex, 8)
			return Fake{Value: "BUNDLE_GEMS__CONTRIBSYS" + "__COM=" + c, Secrets: []string{c}}
		}),
		sh("nuget config password", "nuget-config-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: `<packageSourceCredentials><feed><add key="Username" value="ci" /><add key="ClearTextPassword" value="` + pw + `" /></feed></packageSourceCredentials>`, Secrets: []string{pw}}
		}),
		sh("kubernetes secret manifest", "kubernetes-secret-manifest", func(g *Gen) Fake {
			a, b := base64.StdEncoding.EncodeToString([]byte(g.S(SetAlnum, 20))), g.S(SetAlnum, 18)
			return Fake{Value: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: " + a + "\nstringData:\n  token: " + b + "\n", Secrets: []string{a, b}}
		}),
		sh("jwt, base64", "base64-credential-document", func(g *Gen) Fake {
			return v(base64.StdEncoding.EncodeToString([]byte(fakeJWT(g, `{"sub":"`+g.S(SetLower, 8)+`"}`))))
		}),
		kw("datadog api key", func(g *Gen) Fake { return v(g.S(SetHex, 32)) }),
		kw("okta api token", func(g *Gen) Fake { return v("00" + g.S(SetB64URL, 40)) }),

		// Package registries.
		sh("npm token", "npm-token", func(g *Gen) Fake { return v(cat("np", "m_") + g.S(SetAlnum, 36)) }),
		sh("pypi token", "pypi-token", func(g *Gen) Fake { return v(cat("pypi-", "AgEIcHlwaS5vcmc") + g.S(SetB64URL, 150)) }),
		sh("rubygems token", "rubygems-token", func(g *Gen) Fake { return v(cat("rubygems", "_") + g.S(SetHex, 48)) }),
		sh("nuget api key", "nuget-api-key", func(g *Gen) Fake { return v(cat("oy", "2") + g.S(SetLower, 43)) }),
		sh("docker hub pat", "dockerhub-token", func(g *Gen) Fake { return v(cat("dckr", "_pat_") + g.S(SetB64URL, 27)) }),
		sh("docker config json", "docker-config-auth", dockerConfigJSON),
		sh("docker config json, base64", "", func(g *Gen) Fake {
			f := dockerConfigJSON(g)
			return Fake{Value: base64.StdEncoding.EncodeToString([]byte(f.Value))}
		}),
		sh("clojars token", "clojars-token", func(g *Gen) Fake { return v(cat("CLOJARS", "_") + g.S(SetLower, 60)) }),
		sh("crates.io token", "crates-io-token", func(g *Gen) Fake { return v(cat("ci", "o") + g.S(SetAlnum, 32)) }),
		sh("artifactory api key", "artifactory-token", func(g *Gen) Fake { return v(cat("AK", "Cp") + g.S(SetAlnum, 69)) }),

		// Observability.
		sh("sentry user token", "sentry-token", func(g *Gen) Fake { return v(cat("sntry", "u_") + g.S(SetHex, 64)) }),
		sh("grafana cloud token", "grafana-token", func(g *Gen) Fake { return v(cat("gl", "c_") + g.S(SetB64, 120)) }),
		sh("grafana service account token", "grafana-token", func(g *Gen) Fake { return v(cat("gl", "sa_") + g.S(SetAlnum, 32) + "_" + g.S(SetHex, 8)) }),
		sh("new relic user key", "newrelic-key", func(g *Gen) Fake { return v(cat("NR", "AK-") + g.S(SetUpper, 27)) }),
		sh("dynatrace token", "dynatrace-token", func(g *Gen) Fake {
			return v(cat("dt0", "c01.") + g.S(SetUpper, 24) + "." + g.S(SetUpper, 64))
		}),

		// E-mail.
		sh("sendgrid api key", "sendgrid-api-key", func(g *Gen) Fake { return v(cat("S", "G.") + g.S(SetB64URL, 22) + "." + g.S(SetB64URL, 43)) }),
		sh("mailgun api key", "mailgun-api-key", func(g *Gen) Fake { return v(cat("ke", "y-") + g.S(SetHex, 32)) }),
		sh("mailchimp api key", "mailchimp-api-key", func(g *Gen) Fake { return v(g.S(SetHex, 32) + cat("-u", "s") + "21") }),
		sh("mandrill api key", "mandrill-api-key", func(g *Gen) Fake { return v(cat("m", "d-") + g.S(SetAlnum, 22)) }),
		sh("brevo api key", "brevo-api-key", func(g *Gen) Fake { return v(cat("xkey", "sib-") + g.S(SetHex, 64) + "-" + g.S(SetAlnum, 16)) }),
		sh("resend api key", "resend-api-key", func(g *Gen) Fake { return v(cat("r", "e_") + g.S(SetAlnum, 8) + "_" + g.S(SetAlnum, 24)) }),
		kw("postmark server token", func(g *Gen) Fake { return v(g.UUID()) }),

		// Telephony and chat.
		sh("twilio api key", "twilio-api-key", func(g *Gen) Fake { return v(cat("S", "K") + g.S(SetHex, 32)) }),
		kw("twilio auth token", func(g *Gen) Fake { return v(g.S(SetHex, 32)) }),
		sh("slack bot token", "slack-token", func(g *Gen) Fake {
			return v(cat("xo", "xb-") + g.S(SetDigits, 11) + "-" + g.S(SetDigits, 12) + "-" + g.S(SetAlnum, 24))
		}),
		sh("slack user token", "slack-token", func(g *Gen) Fake {
			return v(cat("xo", "xp-") + g.S(SetDigits, 11) + "-" + g.S(SetDigits, 12) + "-" + g.S(SetDigits, 13) + "-" + g.S(SetHex, 32))
		}),
		sh("slack app token", "slack-token", func(g *Gen) Fake {
			return v(cat("xa", "pp-") + "1-A" + g.S(SetUpper, 10) + "-" + g.S(SetDigits, 13) + "-" + g.S(SetHex, 64))
		}),
		sh("slack webhook", "slack-webhook", func(g *Gen) Fake {
			path := "T" + g.S(SetUpper, 8) + "/B" + g.S(SetUpper, 10) + "/" + g.S(SetAlnum, 24)
			return Fake{Value: "https://hooks." + "slack.com/services/" + path, Secrets: []string{path}}
		}),
		sh("discord bot token", "discord-bot-token", func(g *Gen) Fake {
			id := base64.RawURLEncoding.EncodeToString([]byte("1" + g.S(SetDigits, 17)))
			return v(id + "." + g.S(SetB64URL, 6) + "." + g.S(SetB64URL, 38))
		}),
		sh("discord webhook", "discord-webhook", func(g *Gen) Fake {
			tok := g.S(SetB64URL, 68)
			return Fake{Value: "https://discord.com/api/" + "webhooks/1" + g.S(SetDigits, 18) + "/" + tok, Secrets: []string{tok}}
		}),
		sh("telegram bot token", "telegram-bot-token", func(g *Gen) Fake { return v(g.S(SetDigits, 10) + ":" + "AA" + g.S(SetB64URL, 33)) }),
		sh("teams webhook", "teams-webhook", func(g *Gen) Fake {
			path := g.UUID() + "@" + g.UUID() + "/IncomingWebhook/" + g.S(SetHex, 32) + "/" + g.UUID()
			return Fake{Value: "https://contoso.webhook." + "office.com/webhookb2/" + path, Secrets: []string{path}}
		}),

		// Payment.
		sh("stripe secret key", "stripe-key", func(g *Gen) Fake { return v(cat("sk", "_live_") + g.S(SetAlnum, 99)) }),
		sh("stripe restricted key", "stripe-key", func(g *Gen) Fake { return v(cat("rk", "_live_") + g.S(SetAlnum, 99)) }),
		sh("stripe webhook secret", "stripe-webhook-secret", func(g *Gen) Fake { return v(cat("wh", "sec_") + g.S(SetAlnum, 32)) }),
		sh("square access token", "square-token", func(g *Gen) Fake { return v(cat("EA", "AA") + g.S(SetB64URL, 60)) }),
		sh("square oauth secret", "square-token", func(g *Gen) Fake { return v(cat("sq0", "csp-") + g.S(SetB64URL, 43)) }),
		sh("braintree access token", "braintree-access-token", func(g *Gen) Fake {
			return v(cat("access", "_token$") + "production$" + g.S(SetLower, 16) + "$" + g.S(SetHex, 32))
		}),
		sh("plaid access token", "plaid-access-token", func(g *Gen) Fake { return v(cat("access-", "production-") + g.UUID()) }),
		sh("shopify access token", "shopify-token", func(g *Gen) Fake { return v(cat("shp", "at_") + g.S(SetHex, 32)) }),
		sh("shopify shared secret", "shopify-token", func(g *Gen) Fake { return v(cat("shp", "ss_") + g.S(SetHex, 32)) }),
		sh("shippo token", "shippo-token", func(g *Gen) Fake { return v(cat("shippo", "_live_") + g.S(SetHex, 40)) }),
		sh("flutterwave secret key", "flutterwave-key", func(g *Gen) Fake { return v(cat("FLW", "SECK-") + g.S("0123456789abcdefgh", 32) + "-X") }),
		sh("duffel token", "duffel-token", func(g *Gen) Fake { return v(cat("duffel", "_live_") + g.S(SetB64URL, 43)) }),
		sh("easypost api key", "easypost-api-key", func(g *Gen) Fake { return v(cat("EZ", "AK") + g.S(SetAlnum, 54)) }),

		// Secret managers.
		sh("vault service token", "vault-token", func(g *Gen) Fake { return v(cat("hv", "s.") + g.S(SetB64URL, 95)) }),
		sh("vault batch token", "vault-token", func(g *Gen) Fake { return v(cat("hv", "b.") + g.S(SetB64URL, 140)) }),
		sh("vault legacy token", "vault-token", func(g *Gen) Fake { return v("s." + g.S(SetAlnum, 24)) }),
		sh("doppler token", "doppler-token", func(g *Gen) Fake { return v(cat("dp", ".pt.") + g.S(SetAlnum, 43)) }),
		sh("doppler service token", "doppler-token", func(g *Gen) Fake { return v(cat("dp", ".st.") + "prd." + g.S(SetAlnum, 40)) }),
		sh("1password service account token", "onepassword-token", func(g *Gen) Fake { return v(cat("ops", "_eyJ") + g.S(SetB64, 300)) }),
		sh("1password secret key", "onepassword-token", func(g *Gen) Fake {
			return v(cat("A", "3-") + g.S(SetUpper, 6) + "-" + g.S(SetUpper, 11) + "-" + g.S(SetUpper, 5) + "-" + g.S(SetUpper, 5) + "-" + g.S(SetUpper, 5))
		}),
		sh("bitwarden access token", "bitwarden-access-token", func(g *Gen) Fake {
			return v("0." + g.UUID() + "." + g.S(SetAlnum, 30) + ":" + g.S(SetB64, 22) + "==")
		}),
		sh("age secret key", "age-secret-key", func(g *Gen) Fake { return v(cat("AGE-SECRET", "-KEY-1") + g.S(SetBech32, 58)) }),

		// Keys and tokens of any provider.
		sh("jwt", "jwt", func(g *Gen) Fake {
			return v(fakeJWT(g, `{"sub":"`+g.S(SetLower, 8)+`","iat":1773476813,"scope":"read write"}`))
		}),
		sh("rsa private key", "pem-private-key", func(g *Gen) Fake {
			p := fakePEM(g, "RSA PRIVATE KEY")
			return Fake{Value: p, Secrets: []string{pemBody(p)}}
		}),
		sh("openssh private key", "pem-private-key", func(g *Gen) Fake {
			p := fakePEM(g, "OPENSSH PRIVATE KEY")
			return Fake{Value: p, Secrets: []string{pemBody(p)}}
		}),
		sh("encrypted private key", "pem-private-key", func(g *Gen) Fake {
			p := fakePEM(g, "ENCRYPTED PRIVATE KEY")
			return Fake{Value: p, Secrets: []string{pemBody(p)}}
		}),
		sh("pgp private key", "pem-private-key", func(g *Gen) Fake {
			p := fakePEM(g, "PGP PRIVATE KEY BLOCK")
			return Fake{Value: p, Secrets: []string{pemBody(p)}}
		}),
		sh("private key, base64", "pem-private-key-base64", func(g *Gen) Fake {
			b := base64.StdEncoding.EncodeToString([]byte(fakePEM(g, "PRIVATE KEY")))
			return Fake{Value: b, Secrets: []string{b[40:100]}}
		}),
		sh("putty private key", "putty-private-key", puttyKey),
		sh("jwk private key", "jwk-private-key", jwkPrivate),

		// Connection strings and URLs.
		sh("postgres url", "url-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "postgres://app:" + pw + "@db.internal:5432/app?sslmode=require", Secrets: []string{pw}}
		}),
		sh("mongodb srv url", "url-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "mongodb+srv://svc:" + pw + "@cluster0." + g.S(SetLower, 5) + ".mongodb.net/prod?retryWrites=true", Secrets: []string{pw}}
		}),
		sh("redis url", "url-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "rediss://:" + pw + "@cache.internal:6380/0", Secrets: []string{pw}}
		}),
		sh("amqp url", "url-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "amqps://worker:" + pw + "@mq.internal:5671/%2F", Secrets: []string{pw}}
		}),
		sh("jdbc url with a password", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "jdbc:mysql://db.internal:3306/app?user=app&" + "password=" + pw + "&useSSL=true", Secrets: []string{pw}}
		}),
		sh("ado.net connection string", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "Server=tcp:sql.internal,1433;Database=app;User ID=app;" + "Password=" + pw + ";Encrypt=True;", Secrets: []string{pw}}
		}),

		// JSON held in a string, printed or cut short so that it does not parse as a
		// document: its quotes are escaped.
		sh("escaped JSON password", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: `{\"db\":{\"host\":\"db.internal\",\"password\":\"` + pw + `\"}}`, Secrets: []string{pw}}
		}),
		sh("escaped JSON token", "keyword-entropy", func(g *Gen) Fake {
			t := g.S(SetAlnum, 24)
			return Fake{Value: `{\"token\": \"` + t + `\", \"ttl\": 3600}`, Secrets: []string{t}}
		}),
		sh("JSON twice escaped", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: `{\"cfg\":\"{\\\"password\\\":\\\"` + pw + `\\\"}\"}`, Secrets: []string{pw}}
		}),
		sh("JSON escaped as \\u0022", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: `{\u0022password\u0022:\u0022` + pw + `\u0022}`, Secrets: []string{pw}}
		}),
		sh("JSON log line cut short", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: `{"level":"info","cfg":"{\"password\":\"` + pw + `\"}"`, Secrets: []string{pw}}
		}),
		sh("JSON line after a line of a bracket", "password-assignment", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "[\n" + `{"payload":"{\"password\":\"` + pw + `\"}"}`, Secrets: []string{pw}}
		}),
		sh("basic auth header", "basic-auth", func(g *Gen) Fake {
			c := base64.StdEncoding.EncodeToString([]byte("svc:" + g.S(SetAlnum, 16)))
			return Fake{Value: "Basic " + c, Secrets: []string{c}}
		}),
		sh("bearer header", "bearer-token", func(g *Gen) Fake {
			t := g.S(SetAlnum, 40)
			return Fake{Value: "Bearer " + t, Secrets: []string{t}}
		}),
		sh("curl with a user", "curl-user-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "curl -fsS -u deploy:" + pw + " https://repo.internal/upload", Secrets: []string{pw}}
		}),
		sh("mysql client password", "mysql-password-flag", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "mysqldump -h db.internal -P 3306 -u backup -p" + pw + " --single-transaction shop", Secrets: []string{pw}}
		}),
		sh("mysql client quoted password", "mysql-password-flag", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 12) + " " + g.S(SetAlnum, 6)
			return Fake{Value: "mariadb -uroot -p'" + pw + "' -e 'SELECT 1'", Secrets: []string{pw}}
		}),
		sh("redis.conf password", "redis-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "port 6379\nrequirepass " + pw + "\nappendonly yes", Secrets: []string{pw}}
		}),
		sh("maven settings password", "xml-password-element", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "<server><id>releases</id><username>ci</username><password>" + pw + "</password></server>", Secrets: []string{pw}}
		}),
		sh("registry login password", "password-flag-value", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 24)
			return Fake{Value: "docker login -u ci-bot -p " + pw + " registry.internal", Secrets: []string{pw}}
		}),
		sh("appsettings api key", "xml-add-key-value", func(g *Gen) Fake {
			k := g.S(SetAlnum, 32)
			return Fake{Value: `<appSettings><add key="Environment" value="Production" /><add key="Payments.ApiKey" value="` + k + `" /></appSettings>`, Secrets: []string{k}}
		}),
		sh("appsettings password", "xml-add-key-value", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 10) + " " + g.S(SetAlnum, 6)
			return Fake{Value: `<add value='` + pw + `' key='Smtp.Password'/>`, Secrets: []string{pw}}
		}),
		sh("htpasswd password", "htpasswd-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "htpasswd -Bbc -C 12 /etc/nginx/.htpasswd admin " + pw, Secrets: []string{pw}}
		}),
		sh("openssl passwords", "openssl-password", func(g *Gen) Fake {
			a, b := g.S(SetAlnum, 16), g.S(SetAlnum, 8)+" "+g.S(SetAlnum, 8)
			return Fake{Value: "openssl pkcs12 -export -in tls.crt -inkey tls.key -passin pass:" + a + " -passout 'pass:" + b + "' -out tls.p12", Secrets: []string{a, b}}
		}),
		sh("openssl enc password", "openssl-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "openssl enc -aes-256-cbc -pbkdf2 -salt -k " + pw + " -in backup.tar -out backup.tar.enc", Secrets: []string{pw}}
		}),
		sh("password echoed into a login", "password-stdin-echo", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 24)
			return Fake{Value: "echo '" + pw + "' | docker login -u ci-bot --password-stdin registry.internal", Secrets: []string{pw}}
		}),
		sh("rclone config password", "rclone-config-secret", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "rclone config create nas sftp host nas.internal user backup pass " + pw + " --obscure", Secrets: []string{pw}}
		}),
		sh("rclone config secret key", "rclone-config-secret", func(g *Gen) Fake {
			k := g.S(SetB64[:62], 40)
			return Fake{Value: "rclone config create backup s3 provider Minio endpoint https://minio.internal secret_access_key " + k + " region eu-west-1", Secrets: []string{k}}
		}),
		sh("ldap bind password", "ldap-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "ldapsearch -x -H ldaps://ldap.internal -D cn=readonly,dc=example,dc=org -w " + pw + " -b ou=people,dc=example,dc=org uid=alice", Secrets: []string{pw}}
		}),
		sh("sqlcmd password", "sqlcmd-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "/opt/mssql-tools18/bin/sqlcmd -S mssql.internal -U sa -P " + pw + " -C -Q 'SELECT 1'", Secrets: []string{pw}}
		}),
		sh("samba user and password", "samba-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "smbclient //fs.internal/backup -U svc-backup%" + pw + " -c 'put backup.tar'", Secrets: []string{pw}}
		}),
		sh("influx setup password", "influx-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "influx setup --username admin -p " + pw + " --org example --bucket metrics --force", Secrets: []string{pw}}
		}),
		sh("zip password", "zip-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "zip -r -P " + pw + " /backup/data.zip /data", Secrets: []string{pw}}
		}),
		sh("7-zip password", "7zip-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "7z a -t7z -mhe=on -p" + pw + " /backup/data.7z /data", Secrets: []string{pw}}
		}),
		sh("cqlsh password", "cqlsh-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "cqlsh -u cassandra -p " + pw + " cassandra.internal 9042 -e 'DESCRIBE KEYSPACES'", Secrets: []string{pw}}
		}),
		sh("lftp user and password", "lftp-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "lftp -u backup," + pw + " -e 'mirror -R /data /backup; quit' ftp.internal", Secrets: []string{pw}}
		}),
		sh("etcdctl user and password", "etcdctl-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "etcdctl --endpoints=https://etcd.internal:2379 --user root:" + pw + " get / --prefix --keys-only", Secrets: []string{pw}}
		}),
		sh("rabbitmq user password", "rabbitmq-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "rabbitmqctl add_user ci-bot " + pw, Secrets: []string{pw}}
		}),
		sh("grafana admin password", "grafana-admin-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 16)
			return Fake{Value: "grafana cli admin reset-admin-password " + pw, Secrets: []string{pw}}
		}),
		sh("minio client secret key", "minio-client-secret", func(g *Gen) Fake {
			k := g.S(SetAlnum, 40)
			return Fake{Value: "mc alias set backup https://minio.internal:9000 " + g.S(SetUpper, 20) + " " + k, Secrets: []string{k}}
		}),
		sh("netrc", "netrc-password", func(g *Gen) Fake {
			pw := g.S(SetAlnum, 20)
			return Fake{Value: "machine api.internal login deploy " + "password " + pw, Secrets: []string{pw}}
		}),
		sh("npmrc auth token", "", func(g *Gen) Fake {
			t := g.S(SetAlnum, 40)
			return Fake{Value: "//registry.internal/:_auth" + "Token=" + t, Secrets: []string{t}}
		}),

		// Password hashes.
		sh("bcrypt hash", "bcrypt-hash", func(g *Gen) Fake { return v(cat("$2", "y$") + "10$" + g.S(SetCrypt, 53)) }),
		sh("htpasswd apr1 hash", "crypt-hash", func(g *Gen) Fake {
			h := cat("$ap", "r1$") + g.S(SetCrypt, 8) + "$" + g.S(SetCrypt, 22)
			return Fake{Value: "admin:" + h, Secrets: []string{h}}
		}),
		sh("sha512-crypt hash", "crypt-hash", func(g *Gen) Fake { return v(cat("$", "6$") + g.S(SetCrypt, 16) + "$" + g.S(SetCrypt, 86)) }),
		sh("yescrypt hash", "crypt-hash", func(g *Gen) Fake { return v(cat("$", "y$") + "j9T$" + g.S(SetCrypt, 22) + "$" + g.S(SetCrypt, 43)) }),
		sh("argon2 hash", "argon2-hash", func(g *Gen) Fake {
			return v(cat("$argon", "2id$") + "v=19$m=65536,t=3,p=4$" + g.S(SetB64[:62], 22) + "$" + g.S(SetB64[:62], 43))
		}),
		sh("django pbkdf2 hash", "pbkdf2-hash", func(g *Gen) Fake {
			return v(cat("pbkdf2", "_sha256$") + "600000$" + g.S(SetAlnum, 22) + "$" + g.S(SetB64, 43) + "=")
		}),
		sh("postgres scram hash", "scram-hash", func(g *Gen) Fake {
			return v(cat("SCRAM-SHA", "-256$") + "4096:" + g.B64(16) + "$" + g.B64(32) + ":" + g.B64(32))
		}),
		sh("ldap ssha hash", "ldap-password-hash", func(g *Gen) Fake { return v(cat("{SS", "HA}") + g.B64(24)) }),
		sh("postgres md5 hash", "postgres-md5-hash", func(g *Gen) Fake { return v(cat("md", "5") + g.S(SetHex, 32)) }),
	}
}

// HexBytes returns the lower-case hex of n random bytes.
func (g *Gen) HexBytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return hex.EncodeToString(b)
}

// Harmless are values that are never credentials, as they appear in clusters: every
// one of them must come out of every place unchanged.
func Harmless(g *Gen) []string {
	vals := []string{
		"sha256:" + g.HexBytes(32),
		"registry.example.com/team/api@sha256:" + g.HexBytes(32),
		"docker.io/library/nginx:1.27.3",
		"containerd://" + g.HexBytes(32),
		g.UUID(),
		g.HexBytes(20), // a git SHA
		g.HexBytes(16), // a trace ID, an MD5 checksum
		g.HexBytes(8),  // a span ID
		g.HexBytes(32), // a SHA-256 checksum
		strings.ToUpper(g.HexBytes(20)),
		"v1.36.3",
		"1.4.2-rc.1+build." + g.HexBytes(4),
		"48" + g.S(SetDigits, 6),
		"2026-03-14T09:26:53Z",
		"2026-03-14T09:26:53.123456789Z",
		"10.244.3.17",
		"2001:db8:85a3::8a2e:370:7334",
		"fe80::aa:1ff:fe23:4567",
		"https://prometheus.monitoring.svc:9090/api/v1/query?query=up&time=1773476813",
		"http://user@example.com:8080/path",
		"s3://backups-eu/cluster/2026-03-14/etcd.db",
		"0 3 * * *",
		"15m30s",
		"web-7c9f8d6b5d-x2x7k",
		"api-" + g.S(SetLower, 10),
		"kube-api-access-" + g.S(SetLower, 5),
		"app.kubernetes.io/name",
		"Ready",
		"100Mi",
		"checkout,refunds,search",
		base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----\n")),
		base64.StdEncoding.EncodeToString([]byte(`{"feature":"checkout","enabled":true,"percent":25}`)),
		base64.StdEncoding.EncodeToString([]byte("plain text that is no secret at all, just base64 encoded")),
		g.B64(32),
		g.B64(64),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + g.S(SetAlnum, 10) + `"}`)),
		"eyJhbGciOiJSUzI1NiJ9..c2lnbmF0dXJl",
		`{"replicas":3,"image":"nginx:1.27","ports":[80,443],"labels":{"tier":"web"}}`,
		`{"level":"info","ts":1773476813.123,"caller":"server/main.go:42","msg":"listening","addr":":8443"}`,
		"server.port=8443\nspring.datasource.url=jdbc:postgresql://db:5432/app\nspring.datasource.username=app\n",
		"worker_processes auto;\nevents { worker_connections 1024; }\nhttp { server { listen 80; location / { proxy_pass http://backend; } } }\n",
		"Successfully pulled image \"nginx:1.27.3\" in 1.2s (1.2s including waiting). Image size: 72093478 bytes.",
		"Scaled up replica set web-7c9f8d6b5d from 2 to 3",
		"0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available",
		"E0314 09:26:53.123456       1 reflector.go:147] k8s.io/client-go/informers/factory.go:160: Failed to watch *v1.Pod: unknown",
		"GET /api/v1/namespaces/default/pods?limit=500&resourceVersion=0 200 1.2ms",
		"Tasks: disk-pressure, task-runner, skip-checks; keys rotated by key-manager-" + g.S(SetLower, 5),
		"md5sum " + g.HexBytes(16) + " config.tar.gz",
		"token-ttl=3600 cache-key=user:42:profile",
		"pat.example.com path=/var/lib/kubelet patch=strategic",
		"s.example.com seed=" + g.S(SetDigits, 8),
		"abcdef.ghijklmnopqrstuv",
		"nginx.conf: 8f14e45fceea167a5a36dedd4bea2543",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"SKU-" + g.S(SetUpper, 10),
		"sk-learn-model-serving-deployment",
		"api-gateway-ingress-controller-7c9f8d6b5d",
		"API-GATEWAY-SERVICE-ACCOUNT-PRODUCTION",
		"key-rotation-policy-" + g.S(SetLower, 8),
		g.HexBytes(16) + "-us-east-1",
		"re_index_documents_after_migration_of_v2",
		"node01.eu1westcompute12.internal",
		"s.ExampleOfAVeryLongClass",
		"hf_transformers_cache",
		"md5-" + g.HexBytes(16),
		"Bearer",
		"order 1234567890123456|shipped|2026-03-14|" + g.S(SetLower, 30),
		"token-" + g.S(SetLower, 5),
		"password-reset-email-template",
		"$(DB_PASSWORD)",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
		"The quick brown fox jumps over the lazy dog.",
		`<add key="Environment" value="Production" /><add key="ApiKeyHeaderName" value="X-Api-Key" />`,
		"htpasswd -c /etc/nginx/.htpasswd admin",
		"openssl enc -d -aes-256-cbc -pbkdf2 -pass env:BACKUP_KEY -in backup.tar.enc -out backup.tar",
		`echo "$REGISTRY_PASSWORD" | docker login -u ci-bot --password-stdin registry.example.com`,
		"rclone sync /data remote:backup --transfers 8 --config /etc/rclone/rclone.conf",
		"ldapsearch -x -W -D cn=admin,dc=example,dc=org -b dc=example,dc=org",
		"smbclient //fs.internal/backup -U svc-backup -c ls",
		"7z x -p /backup/data.7z && zip -r /backup/data.zip /data",
		"etcdctl --user root get / --prefix --keys-only",
		"rabbitmqctl add_user ci-bot",
		`{\"passwordPolicy\":\"strict\",\"tokenTTL\":\"15m\",\"replicas\":3,\"image\":\"nginx:1.27\"}`,
		`{\"password\":\"$(DB_PASSWORD)\",\"token\":null,\"secret\":\"\",\"api_key\":\"<redacted>\"}`,
		`{\u0022level\u0022:\u0022info\u0022,\u0022msg\u0022:\u0022ready\u0022}`,
	}
	return vals
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func lettersAndDigits(b []byte) bool {
	letter, digit := false, false
	for _, c := range b {
		letter = letter || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		digit = digit || ('0' <= c && c <= '9')
	}
	return letter && digit
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Surfaces returns out and every string it holds at any level: JSON string values unescaped,
// JSON documents held in strings, base64 decoded, for each line that holds JSON too. A
// credential that survives anywhere in there has leaked.
func Surfaces(out []byte) string {
	var b strings.Builder
	b.Write(out)
	var walk func(v any, depth int)
	addString := func(s string, depth int) {
		b.WriteString("\n")
		b.WriteString(s)
		if depth > 6 {
			return
		}
		if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			var inner any
			if json.Unmarshal([]byte(t), &inner) == nil {
				walk(inner, depth+1)
			}
		}
		if dec, err := base64.StdEncoding.DecodeString(s); err == nil && len(dec) > 0 {
			b.WriteString("\n")
			b.Write(dec)
		}
	}
	walk = func(v any, depth int) {
		switch v := v.(type) {
		case string:
			addString(v, depth)
		case map[string]any:
			for k, x := range v {
				b.WriteString("\n" + k)
				walk(x, depth)
			}
		case []any:
			for _, x := range v {
				walk(x, depth)
			}
		}
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		if i := bytes.IndexByte(line, '{'); i >= 0 {
			var doc any
			if json.Unmarshal(line[i:], &doc) == nil {
				walk(doc, 0)
			}
		}
	}
	var doc any
	if json.Unmarshal(out, &doc) == nil {
		walk(doc, 0)
	}
	return b.String()
}

// Leaked returns the parts of f that survive in out.
func Leaked(out []byte, f Fake) []string { return Survivors(Surfaces(out), f) }

// Survivors returns the parts of f that survive in surfaces, what Surfaces returned.
func Survivors(surfaces string, f Fake) []string {
	var left []string
	for _, s := range f.MustVanish() {
		if strings.Contains(surfaces, s) {
			left = append(left, s)
		}
	}
	return left
}
