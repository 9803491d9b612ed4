package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking/internal/fakecreds"
)

// The recall tests plant every credential of the corpus under a neutral name (value07,
// example.com/value07) in every place a value can appear, mask what the proxy or the enricher
// would mask there, and check that nothing of the credential survives, at any level of
// encoding. They plant harmless values in the same places and check that nothing changed.
//
//	go test ./masking -run 'TestRecall' -v
//
// prints the table of recall and false positives per place.

// place is somewhere a value can appear, and how Gatehouse masks it there.
type place struct {
	name string
	// legal reports whether a value can appear there (label values are restricted).
	legal func(v string) bool
	// mask plants v and returns the masked output.
	mask func(t testing.TB, m *Masker, v string) (in, out []byte, st Stats)
}

func quote(s string) string { return string(appendQuoted(nil, []byte(s))) }

var labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

func maskObject(t testing.TB, m *Masker, doc string, target Target) ([]byte, []byte, Stats) {
	t.Helper()
	out, st, err := m.Body("application/json", "", []byte(doc), target)
	require.NoError(t, err, "%.300s", doc)
	require.True(t, json.Valid(out), "invalid output %.300s", out)
	return []byte(doc), out, st
}

func maskLog(t testing.TB, m *Masker, text string) ([]byte, []byte, Stats) {
	t.Helper()
	// The proxy masks pod logs line by line (TextStream) when they stream and whole (Text)
	// when it reads them whole; a credential must vanish from both.
	r := m.TextStream(strings.NewReader(text))
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	whole, st := m.Text(nil, []byte(text))
	st.Merge(r.Stats())
	return []byte(text + "\n" + text), []byte(string(out) + "\n" + string(whole)), st
}

const meta = `"metadata":{"name":"app-config","namespace":"payments","uid":"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a","resourceVersion":"48111","creationTimestamp":"2026-03-14T09:26:53Z"}`

