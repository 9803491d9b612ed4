package masking

import (
	"bytes"
	"encoding/base64"
	"regexp"
)

// This file holds the credential formats recognised by their shape alone: a prefix, a
// structure, a checksum. They are our own rules, written after the model of gitleaks' rule set
// (MIT) for the formats that have a distinctive shape; formats that only a nearby key name
// identifies (a 32-character hex API key) are left to the keyword rules. Each format has a
// stable name, which stats, exemptions and the configuration use, and lower-case keywords that
// every match contains, so that the Aho-Corasick prefilter keeps it off texts without them.
//
// Simple formats (a prefix and a run of one alphabet) use a hand-written scanner instead of a
// regular expression: keywords such as "sk" or "api-" occur in many ordinary values, and the
// scanner rejects those in a few nanoseconds.

// format is a credential format recognised by its shape.
type format struct {
	name     string
	keywords []string
	// re is an RE2 expression; the secret is the first of its groups that matched, or the
	// whole match.
	re string
	// joined marks a secret that follows its flag without a break (-pS3cret): the byte
	// before it may be a letter.
	joined bool
	// lines: see detector.lines.
	lines      *lineFilter
	minEntropy float64
	check      func(secret []byte) bool
	// tok describes a prefixed token, for formats without re.
	tok *tokenShape
	// find is a hand-written finder, for formats that need more.
	find func(text []byte, spans []span) []span
	// multi: find reports under other formats' IDs too.
	multi bool
	// command: see detector.command.
	command bool
	// args: see detector.args, for formats without re.
	args *passwordArgs
	// needsAny: see detector.needsAny, for a format without keywords.
	needsAny string
}

// end is the right boundary of tokens whose alphabet includes '_' and '-'.
const end = `(?:[^A-Za-z0-9_-]|\z)`

