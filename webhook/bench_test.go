package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// allowAll is the baseline: controller-runtime decodes the AdmissionReview and
// answers "allowed". BenchmarkHandlerSandbox / BenchmarkBaselineSandbox is the
// cost guardchain adds.
type allowAll struct{}

func (allowAll) Handle(context.Context, admission.Request) admission.Response {
	return admission.Allowed("")
}

func benchServe(b *testing.B, h admission.Handler) {
	body := reviewBody(&testing.T{}, nil)
	wh := &admission.Webhook{Handler: h}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mutate-pods", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		wh.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
	}
}

func BenchmarkBaselineSandbox(b *testing.B) { benchServe(b, allowAll{}) }

func BenchmarkHandlerSandbox(b *testing.B) {
	benchServe(b, &Handler{Config: Default(), Log: logr.Discard()})
}

func BenchmarkInjectSandbox(b *testing.B) {
	pod := readPod(b, "testdata/openshell-sandbox.yaml")
	cfg := Default()
	b.ReportAllocs()
	for b.Loop() {
		if r := Inject(pod, cfg); r.Outcome != OutcomeInjected {
			b.Fatal(r.Outcome)
		}
	}
}
