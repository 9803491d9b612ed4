package serving

import (
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FailureStatus returns a metav1.Status of a failure: the error shape every Kubernetes client
// reads (kubectl prints its message). details may be nil.
func FailureStatus(code int, reason metav1.StatusReason, message string, details *metav1.StatusDetails) *metav1.Status {
	return &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     int32(code),
		Reason:   reason,
		Message:  message,
		Details:  details,
	}
}

// EncodeStatus returns st as JSON.
func EncodeStatus(st *metav1.Status) []byte {
	b, err := json.Marshal(st)
	if err != nil {
		// A Status holds only strings and numbers.
		panic(err)
	}
	return append(b, '\n')
}

// WriteStatus answers with st as JSON, with its code as the HTTP status. It is the one way
// Gatehouse's HTTP endpoints answer a failure.
func WriteStatus(w http.ResponseWriter, st *metav1.Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(EncodeStatus(st))
}