// The formats. The order fixes their IDs within a process, never their names.
var formats = []format{
	// AI providers.
	{name: "openai-api-key", keywords: []string{"sk-proj-", "sk-svcacct-", "sk-admin-", "t3blbkfj"},
		re: `(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})` + end, minEntropy: 3.5},
	{name: "anthropic-api-key", keywords: []string{"sk-ant-"},
		re: `(sk-ant-(?:api|admin|oat|ort|sid)[0-9]{2}-[A-Za-z0-9_-]{32,250})` + end, minEntropy: 3.5},
	{name: "sk-api-key", keywords: []string{"sk-"}, tok: &tokenShape{prefixes: []string{"sk-"}, set: alnum, min: 32, max: 64}, minEntropy: 3, check: lettersAndDigits},
	{name: "openrouter-api-key", keywords: []string{"sk-or-v1-"}, re: `(sk-or-v1-[a-f0-9]{64})\b`},
	{name: "google-oauth-client-secret", keywords: []string{"gocspx-"}, re: `(GOCSPX-[A-Za-z0-9_-]{28})` + end},
	{name: "google-oauth-token", keywords: []string{"ya29.", "1//0"},
		re: `(ya29\.[A-Za-z0-9_-]{30,}|1//0[A-Za-z0-9_-]{40,})`, minEntropy: 3.5},
	{name: "huggingface-token", keywords: []string{"hf_", "api_org_"}, tok: &tokenShape{prefixes: []string{"hf_", "api_org_"}, set: alnum, min: 34, max: 34}, minEntropy: 3.5},
	{name: "groq-api-key", keywords: []string{"gsk_"}, tok: &tokenShape{prefixes: []string{"gsk_"}, set: alnum, min: 52, max: 52}, minEntropy: 3.5},
	{name: "replicate-api-token", keywords: []string{"r8_"}, tok: &tokenShape{prefixes: []string{"r8_"}, set: alnum, min: 37, max: 37}, minEntropy: 3.5},
	{name: "xai-api-key", keywords: []string{"xai-"}, tok: &tokenShape{prefixes: []string{"xai-"}, set: alnum, min: 70, max: 90}, minEntropy: 3.5},
	{name: "perplexity-api-key", keywords: []string{"pplx-"}, tok: &tokenShape{prefixes: []string{"pplx-"}, set: alnum, min: 48, max: 48}, minEntropy: 3.5},
	{name: "langsmith-api-key", keywords: []string{"lsv2_"}, re: `(lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10})\b`},
	{name: "pinecone-api-key", keywords: []string{"pcsk_"}, tok: &tokenShape{prefixes: []string{"pcsk_"}, set: alnumUnderscore, min: 40, max: 120}, minEntropy: 3.5},
	{name: "aws-bedrock-api-key", keywords: []string{"absk", "bedrock-api-key-"},
		re: `(ABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&_-]{20,})`, minEntropy: 3},

	// Cloud providers.
	{name: "aws-session-token", keywords: []string{"iqojb3jpz2lux2vj", "fwogzxivyxdz", "fqogzxivyxdz"},
		re: `((?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9+/]{80,}={0,2})`},
	{name: "azure-ad-client-secret", keywords: []string{"q~"},
		re: `(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|\z)`, minEntropy: 3},
	{name: "azure-identifiable-key", keywords: []string{"+ast", "acdb", "+asb", "+aeh", "apim", "azse", "+acr", "azfu"},
		re: `(?:^|[^A-Za-z0-9+/])([A-Za-z0-9+/]{76}(?:\+ASt|ACDb|\+ASb|\+AEh|APIM|AzSe|\+ACR)[A-Za-z0-9+/]{5}[AQgw]==|[A-Za-z0-9_-]{44}AzFu[A-Za-z0-9_-]{5}[AQgw]==)`},
	{name: "azure-devops-pat", keywords: []string{"azdo"}, re: `\b([A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4})\b`},
	{name: "alibaba-access-key-id", keywords: []string{"ltai"}, tok: &tokenShape{prefixes: []string{"LTAI"}, set: alnum, min: 12, max: 20}, minEntropy: 3},
	{name: "digitalocean-token", keywords: []string{"dop_v1_", "doo_v1_", "dor_v1_"}, re: `(do[opr]_v1_[a-f0-9]{64})\b`},
	{name: "heroku-api-key", keywords: []string{"hrku-aa"}, re: `(HRKU-AA[A-Za-z0-9_-]{58})` + end},
	{name: "cloudflare-origin-ca-key", keywords: []string{"v1.0-"}, re: `(v1\.0-[a-f0-9]{24}-[a-f0-9]{146})\b`},
	{name: "flyio-token", keywords: []string{"fo1_", "fm1r_", "fm1a_", "fm2_"},
		re: `(fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})`},
	{name: "yandex-cloud-key", keywords: []string{"aqvn", "t1."},
		re: `(AQVN[A-Za-z0-9_-]{35,38}|t1\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]{86}={0,2})` + end, minEntropy: 3.5},
	{name: "netlify-token", keywords: []string{"nfp_"}, tok: &tokenShape{prefixes: []string{"nfp_"}, set: alnum, min: 36, max: 40}, minEntropy: 3.5},
	{name: "supabase-token", keywords: []string{"sbp_", "sb_secret_"}, re: `(sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_-]{20,})` + end},
	{name: "render-api-key", keywords: []string{"rnd_"}, tok: &tokenShape{prefixes: []string{"rnd_"}, set: alnum, min: 28, max: 32}, minEntropy: 3.5, check: lettersAndDigits},
	{name: "terraform-cloud-token", keywords: []string{"atlasv1"}, re: `([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})` + end},
	{name: "pulumi-access-token", keywords: []string{"pul-"}, tok: &tokenShape{prefixes: []string{"pul-"}, set: hexLower, min: 40, max: 40}},
	{name: "databricks-token", keywords: []string{"dapi", "dose"}, re: `((?:dapi|dose)[a-f0-9]{32}(?:-[0-9])?)\b`, minEntropy: 3},
	{name: "openshift-token", keywords: []string{"sha256~"}, re: `(sha256~[A-Za-z0-9_-]{43})` + end},
	{name: "rancher-token", keywords: []string{"token-"}, re: `(token-[a-z0-9]{5}:[a-z0-9]{54})\b`},

	// Version control, CI and developer platforms.
	{name: "bitbucket-app-password", keywords: []string{"atbb"}, re: `(ATBB[A-Za-z0-9_=.-]{28,60})` + end, minEntropy: 3.5},
	{name: "atlassian-api-token", keywords: []string{"atatt3", "atctt3"}, re: `(AT[AC]TT3[A-Za-z0-9_=-]{150,250})` + end},
	{name: "sourcegraph-token", keywords: []string{"sgp_"}, re: `(sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40})\b`},
	{name: "circleci-token", keywords: []string{"ccipat_"}, re: `(CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40})\b`},
	{name: "buildkite-token", keywords: []string{"bkua_"}, tok: &tokenShape{prefixes: []string{"bkua_"}, set: hexLower, min: 40, max: 40}},
	{name: "sonarqube-token", keywords: []string{"squ_", "sqp_", "sqa_"}, tok: &tokenShape{prefixes: []string{"squ_", "sqp_", "sqa_"}, set: hexLower, min: 40, max: 40}},
	{name: "harness-token", keywords: []string{"pat.", "sat."}, tok: &tokenShape{prefixes: []string{"pat.", "sat."}, segs: []seg{{set: base64URL, min: 22, max: 22}, {lit: "."}, {set: alnum, min: 24, max: 24}, {lit: "."}, {set: alnum, min: 20, max: 20}}}},
	{name: "octopus-deploy-api-key", keywords: []string{"api-"}, tok: &tokenShape{prefixes: []string{"API-"}, set: upperAlnum, min: 26, max: 26}, check: lettersAndDigits},
	{name: "infracost-api-token", keywords: []string{"ico-"}, tok: &tokenShape{prefixes: []string{"ico-"}, set: alnum, min: 32, max: 32}, minEntropy: 3.5},
	{name: "postman-api-key", keywords: []string{"pmak-"}, re: `(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b`},
	{name: "prefect-api-key", keywords: []string{"pnu_"}, tok: &tokenShape{prefixes: []string{"pnu_"}, set: alnum, min: 36, max: 36}, minEntropy: 3.5},
	{name: "readme-api-key", keywords: []string{"rdme_"}, tok: &tokenShape{prefixes: []string{"rdme_"}, set: alnumLower, min: 70, max: 70}},
	{name: "linear-api-key", keywords: []string{"lin_api_", "lin_oauth_"}, tok: &tokenShape{prefixes: []string{"lin_api_", "lin_oauth_"}, set: alnum, min: 40, max: 64}, minEntropy: 3.5},
	{name: "notion-token", keywords: []string{"ntn_", "secret_"}, re: `(ntn_[0-9]{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43})\b`, minEntropy: 3.5},
	{name: "airtable-token", keywords: []string{"pat"}, tok: &tokenShape{prefixes: []string{"pat"}, segs: []seg{{set: alnum, min: 14, max: 14}, {lit: "."}, {set: hexLower, min: 64, max: 64}}}},
	{name: "figma-token", keywords: []string{"figd_"}, re: `(figd_[A-Za-z0-9_-]{40})` + end},
	{name: "typeform-token", keywords: []string{"tfp_"}, re: `(tfp_[A-Za-z0-9_.=-]{59})` + end},
	{name: "frameio-token", keywords: []string{"fio-u-"}, re: `(fio-u-[A-Za-z0-9_=-]{64})` + end},
	{name: "contentful-token", keywords: []string{"cfpat-"}, re: `(CFPAT-[A-Za-z0-9_-]{43})` + end},
	{name: "hubspot-token", keywords: []string{"pat-na1-", "pat-eu1-"}, re: `(pat-(?:na|eu)1-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`},
	{name: "mapbox-secret-token", keywords: []string{"sk.eyj"}, re: `(sk\.eyJ[A-Za-z0-9_-]{50,}\.[A-Za-z0-9_-]{20,})`},
	{name: "dropbox-token", keywords: []string{"sl."}, re: `(sl\.(?:u\.)?[A-Za-z0-9_-]{130,})`, minEntropy: 3.5},
	{name: "facebook-access-token", keywords: []string{"eaam", "eaac"}, tok: &tokenShape{prefixes: []string{"EAAM", "EAAC"}, set: alnum, min: 100, max: 400}, minEntropy: 3.5},
	{name: "salesforce-access-token", keywords: []string{"00d"}, re: `(00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{80,})`},
	{name: "adobe-client-secret", keywords: []string{"p8e-"}, tok: &tokenShape{prefixes: []string{"p8e-"}, set: alnum, min: 32, max: 32}, minEntropy: 3},
	{name: "clickhouse-cloud-key", keywords: []string{"4b1d"}, tok: &tokenShape{prefixes: []string{"4b1d"}, set: alnum, min: 38, max: 38}, minEntropy: 3.5, check: mixedCase},
	{name: "maxmind-license-key", keywords: []string{"_mmk"}, re: `([A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk)\b`},
	{name: "scalingo-token", keywords: []string{"tk-us-"}, re: `(tk-us-[A-Za-z0-9_-]{48})` + end},
	{name: "authress-key", keywords: []string{"sc_", "ext_", "scauth_", "authress_"},
		re: `((?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120})` + end},
	{name: "intra42-client-secret", keywords: []string{"s-s4t2ud-", "s-s4t2af-"}, re: `(s-s4t2(?:ud|af)-[a-f0-9]{64})\b`},
	{name: "settlemint-token", keywords: []string{"sm_aat_", "sm_pat_", "sm_sat_"}, tok: &tokenShape{prefixes: []string{"sm_aat_", "sm_pat_", "sm_sat_"}, set: alnum, min: 16, max: 16}, minEntropy: 3},
	{name: "defined-networking-token", keywords: []string{"dnkey-"}, re: `(dnkey-[a-z0-9=_-]{26}-[a-z0-9=_-]{52})` + end},
	{name: "gitlab-session-cookie", keywords: []string{"_gitlab_session="}, re: `_gitlab_session=([0-9a-z]{32})\b`},
	{name: "sidekiq-credentials", keywords: []string{"contribsys__com"},
		re: `(?i)BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM["']?\s*[:=]\s*["']?([a-f0-9]{8}:[a-f0-9]{8})\b`},
	{name: "nuget-config-password", keywords: []string{"<add key="},
		re: `(?i)<add\s+key="(?:ClearText)?Password"\s+value="([^"]{1,})"`},
	// secretKind allows any spaces and tabs after "kind:": the keyword stops there.
	{name: "kubernetes-secret-manifest", keywords: []string{"kind:"}, find: findSecretManifests},
	{name: "planetscale-token", keywords: []string{"pscale_tkn_", "pscale_pw_", "pscale_oauth_"}, re: `(pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,64})` + end},

	// Package registries.
	{name: "npm-token", keywords: []string{"npm_"}, tok: &tokenShape{prefixes: []string{"npm_"}, set: alnum, min: 36, max: 36}, minEntropy: 3},
	{name: "pypi-token", keywords: []string{"pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"},
		re: `(pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,})`},
	{name: "rubygems-token", keywords: []string{"rubygems_"}, tok: &tokenShape{prefixes: []string{"rubygems_"}, set: hexLower, min: 48, max: 48}},
	{name: "nuget-api-key", keywords: []string{"oy2"}, tok: &tokenShape{prefixes: []string{"oy2"}, set: alnumLower, min: 43, max: 43}, minEntropy: 3.5},
	{name: "dockerhub-token", keywords: []string{"dckr_pat_", "dckr_oat_"}, re: `(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,32})` + end},
	{name: "clojars-token", keywords: []string{"clojars_"}, tok: &tokenShape{prefixes: []string{"CLOJARS_"}, set: alnumLower, min: 60, max: 60}},
	{name: "crates-io-token", keywords: []string{"cio"}, tok: &tokenShape{prefixes: []string{"cio"}, set: alnum, min: 32, max: 32}, minEntropy: 3.5, check: mixedCase},
	{name: "artifactory-token", keywords: []string{"akcp", "cmvmd"}, re: `(AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})\b`},

	// Observability.
	{name: "sentry-token", keywords: []string{"sntrys_", "sntryu_"}, re: `(sntrys_eyJ[A-Za-z0-9+/=_]{50,}|sntryu_[a-f0-9]{64})`},
	{name: "grafana-token", keywords: []string{"glc_", "glsa_", "eyjrijoi"},
		re: `(glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})`},
	{name: "newrelic-key", keywords: []string{"nrak-", "nrii-", "nrjs-"}, re: `(NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9_-]{32}|NRJS-[a-f0-9]{19})` + end},
	{name: "dynatrace-token", keywords: []string{"dt0c01."}, re: `(dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64})\b`},

	// E-mail.
	{name: "sendgrid-api-key", keywords: []string{"sg."}, tok: &tokenShape{prefixes: []string{"SG."}, segs: []seg{{set: base64URL, min: 22, max: 22}, {lit: "."}, {set: base64URL, min: 43, max: 43}}}},
	{name: "mailgun-api-key", keywords: []string{"key-"}, tok: &tokenShape{prefixes: []string{"key-", "pubkey-"}, set: hexLower, min: 32, max: 32}, minEntropy: 3},
	{name: "mailchimp-api-key", keywords: []string{"-us"}, find: findMailchimp},
	{name: "mandrill-api-key", keywords: []string{"md-"}, tok: &tokenShape{prefixes: []string{"md-"}, set: alnum, min: 22, max: 22}, minEntropy: 3.5, check: mixedCaseAndDigits},
	{name: "brevo-api-key", keywords: []string{"xkeysib-", "xsmtpsib-"}, re: `(x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16})\b`},
	{name: "resend-api-key", keywords: []string{"re_"}, tok: &tokenShape{prefixes: []string{"re_"}, segs: []seg{{set: alnum, min: 8, max: 8}, {lit: "_"}, {set: alnum, min: 24, max: 24}}}, minEntropy: 3.5},

	// Telephony and chat.
	{name: "twilio-api-key", keywords: []string{"sk"}, tok: &tokenShape{prefixes: []string{"SK"}, set: hexAny, min: 32, max: 32}, minEntropy: 3},
	{name: "telegram-bot-token", keywords: []string{":aa"}, re: `([0-9]{8,10}:AA[A-Za-z0-9_-]{33})` + end},
	{name: "discord-webhook", keywords: []string{"/api/webhooks/"}, re: `discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/([A-Za-z0-9_-]{60,68})`},
	{name: "teams-webhook", keywords: []string{"webhook.office.com"},
		re: `webhook\.office\.com/webhookb2/([0-9a-f-]{36}@[0-9a-f-]{36}/IncomingWebhook/[0-9a-f]{32}/[0-9a-f-]{36}(?:/[A-Za-z0-9_-]+)?)`},

	// Payment.
	{name: "stripe-webhook-secret", keywords: []string{"whsec_"}, tok: &tokenShape{prefixes: []string{"whsec_"}, set: base64Std, min: 32, max: 128}, minEntropy: 3.5},
	{name: "square-token", keywords: []string{"sq0atp-", "sq0csp-", "eaaa"}, re: `(sq0atp-[A-Za-z0-9_-]{22}|sq0csp-[A-Za-z0-9_-]{43}|EAAA[A-Za-z0-9_-]{60})` + end},
	{name: "braintree-access-token", keywords: []string{"access_token$"}, re: `(access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32})`},
	{name: "plaid-access-token", keywords: []string{"access-sandbox-", "access-development-", "access-production-"},
		re: `(access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`},
	{name: "shopify-token", keywords: []string{"shpat_", "shpca_", "shppa_", "shpss_"}, tok: &tokenShape{prefixes: []string{"shpat_", "shpca_", "shppa_", "shpss_"}, set: hexAny, min: 32, max: 32}},
	{name: "shippo-token", keywords: []string{"shippo_"}, re: `(shippo_(?:live|test)_[a-fA-F0-9]{40})\b`},
	{name: "flutterwave-key", keywords: []string{"flwseck", "flwpubk"}, re: `(FLWSECK(?:_TEST)?-[a-hA-H0-9]{32}-X|FLWSECK_TEST[a-hA-H0-9]{12})\b`},
	{name: "duffel-token", keywords: []string{"duffel_"}, re: `(duffel_(?:test|live)_[A-Za-z0-9_=-]{43})` + end},
	{name: "easypost-api-key", keywords: []string{"ezak", "eztk"}, tok: &tokenShape{prefixes: []string{"EZAK", "EZTK"}, set: alnum, min: 54, max: 54}, minEntropy: 3.5},

	// Secret managers.
	{name: "vault-token", keywords: []string{"hvs.", "hvb.", "hvr."}, re: `(hv[sbr]\.[A-Za-z0-9_-]{24,})` + end, minEntropy: 3.5},
	{name: "doppler-token", keywords: []string{"dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."},
		re: `(dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{1,40}\.)?[A-Za-z0-9]{40,44})\b`},
	{name: "onepassword-token", keywords: []string{"ops_eyj", "a3-"},
		re: `(ops_eyJ[A-Za-z0-9+/]{250,}={0,3}|A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})\b`},
	{name: "age-secret-key", keywords: []string{"age-secret-key-1"}, re: `(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})`},
	{name: "putty-private-key", keywords: []string{"putty-user-key-file-"},
		re: `(PuTTY-User-Key-File-[23]:(?s:.*?)(?:Private-MAC: ?[0-9a-fA-F]+|\z))`},

	// Shapes around a dot: one finder for the formats without a keyword of their own.
	{name: "kubernetes-bootstrap-token", find: findDotted, multi: true, needsAny: dottedNeedsAny},
	{name: "discord-bot-token"},
	{name: "bitwarden-access-token"},

	// Password hashes (htpasswd, /etc/shadow, application databases).
	{name: "bcrypt-hash", keywords: []string{"$2a$", "$2b$", "$2y$", "$2x$"}, re: `(\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53})`},
	{name: "crypt-hash", keywords: []string{"$1$", "$apr1$", "$5$", "$6$", "$y$", "$gy$", "$7$"},
		re: `(\$(?:1|apr1|5|6)\$(?:rounds=[0-9]+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{22,86}|\$(?:y|gy|7)\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{1,64}\$[./A-Za-z0-9]{43})`},
	{name: "argon2-hash", keywords: []string{"$argon2"}, re: `(\$argon2(?:id|i|d)\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,})`},
	{name: "pbkdf2-hash", keywords: []string{"pbkdf2"},
		re: `(pbkdf2_sha(?:1|256|512)\$[0-9]+\$[A-Za-z0-9./+]{4,}\$[A-Za-z0-9./+]{20,}={0,2}|pbkdf2:sha(?:1|256|512)(?::[0-9]+)?\$[A-Za-z0-9./+]{4,}\$[a-f0-9]{40,})`},
	{name: "scram-hash", keywords: []string{"scram-sha-256$"}, re: `(SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+)`},
	{name: "ldap-password-hash", keywords: []string{"{sha}", "{ssha}", "{ssha256}", "{ssha512}"}, re: `(\{(?:SHA|SSHA|SSHA256|SSHA512)\}[A-Za-z0-9+/]{20,}={0,2})`},
	{name: "postgres-md5-hash", keywords: []string{"md5"}, tok: &tokenShape{prefixes: []string{"md5"}, set: hexLower, min: 32, max: 32}},

	// Credentials in command lines and account files. The detectors marked command read a
	// command's name and flags before the secret: they read an array of strings as a command
	// line too (argv.go).
	{name: "curl-user-password", command: true, keywords: []string{"curl"}, re: `\bcurl\b[^\n]*?\s(?:-u|--user)(?:[ \t]+|=)['"]?[^\s:'"]*:([^\s'"]{3,})`,
		check: notReference},
	{name: "netrc-password", keywords: []string{"machine"}, re: `\bmachine[ \t]+\S+(?:[ \t]+login[ \t]+\S+)?[ \t]+password[ \t]+(\S+)`},
	// The MySQL and MariaDB clients take the password joined to -p (-pS3cret: -p alone
	// prompts, -P is the port); a registry login, sshpass and the MongoDB shells take it
	// joined, after '=' or after a blank. The keyword is the flag; the expressions run only on
	// the lines (with their continuations) that hold it after a blank and a command's name.
	{name: "mysql-password-flag", command: true, keywords: []string{"-p"}, lines: &lineFilter{flag: "-p", words: []string{"mysql", "mariadb"}},
		re:     commandStart + `(?:mysql[a-z_]*|mariadb(?:-[a-z]+)?)` + commandArgs + `-p` + shellWord,
		joined: true, check: notPortOrReference},
	{name: "password-flag-value", command: true, keywords: []string{"-p"}, lines: &lineFilter{flag: "-p", words: []string{"login", "sshpass", "mongo"}},
		re:     commandStart + `(?:(?:docker|podman|nerdctl|buildah|skopeo|oras|helm[ \t]+registry|az)[ \t]+login|sshpass|mongo|mongosh)` + commandArgs + `-p(?:[ \t]+|=)?` + shellWord,
		joined: true, check: notFlagOrReference},
	// Redis: the password in redis.conf (requirepass, masterauth: a line of a directive and
	// its arguments) and given to redis-cli.
	{name: "redis-password", command: true, keywords: []string{"requirepass", "masterauth", "redis-cli"},
		re:    `(?m)(?:^[ \t]*(?i:requirepass|masterauth)|` + commandStart + `redis-cli` + commandArgs + `(?:-a|--pass))[ \t]+` + shellWord,
		check: notFlagOrReference},
	// XML elements that hold a password or a token (Maven's settings.xml, application
	// configuration). The keyword is the end tag, which every element has: the expression
	// starts with '<', which the regexp package looks for before it tries a match.
	{name: "xml-password-element", keywords: []string{"</"},
		re:    `(?i)<(?:password|passphrase|secret|token|apikey|api-key|clientsecret|privatekey)>\s*([^<\s](?:[^<]*[^<\s])?)\s*</`,
		check: notReference},
	// .NET configuration (appSettings): <add key="ApiKey" value="…"/>, masked when the key
	// names a secret.
	{name: "xml-add-key-value", keywords: []string{"<add"}, find: findAddKeyValues},
	// Passwords commands take as arguments (cmdline.go): htpasswd's positional one, openssl's
	// -k and pass:, rclone's key value pairs.
	{name: "htpasswd-password", command: true, keywords: []string{"htpasswd"}, find: findHtpasswd},
	{name: "openssl-password", command: true, keywords: []string{"openssl"}, find: findOpenSSL},
	{name: "rclone-config-secret", command: true, keywords: []string{"rclone"}, find: findRclone},
	// A password echoed into a command that reads it from its standard input (echo pw |
	// docker login --password-stdin), or given to it as a here-string (<<< pw) (cmdline.go).
	{name: "password-stdin-echo", command: true, keywords: []string{"-stdin"}, find: findPasswordStdin},
	// Passwords other commands take as a flag's value or as an argument (cmdargs.go).
	{name: "ldap-password", command: true, keywords: []string{"ldap"},
		args: &passwordArgs{commands: []string{"ldapsearch", "ldapadd", "ldapmodify", "ldapdelete", "ldapmodrdn", "ldapcompare", "ldapwhoami", "ldappasswd", "ldapexop"}, flags: []string{"-w"}, joined: true}},
	{name: "sqlcmd-password", command: true, keywords: []string{"sqlcmd", "bcp"},
		args: &passwordArgs{commands: []string{"sqlcmd", "bcp"}, flags: []string{"-P"}, joined: true}},
	{name: "samba-password", command: true, keywords: []string{"smbclient", "rpcclient", "smbcacls", "smbget", "smbtree"},
		args: &passwordArgs{commands: []string{"smbclient", "rpcclient", "smbcacls", "smbget", "smbtree"}, flags: []string{"-U", "--user"}, after: '%', joined: true}},
	{name: "influx-password", command: true, keywords: []string{"influx"},
		args: &passwordArgs{commands: []string{"influx"}, flags: []string{"-p"}}},
	{name: "zip-password", command: true, keywords: []string{"zip"},
		args: &passwordArgs{commands: []string{"zip", "unzip", "zipcloak"}, flags: []string{"-P"}, joined: true}},
	// (The names with a subcommand: 7z alone is in times, 09:26:57Z, and so is "7Z " in logs.)
	{name: "7zip-password", command: true, keywords: []string{"7z a ", "7z d ", "7z e ", "7z l ", "7z t ", "7z u ", "7z x ", "7za ", "7zr ", "7zz "},
		args: &passwordArgs{commands: []string{"7z", "7za", "7zr", "7zz"}, flags: []string{"-p"}, joined: true, joinedOnly: true}},
	{name: "cqlsh-password", command: true, keywords: []string{"cqlsh"},
		args: &passwordArgs{commands: []string{"cqlsh"}, flags: []string{"-p"}, joined: true}},
	{name: "lftp-password", command: true, keywords: []string{"lftp"},
		args: &passwordArgs{commands: []string{"lftp"}, flags: []string{"-u", "--user"}, after: ','}},
	{name: "etcdctl-password", command: true, keywords: []string{"etcdctl"},
		args: &passwordArgs{commands: []string{"etcdctl"}, flags: []string{"--user"}, after: ':'}},
	{name: "rabbitmq-password", command: true, keywords: []string{"add_user", "change_password", "authenticate_user"},
		args: &passwordArgs{commands: []string{"rabbitmqctl"}, subcommands: []subcommand{{[]string{"add_user"}, 1}, {[]string{"change_password"}, 1}, {[]string{"authenticate_user"}, 1}}}},
	{name: "grafana-admin-password", command: true, keywords: []string{"reset-admin-password"},
		args: &passwordArgs{commands: []string{"grafana-cli", "grafana"}, subcommands: []subcommand{{[]string{"reset-admin-password"}, 0}}}},
	{name: "minio-client-secret", command: true, keywords: []string{"mc alias", "mc config", "mc admin"},
		args: &passwordArgs{commands: []string{"mc"}, subcommands: []subcommand{{[]string{"alias", "set"}, 3}, {[]string{"host", "add"}, 3}, {[]string{"user", "add"}, 2}}}},
}

