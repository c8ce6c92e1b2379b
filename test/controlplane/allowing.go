package controlplane

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	admissionv1 "k8s.io/api/admission/v1"
)

// AllowingWebhook is an http.Handler that allows every AdmissionReview v1 it is sent and
// counts them: a webhook for tests that only need to see the API server call one.
type AllowingWebhook struct {
	calls atomic.Int32
}

// ServeHTTP answers a review with allowed; anything else is 400.
func (h *AllowingWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	h.calls.Add(1)
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	_ = json.NewEncoder(w).Encode(&review)
}

// Calls is the number of reviews answered.
func (h *AllowingWebhook) Calls() int32 { return h.calls.Load() }
