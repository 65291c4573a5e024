// Package baseline is the least an admission webhook can do, to measure
// guardchain against: decode the AdmissionReview and the pod with
// encoding/json and answer allowed, without a patch.
package baseline

import (
	"encoding/json"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// Handler is the baseline as an http.Handler.
type Handler struct{}

// ServeHTTP decodes the review and its pod, and answers allowed; a body it
// cannot read is a 400.
func (Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 7<<20))
	if err != nil {
		http.Error(w, "reading the review: "+err.Error(), http.StatusBadRequest)
		return
	}
	var rev admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &rev); err != nil {
		http.Error(w, "decoding the review: "+err.Error(), http.StatusBadRequest)
		return
	}
	if rev.Request == nil {
		http.Error(w, "the review carries no request", http.StatusBadRequest)
		return
	}
	var pod corev1.Pod
	if err := json.Unmarshal(rev.Request.Object.Raw, &pod); err != nil {
		http.Error(w, "decoding the pod: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: rev.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: rev.Request.UID, Allowed: true}}
	_ = json.NewEncoder(w).Encode(out)
}
