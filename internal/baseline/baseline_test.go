package baseline

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

func TestBaselineAllowsWhatItCanReadAndRefusesTheRest(t *testing.T) {
	review, err := os.ReadFile("../../deploy/examples/openshell-sandbox-review.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body string
		code       int
	}{
		{"sandbox review", string(review), http.StatusOK},
		{"malformed", `{"request":`, http.StatusBadRequest},
		{"no request", `{"kind":"AdmissionReview"}`, http.StatusBadRequest},
		{"pod not an object", `{"request":{"uid":"1","object":[1]}}`, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler{}.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body)))
			if rec.Code != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.code != http.StatusOK {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if out.Response == nil || !out.Response.Allowed || out.Response.UID != "0f6bd7a4-1c5e-4b1e-8f0e-1a2b3c4d5e6f" ||
				len(out.Response.Patch) != 0 || out.APIVersion != "admission.k8s.io/v1" {
				t.Errorf("answer %s, want allowed, the request's UID, no patch", rec.Body)
			}
		})
	}
}
