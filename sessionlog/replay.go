package sessionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
)

// Call is a write as kube-apiserver audited it: what Replay re-issues.
type Call struct {
	Time                          time.Time `json:"time"`
	AuditID                       string    `json:"auditID"`
	Verb                          string    `json:"verb"`
	Group, Version                string    `json:"-"`
	Resource, Subresource         string    `json:"-"`
	Namespace, Name               string    `json:"-"`
	URI                           string    `json:"uri"`
	Code                          int       `json:"code"`
	RequestObject, ResponseObject string    `json:"-"`
	User                          string    `json:"user"`
	Groups                        []string  `json:"-"`
}

// JSONMasker masks a JSON document. *masking.Masker implements it.
type JSONMasker interface {
	JSON(dst, src []byte, t masking.Target) ([]byte, masking.Stats, error)
}

var _ JSONMasker = (*masking.Masker)(nil)

// ReplayOptions tune Replay.
type ReplayOptions struct {
	// DryRun sends every call with dryRun=All, so that nothing changes.
	DryRun bool
	// Impersonate sends every call as the user who made it, with their groups (the kubeconfig's
	// identity must be allowed to impersonate them); otherwise calls run as the kubeconfig's
	// identity.
	Impersonate bool
	// Masker masks the replayed answers (with the key the recorded ones were masked with, so
	// that placeholders compare) before they are compared; without it a diff names the fields
	// that differ and never their values.
	Masker JSONMasker
	// MaxResponseBytes bounds an answer read. Default 16 MiB.
	MaxResponseBytes int64
}

// Result is what replaying one call gave.
type Result struct {
	Call Call `json:"call"`
	// Code is the replayed call's HTTP status; Succeeded whether it is 2xx, as RecordedSucceeded
	// says of the recorded one.
	Code              int    `json:"code"`
	Succeeded         bool   `json:"succeeded"`
	RecordedSucceeded bool   `json:"recordedSucceeded"`
	Message           string `json:"message,omitempty"`
	// Diff lists how the replayed answer differs from the recorded one (when both succeeded),
	// fields that change on every write (uid, resourceVersion, timestamps, managedFields) and
	// Gatehouse's provenance annotations (gatehouse.dev/...) left out.
	Diff []Change `json:"diff,omitempty"`
	// Error is set when the call could not be sent at all.
	Error string `json:"error,omitempty"`
}

// Change is one difference between a recorded and a replayed answer.
type Change struct {
	Path     string `json:"path"`
	Recorded string `json:"recorded,omitempty"`
	Replayed string `json:"replayed,omitempty"`
}

// Replay re-issues calls in order against the cluster cfg reaches and reports, call by call,
// whether each succeeds now and how its answer differs from the recorded one. A patch is sent
// with the patch type its body and query imply (a JSON array is a JSON patch, an apply names a
// fieldManager, built-in groups get strategic merge, others merge patch): audit events do not
// record the Content-Type. Recorded objects are masked: a replayed Secret carries placeholders.
func Replay(ctx context.Context, cfg *rest.Config, calls []Call, o ReplayOptions) ([]Result, error) {
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 16 << 20
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("sessionlog: replay: %w", err)
	}
	base, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("sessionlog: replay: server %q: %w", cfg.Host, err)
	}
	out := make([]Result, 0, len(calls))
	for _, c := range calls {
		out = append(out, replayOne(ctx, hc, base, cfg.APIPath, c, o))
	}
	return out, nil
}

