package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// wellFormed hands a handler only the admission requests it can decide. controller-runtime's
// admission.Webhook decodes the review (v1 or v1beta1), refuses bodies over 7 MiB, a content type
// other than application/json and undecodable bodies, recovers panics and completes the
// response; what it decodes may still lack what every real review has, which this refuses with a
// clear error (and a log line) instead of deciding an empty request.
type wellFormed struct {
	h   admission.Handler
	log *slog.Logger
}

func (w wellFormed) Handle(ctx context.Context, req admission.Request) admission.Response {
	if msg := malformed(&req.AdmissionRequest); msg != "" {
		w.log.Warn("malformed admission request refused", "uid", req.UID, "reason", msg)
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("malformed AdmissionReview: %s", msg))
	}
	return w.h.Handle(ctx, req)
}

// malformed returns why a decoded request cannot be decided, or "".
func malformed(r *admissionv1.AdmissionRequest) string {
	switch {
	case r.UID == "":
		return "request.uid is empty (is it an AdmissionReview with a request?)"
	case r.Resource.Resource == "":
		return "request.resource is empty"
	}
	switch r.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
	default:
		return fmt.Sprintf("request.operation %q is not CREATE, UPDATE, DELETE or CONNECT", r.Operation)
	}
	return ""
}
