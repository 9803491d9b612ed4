package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apiserver/pkg/endpoints/request"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// PolicyEvaluator evaluates access policies. *policy.Engine implements it.
type PolicyEvaluator interface {
	Evaluate(ctx context.Context, a policy.Attributes) (policy.Decision, error)
}

var _ PolicyEvaluator = (*policy.Engine)(nil)

// maxBody bounds a request body the proxy reads whole (for the policy, the placeholder check and
// a re-send after approval): kube-apiserver's own limit.
const maxBody = 3 << 20

// errRefused is returned by a step that answered the client itself.
var errRefused = errors.New("refused")

// attributesOf describes a request for the policy engine and the trail from what its path says;
// applyPolicy adds the identity and what the body says.
func attributesOf(info *request.RequestInfo) policy.Attributes {
	return policy.Attributes{
		Verb: info.Verb, Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource,
		Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name, ViaGateway: true,
	}
}

// applyPolicy evaluates the policies for a resource request, once. Reads and what a deny rule
// refuses are answered here; what a rule holds for approval is forwarded, because admission, which
// sees the final object, decides it and creates the approval request; the proxy refuses it only
// when admission cannot see it. A rule that judges an object the proxy cannot know (a patch, an
// apply, a CBOR body) decides nothing here either: admission decides. An evaluation that fails is
// a refusal with the reason. It answers the client itself when it refuses, and returns errRefused
// then.
func (p *Proxy) applyPolicy(r *http.Request, st *requestState) error {
	a := &st.attrs
	a.User = p.userInfo(st)
	a.DryRun = isDryRun(r, st.body)
	op := a.Op()
	switch {
	case st.info.Verb == "patch":
		a.ObjectUnknown = true
	case op == "CREATE" || op == "UPDATE":
		if a.Object, a.ObjectUnknown = objectJSON(r.Header.Get("Content-Type"), st.body); a.Object != nil && a.Name == "" {
			// A create names its object in the body, as admission sees it.
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			if json.Unmarshal(a.Object, &meta) == nil {
				a.Name = meta.Metadata.Name
			}
		}
	}
	// The proxy never has the stored object.
	a.OldObjectUnknown = op == "UPDATE" || op == "DELETE"

	d, err := p.opts.Policy.Evaluate(r.Context(), *a)
	if err != nil {
		p.log.Error("policy evaluation failed", "auditID", st.auditID, "request", a.String(), "err", err)
		st.errReason = "policy evaluation failed: " + policy.ErrorReason(err)
		code, reason := http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
		if errors.Is(err, policy.ErrBadRequest) {
			code, reason = http.StatusBadRequest, metav1.StatusReasonBadRequest
		}
		p.refuse(st, code, reason, "Gatehouse could not evaluate its access policies for "+a.String()+" ("+policy.ErrorReason(err)+"), so it refuses the request. Retry in a moment; if this persists, tell a Gatehouse administrator.")
		return errRefused
	}
	p.log.Debug("policy decision", "auditID", st.auditID, "request", a.String(), "action", d.Action, "unknown", d.Unknown, "policy", d.Policy, "rule", d.Rule)
	if d.Unknown {
		// Admission decides, with the final object; a fail-closed webhook is called for it.
		if !a.DryRun && p.opts.AdmissionSees(*a) {
			st.hold = holdUndecided
		}
		return nil
	}
	if d.Rule != "" {
		st.decision = &trail.Policy{Policy: d.Policy, Rule: d.Rule, Action: string(d.Action), Message: d.Message}
	}
	switch d.Action {
	case policy.ActionDeny:
		st.errReason = "denied by policy " + d.Policy + "/" + d.Rule
		p.refuse(st, http.StatusForbidden, metav1.StatusReasonForbidden, d.Message)
		return errRefused
	case policy.ActionRequireApproval:
		switch {
		case a.DryRun:
			// A dry run changes nothing: it is never held. Admission, when it sees the call,
			// gives the same warning, which clients then show once.
			if w, err := utilnet.NewWarningHeader(299, "-", d.DryRunWarning()); err == nil {
				st.warnings = append(st.warnings, w)
			}
		case !p.opts.AdmissionSees(*a):
			st.errReason = "approval required where admission cannot hold"
			p.refuse(st, http.StatusForbidden, metav1.StatusReasonForbidden, d.Message+" Gatehouse's admission webhook does not see this operation (reads, "+
				"webhook configurations and admission policies, subresources it is not configured for, and the namespaces it skips), "+
				"so it cannot be held for approval and is refused. Ask a cluster administrator to perform it.")
			return errRefused
		default:
			// Held at admission; the mark selects a fail-closed webhook for it.
			st.hold = d.Policy + "/" + d.Rule
		}
	}
	return nil
}

// isDryRun reports a dry-run request: dryRun in the query (create, update, patch) or in a
// DELETE's DeleteOptions body.
func isDryRun(r *http.Request, body []byte) bool {
	if len(r.URL.Query()["dryRun"]) > 0 {
		return true
	}
	if r.Method == http.MethodDelete && len(body) > 0 {
		var opts metav1.DeleteOptions
		return json.Unmarshal(body, &opts) == nil && len(opts.DryRun) > 0
	}
	return false
}