func replayOne(ctx context.Context, hc *http.Client, base *url.URL, apiPath string, c Call, o ReplayOptions) Result {
	res := Result{Call: c, RecordedSucceeded: c.Code >= 200 && c.Code < 300}
	u, err := url.Parse(c.URI)
	if err != nil {
		res.Error = "the recorded URI does not parse: " + err.Error()
		return res
	}
	target := *base
	target.Path = strings.TrimSuffix(base.Path+apiPath, "/") + u.Path
	q := u.Query()
	if o.DryRun {
		q.Set("dryRun", metav1.DryRunAll)
	}
	target.RawQuery = q.Encode()
	method, ctype := methodOf(c, q)
	var body io.Reader
	if c.RequestObject != "" {
		body = strings.NewReader(c.RequestObject)
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if o.Impersonate {
		req.Header.Set("Impersonate-User", c.User)
		for _, g := range c.Groups {
			if g != "system:authenticated" {
				req.Header.Add("Impersonate-Group", g)
			}
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, o.MaxResponseBytes))
	if err != nil {
		res.Error = "reading the answer: " + err.Error()
		return res
	}
	res.Code = resp.StatusCode
	res.Succeeded = res.Code >= 200 && res.Code < 300
	if o.Masker != nil {
		t := masking.Target{Group: c.Group, Version: c.Version, Resource: c.Resource, Subresource: c.Subresource, Namespace: c.Namespace, Name: c.Name}
		if masked, _, err := o.Masker.JSON(nil, got, t); err == nil {
			got = masked
		} else {
			got = nil
		}
	}
	if !res.Succeeded {
		var st metav1.Status
		if json.Unmarshal(got, &st) == nil && st.Message != "" {
			res.Message = st.Message
		}
		if o.Masker == nil {
			res.Message = string(st.Reason)
		}
		return res
	}
	if res.RecordedSucceeded && c.ResponseObject != "" && len(got) > 0 {
		res.Diff = diffJSON(c.ResponseObject, string(got), o.Masker != nil)
	}
	return res
}

// methodOf returns the HTTP method and Content-Type of a recorded call.
func methodOf(c Call, q url.Values) (string, string) {
	switch c.Verb {
	case "create":
		return http.MethodPost, "application/json"
	case "update":
		return http.MethodPut, "application/json"
	case "delete", "deletecollection":
		return http.MethodDelete, "application/json"
	case "patch":
		body := strings.TrimSpace(c.RequestObject)
		switch {
		case strings.HasPrefix(body, "["):
			return http.MethodPatch, "application/json-patch+json"
		case q.Get("fieldManager") != "" && strings.Contains(body, `"apiVersion"`) && strings.Contains(body, `"kind"`):
			return http.MethodPatch, "application/apply-patch+yaml"
		case c.Group == "" || !strings.Contains(c.Group, ".") || strings.HasSuffix(c.Group, ".k8s.io"):
			return http.MethodPatch, "application/strategic-merge-patch+json"
		}
		return http.MethodPatch, "application/merge-patch+json"
	}
	return http.MethodPost, "application/json"
}

// volatile are fields every write changes: not differences worth reporting.
var volatile = []string{
	"metadata.uid", "metadata.resourceVersion", "metadata.creationTimestamp", "metadata.managedFields",
	"metadata.generation", "metadata.selfLink", "metadata.deletionTimestamp",
}

func isVolatile(path string) bool {
	// Gatehouse's own annotations say who wrote through the gateway, not what was written.
	if key, ok := strings.CutPrefix(path, "metadata.annotations."); ok && identity.IsReserved(key) {
		return true
	}
	for _, v := range volatile {
		if path == v || strings.HasPrefix(path, v+".") || strings.HasPrefix(path, v+"[") {
			return true
		}
	}
	return false
}

// diffJSON lists the leaves that differ between two JSON documents; values are shown only when
// showValues is set (the replayed document was masked).
func diffJSON(recorded, replayed string, showValues bool) []Change {
	var a, b any
	if json.Unmarshal([]byte(recorded), &a) != nil || json.Unmarshal([]byte(replayed), &b) != nil {
		return []Change{{Path: "(document)", Recorded: "not JSON"}}
	}
	fa, fb := map[string]string{}, map[string]string{}
	flatten("", a, fa)
	flatten("", b, fb)
	paths := map[string]bool{}
	for p := range fa {
		paths[p] = true
	}
	for p := range fb {
		paths[p] = true
	}
	var out []Change
	for p := range paths {
		if isVolatile(p) || fa[p] == fb[p] {
			continue
		}
		ch := Change{Path: p, Recorded: fa[p], Replayed: fb[p]}
		if !showValues && ch.Replayed != "" {
			ch.Replayed = "(differs)"
		}
		if _, ok := fa[p]; !ok {
			ch.Recorded = "(absent)"
		}
		if _, ok := fb[p]; !ok {
			ch.Replayed = "(absent)"
		}
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[prefix] = "{}"
		}
		for k, sub := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, sub, out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix] = "[]"
		}
		for i, sub := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), sub, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(bytes.TrimSpace(b))
	}
}