// Byte sets of token alphabets.
type byteSet [256]bool

func newByteSet(ranges string) *byteSet {
	var s byteSet
	for i := 0; i < len(ranges); i++ {
		if i+2 < len(ranges) && ranges[i+1] == '-' {
			for c := int(ranges[i]); c <= int(ranges[i+2]); c++ {
				s[c] = true
			}
			i += 2
			continue
		}
		s[ranges[i]] = true
	}
	return &s
}

var (
	alnum           = newByteSet("A-Za-z0-9")
	alnumLower      = newByteSet("a-z0-9")
	alnumUnderscore = newByteSet("A-Za-z0-9_")
	upperAlnum      = newByteSet("A-Z0-9")
	hexLower        = newByteSet("a-f0-9")
	hexAny          = newByteSet("a-fA-F0-9")
	base64Std       = newByteSet("A-Za-z0-9+/=")
)

// tokenShape is a token that starts with one of prefixes (case-sensitive) and continues with
// min to max bytes of set, or with segs when they are given, neither continuing a word before
// it nor followed by a letter, digit or byte of its last alphabet.
type tokenShape struct {
	prefixes []string
	set      *byteSet
	min, max int
	segs     []seg
}

// seg is a part of a token: a literal, or min to max bytes of set. Segments are matched
// greedily, so a literal must not be in the alphabet of the segment before it.
type seg struct {
	lit      string
	set      *byteSet
	min, max int
}

