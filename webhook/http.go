package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReviewBytes bounds a review's body: two objects of at most 3 MiB each plus the request,
// as controller-runtime reasons.
const maxReviewBytes = 7 << 20

// reviewHandler serves one admission handler over HTTP (see NewHandler).
type reviewHandler struct {
	wh  *admission.Webhook
	log *slog.Logger
}

var reviewGVK = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

func (h *reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, "an AdmissionReview must be POSTed")
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("AdmissionReview larger than %d bytes", maxReviewBytes))
			return
		}
		h.reject(w, r, http.StatusBadRequest, "reading the body failed: "+err.Error())
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		h.reject(w, r, http.StatusBadRequest, "the body is not an AdmissionReview: "+err.Error())
		return
	}
	if msg := invalid(&review); msg != "" {
		h.reject(w, r, http.StatusBadRequest, msg)
		return
	}
	resp := h.wh.Handle(r.Context(), admission.Request{AdmissionRequest: *review.Request})
	out := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	out.SetGroupVersionKind(reviewGVK)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		h.log.Warn("writing the AdmissionReview response failed", "uid", review.Request.UID, "err", err)
	}
}

// invalid returns why a decoded review cannot be decided, or "".
func invalid(r *admissionv1.AdmissionReview) string {
	switch {
	case r.APIVersion != reviewGVK.GroupVersion().String() || r.Kind != reviewGVK.Kind:
		return fmt.Sprintf("want apiVersion %s, kind %s; got %q, %q", reviewGVK.GroupVersion(), reviewGVK.Kind, r.APIVersion, r.Kind)
	case r.Request == nil:
		return "the AdmissionReview has no request"
	case r.Request.UID == "":
		return "request.uid is empty"
	case r.Request.Resource.Resource == "":
		return "request.resource is empty"
	}
	switch r.Request.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
	default:
		return fmt.Sprintf("request.operation %q is not CREATE, UPDATE, DELETE or CONNECT", r.Request.Operation)
	}
	return ""
}

func (h *reviewHandler) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.log.Warn("malformed admission request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "code", code, "reason", msg)
	http.Error(w, "malformed AdmissionReview: "+msg, code)
}