func places() []place {
	configmaps := Target{Version: "v1", Resource: "configmaps", Namespace: "payments"}
	pods := Target{Version: "v1", Resource: "pods", Namespace: "payments"}
	deployments := Target{Group: "apps", Version: "v1", Resource: "deployments", Namespace: "payments"}
	return []place{
		{name: "configmap data", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"ConfigMap","apiVersion":"v1",`+meta+`,"data":{"value07":`+quote(v)+`,"color":"blue"}}`, configmaps)
		}},
		{name: "configmap binaryData", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"ConfigMap","apiVersion":"v1",`+meta+`,"binaryData":{"value07":"`+base64.StdEncoding.EncodeToString([]byte(v))+`"}}`, configmaps)
		}},
		{name: "configmap nested JSON", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			inner := `{"remote":{"endpoint":"https://api.example.com","value07":` + quote(v) + `},"retries":3}`
			return maskObject(t, m, `{"kind":"ConfigMap","apiVersion":"v1",`+meta+`,"data":{"settings.json":`+quote(inner)+`}}`, configmaps)
		}},
		{name: "env value", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"Pod","apiVersion":"v1",`+meta+`,"spec":{"containers":[{"name":"app","image":"registry.example.com/app:1.4.2","env":[{"name":"VALUE07","value":`+quote(v)+`},{"name":"LOG_LEVEL","value":"info"}]}]}}`, pods)
		}},
		{name: "container args", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"Pod","apiVersion":"v1",`+meta+`,"spec":{"containers":[{"name":"app","image":"registry.example.com/app:1.4.2","args":["serve",`+quote("--value07="+v)+`,"--verbose"]}]}}`, pods)
		}},
		{name: "annotation", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"payments","annotations":{"example.com/value07":`+quote(v)+`,"deployment.kubernetes.io/revision":"3"}},"spec":{"replicas":2}}`, deployments)
		}},
		{name: "label", legal: func(v string) bool { return len(v) <= 63 && labelValue.MatchString(v) }, mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"payments","labels":{"example.com/value07":`+quote(v)+`,"app":"web"}},"spec":{"replicas":2}}`, deployments)
		}},
		{name: "secret", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskObject(t, m, `{"kind":"Secret","apiVersion":"v1",`+meta+`,"data":{"value07":"`+base64.StdEncoding.EncodeToString([]byte(v))+`"},"stringData":{"value08":`+quote(v)+`},"type":"Opaque"}`, Target{Version: "v1", Resource: "secrets"})
		}},
		{name: "last-applied", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			applied := `{"apiVersion":"v1","data":{"value07":` + quote(v) + `},"kind":"ConfigMap","metadata":{"annotations":{},"name":"app-config","namespace":"payments"}}` + "\n"
			return maskObject(t, m, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-config","namespace":"payments","annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+quote(applied)+`}},"data":{"color":"blue"}}`, configmaps)
		}},
		{name: "event message", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			msg := "Container app exited with code 1; last output: " + v + " (restarting)"
			return maskObject(t, m, `{"kind":"Event","apiVersion":"v1","metadata":{"name":"app.17c9","namespace":"payments"},"involvedObject":{"kind":"Pod","name":"app"},"reason":"BackOff","message":`+quote(msg)+`,"type":"Warning"}`, Target{Version: "v1", Resource: "events"})
		}},
		{name: "log line", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskLog(t, m, "2026-03-14T09:26:53.123Z INFO loaded value07 "+v+" from the remote store\nnext line\n")
		}},
		{name: "JSON log line", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			return maskLog(t, m, `{"time":"2026-03-14T09:26:53.123Z","level":"INFO","msg":"loaded remote settings","value07":`+quote(v)+`,"attempt":1}`+"\n")
		}},
		{name: "JSON log line, nested", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			inner := `{"source":"remote","settings":{"value07":` + quote(v) + `}}`
			return maskLog(t, m, `{"time":"2026-03-14T09:26:53.123Z","level":"INFO","msg":"loaded","payload":`+quote(inner)+`}`+"\n")
		}},
		{name: "audit event", mask: func(t testing.TB, m *Masker, v string) ([]byte, []byte, Stats) {
			obj := `{"kind":"ConfigMap","apiVersion":"v1",` + meta + `,"data":{"value07":` + quote(v) + `}}`
			doc := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/payments/configmaps","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"payments","name":"app-config","apiVersion":"v1"},"requestObject":` + obj + `,"responseObject":` + obj + `}`
			out, st, err := m.JSON(nil, []byte(doc), Target{})
			require.NoError(t, err)
			return []byte(doc), out, st
		}},
	}
}

// recallResult counts one place.
type recallResult struct {
	shapeN, shapeHit     int // formats recognisable by shape
	keywordN, keywordHit int // formats only a key name identifies, here under a neutral name
	harmlessN, fp        int
	misses               []string
}

func measureRecall(t *testing.T, m *Masker) map[string]*recallResult {
	formats := fakecreds.Formats()
	res := map[string]*recallResult{}
	for _, p := range places() {
		r := &recallResult{}
		res[p.name] = r
		for i, f := range formats {
			// Several samples of each format, each from its own seed.
			for sample := range 3 {
				fk := f.Gen(fakecreds.NewGen(uint64(1000*i + sample)))
				if p.legal != nil && !p.legal(fk.Value) {
					continue
				}
				_, out, _ := p.mask(t, m, fk.Value)
				left := fakecreds.Leaked(out, fk)
				if f.Shape {
					r.shapeN++
					if len(left) == 0 {
						r.shapeHit++
					} else {
						r.misses = append(r.misses, fmt.Sprintf("%s#%d", f.Name, sample))
					}
				} else {
					r.keywordN++
					if len(left) == 0 {
						r.keywordHit++
					}
				}
			}
		}
		for _, h := range fakecreds.Harmless(fakecreds.NewGen(7)) {
			if p.legal != nil && !p.legal(h) {
				continue
			}
			in, out, st := p.mask(t, m, h)
			r.harmlessN++
			if p.name == "secret" {
				continue // everything in a Secret is masked, by design
			}
			if !bytes.Equal(in, out) || st.Fields != 0 {
				r.fp++
				t.Logf("false positive in %s: %q -> %s (%v)", p.name, h, out, st.Detectors)
			}
		}
	}
	return res
}

// minShapeRecall is the recall by shape measured for each place, in percent; a change that
// lowers it fails.
var minShapeRecall = map[string]float64{}

func TestRecallByShape(t *testing.T) {
	m := newMasker(t, Config{})
	res := measureRecall(t, m)
	names := make([]string, 0, len(res))
	for _, p := range places() {
		names = append(names, p.name)
	}
	pct := func(a, b int) float64 {
		if b == 0 {
			return 100
		}
		return 100 * float64(a) / float64(b)
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| place | recall by shape | keyword-only formats, neutral name | false positives |\n|---|---|---|---|\n")
	for _, n := range names {
		r := res[n]
		fp := fmt.Sprintf("%d/%d (%.1f%%)", r.fp, r.harmlessN, pct(r.fp, r.harmlessN))
		if n == "secret" {
			fp = "n/a (all masked)"
		}
		fmt.Fprintf(&tbl, "| %s | %d/%d (%.1f%%) | %d/%d | %s |\n", n, r.shapeHit, r.shapeN, pct(r.shapeHit, r.shapeN), r.keywordHit, r.keywordN, fp)
	}
	t.Log(tbl.String())
	for _, n := range names {
		r := res[n]
		sort.Strings(r.misses)
		if len(r.misses) > 0 {
			t.Logf("%s misses: %s", n, strings.Join(r.misses, ", "))
		}
		want, ok := minShapeRecall[n]
		if !ok {
			want = 100
		}
		assert.GreaterOrEqual(t, pct(r.shapeHit, r.shapeN), want, "recall by shape in %s", n)
		if n != "secret" {
			assert.Zero(t, r.fp, "false positives in %s", n)
		}
	}
}

// TestFormatDetectors checks that each format is found by the detector meant for it, in text
// and in a ConfigMap under a neutral name.
func TestFormatDetectors(t *testing.T) {
	m := newMasker(t, Config{})
	for i, f := range fakecreds.Formats() {
		if f.Detector == "" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			fk := f.Gen(fakecreds.NewGen(uint64(1000 * i)))
			_, st := m.Text(nil, []byte("value07 "+fk.Value+"\n"))
			assert.Contains(t, st.Detectors, f.Detector)
			_, _, st = places()[0].mask(t, m, fk.Value)
			assert.Contains(t, st.Detectors, f.Detector)
		})
	}
}

// TestKeywordOnlyFormats: formats without a shape of their own are masked next to a
// secret-sounding name, in every keyed place.
func TestKeywordOnlyFormats(t *testing.T) {
	m := newMasker(t, Config{})
	keyed := []struct {
		name string
		doc  func(v string) string
	}{
		{"env", func(v string) string {
			return `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"name":"a","env":[{"name":"MISTRAL_API_KEY","value":` + quote(v) + `}]}]}}`
		}},
		{"configmap", func(v string) string {
			return `{"kind":"ConfigMap","apiVersion":"v1","data":{"datadog.apiKey":` + quote(v) + `}}`
		}},
		{"annotation", func(v string) string {
			return `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"annotations":{"example.com/auth-token":` + quote(v) + `}}}`
		}},
		{"text", func(v string) string {
			return `{"kind":"Event","apiVersion":"v1","message":"retrying with TWILIO_AUTH_TOKEN=` + v + `"}`
		}},
	}
	for i, f := range fakecreds.Formats() {
		if f.Shape {
			continue
		}
		fk := f.Gen(fakecreds.NewGen(uint64(1000 * i)))
		for _, k := range keyed {
			out, st, err := m.JSON(nil, []byte(k.doc(fk.Value)), Target{})
			require.NoError(t, err)
			assert.Empty(t, fakecreds.Leaked(out, fk), "%s in %s", f.Name, k.name)
			assert.NotZero(t, st.Fields, "%s in %s", f.Name, k.name)
		}
	}
}