// match returns the end of the token whose prefix ends at text[j], or -1.
func (t *tokenShape) match(text []byte, j int) int {
	segs := t.segs
	if segs == nil {
		segs = []seg{{set: t.set, min: t.min, max: t.max}}
	}
	var last *byteSet
	for _, sg := range segs {
		if sg.lit != "" {
			if !bytes.HasPrefix(text[j:], []byte(sg.lit)) {
				return -1
			}
			j += len(sg.lit)
			continue
		}
		s := j
		for j < len(text) && j-s <= sg.max && sg.set[text[j]] {
			j++
		}
		if n := j - s; n < sg.min || n > sg.max {
			return -1
		}
		last = sg.set
	}
	if j < len(text) && (isAlnum(text[j]) || (last != nil && last[text[j]])) {
		return -1
	}
	return j
}

// finder returns the find function of a detector for the shape. Entropy and check apply to
// what follows the prefix.
func (t *tokenShape) finder(d *detector) func(text []byte, spans []span) []span {
	return func(text []byte, spans []span) []span {
		for _, p := range t.prefixes {
			for off := 0; ; {
				i := bytes.Index(text[off:], []byte(p))
				if i < 0 {
					break
				}
				s := off + i
				off = s + 1
				if s > 0 && (isAlnum(text[s-1]) || text[s-1] == '_') {
					continue
				}
				j := t.match(text, s+len(p))
				if j < 0 {
					continue
				}
				body := text[s+len(p) : j]
				if d.minEntropy > 0 && entropy(body) < d.minEntropy {
					continue
				}
				if d.check != nil && !d.check(body) {
					continue
				}
				spans = append(spans, span{s, j, d.id})
				off = j
			}
		}
		return spans
	}
}