// msgRelocation refuses a JSON patch that copies or moves values, or cannot be read.
const msgRelocation = "Gatehouse refuses JSON patches with copy or move operations, and JSON patches it cannot read: " +
	"copy and move put a stored value where the patch does not show it, which can be where masking does not look " +
	"for it (a Secret's data copied into an annotation, even in a dry run). Write the value with add or replace, " +
	"or use a merge patch."

// relocatesValues reports whether a PATCH body is a JSON patch with a copy or move operation,
// or one Gatehouse cannot read. The patch type is told as kube-apiserver tells it: the content
// type before its first ';', here in any case. Its operations are read as kube-apiserver's
// JSON patch reads them: the member named exactly "op" of each, the last when repeated.
func relocatesValues(contentType string, body []byte) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), string(types.JSONPatchType)) {
		return false
	}
	var ops []map[string]json.RawMessage
	if err := json.Unmarshal(body, &ops); err != nil {
		return true
	}
	for _, o := range ops {
		raw, ok := o["op"]
		if !ok {
			continue // kube-apiserver refuses it
		}
		var op string
		if err := json.Unmarshal(raw, &op); err != nil {
			return true
		}
		if strings.EqualFold(op, "copy") || strings.EqualFold(op, "move") {
			return true
		}
	}
	return false
}

// userInfo is the identity as admission will see it.
func (p *Proxy) userInfo(st *requestState) authenticationv1.UserInfo {
	extra := map[string]authenticationv1.ExtraValue{}
	for k, v := range st.id.Extra {
		extra[k] = v
	}
	for k, v := range p.gatehouseExtras(st) {
		extra[k] = authenticationv1.ExtraValue{v}
	}
	return authenticationv1.UserInfo{
		Username: st.id.User,
		UID:      st.id.UID,
		Groups:   append(append([]string{}, st.id.Groups...), "system:authenticated"),
		Extra:    extra,
	}
}

// hasBody reports a request whose body the proxy reads whole: every write, and a DELETE, whose
// DeleteOptions may say it is a dry run.
func hasBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return r.Body != nil && r.Body != http.NoBody
	}
	return false
}

// readBody reads the request body whole (it is forwarded as read, and again if the call is
// re-sent after approval) and refuses a write that carries a masked placeholder: an object read
// through Gatehouse and written back would store placeholders in place of secrets.
func (p *Proxy) readBody(r *http.Request, st *requestState) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	_ = r.Body.Close()
	if err != nil {
		st.errReason = "reading request body"
		p.refuse(st, http.StatusBadRequest, metav1.StatusReasonBadRequest, "Gatehouse could not read the request body.")
		return errRefused
	}
	if len(body) > maxBody {
		st.errReason = "request body too large"
		p.refuse(st, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, "The request body is larger than 3 MiB.")
		return errRefused
	}
	if r.Method == http.MethodPatch && relocatesValues(r.Header.Get("Content-Type"), body) {
		st.errReason = "JSON patch with copy or move, or unreadable"
		p.refuse(st, http.StatusForbidden, metav1.StatusReasonForbidden, msgRelocation)
		return errRefused
	}
	if r.Method != http.MethodDelete && carriesPlaceholder(r.Header.Get("Content-Type"), body) {
		restored, contentType, err := p.restoreBody(r, st, body)
		if err != nil {
			st.errReason = "masked placeholder in request body"
			p.log.Info("refusing a write whose placeholders cannot be restored", "auditID", st.auditID, "reason", restoreReason(err))
			p.refuse(st, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, msgPlaceholder+restoreReason(err)+". Write the real values, or leave those fields out.")
			return errRefused
		}
		body = restored
		r.Header.Set("Content-Type", contentType)
		r.ContentLength = int64(len(body))
		st.restored = true
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	st.body = body
	return nil
}

// restoreReason says why a write's placeholders cannot be restored, in words for the client.
func restoreReason(err error) string {
	switch {
	case errors.Is(err, masking.ErrPlaceholderMoved):
		_, where, _ := strings.Cut(err.Error(), ": at ")
		return "this one is not (at " + where + ")"
	case errors.Is(err, errNotRestorable):
		_, why, _ := strings.Cut(err.Error(), ": ")
		return "it cannot here: " + why
	}
	return "it could not check this one"
}

// objectJSON returns a create's or update's body as JSON for the policy: as it is when it is
// JSON, converted when it is YAML, decoded when it is a built-in type in protobuf (kubectl and
// client-go send those). unknown is true when the body is none of these (CBOR, a type the proxy
// does not know): the policy then leaves rules that judge the object to admission. The body
// forwarded is always the client's own.
func objectJSON(contentType string, body []byte) (object []byte, unknown bool) {
	if len(body) == 0 {
		return nil, false
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "", "application/json":
		if json.Valid(body) {
			return body, false
		}
	case "application/yaml":
		if out, err := yaml.YAMLToJSON(body); err == nil {
			return out, false
		}
	case runtime.ContentTypeProtobuf:
		obj, gvk, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			return nil, true
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		if out, err := json.Marshal(obj); err == nil {
			return out, false
		}
	}
	return nil, true
}
