package console

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
)

//go:embed templates/*.html
var templateFS embed.FS

// Static files: the console's own script and style, and htmx with its SSE extension, vendored
// from npm by scripts/vendor-htmx.sh (versions and integrity in static/VENDOR).
//
//go:embed static
var staticFS embed.FS

// views renders the pages and serves the static files.
type views struct {
	tmpl *template.Template
	// integrity holds the subresource integrity of each static file, version the hash that
	// makes their URLs change with their content.
	integrity map[string]string
	version   map[string]string
}

func newViews() (*views, error) {
	v := &views{integrity: map[string]string{}, version: map[string]string{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha512.Sum384(data)
		v.integrity[name] = "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
		short := sha256.Sum256(data)
		v.version[name] = hex.EncodeToString(short[:6])
		return nil
	})
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"asset": func(name string) string { return "/static/" + name + "?v=" + v.version[name] },
		"sri":   func(name string) string { return v.integrity[name] },
		"ts":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"human": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
		"lower": func(s any) string { return strings.ToLower(fmt.Sprint(s)) },
		"join":  strings.Join,
	}
	v.tmpl, err = template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (v *views) static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := v.integrity[r.URL.Path]; !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		files.ServeHTTP(w, r)
	})
}

// page is what every page template gets.
type page struct {
	Title   string
	Session *session
	CSRF    string
	// Since is the revision the page shows; its event stream continues from there.
	Since uint64
	Live  bool
	Data  any
	// Styles and Scripts are static files a page loads besides the console's own.
	Styles, Scripts []string
}

type loginPage struct {
	Providers []string
	Next      string
}

type historyPage struct {
	Filter   historyFilter
	Rows     []*reqView
	More     bool
	Problems []string
	States   []approvals.State
}

func (s *Server) render(w http.ResponseWriter, _ *http.Request, code int, name string, p *page) {
	if p.Session != nil {
		p.CSRF = s.sealer.csrfToken(p.Session.ID)
	}
	var buf bytes.Buffer
	if err := s.views.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	sess, _ := s.sessionOf(r)
	s.render(w, r, code, "error", &page{Title: http.StatusText(code), Session: sess, Data: msg})
}

// fragment renders a partial template for an event.
func (v *views) fragment(name string, data any, csrf string) (string, error) {
	var buf bytes.Buffer
	err := v.tmpl.ExecuteTemplate(&buf, name, fragmentData{V: data, CSRF: csrf})
	return buf.String(), err
}

type fragmentData struct {
	V    any
	CSRF string
}

// reqView is an approval request as a page shows it to one identity.
type reqView struct {
	*item
	State     approvals.State
	Operation string
	Target    string
	Namespace string
	Client    string
	Approvals int
	// CanDecide: the identity may approve or deny now; otherwise WhyNot says why not.
	CanDecide  bool
	WhyNot     string
	SessionURL string
	Object     string
	Diff       []diffLine
	Problem    string
	Detail     bool
}

func (s *Server) view(sess *session, it *item, now time.Time, detail bool) *reqView {
	v := &reqView{item: it, State: it.state(now), Approvals: len(it.Approvers()), Detail: detail}
	op := it.Operation
	res := op.Resource
	if op.APIGroup != "" {
		res += "." + op.APIGroup
	}
	if op.Subresource != "" {
		res += "/" + op.Subresource
	}
	v.Operation = strings.ToLower(op.Verb) + " " + res
	v.Target, v.Namespace = op.Name, op.Namespace
	// Admission names a namespace's own namespace after it: show it once.
	if op.Namespace != "" && !(op.Resource == "namespaces" && op.Namespace == op.Name) {
		v.Target = op.Namespace + "/" + op.Name
	}
	if c := it.Requester.Extra[identity.ExtraClient]; len(c) > 0 {
		v.Client = c[0]
	}
	v.WhyNot = s.mayDecide(sess, it, now)
	v.CanDecide = v.WhyNot == ""
	v.SessionURL = s.sessionURL(it.SessionID)
	if detail {
		newYAML := objectYAML(it.Object)
		if oldYAML := objectYAML(it.OldObject); oldYAML != "" && newYAML != "" {
			v.Diff = lineDiff(oldYAML, newYAML, 3)
		}
		v.Object = newYAML
		if v.Object == "" {
			v.Object = objectYAML(it.OldObject)
		}
	}
	return v
}

// objectYAML renders an object (already masked at admission) as YAML, without the fields that
// only the API server writes and nobody reviews.
func objectYAML(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return ""
	}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "managedFields")
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return ""
	}
	return string(out)
}