// formatDetectors builds the detectors of the formats.
func formatDetectors() []*detector {
	dets := make([]*detector, 0, len(formats))
	for i, f := range formats {
		d := &detector{id: idFirstFormat + i, keywords: f.keywords, minEntropy: f.minEntropy, check: f.check, multi: f.multi, needsAny: f.needsAny, lines: f.lines, command: f.command}
		switch {
		case f.re != "":
			d.re = regexp.MustCompile(f.re)
			switch d.re.NumSubexp() {
			case 0:
			case 1:
				d.group = 1
			default:
				d.group = -1
			}
			d.bound = !f.joined
		case f.tok != nil:
			d.find = f.tok.finder(d)
		case f.find != nil:
			d.find = f.find
		case f.args != nil:
			d.args = f.args
		default:
			continue // reported by another format's finder
		}
		dets = append(dets, d)
	}
	return dets
}

// formatID returns the ID of the format named name; it panics for an unknown name, which is a
// programming error caught by every test.
func formatID(name string) int {
	for i, f := range formats {
		if f.name == name {
			return idFirstFormat + i
		}
	}
	panic("masking: unknown format " + name)
}

// IDs of formats that hand-written finders report. They are set by init, since the finders
// are part of the table they are looked up in.
var (
	idBootstrapToken, idDiscordBot, idBitwarden, idVaultToken, idMailchimp, idFacebook, formatIDPutty, formatIDSecretManifest int
	idAddKeyValue, idHtpasswd, idOpenSSL, idRclone, idPasswordStdin                                                           int
)

