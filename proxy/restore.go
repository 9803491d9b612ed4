package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Read-modify-write. A client that reads an object through Gatehouse sees placeholders where
// its secrets are; when it writes the object back (kubectl get -o yaml | edit | apply, kubectl
// replace, client-go Get and Update, Helm marking its previous release superseded), the write
// carries those placeholders. The proxy puts the stored values back before it forwards the
// write, when each placeholder is where it was read: at the same path of the same object
// (masking.Restore). It reads the stored object itself, as the client (the same impersonation,
// so RBAC applies: a client never gets back a value it could not read). A placeholder anywhere
// else is refused, as is a write the proxy cannot read the stored object for.
//
// A patch is applied to the masked stored object as the API server would apply it, the result
// restored, and the patch's placeholders replaced by what they were restored to. A new revision
// of a Helm release record (an upgrade that reuses the values, a rollback) takes its values from
// the release's other records, the same release in the same namespace.

// msgPlaceholder is the refusal of a write whose placeholders cannot be put back.
const msgPlaceholder = "The request contains Gatehouse's masked placeholders (gatehouse:masked:...) where values belong: it was built from an object read through Gatehouse. " +
	"Gatehouse puts a stored value back only where its placeholder was read, in the same field of the same object; "

// errNotRestorable is a write whose placeholders cannot be put back; its message says why.
var errNotRestorable = errors.New("placeholders cannot be restored")

// helmRecordName is the name of a Helm release record: sh.helm.release.v1.<release>.v<revision>.
var helmRecordName = regexp.MustCompile(`^sh\.helm\.release\.v1\.(.+)\.v([0-9]+)$`)

// carriesPlaceholder reports whether a write's body carries a placeholder: in plain sight, or
// inside an encoded Helm release, looked for in the body as JSON (converted from YAML or
// protobuf). A body that may hold a release but cannot be read is taken to carry one.
func carriesPlaceholder(contentType string, body []byte) bool {
	if masking.ContainsPlaceholder(body) {
		return true
	}
	if !bytes.Contains(body, []byte("H4sI")) && !bytes.Contains(body, []byte("SDRzSU")) {
		return false
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	doc, _, err := writtenJSON(mt, contentType, body)
	if err != nil {
		return true
	}
	return masking.HasPlaceholder(doc)
}

// restoreBody returns the body of a write that carries placeholders with the stored values put
// back, and its content type.
func (p *Proxy) restoreBody(r *http.Request, st *requestState, body []byte) ([]byte, string, error) {
	info := st.info
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if !info.IsResourceRequest || (info.Verb != "create" && info.Verb != "update" && info.Verb != "patch") {
		return nil, "", fmt.Errorf("%w: not a write of an object", errNotRestorable)
	}
	doc, outType, err := writtenJSON(mt, ct, body)
	if err != nil {
		return nil, "", err
	}
	path := r.URL.Path
	if info.Verb == "create" {
		if info.Subresource != "" {
			return nil, "", fmt.Errorf("%w: a create of a subresource", errNotRestorable)
		}
		name := objectName(doc)
		if name == "" {
			return nil, "", fmt.Errorf("%w: the new object has no name", errNotRestorable)
		}
		path = strings.TrimSuffix(path, "/") + "/" + url.PathEscape(name)
	}
	stored, code, err := p.readAsClient(r.Context(), st, path, nil)
	switch {
	case err != nil:
		return nil, "", err
	case code == http.StatusNotFound && info.Verb == "create":
		return p.restoreHelmRecord(r.Context(), st, r.URL.Path, doc, outType)
	case code == http.StatusNotFound:
		return nil, "", fmt.Errorf("%w: the object does not exist", errNotRestorable)
	case code != http.StatusOK:
		return nil, "", fmt.Errorf("%w: reading the stored object as the client was answered %d", errNotRestorable, code)
	}

	if info.Verb != "patch" || mt == string(types.ApplyYAMLPatchType) {
		// An object, or the object a server-side apply wants: restored as it is.
		res, err := p.opts.Masker.Restore(doc, stored, st.target)
		if err != nil {
			return nil, "", err
		}
		return res.Object, outType, nil
	}
	masked, _, err := p.opts.Masker.JSON(nil, stored, st.target)
	if err != nil {
		return nil, "", err
	}
	patched, err := applyPatch(types.PatchType(mt), masked, doc, stored)
	if err != nil {
		return nil, "", fmt.Errorf("%w: applying the patch: %w", errNotRestorable, err)
	}
	res, err := p.opts.Masker.Restore(patched, stored, st.target)
	if err != nil {
		return nil, "", err
	}
	out, err := res.Replace(doc)
	if err != nil {
		return nil, "", err
	}
	return out, outType, nil
}

// restoreHelmRecord restores a new revision of a Helm release record from the release's other
// records: an upgrade that reuses the values copies them from the last revision, a rollback
// from the revision it returns to.
func (p *Proxy) restoreHelmRecord(ctx context.Context, st *requestState, collection string, doc []byte, outType string) ([]byte, string, error) {
	info := st.info
	var obj struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(doc, &obj)
	m := helmRecordName.FindStringSubmatch(obj.Metadata.Name)
	if info.APIGroup != "" || (info.Resource != "secrets" && info.Resource != "configmaps") || m == nil ||
		obj.Metadata.Labels["owner"] != "helm" || obj.Metadata.Labels["name"] != m[1] {
		return nil, "", fmt.Errorf("%w: the object does not exist yet", errNotRestorable)
	}
	selector := "owner=helm,name=" + m[1]
	list, code, err := p.readAsClient(ctx, st, strings.TrimSuffix(collection, "/"), url.Values{"labelSelector": {selector}})
	if err != nil {
		return nil, "", err
	}
	if code != http.StatusOK {
		return nil, "", fmt.Errorf("%w: listing the release's records as the client was answered %d", errNotRestorable, code)
	}
	var items struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, "", fmt.Errorf("%w: the release's records: %w", errNotRestorable, err)
	}
	// The newest revision first: an upgrade copies the last one.
	version := func(o map[string]any) int {
		md, _ := o["metadata"].(map[string]any)
		labels, _ := md["labels"].(map[string]any)
		v, _ := labels["version"].(string)
		n, _ := strconv.Atoi(v)
		return n
	}
	slices.SortFunc(items.Items, func(a, b map[string]any) int { return version(b) - version(a) })
	var firstErr error
	for _, item := range items.Items {
		stored, err := json.Marshal(item)
		if err != nil {
			continue
		}
		res, err := p.opts.Masker.Restore(doc, stored, st.target)
		if err == nil {
			return res.Object, outType, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%w: the release has no other records", errNotRestorable)
	}
	return nil, "", firstErr
}

// writtenJSON returns a write's body as JSON, and the content type to forward the restored
// body with.
func writtenJSON(mt, ct string, body []byte) ([]byte, string, error) {
	switch mt {
	case "", "application/json", string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType):
		return body, ct, nil
	case "application/yaml":
		out, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, "", fmt.Errorf("%w: the body is not YAML", errNotRestorable)
		}
		return out, "application/json", nil
	case string(types.ApplyYAMLPatchType):
		out, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, "", fmt.Errorf("%w: the body is not YAML", errNotRestorable)
		}
		// JSON is YAML: the apply patch keeps its type.
		return out, ct, nil
	case runtime.ContentTypeProtobuf:
		out, unknown := objectJSON(ct, body)
		if unknown || out == nil {
			return nil, "", fmt.Errorf("%w: a protobuf body of a type Gatehouse does not know", errNotRestorable)
		}
		return out, "application/json", nil
	}
	return nil, "", fmt.Errorf("%w: a %s body", errNotRestorable, mt)
}

