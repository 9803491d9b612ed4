package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// Mutator is the mutating admission webhook: on an object created or updated through the
// gateway it sets the annotation identity.AnnotationSessionID to the request's session ID and
// identity.AnnotationApprovalID to its approval ID, or removes a stale approval ID when the
// change was not approved, so that `kubectl get -o yaml` shows where the object's last change
// came from. It never changes anything else, and leaves requests that did not come through the
// gateway, subresources, deletions and connections alone.
type Mutator struct {
	log *slog.Logger
}

var _ admission.Handler = (*Mutator)(nil)

// NewMutator returns a Mutator logging to log (default: discard).
func NewMutator(log *slog.Logger) *Mutator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mutator{log: log}
}

// objectMeta is the part of an object the mutator reads.
type objectMeta struct {
	Metadata *struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// Handle implements admission.Handler.
func (m *Mutator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	ex := identity.FromExtra(req.UserInfo.Extra)
	if !ex.ViaGateway() || req.SubResource != "" || len(req.Object.Raw) == 0 {
		return admission.Allowed("")
	}
	var obj objectMeta
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		m.log.Warn("object of a gateway request is not JSON; not annotated", "uid", req.UID, "resource", req.Resource.Resource, "err", err)
		return admission.Errored(http.StatusBadRequest, err)
	}
	if obj.Metadata == nil {
		return admission.Allowed("")
	}
	want := map[string]string{identity.AnnotationSessionID: ex.SessionID}
	if ex.ApprovalID != "" {
		want[identity.AnnotationApprovalID] = ex.ApprovalID
	}
	have := obj.Metadata.Annotations
	if have == nil {
		return admission.Patched("", jsonpatch.NewOperation("add", "/metadata/annotations", want))
	}
	var patches []jsonpatch.JsonPatchOperation
	for _, k := range []string{identity.AnnotationSessionID, identity.AnnotationApprovalID} {
		v, wanted := want[k]
		old, present := have[k]
		switch {
		case wanted && (!present || old != v):
			patches = append(patches, jsonpatch.NewOperation("add", "/metadata/annotations/"+escape(k), v))
		case !wanted && present:
			// The approval ID names the approval of the last change; this change had none.
			patches = append(patches, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escape(k), nil))
		}
	}
	if len(patches) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", patches...)
}

// escape makes a map key a JSON pointer token (RFC 6901).
func escape(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