func init() {
	idBootstrapToken = formatID("kubernetes-bootstrap-token")
	idDiscordBot = formatID("discord-bot-token")
	idBitwarden = formatID("bitwarden-access-token")
	idVaultToken = formatID("vault-token")
	idMailchimp = formatID("mailchimp-api-key")
	idFacebook = formatID("facebook-access-token")
	formatIDPutty = formatID("putty-private-key")
	formatIDSecretManifest = formatID("kubernetes-secret-manifest")
	idAddKeyValue = formatID("xml-add-key-value")
	idHtpasswd = formatID("htpasswd-password")
	idOpenSSL = formatID("openssl-password")
	idRclone = formatID("rclone-config-secret")
	idPasswordStdin = formatID("password-stdin-echo")
}

// commandFormatKeywords returns the keywords of the formats that read a command's words.
func commandFormatKeywords() []string {
	var kw []string
	for _, f := range formats {
		if f.command {
			kw = append(kw, f.keywords...)
		}
	}
	return kw
}

// formatDets are the detectors of the formats, built once.
var formatDets = formatDetectors()

func lettersAndDigits(b []byte) bool {
	letter, digit := false, false
	for _, c := range b {
		letter = letter || isLower(c) || isUpper(c)
		digit = digit || isDigit(c)
	}
	return letter && digit
}

func mixedCase(b []byte) bool {
	lower, upper := false, false
	for _, c := range b {
		lower = lower || isLower(c)
		upper = upper || isUpper(c)
	}
	return lower && upper
}

func mixedCaseAndDigits(b []byte) bool { return mixedCase(b) && lettersAndDigits(b) }

// findMailchimp finds Mailchimp API keys: 32 lower-case hex digits, "-us" and a data center
// number.
func findMailchimp(text []byte, spans []span) []span {
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte("-us"))
		if i < 0 {
			return spans
		}
		p := off + i
		off = p + 1
		s := p - 32
		if s < 0 || (s > 0 && isAlnum(text[s-1])) {
			continue
		}
		hex := true
		for _, c := range text[s:p] {
			hex = hex && (isDigit(c) || ('a' <= c && c <= 'f'))
		}
		e := p + 3
		for e < len(text) && e-p-3 < 2 && isDigit(text[e]) {
			e++
		}
		if !hex || e == p+3 || (e < len(text) && isAlnum(text[e])) || entropy(text[s:p]) < 3 {
			continue
		}
		spans = append(spans, span{s, e, idMailchimp})
	}
}

// dottedNeedsAny are the bytes findDotted looks for: a dot, a bar and the % of %7C. A text
// without any of them holds nothing it finds.
const dottedNeedsAny = ".|%"

// findDotted finds the formats whose only fixed part is a dot: Kubernetes bootstrap tokens
// (abcdef.0123456789abcdef), Discord bot tokens (three base64url parts, the first the
// base64 of the bot's numeric ID), legacy Vault tokens (s. and 24 characters) and Bitwarden
// access tokens (0.<uuid>.<secret>:<key>); and Facebook app access tokens, whose fixed part is
// a bar (<app ID>|<secret>). It looks at every dot and bar; most are rejected by the byte
// before or after.
func findDotted(text []byte, spans []span) []span {
	spans = findAppTokens(text, spans)
	for off := 0; ; {
		i := bytes.IndexByte(text[off:], '.')
		if i < 0 {
			return spans
		}
		p := off + i
		off = p + 1
		if p == 0 || p+1 >= len(text) || !isAlnum(text[p-1]) || !isAlnum(text[p+1]) {
			continue
		}
		// The word before the dot.
		s := p
		for s > 0 && p-s <= 32 && isBase64URL(text[s-1]) {
			s--
		}
		if s > 0 && (isBase64URL(text[s-1]) || text[s-1] == '.') {
			continue // a longer word, or not the first dot
		}
		left := text[s:p]
		var sp span
		switch {
		case len(left) == 6 && allOf(left, alnumLower):
			sp = bootstrapToken(text, s, p)
		case len(left) == 1 && left[0] == 's':
			sp = legacyVaultToken(text, s, p)
		case len(left) == 1 && left[0] == '0':
			sp = bitwardenToken(text, s, p)
		case len(left) >= 23 && len(left) <= 28:
			sp = discordToken(text, s, p)
		}
		if sp.end > 0 {
			spans = append(spans, sp)
			off = sp.end
		}
	}
}