// applyPatch applies a patch to the masked stored object as kube-apiserver applies it to the
// stored one. stored gives the object's type, which a strategic merge patch needs.
func applyPatch(pt types.PatchType, masked, patch, stored []byte) ([]byte, error) {
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, err
		}
		return p.Apply(masked)
	case types.MergePatchType:
		return jsonpatch.MergePatch(masked, patch)
	case types.StrategicMergePatchType:
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(stored, &tm); err != nil {
			return nil, err
		}
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil {
			return nil, err
		}
		obj, err := clientgoscheme.Scheme.New(gv.WithKind(tm.Kind))
		if err != nil {
			return nil, fmt.Errorf("a strategic merge patch of a %s: %w", tm.Kind, err)
		}
		return strategicpatch.StrategicMergePatch(masked, patch, obj)
	}
	return nil, fmt.Errorf("patch type %q", pt)
}

// objectName returns metadata.name of a JSON object.
func objectName(doc []byte) string {
	var o struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(doc, &o)
	return o.Metadata.Name
}

// maxStoredBytes bounds a stored object (or list) read to restore a write's placeholders.
const maxStoredBytes = 64 << 20

// readAsClient reads path (an object, or a list with query) from kube-apiserver as the client:
// with the client's impersonation, so RBAC decides, and an Audit-ID of its own, recorded in the
// trail as a read of the client's session. It returns the body and the status code.
func (p *Proxy) readAsClient(ctx context.Context, st *requestState, path string, query url.Values) ([]byte, int, error) {
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	auditID := trail.NewID()
	p.setIdentityHeaders(req.Header, st)
	setAttempt(req.Header, auditID, "")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", restoreUserAgent)
	start := time.Now()
	resp, err := p.upgradeRT.RoundTrip(req)
	if err != nil {
		p.recordRead(ctx, st, auditID, path, query, 0, start, "upstream unavailable")
		return nil, 0, fmt.Errorf("reading the stored object: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStoredBytes+1))
	if err == nil && len(body) > maxStoredBytes {
		err = errors.New("the stored object is too large")
	}
	errReason := ""
	if err != nil {
		errReason = "reading the stored object"
	}
	p.recordRead(ctx, st, auditID, path, query, resp.StatusCode, start, errReason)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the stored object: %w", err)
	}
	return body, resp.StatusCode, nil
}

// restoreUserAgent names the proxy's own reads in kube-apiserver's audit log.
const restoreUserAgent = "gatehouse-proxy/restore"

// recordRead records a read the proxy made as the client in the client's session.
func (p *Proxy) recordRead(ctx context.Context, st *requestState, auditID, path string, query url.Values, code int, start time.Time, errReason string) {
	op := st.attrs.TrailOperation()
	op.Verb, op.Name = "get", ""
	if query.Get("labelSelector") != "" {
		op.Verb = "list"
	} else if i := strings.LastIndexByte(path, '/'); i >= 0 {
		name := path[i+1:]
		if op.Subresource != "" {
			// .../<name>/<subresource>
			name = path[strings.LastIndexByte(path[:i], '/')+1 : i]
		}
		op.Name, _ = url.PathUnescape(name)
	}
	rec := &trail.Request{
		Meta:      trail.Meta{ID: auditID, Time: start, Source: p.opts.Source},
		AuditID:   auditID,
		SessionID: st.session,
		Client:    restoreUserAgent,
		Operation: op,
		Code:      code,
		Latency:   time.Since(start),
		Duration:  time.Since(start),
		Error:     errReason,
	}
	rec.Identity = st.id.Identity
	if err := p.opts.Recorder.Publish(context.WithoutCancel(ctx), rec); err != nil {
		p.metrics.unrecorded.Inc()
		p.log.Error("trail record not written", "auditID", auditID, "err", err)
	}
}
