package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// Mutator is the mutating admission webhook. It owns the annotations in Gatehouse's namespace
// (identity.AnnotationPrefix) on every create and update it sees, subresources included:
//
//   - on a write through the gateway it sets identity.AnnotationSessionID to the request's
//     session ID and identity.AnnotationApprovalID to its approval ID, or removes a stale approval
//     ID when the change was not approved, so that `kubectl get -o yaml` shows where the object's
//     last change came from;
//   - on any write, through the gateway or direct, every other value a client gives a
//     gatehouse.dev/ annotation is undone: it keeps the value the stored object has, or is removed
//     when the stored object (or a new object) has none. A direct change therefore leaves the
//     stamps of the last gateway change as they are, and nobody can forge them.
//
// It never changes anything else.
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
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update || len(req.Object.Raw) == 0 {
		return admission.Allowed("")
	}
	var obj objectMeta
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		m.log.Warn("object is not JSON; its annotations are not checked", "uid", req.UID, "resource", req.Resource.Resource, "subresource", req.SubResource, "err", err)
		return admission.Errored(http.StatusBadRequest, err)
	}
	if obj.Metadata == nil {
		return admission.Allowed("")
	}
	// What the stored object has is what stays, unless the gateway stamps this change.
	want := map[string]string{}
	if req.Operation == admissionv1.Update {
		var old objectMeta
		if json.Unmarshal(req.OldObject.Raw, &old) == nil && old.Metadata != nil {
			maps.Copy(want, reserved(old.Metadata.Annotations))
		}
	}
	if ex := identity.FromExtra(req.UserInfo.Extra); ex.ViaGateway() {
		want[identity.AnnotationSessionID] = ex.SessionID
		delete(want, identity.AnnotationApprovalID)
		if ex.ApprovalID != "" {
			want[identity.AnnotationApprovalID] = ex.ApprovalID
		}
	}
	have := obj.Metadata.Annotations
	if have == nil {
		if len(want) == 0 {
			return admission.Allowed("")
		}
		return admission.Patched("", jsonpatch.NewOperation("add", "/metadata/annotations", want))
	}
	var patches []jsonpatch.JsonPatchOperation
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if old, ok := have[k]; !ok || old != want[k] {
			patches = append(patches, jsonpatch.NewOperation("add", "/metadata/annotations/"+escape(k), want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(reserved(have))) {
		if _, ok := want[k]; !ok {
			patches = append(patches, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escape(k), nil))
		}
	}
	if len(patches) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", patches...)
}

// reserved returns the annotations in Gatehouse's namespace.
func reserved(annotations map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range annotations {
		if strings.HasPrefix(k, identity.AnnotationPrefix) {
			out[k] = v
		}
	}
	return out
}

// escape makes a map key a JSON pointer token (RFC 6901).
func escape(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