func isBase64URL(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

func allOf(b []byte, set *byteSet) bool {
	for _, c := range b {
		if !set[c] {
			return false
		}
	}
	return true
}

// runOf returns the end of the run of bytes of set that starts at text[i].
func runOf(text []byte, i int, set *byteSet) int {
	for i < len(text) && set[text[i]] {
		i++
	}
	return i
}

// endsToken reports whether text[i] ends a token: the end, or a byte that is neither a letter,
// a digit, '_', '-' nor a dot followed by one of them.
func endsToken(text []byte, i int) bool {
	if i >= len(text) {
		return true
	}
	c := text[i]
	if isBase64URL(c) {
		return false
	}
	return c != '.' || i+1 >= len(text) || !isBase64URL(text[i+1])
}

// bootstrapToken matches [a-z0-9]{6}.[a-z0-9]{16} at text[s:], the dot at p.
func bootstrapToken(text []byte, s, p int) span {
	e := runOf(text, p+1, alnumLower)
	if e-p-1 != 16 || !endsToken(text, e) {
		return span{}
	}
	secret := text[p+1 : e]
	if !lettersAndDigits(secret) || entropy(secret) < 3 {
		return span{}
	}
	return span{s, e, idBootstrapToken}
}

// legacyVaultToken matches s.[A-Za-z0-9]{24} at text[s:].
func legacyVaultToken(text []byte, s, p int) span {
	e := runOf(text, p+1, alnum)
	if e-p-1 != 24 || !endsToken(text, e) || !mixedCaseAndDigits(text[p+1:e]) || entropy(text[p+1:e]) < 3.5 {
		return span{}
	}
	return span{s, e, idVaultToken}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9]{30}:[A-Za-z0-9+/]{22}==`)

// bitwardenToken matches 0.<uuid>.<30 alphanumerics>:<22 base64>== at text[s:].
func bitwardenToken(text []byte, s, p int) span {
	m := uuidRE.Find(text[p+1:])
	if m == nil {
		return span{}
	}
	return span{s, p + 1 + len(m), idBitwarden}
}

// discordToken matches a Discord bot token at text[s:]: the base64url of the bot's numeric ID
// (17 to 20 digits), a dot, 6 or 7 characters, a dot, and 27 to 40 characters.
func discordToken(text []byte, s, p int) span {
	id := text[s:p]
	if c := id[0]; c != 'M' && c != 'N' && c != 'O' {
		return span{}
	}
	var buf [24]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], id)
	if err != nil || n < 17 || !allOf(buf[:n], digits) {
		return span{}
	}
	e1 := runOf(text, p+1, base64URL)
	if n := e1 - p - 1; n < 6 || n > 7 || e1 >= len(text) || text[e1] != '.' {
		return span{}
	}
	e2 := runOf(text, e1+1, base64URL)
	if n := e2 - e1 - 1; n < 27 || n > 40 || !endsToken(text, e2) || entropy(text[e1+1:e2]) < 3.5 {
		return span{}
	}
	return span{s, e2, idDiscordBot}
}

var (
	digits    = newByteSet("0-9")
	base64URL = newByteSet("A-Za-z0-9_-")
)

var secretKind = regexp.MustCompile(`(?m)^([ \t]*)kind:[ \t]*["']?Secret["']?[ \t]*\r?$`)

// findSecretManifests masks the values of the data and stringData of Kubernetes Secret
// manifests held as YAML text (a ConfigMap holding rendered manifests, a log of kubectl
// output): each value of an entry, and each block scalar whole. The YAML document of a kind
// line is read once for all the kind lines in it, and each line of it once, so that a text of
// many kind lines is not read once per kind line.
func findSecretManifests(text []byte, spans []span) []span {
	matches := secretKind.FindAllSubmatchIndex(text, -1)
	var indents []int // the indentations of the kind lines of one document
	var kindAt []bool // by indentation: one of indents
	docEnd := 0       // where the document of the last kind line ends: a "\n---" or the end
	for k := 0; k < len(matches); {
		m := matches[k]
		// The YAML document m is in. The last one ended at a "\n---" before m, so the
		// search for the start of this one need not go back further.
		docStart := bytes.LastIndex(text[docEnd:m[0]], []byte("\n---"))
		if docStart >= 0 {
			docStart += docEnd + 1
		} else {
			docStart = 0 // only for the first document
		}
		docEnd = bytes.Index(text[m[1]:], []byte("\n---"))
		if docEnd < 0 {
			docEnd = len(text)
		} else {
			docEnd += m[1]
		}
		for _, i := range indents {
			kindAt[i] = false
		}
		indents = indents[:0]
		for ; k < len(matches) && matches[k][0] < docEnd; k++ {
			indent := matches[k][3] - matches[k][2]
			if indent >= len(kindAt) {
				kindAt = append(kindAt, make([]bool, indent+1-len(kindAt))...)
			}
			if !kindAt[indent] {
				kindAt[indent] = true
				indents = append(indents, indent)
			}
		}
		spans = secretManifestValues(text, docStart, docEnd, kindAt, spans)
	}
	return spans
}

// secretManifestValues appends the values of the data and stringData of the Secret manifest
// text[docStart:docEnd] whose kind lines have the indentations set in kindAt: the entries of
// data: and stringData: lines at one of them. Each indentation is followed as if it were the
// only one; one reading of the lines serves all.
func secretManifestValues(text []byte, docStart, docEnd int, kindAt []bool, spans []span) []span {
	id := formatIDSecretManifest
	doc := text[docStart:docEnd]
	// The indentations inside data or stringData, ascending, each with the indentation of the
	// entry whose block scalar the lines belong to (-1 for none).
	type open struct{ indent, block int }
	var in []open
	for ls := 0; ls < len(doc); {
		le := bytes.IndexByte(doc[ls:], '\n')
		if le < 0 {
			le = len(doc)
		} else {
			le += ls
		}
		line := bytes.TrimRight(doc[ls:le], " \t\r")
		ind := len(line) - len(bytes.TrimLeft(line, " "))
		body := line[ind:]
		next := le + 1
		if len(body) == 0 || body[0] == '#' {
			ls = next
			continue
		}
		// A line at or left of an indentation ends its data; a data: or stringData: line at
		// one of the kind lines' indentations starts it (below).
		for len(in) > 0 && in[len(in)-1].indent >= ind {
			in = in[:len(in)-1]
		}
		// The entry on the line, if any: where its value starts, and whether it is a block
		// scalar.
		k := bytes.Index(body, []byte(": "))
		blockScalar := false
		vs := -1
		if k >= 0 {
			v := bytes.TrimSpace(body[k+2:])
			blockScalar = len(v) > 0 && (v[0] == '|' || v[0] == '>')
			vs = ls + ind + k + 2
			for vs < ls+len(line) && doc[vs] == ' ' {
				vs++
			}
		}
		for i := range in {
			o := &in[i]
			switch {
			case o.block >= 0 && ind > o.block:
				spans = append(spans, span{docStart + ls + ind, docStart + ls + len(line), id})
			case k < 0:
				o.block = -1
			case blockScalar:
				o.block = ind
			default:
				o.block = -1
				if vs < ls+len(line) {
					spans = append(spans, span{docStart + vs, docStart + ls + len(line), id})
				}
			}
		}
		if (bytes.Equal(body, []byte("data:")) || bytes.Equal(body, []byte("stringData:"))) && ind < len(kindAt) && kindAt[ind] {
			in = append(in, open{indent: ind, block: -1})
		}
		ls = next
	}
	return spans
}

// findAppTokens finds Facebook app access tokens: the app's 15 or 16 digit ID, a bar (or
// %7C) and the secret. The next bar and the next %7C are each searched for again only when
// passed, so that a text of many bars and no %7C (or the reverse) is read once, not once per
// bar.
func findAppTokens(text []byte, spans []span) []span {
	// The first '|' and the first "%7C" at or after off; -1 when there is none.
	bar, pct := bytes.IndexByte(text, '|'), bytes.Index(text, []byte("%7C"))
	for off := 0; ; {
		if bar >= 0 && bar < off {
			if bar = bytes.IndexByte(text[off:], '|'); bar >= 0 {
				bar += off
			}
		}
		if pct >= 0 && pct < off {
			if pct = bytes.Index(text[off:], []byte("%7C")); pct >= 0 {
				pct += off
			}
		}
		if bar < 0 && pct < 0 {
			return spans
		}
		p, sep := bar, 1
		if bar < 0 || (pct >= 0 && pct < bar) {
			p, sep = pct, 3
		}
		off = p + sep
		s := p
		for s > 0 && p-s <= 16 && isDigit(text[s-1]) {
			s--
		}
		if n := p - s; n < 15 || n > 16 || (s > 0 && isAlnum(text[s-1])) {
			continue
		}
		e := runOf(text, p+sep, base64URL)
		secret := text[p+sep : e]
		if n := len(secret); n < 27 || n > 40 || !endsToken(text, e) || !lettersAndDigits(secret) || entropy(secret) < 3.5 {
			continue
		}
		spans = append(spans, span{s, e, idFacebook})
		off = e
	}
}

// Parts of the expressions of passwords on command lines.
const (
	// commandStart is what comes before a command's name: the start of the text or a line, a
	// blank, an operator, a path, the '=' of a flag whose value is a command.
	commandStart = `(?:^|[\s;|&(/'"=])`
	// commandArgs are the arguments of the command before its first such flag: on its line or
	// on lines continued with a backslash, up to an operator.
	commandArgs = `(?:[ \t](?:[^\n;|&]|\\\n)*?)??[ \t]`
	// shellWord is a flag's value as a shell reads it: quoted ('…', "…", or \"…\" in a string
	// that escapes its quotes) up to a blank or an operator, or unquoted with quoted parts and
	// escapes inside. The secret is the text inside the quotes, or the whole word.
	shellWord = `(?:'([^'\n]+)'(?:[\s;|&)]|\z)|"((?:[^"\\\n]|\\.)+)"(?:[\s;|&)]|\z)|\\"([^"\\\n]+)\\"|((?:[^\s'"\\|;&]|\\.|'[^'\n]*'|"(?:[^"\\\n]|\\.)*")+))`
)

// notPortOrReference rejects what notReference rejects, and a port mapping (3306:3306).
func notPortOrReference(b []byte) bool {
	return notReference(b) && !isPortMapping(b)
}

// notFlagOrReference rejects what notReference rejects, and the next flag after one that
// prompts for its value (mongosh -p --host x).
func notFlagOrReference(b []byte) bool {
	return notReference(b) && b[0] != '-'
}

// isPortMapping reports whether b is digits with colons between them.
func isPortMapping(b []byte) bool {
	colon := false
	for i, c := range b {
		switch {
		case isDigit(c):
		case c == ':' && i > 0 && i < len(b)-1 && b[i-1] != ':':
			colon = true
		default:
			return false
		}
	}
	return colon
}

// maxAddAttrs is the number of attributes of an <add> element findAddKeyValues reads.
const maxAddAttrs = 8

// findAddKeyValues finds the values of <add key="…" value="…"/> elements (.NET appSettings,
// NuGet.Config) whose key names a secret, as the keyword rules decide for key=value pairs: a
// password key masks any value that is not a reference, another secret key one of high
// entropy. The attributes may come in any order, in double or single quotes, or in \"…\" in a
// string that escapes its quotes.
func findAddKeyValues(text []byte, spans []span) []span {
	for off := 0; off < len(text); {
		k := bytes.Index(text[off:], []byte("<add"))
		if k < 0 {
			break
		}
		i := off + k + len("<add")
		off = i
		key, val := [2]int{-1, -1}, [2]int{-1, -1}
		for range maxAddAttrs {
			j := skipXMLSpace(text, i)
			if j == i {
				break // attributes are separated by white space
			}
			ns := j
			for j < len(text) && isXMLNameByte(text[j]) {
				j++
			}
			name := text[ns:j]
			if j = skipXMLSpace(text, j); len(name) == 0 || j >= len(text) || text[j] != '=' {
				break
			}
			vs, ve, next := xmlAttrValue(text, skipXMLSpace(text, j+1))
			if next < 0 {
				break
			}
			switch {
			case bytes.EqualFold(name, []byte("key")):
				key = [2]int{vs, ve}
			case bytes.EqualFold(name, []byte("value")):
				val = [2]int{vs, ve}
			}
			i = next
		}
		off = max(off, i)
		if key[0] < 0 || val[0] < 0 || val[0] == val[1] {
			continue
		}
		name := text[key[0]:key[1]]
		if c := classifyKey(name); c != keyPlain && keyMasks(c, name, text[val[0]:val[1]]) >= 0 {
			spans = append(spans, span{val[0], val[1], idAddKeyValue})
		}
	}
	return spans
}

func skipXMLSpace(text []byte, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
		i++
	}
	return i
}

func isXMLNameByte(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-' || c == '.' || c == ':'
}

// xmlAttrValue returns the bounds of the quoted attribute value at text[i] and the index after
// its closing quote, or next -1 when there is none within maxValueLen bytes.
func xmlAttrValue(text []byte, i int) (vs, ve, next int) {
	quote := []byte{0}
	switch {
	case i < len(text) && (text[i] == '"' || text[i] == '\''):
		quote[0] = text[i]
	case i+1 < len(text) && text[i] == '\\' && text[i+1] == '"':
		quote = []byte(`\"`)
	default:
		return 0, 0, -1
	}
	vs = i + len(quote)
	k := bytes.Index(text[vs:min(len(text), vs+maxValueLen)], quote)
	if k < 0 {
		return 0, 0, -1
	}
	return vs, vs + k, vs + k + len(quote)
}
