package masking

import (
	"encoding/base64"
	"encoding/hex"
	"hash/crc32"
	"math/rand/v2"
	"strings"
)

// This file builds the credential corpus of the recall tests: fakes of every format the
// detectors know by shape, and of formats only a key name identifies, generated at test time by
// a seeded generator. None is a real credential; prefixes are assembled from parts so that the
// source holds no complete token for other scanners to find.

// fakeGen generates fake credentials deterministically.
type fakeGen struct{ r *rand.Rand }

func newFakeGen(seed uint64) *fakeGen {
	return &fakeGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const (
	setAlnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	setLower   = "abcdefghijklmnopqrstuvwxyz0123456789"
	setUpper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	setHex     = "0123456789abcdef"
	setHexU    = "0123456789ABCDEF"
	setB64     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	setB64URL  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	setDigits  = "0123456789"
	setBech32  = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
	setCrypt   = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	setLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// s returns n random bytes of set. Every string has a letter and a digit when the set has both,
// as real tokens of that length practically always do.
func (g *fakeGen) s(set string, n int) string {
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

func (g *fakeGen) uuid() string {
	return g.s(setHex, 8) + "-" + g.s(setHex, 4) + "-4" + g.s(setHex, 3) + "-a" + g.s(setHex, 3) + "-" + g.s(setHex, 12)
}

func (g *fakeGen) b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// cat joins the parts of a prefix.
func cat(parts ...string) string { return strings.Join(parts, "") }

// fake is one generated credential: the text planted, and the parts of it that must not
// survive masking (the whole value when empty).
type fake struct {
	value   string
	secrets []string
}

func (f fake) mustVanish() []string {
	if len(f.secrets) > 0 {
		return f.secrets
	}
	return []string{f.value}
}

// credFormat is a format of the corpus.
type credFormat struct {
	name string
	// shape is set for formats recognisable by their shape alone; the others are only
	// recognised next to a secret-sounding name.
	shape bool
	// detector is the name the stats should report; empty when any will do.
	detector string
	gen      func(g *fakeGen) fake
}

func v(s string) fake { return fake{value: s} }

func ghClassic(g *fakeGen, prefix string) string {
	random := g.s(setAlnum, 30)
	sum := crc32.ChecksumIEEE([]byte(random))
	var enc [6]byte
	for i := 5; i >= 0; i-- {
		enc[i] = base62[sum%62]
		sum /= 62
	}
	return prefix + random + string(enc[:])
}

func fakeJWT(g *fakeGen, claims string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + g.s(setAlnum, 20) + `","typ":"JWT"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(claims))
	return h + "." + p + "." + g.s(setB64URL, 342)
}

func fakePEM(g *fakeGen, kind string) string {
	var b strings.Builder
	b.WriteString("-----BEGIN " + kind + "-----\n")
	body := g.b64(600)
	for len(body) > 64 {
		b.WriteString(body[:64] + "\n")
		body = body[64:]
	}
	b.WriteString(body + "\n-----END " + kind + "-----\n")
	return b.String()
}

// pemBody returns a line of the body of a PEM block, which must vanish with it.
func pemBody(p string) string { return strings.Split(p, "\n")[3] }

func saKeyJSON(g *fakeGen, pretty bool) fake {
	keyID := g.s(setHex, 40)
	pem := fakePEM(g, "PRIVATE KEY")
	email := "deployer-" + g.s(setLower, 6) + "@proj-" + g.s(setLower, 6) + ".iam.gserviceaccount.com"
	clientID := "1" + g.s(setDigits, 20)
	fields := [][2]string{
		{"type", "service_account"}, {"project_id", "proj-" + g.s(setLower, 6)}, {"private_key_id", keyID},
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
		b.Write(appendQuoted(nil, []byte(f[0])))
		b.WriteString(":")
		if pretty {
			b.WriteString(" ")
		}
		b.Write(appendQuoted(nil, []byte(f[1])))
	}
	if pretty {
		b.WriteString("\n")
	}
	b.WriteString("}")
	return fake{value: b.String(), secrets: []string{keyID, pemBody(pem), email, clientID}}
}

func dockerConfigJSON(g *fakeGen) fake {
	user, pass := "robot-"+g.s(setLower, 6), g.s(setAlnum, 24)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	doc := `{"auths":{"registry.example.com":{"username":"` + user + `","password":"` + pass + `","auth":"` + auth + `"}}}`
	return fake{value: doc, secrets: []string{pass, auth}}
}

func kubeconfigYAML(g *fakeGen) fake {
	tok := g.s(setAlnum, 48)
	doc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: deployer\n  name: prod\ncurrent-context: prod\nusers:\n- name: deployer\n  user:\n    token: " + tok + "\n"
	return fake{value: doc, secrets: []string{tok}}
}

func kubeconfigClientKey(g *fakeGen) fake {
	pem := fakePEM(g, "EC PRIVATE KEY")
	data := base64.StdEncoding.EncodeToString([]byte(pem))
	doc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\nusers:\n- name: admin\n  user:\n    client-certificate-data: " + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")) + "\n    client-key-data: " + data + "\n"
	return fake{value: doc, secrets: []string{data[20:80]}}
}

func awsCredentialsFile(g *fakeGen) fake {
	id := cat("AK", "IA") + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	secret := g.s(setB64, 40)
	doc := "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\nregion = eu-west-1\n"
	return fake{value: doc, secrets: []string{id, secret}}
}

func jwkPrivate(g *fakeGen) fake {
	d := g.s(setB64URL, 43)
	doc := `{"kty":"EC","crv":"P-256","x":"` + g.s(setB64URL, 43) + `","y":"` + g.s(setB64URL, 43) + `","d":"` + d + `","kid":"` + g.s(setAlnum, 8) + `"}`
	return fake{value: doc, secrets: []string{d}}
}

func puttyKey(g *fakeGen) fake {
	priv := g.b64(48)
	doc := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n" + g.b64(40) + "\n" + g.b64(10) + "\nPrivate-Lines: 1\n" + priv + "\nPrivate-MAC: " + g.s(setHex, 64) + "\n"
	return fake{value: doc, secrets: []string{priv}}
}

// corpusFormats returns the formats of the corpus.
func corpusFormats() []credFormat {
	sh := func(name, det string, gen func(g *fakeGen) fake) credFormat {
		return credFormat{name: name, shape: true, detector: det, gen: gen}
	}
	kw := func(name string, gen func(g *fakeGen) fake) credFormat {
		return credFormat{name: name, gen: gen}
	}
	return []credFormat{
		// AI providers.
		sh("openai project key", "openai-api-key", func(g *fakeGen) fake {
			return v(cat("sk-", "proj-") + g.s(setB64URL, 74) + cat("T3Blbk", "FJ") + g.s(setB64URL, 74))
		}),
		sh("openai service account key", "openai-api-key", func(g *fakeGen) fake {
			return v(cat("sk-", "svcacct-") + g.s(setB64URL, 58) + cat("T3Blbk", "FJ") + g.s(setB64URL, 58))
		}),
		sh("openai legacy key", "openai-api-key", func(g *fakeGen) fake {
			return v("sk-" + g.s(setAlnum, 20) + cat("T3Blbk", "FJ") + g.s(setAlnum, 20))
		}),
		sh("anthropic api key", "anthropic-api-key", func(g *fakeGen) fake {
			return v(cat("sk-", "ant-", "api03-") + g.s(setB64URL, 93) + "AA")
		}),
		sh("anthropic admin key", "anthropic-api-key", func(g *fakeGen) fake {
			return v(cat("sk-", "ant-", "admin01-") + g.s(setB64URL, 93) + "AA")
		}),
		sh("anthropic oauth token", "anthropic-api-key", func(g *fakeGen) fake {
			return v(cat("sk-", "ant-", "oat01-") + g.s(setB64URL, 93) + "AA")
		}),
		sh("deepseek key", "sk-api-key", func(g *fakeGen) fake { return v("sk-" + g.s(setHex, 32)) }),
		sh("moonshot key", "sk-api-key", func(g *fakeGen) fake { return v("sk-" + g.s(setAlnum, 48)) }),
		sh("openrouter key", "openrouter-api-key", func(g *fakeGen) fake { return v(cat("sk-", "or-v1-") + g.s(setHex, 64)) }),
		sh("gemini api key", "google-api-key", func(g *fakeGen) fake { return v(cat("AI", "za") + "Sy" + g.s(setB64URL, 33)) }),
		sh("google oauth client secret", "google-oauth-client-secret", func(g *fakeGen) fake { return v(cat("GOC", "SPX-") + g.s(setB64URL, 28)) }),
		sh("google oauth access token", "google-oauth-token", func(g *fakeGen) fake { return v(cat("ya", "29.") + g.s(setB64URL, 150)) }),
		sh("google oauth refresh token", "google-oauth-token", func(g *fakeGen) fake { return v(cat("1//", "0") + g.s(setB64URL, 100)) }),
		sh("hugging face token", "huggingface-token", func(g *fakeGen) fake { return v(cat("hf", "_") + g.s(setLetters, 34)) }),
		sh("hugging face org token", "huggingface-token", func(g *fakeGen) fake { return v(cat("api_", "org_") + g.s(setLetters, 34)) }),
		sh("groq api key", "groq-api-key", func(g *fakeGen) fake { return v(cat("gs", "k_") + g.s(setAlnum, 52)) }),
		sh("replicate token", "replicate-api-token", func(g *fakeGen) fake { return v(cat("r8", "_") + g.s(setAlnum, 37)) }),
		sh("xai api key", "xai-api-key", func(g *fakeGen) fake { return v(cat("xa", "i-") + g.s(setAlnum, 80)) }),
		sh("perplexity api key", "perplexity-api-key", func(g *fakeGen) fake { return v(cat("pp", "lx-") + g.s(setAlnum, 48)) }),
		sh("langsmith api key", "langsmith-api-key", func(g *fakeGen) fake {
			return v(cat("lsv2", "_pt_") + g.s(setHex, 32) + "_" + g.s(setHex, 10))
		}),
		sh("pinecone api key", "pinecone-api-key", func(g *fakeGen) fake {
			return v(cat("pc", "sk_") + g.s(setAlnum, 6) + "_" + g.s(setAlnum, 64))
		}),
		sh("aws bedrock api key", "aws-bedrock-api-key", func(g *fakeGen) fake { return v(cat("AB", "SK") + g.s(setB64, 130)) }),
		kw("cohere api key", func(g *fakeGen) fake { return v(g.s(setAlnum, 40)) }),
		kw("mistral api key", func(g *fakeGen) fake { return v(g.s(setAlnum, 32)) }),

		// Cloud.
		sh("aws access key id", "aws-access-key-id", func(g *fakeGen) fake {
			return v(cat("AK", "IA") + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
		}),
		sh("aws temporary access key id", "aws-access-key-id", func(g *fakeGen) fake {
			return v(cat("AS", "IA") + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
		}),
		sh("aws session token", "aws-session-token", func(g *fakeGen) fake { return v(cat("IQoJb3JpZ2", "luX2Vj") + g.s(setB64, 300)) }),
		kw("aws secret access key", func(g *fakeGen) fake { return v(g.s(setB64, 40)) }),
		sh("gcp service account key", "gcp-service-account-key", func(g *fakeGen) fake { return saKeyJSON(g, false) }),
		sh("gcp service account key, indented", "gcp-service-account-key", func(g *fakeGen) fake { return saKeyJSON(g, true) }),
		sh("azure storage connection string", "azure-storage-key", func(g *fakeGen) fake {
			key := g.b64(64)
			return fake{value: "DefaultEndpointsProtocol=https;AccountName=st" + g.s(setLower, 8) + ";" + cat("Account", "Key=") + key + ";EndpointSuffix=core.windows.net", secrets: []string{key}}
		}),
		sh("azure service bus connection string", "azure-storage-key", func(g *fakeGen) fake {
			key := g.b64(32)
			return fake{value: "Endpoint=sb://ns-" + g.s(setLower, 6) + ".servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;" + cat("SharedAccess", "Key=") + key, secrets: []string{key}}
		}),
		sh("azure storage account key", "azure-identifiable-key", func(g *fakeGen) fake { return v(g.s(setB64, 76) + "+ASt" + g.s(setB64, 5) + "w==") }),
		sh("azure cosmos db key", "azure-identifiable-key", func(g *fakeGen) fake { return v(g.s(setB64, 76) + "ACDb" + g.s(setB64, 5) + "Q==") }),
		sh("azure function key", "azure-identifiable-key", func(g *fakeGen) fake { return v(g.s(setB64URL, 44) + "AzFu" + g.s(setB64URL, 5) + "g==") }),
		sh("azure ad client secret", "azure-ad-client-secret", func(g *fakeGen) fake {
			return v(g.s(setAlnum, 3) + g.s(setDigits, 1) + "Q~" + g.s(setAlnum, 34))
		}),
		sh("azure sas url", "", func(g *fakeGen) fake {
			sig := g.b64(32)
			return fake{value: "https://st" + g.s(setLower, 8) + ".blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2027-01-01T00:00:00Z&" + "sig=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sig), secrets: []string{strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sig)[:30]}}
		}),
		sh("azure devops pat", "azure-devops-pat", func(g *fakeGen) fake { return v(g.s(setAlnum, 76) + "AZDO" + g.s(setAlnum, 4)) }),
		kw("azure devops legacy pat", func(g *fakeGen) fake { return v(g.s("abcdefghijklmnopqrstuvwxyz234567", 52)) }),
		sh("alibaba access key id", "alibaba-access-key-id", func(g *fakeGen) fake { return v(cat("LT", "AI") + g.s(setAlnum, 20)) }),
		sh("digitalocean pat", "digitalocean-token", func(g *fakeGen) fake { return v(cat("do", "p_v1_") + g.s(setHex, 64)) }),
		sh("heroku api key", "heroku-api-key", func(g *fakeGen) fake { return v(cat("HR", "KU-AA") + g.s(setB64URL, 58)) }),
		sh("cloudflare origin ca key", "cloudflare-origin-ca-key", func(g *fakeGen) fake {
			return v(cat("v1", ".0-") + g.s(setHex, 24) + "-" + g.s(setHex, 146))
		}),
		sh("fly.io token", "flyio-token", func(g *fakeGen) fake { return v(cat("fm", "2_") + g.s(setB64, 180)) }),
		sh("yandex cloud api key", "yandex-cloud-key", func(g *fakeGen) fake { return v(cat("AQ", "VN") + g.s(setB64URL, 36)) }),
		sh("netlify token", "netlify-token", func(g *fakeGen) fake { return v(cat("nf", "p_") + g.s(setAlnum, 40)) }),
		sh("supabase token", "supabase-token", func(g *fakeGen) fake { return v(cat("sb", "p_") + g.s(setHex, 40)) }),
		sh("render api key", "render-api-key", func(g *fakeGen) fake { return v(cat("rn", "d_") + g.s(setAlnum, 32)) }),
		sh("terraform cloud token", "terraform-cloud-token", func(g *fakeGen) fake {
			return v(g.s(setAlnum, 14) + cat(".atlas", "v1.") + g.s(setB64URL, 67))
		}),
		sh("pulumi token", "pulumi-access-token", func(g *fakeGen) fake { return v(cat("pu", "l-") + g.s(setHex, 40)) }),
		sh("databricks token", "databricks-token", func(g *fakeGen) fake { return v(cat("da", "pi") + g.s(setHex, 32)) }),
		sh("openshift token", "openshift-token", func(g *fakeGen) fake { return v(cat("sha256", "~") + g.s(setB64URL, 43)) }),
		sh("rancher token", "rancher-token", func(g *fakeGen) fake { return v(cat("tok", "en-") + g.s(setLower, 5) + ":" + g.s(setLower, 54)) }),
		sh("kubernetes service account token", "jwt", func(g *fakeGen) fake {
			return v(fakeJWT(g, `{"aud":["https://kubernetes.default.svc"],"exp":1773480413,"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:apps:`+g.s(setLower, 6)+`"}`))
		}),
		sh("kubernetes bootstrap token", "kubernetes-bootstrap-token", func(g *fakeGen) fake { return v(g.s(setLower, 6) + "." + g.s(setLower, 16)) }),
		sh("kubeconfig with a token", "", kubeconfigYAML),
		sh("kubeconfig with a client key", "", kubeconfigClientKey),
		sh("aws credentials file", "", awsCredentialsFile),

		// Version control and CI.
		sh("github classic pat", "github-token", func(g *fakeGen) fake { return v(ghClassic(g, cat("gh", "p_"))) }),
		sh("github oauth token", "github-token", func(g *fakeGen) fake { return v(ghClassic(g, cat("gh", "o_"))) }),
		sh("github app token", "github-token", func(g *fakeGen) fake { return v(ghClassic(g, cat("gh", "s_"))) }),
		sh("github fine-grained pat", "github-token", func(g *fakeGen) fake {
			return v(cat("github", "_pat_") + "11" + g.s(setUpper, 20) + "_" + g.s(setAlnum, 59))
		}),
		sh("gitlab pat", "gitlab-token", func(g *fakeGen) fake { return v(cat("gl", "pat-") + g.s(setB64URL, 20)) }),
		sh("gitlab routable pat", "gitlab-token", func(g *fakeGen) fake {
			return v(cat("gl", "pat-") + g.s(setAlnum, 27) + "." + g.s("0123456789abcdefghijklmnopqrstuvwxyz", 9))
		}),
		sh("gitlab runner token", "gitlab-token", func(g *fakeGen) fake { return v(cat("gl", "rt-") + g.s(setB64URL, 20)) }),
		sh("gitlab runner registration token", "gitlab-token", func(g *fakeGen) fake { return v(cat("GR1348", "941") + g.s(setB64URL, 20)) }),
		sh("gitlab deploy token", "gitlab-token", func(g *fakeGen) fake { return v(cat("gl", "dt-") + g.s(setB64URL, 20)) }),
		sh("gitlab agent token", "gitlab-token", func(g *fakeGen) fake { return v(cat("gl", "agent-") + g.s(setB64URL, 50)) }),
		sh("bitbucket app password", "bitbucket-app-password", func(g *fakeGen) fake { return v(cat("AT", "BB") + g.s(setAlnum, 32)) }),
		sh("atlassian api token", "atlassian-api-token", func(g *fakeGen) fake { return v(cat("ATA", "TT3") + g.s(setB64URL, 186)) }),
		sh("sourcegraph token", "sourcegraph-token", func(g *fakeGen) fake { return v(cat("sg", "p_") + g.s(setHex, 16) + "_" + g.s(setHex, 40)) }),
		sh("circleci token", "circleci-token", func(g *fakeGen) fake { return v(cat("CCI", "PAT_") + g.s(setAlnum, 22) + "_" + g.s(setHex, 40)) }),
		sh("buildkite token", "buildkite-token", func(g *fakeGen) fake { return v(cat("bk", "ua_") + g.s(setHex, 40)) }),
		sh("sonarqube token", "sonarqube-token", func(g *fakeGen) fake { return v(cat("sq", "p_") + g.s(setHex, 40)) }),
		sh("harness token", "harness-token", func(g *fakeGen) fake {
			return v(cat("pa", "t.") + g.s(setB64URL, 22) + "." + g.s(setAlnum, 24) + "." + g.s(setAlnum, 20))
		}),
		sh("octopus deploy api key", "octopus-deploy-api-key", func(g *fakeGen) fake { return v(cat("AP", "I-") + g.s(setUpper, 26)) }),
		sh("infracost token", "infracost-api-token", func(g *fakeGen) fake { return v(cat("ic", "o-") + g.s(setAlnum, 32)) }),
		sh("postman api key", "postman-api-key", func(g *fakeGen) fake { return v(cat("PM", "AK-") + g.s(setHex, 24) + "-" + g.s(setHex, 34)) }),
		sh("prefect api key", "prefect-api-key", func(g *fakeGen) fake { return v(cat("pn", "u_") + g.s(setAlnum, 36)) }),
		sh("linear api key", "linear-api-key", func(g *fakeGen) fake { return v(cat("lin_", "api_") + g.s(setAlnum, 40)) }),
		sh("notion token", "notion-token", func(g *fakeGen) fake { return v(cat("nt", "n_") + g.s(setDigits, 11) + g.s(setAlnum, 35)) }),
		sh("airtable token", "airtable-token", func(g *fakeGen) fake { return v(cat("pa", "t") + g.s(setAlnum, 14) + "." + g.s(setHex, 64)) }),
		sh("figma token", "figma-token", func(g *fakeGen) fake { return v(cat("fi", "gd_") + g.s(setB64URL, 40)) }),
		sh("hubspot private app token", "hubspot-token", func(g *fakeGen) fake {
			return v(cat("pat-", "na1-") + g.s(setHex, 8) + "-" + g.s(setHex, 4) + "-" + g.s(setHex, 4) + "-" + g.s(setHex, 4) + "-" + g.s(setHex, 12))
		}),
		sh("mapbox secret token", "mapbox-secret-token", func(g *fakeGen) fake { return v(cat("sk", ".eyJ") + g.s(setB64URL, 60) + "." + g.s(setB64URL, 22)) }),
		sh("dropbox token", "dropbox-token", func(g *fakeGen) fake { return v(cat("s", "l.") + g.s(setB64URL, 138)) }),
		sh("facebook access token", "facebook-access-token", func(g *fakeGen) fake { return v(cat("EA", "AC") + g.s(setAlnum, 180)) }),
		sh("salesforce access token", "salesforce-access-token", func(g *fakeGen) fake { return v(cat("00", "D") + g.s(setAlnum, 15) + "!" + g.s(setAlnum, 96)) }),
		sh("contentful token", "contentful-token", func(g *fakeGen) fake { return v(cat("CF", "PAT-") + g.s(setB64URL, 43)) }),
		sh("typeform token", "typeform-token", func(g *fakeGen) fake { return v(cat("tf", "p_") + g.s(setB64URL, 59)) }),
		sh("planetscale token", "planetscale-token", func(g *fakeGen) fake { return v(cat("pscale", "_tkn_") + g.s(setB64URL, 43)) }),
		sh("clickhouse cloud key", "clickhouse-cloud-key", func(g *fakeGen) fake { return v(cat("4b", "1d") + g.s(setAlnum, 38)) }),
		kw("datadog api key", func(g *fakeGen) fake { return v(g.s(setHex, 32)) }),
		kw("okta api token", func(g *fakeGen) fake { return v("00" + g.s(setB64URL, 40)) }),

		// Package registries.
		sh("npm token", "npm-token", func(g *fakeGen) fake { return v(cat("np", "m_") + g.s(setAlnum, 36)) }),
		sh("pypi token", "pypi-token", func(g *fakeGen) fake { return v(cat("pypi-", "AgEIcHlwaS5vcmc") + g.s(setB64URL, 150)) }),
		sh("rubygems token", "rubygems-token", func(g *fakeGen) fake { return v(cat("rubygems", "_") + g.s(setHex, 48)) }),
		sh("nuget api key", "nuget-api-key", func(g *fakeGen) fake { return v(cat("oy", "2") + g.s(setLower, 43)) }),
		sh("docker hub pat", "dockerhub-token", func(g *fakeGen) fake { return v(cat("dckr", "_pat_") + g.s(setB64URL, 27)) }),
		sh("docker config json", "docker-config-auth", dockerConfigJSON),
		sh("docker config json, base64", "", func(g *fakeGen) fake {
			f := dockerConfigJSON(g)
			return fake{value: base64.StdEncoding.EncodeToString([]byte(f.value))}
		}),
		sh("clojars token", "clojars-token", func(g *fakeGen) fake { return v(cat("CLOJARS", "_") + g.s(setLower, 60)) }),
		sh("crates.io token", "crates-io-token", func(g *fakeGen) fake { return v(cat("ci", "o") + g.s(setAlnum, 32)) }),
		sh("artifactory api key", "artifactory-token", func(g *fakeGen) fake { return v(cat("AK", "Cp") + g.s(setAlnum, 69)) }),

		// Observability.
		sh("sentry user token", "sentry-token", func(g *fakeGen) fake { return v(cat("sntry", "u_") + g.s(setHex, 64)) }),
		sh("grafana cloud token", "grafana-token", func(g *fakeGen) fake { return v(cat("gl", "c_") + g.s(setB64, 120)) }),
		sh("grafana service account token", "grafana-token", func(g *fakeGen) fake { return v(cat("gl", "sa_") + g.s(setAlnum, 32) + "_" + g.s(setHex, 8)) }),
		sh("new relic user key", "newrelic-key", func(g *fakeGen) fake { return v(cat("NR", "AK-") + g.s(setUpper, 27)) }),
		sh("dynatrace token", "dynatrace-token", func(g *fakeGen) fake {
			return v(cat("dt0", "c01.") + g.s(setUpper, 24) + "." + g.s(setUpper, 64))
		}),

		// E-mail.
		sh("sendgrid api key", "sendgrid-api-key", func(g *fakeGen) fake { return v(cat("S", "G.") + g.s(setB64URL, 22) + "." + g.s(setB64URL, 43)) }),
		sh("mailgun api key", "mailgun-api-key", func(g *fakeGen) fake { return v(cat("ke", "y-") + g.s(setHex, 32)) }),
		sh("mailchimp api key", "mailchimp-api-key", func(g *fakeGen) fake { return v(g.s(setHex, 32) + cat("-u", "s") + "21") }),
		sh("mandrill api key", "mandrill-api-key", func(g *fakeGen) fake { return v(cat("m", "d-") + g.s(setAlnum, 22)) }),
		sh("brevo api key", "brevo-api-key", func(g *fakeGen) fake { return v(cat("xkey", "sib-") + g.s(setHex, 64) + "-" + g.s(setAlnum, 16)) }),
		sh("resend api key", "resend-api-key", func(g *fakeGen) fake { return v(cat("r", "e_") + g.s(setAlnum, 8) + "_" + g.s(setAlnum, 24)) }),
		kw("postmark server token", func(g *fakeGen) fake { return v(g.uuid()) }),

		// Telephony and chat.
		sh("twilio api key", "twilio-api-key", func(g *fakeGen) fake { return v(cat("S", "K") + g.s(setHex, 32)) }),
		kw("twilio auth token", func(g *fakeGen) fake { return v(g.s(setHex, 32)) }),
		sh("slack bot token", "slack-token", func(g *fakeGen) fake {
			return v(cat("xo", "xb-") + g.s(setDigits, 11) + "-" + g.s(setDigits, 12) + "-" + g.s(setAlnum, 24))
		}),
		sh("slack user token", "slack-token", func(g *fakeGen) fake {
			return v(cat("xo", "xp-") + g.s(setDigits, 11) + "-" + g.s(setDigits, 12) + "-" + g.s(setDigits, 13) + "-" + g.s(setHex, 32))
		}),
		sh("slack app token", "slack-token", func(g *fakeGen) fake {
			return v(cat("xa", "pp-") + "1-A" + g.s(setUpper, 10) + "-" + g.s(setDigits, 13) + "-" + g.s(setHex, 64))
		}),
		sh("slack webhook", "slack-webhook", func(g *fakeGen) fake {
			path := "T" + g.s(setUpper, 8) + "/B" + g.s(setUpper, 10) + "/" + g.s(setAlnum, 24)
			return fake{value: "https://hooks." + "slack.com/services/" + path, secrets: []string{path}}
		}),
		sh("discord bot token", "discord-bot-token", func(g *fakeGen) fake {
			id := base64.RawURLEncoding.EncodeToString([]byte("1" + g.s(setDigits, 17)))
			return v(id + "." + g.s(setB64URL, 6) + "." + g.s(setB64URL, 38))
		}),
		sh("discord webhook", "discord-webhook", func(g *fakeGen) fake {
			tok := g.s(setB64URL, 68)
			return fake{value: "https://discord.com/api/" + "webhooks/1" + g.s(setDigits, 18) + "/" + tok, secrets: []string{tok}}
		}),
		sh("telegram bot token", "telegram-bot-token", func(g *fakeGen) fake { return v(g.s(setDigits, 10) + ":" + "AA" + g.s(setB64URL, 33)) }),
		sh("teams webhook", "teams-webhook", func(g *fakeGen) fake {
			path := g.uuid() + "@" + g.uuid() + "/IncomingWebhook/" + g.s(setHex, 32) + "/" + g.uuid()
			return fake{value: "https://contoso.webhook." + "office.com/webhookb2/" + path, secrets: []string{path}}
		}),

		// Payment.
		sh("stripe secret key", "stripe-key", func(g *fakeGen) fake { return v(cat("sk", "_live_") + g.s(setAlnum, 99)) }),
		sh("stripe restricted key", "stripe-key", func(g *fakeGen) fake { return v(cat("rk", "_live_") + g.s(setAlnum, 99)) }),
		sh("stripe webhook secret", "stripe-webhook-secret", func(g *fakeGen) fake { return v(cat("wh", "sec_") + g.s(setAlnum, 32)) }),
		sh("square access token", "square-token", func(g *fakeGen) fake { return v(cat("EA", "AA") + g.s(setB64URL, 60)) }),
		sh("square oauth secret", "square-token", func(g *fakeGen) fake { return v(cat("sq0", "csp-") + g.s(setB64URL, 43)) }),
		sh("braintree access token", "braintree-access-token", func(g *fakeGen) fake {
			return v(cat("access", "_token$") + "production$" + g.s(setLower, 16) + "$" + g.s(setHex, 32))
		}),
		sh("plaid access token", "plaid-access-token", func(g *fakeGen) fake { return v(cat("access-", "production-") + g.uuid()) }),
		sh("shopify access token", "shopify-token", func(g *fakeGen) fake { return v(cat("shp", "at_") + g.s(setHex, 32)) }),
		sh("shopify shared secret", "shopify-token", func(g *fakeGen) fake { return v(cat("shp", "ss_") + g.s(setHex, 32)) }),
		sh("shippo token", "shippo-token", func(g *fakeGen) fake { return v(cat("shippo", "_live_") + g.s(setHex, 40)) }),
		sh("flutterwave secret key", "flutterwave-key", func(g *fakeGen) fake { return v(cat("FLW", "SECK-") + g.s("0123456789abcdefgh", 32) + "-X") }),
		sh("duffel token", "duffel-token", func(g *fakeGen) fake { return v(cat("duffel", "_live_") + g.s(setB64URL, 43)) }),
		sh("easypost api key", "easypost-api-key", func(g *fakeGen) fake { return v(cat("EZ", "AK") + g.s(setAlnum, 54)) }),

		// Secret managers.
		sh("vault service token", "vault-token", func(g *fakeGen) fake { return v(cat("hv", "s.") + g.s(setB64URL, 95)) }),
		sh("vault batch token", "vault-token", func(g *fakeGen) fake { return v(cat("hv", "b.") + g.s(setB64URL, 140)) }),
		sh("vault legacy token", "vault-token", func(g *fakeGen) fake { return v("s." + g.s(setAlnum, 24)) }),
		sh("doppler token", "doppler-token", func(g *fakeGen) fake { return v(cat("dp", ".pt.") + g.s(setAlnum, 43)) }),
		sh("doppler service token", "doppler-token", func(g *fakeGen) fake { return v(cat("dp", ".st.") + "prd." + g.s(setAlnum, 40)) }),
		sh("1password service account token", "onepassword-token", func(g *fakeGen) fake { return v(cat("ops", "_eyJ") + g.s(setB64, 300)) }),
		sh("1password secret key", "onepassword-token", func(g *fakeGen) fake {
			return v(cat("A", "3-") + g.s(setUpper, 6) + "-" + g.s(setUpper, 11) + "-" + g.s(setUpper, 5) + "-" + g.s(setUpper, 5) + "-" + g.s(setUpper, 5))
		}),
		sh("bitwarden access token", "bitwarden-access-token", func(g *fakeGen) fake {
			return v("0." + g.uuid() + "." + g.s(setAlnum, 30) + ":" + g.s(setB64, 22) + "==")
		}),
		sh("age secret key", "age-secret-key", func(g *fakeGen) fake { return v(cat("AGE-SECRET", "-KEY-1") + g.s(setBech32, 58)) }),

		// Keys and tokens of any provider.
		sh("jwt", "jwt", func(g *fakeGen) fake {
			return v(fakeJWT(g, `{"sub":"`+g.s(setLower, 8)+`","iat":1773476813,"scope":"read write"}`))
		}),
		sh("rsa private key", "pem-private-key", func(g *fakeGen) fake {
			p := fakePEM(g, "RSA PRIVATE KEY")
			return fake{value: p, secrets: []string{pemBody(p)}}
		}),
		sh("openssh private key", "pem-private-key", func(g *fakeGen) fake {
			p := fakePEM(g, "OPENSSH PRIVATE KEY")
			return fake{value: p, secrets: []string{pemBody(p)}}
		}),
		sh("encrypted private key", "pem-private-key", func(g *fakeGen) fake {
			p := fakePEM(g, "ENCRYPTED PRIVATE KEY")
			return fake{value: p, secrets: []string{pemBody(p)}}
		}),
		sh("pgp private key", "pem-private-key", func(g *fakeGen) fake {
			p := fakePEM(g, "PGP PRIVATE KEY BLOCK")
			return fake{value: p, secrets: []string{pemBody(p)}}
		}),
		sh("private key, base64", "pem-private-key-base64", func(g *fakeGen) fake {
			b := base64.StdEncoding.EncodeToString([]byte(fakePEM(g, "PRIVATE KEY")))
			return fake{value: b, secrets: []string{b[40:100]}}
		}),
		sh("putty private key", "putty-private-key", puttyKey),
		sh("jwk private key", "jwk-private-key", jwkPrivate),

		// Connection strings and URLs.
		sh("postgres url", "url-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 20)
			return fake{value: "postgres://app:" + pw + "@db.internal:5432/app?sslmode=require", secrets: []string{pw}}
		}),
		sh("mongodb srv url", "url-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 20)
			return fake{value: "mongodb+srv://svc:" + pw + "@cluster0." + g.s(setLower, 5) + ".mongodb.net/prod?retryWrites=true", secrets: []string{pw}}
		}),
		sh("redis url", "url-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 20)
			return fake{value: "rediss://:" + pw + "@cache.internal:6380/0", secrets: []string{pw}}
		}),
		sh("amqp url", "url-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 20)
			return fake{value: "amqps://worker:" + pw + "@mq.internal:5671/%2F", secrets: []string{pw}}
		}),
		sh("jdbc url with a password", "password-assignment", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 16)
			return fake{value: "jdbc:mysql://db.internal:3306/app?user=app&" + "password=" + pw + "&useSSL=true", secrets: []string{pw}}
		}),
		sh("ado.net connection string", "password-assignment", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 16)
			return fake{value: "Server=tcp:sql.internal,1433;Database=app;User ID=app;" + "Password=" + pw + ";Encrypt=True;", secrets: []string{pw}}
		}),
		sh("basic auth header", "basic-auth", func(g *fakeGen) fake {
			c := base64.StdEncoding.EncodeToString([]byte("svc:" + g.s(setAlnum, 16)))
			return fake{value: "Basic " + c, secrets: []string{c}}
		}),
		sh("bearer header", "bearer-token", func(g *fakeGen) fake {
			t := g.s(setAlnum, 40)
			return fake{value: "Bearer " + t, secrets: []string{t}}
		}),
		sh("curl with a user", "curl-user-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 16)
			return fake{value: "curl -fsS -u deploy:" + pw + " https://repo.internal/upload", secrets: []string{pw}}
		}),
		sh("netrc", "netrc-password", func(g *fakeGen) fake {
			pw := g.s(setAlnum, 20)
			return fake{value: "machine api.internal login deploy " + "password " + pw, secrets: []string{pw}}
		}),
		sh("npmrc auth token", "", func(g *fakeGen) fake {
			t := g.s(setAlnum, 40)
			return fake{value: "//registry.internal/:_auth" + "Token=" + t, secrets: []string{t}}
		}),

		// Password hashes.
		sh("bcrypt hash", "bcrypt-hash", func(g *fakeGen) fake { return v(cat("$2", "y$") + "10$" + g.s(setCrypt, 53)) }),
		sh("htpasswd apr1 hash", "crypt-hash", func(g *fakeGen) fake {
			h := cat("$ap", "r1$") + g.s(setCrypt, 8) + "$" + g.s(setCrypt, 22)
			return fake{value: "admin:" + h, secrets: []string{h}}
		}),
		sh("sha512-crypt hash", "crypt-hash", func(g *fakeGen) fake { return v(cat("$", "6$") + g.s(setCrypt, 16) + "$" + g.s(setCrypt, 86)) }),
		sh("yescrypt hash", "crypt-hash", func(g *fakeGen) fake { return v(cat("$", "y$") + "j9T$" + g.s(setCrypt, 22) + "$" + g.s(setCrypt, 43)) }),
		sh("argon2 hash", "argon2-hash", func(g *fakeGen) fake {
			return v(cat("$argon", "2id$") + "v=19$m=65536,t=3,p=4$" + g.s(setB64[:62], 22) + "$" + g.s(setB64[:62], 43))
		}),
		sh("django pbkdf2 hash", "pbkdf2-hash", func(g *fakeGen) fake {
			return v(cat("pbkdf2", "_sha256$") + "600000$" + g.s(setAlnum, 22) + "$" + g.s(setB64, 43) + "=")
		}),
		sh("postgres scram hash", "scram-hash", func(g *fakeGen) fake {
			return v(cat("SCRAM-SHA", "-256$") + "4096:" + g.b64(16) + "$" + g.b64(32) + ":" + g.b64(32))
		}),
		sh("ldap ssha hash", "ldap-password-hash", func(g *fakeGen) fake { return v(cat("{SS", "HA}") + g.b64(24)) }),
		sh("postgres md5 hash", "postgres-md5-hash", func(g *fakeGen) fake { return v(cat("md", "5") + g.s(setHex, 32)) }),
	}
}

// hexSHA returns a random lower-case hex string of n bytes.
func (g *fakeGen) hexBytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return hex.EncodeToString(b)
}

// harmlessValues are values that are never credentials, as they appear in clusters: every
// one of them must come out of every place unchanged.
func harmlessValues(g *fakeGen) []string {
	vals := []string{
		"sha256:" + g.hexBytes(32),
		"registry.example.com/team/api@sha256:" + g.hexBytes(32),
		"docker.io/library/nginx:1.27.3",
		"containerd://" + g.hexBytes(32),
		g.uuid(),
		g.hexBytes(20), // a git SHA
		g.hexBytes(16), // a trace ID, an MD5 checksum
		g.hexBytes(8),  // a span ID
		g.hexBytes(32), // a SHA-256 checksum
		strings.ToUpper(g.hexBytes(20)),
		"v1.36.3",
		"1.4.2-rc.1+build." + g.hexBytes(4),
		"48" + g.s(setDigits, 6),
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
		"api-" + g.s(setLower, 10),
		"kube-api-access-" + g.s(setLower, 5),
		"app.kubernetes.io/name",
		"Ready",
		"100Mi",
		"checkout,refunds,search",
		base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----\n")),
		base64.StdEncoding.EncodeToString([]byte(`{"feature":"checkout","enabled":true,"percent":25}`)),
		base64.StdEncoding.EncodeToString([]byte("plain text that is no secret at all, just base64 encoded")),
		g.b64(32),
		g.b64(64),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + g.s(setAlnum, 10) + `"}`)),
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
		"Tasks: disk-pressure, task-runner, skip-checks; keys rotated by key-manager-" + g.s(setLower, 5),
		"md5sum " + g.hexBytes(16) + " config.tar.gz",
		"token-ttl=3600 cache-key=user:42:profile",
		"pat.example.com path=/var/lib/kubelet patch=strategic",
		"s.example.com seed=" + g.s(setDigits, 8),
		"abcdef.ghijklmnopqrstuv",
		"nginx.conf: 8f14e45fceea167a5a36dedd4bea2543",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"SKU-" + g.s(setUpper, 10),
		"sk-learn-model-serving-deployment",
		"The quick brown fox jumps over the lazy dog.",
	}
	return vals
}
