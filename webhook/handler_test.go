package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

func podJSON(t testing.TB, p *corev1.Pod) []byte {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func createRequest(raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "0f6bd7a4-1c5e-4b1e-8f0e-1a2b3c4d5e6f",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "openshell",
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func mustYAMLPod(t testing.TB, b []byte) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func applyJSONPatch(t testing.TB, raw, patch []byte) []byte {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding patch %s: %v", patch, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying patch %s: %v", patch, err)
	}
	return out
}

// applyResponse applies the answer's patch to raw, as the API server does.
func applyResponse(t testing.TB, raw []byte, resp admission.Response) *corev1.Pod {
	t.Helper()
	if err := resp.Complete(createRequest(raw)); err != nil {
		t.Fatal(err)
	}
	out := raw
	if len(resp.Patch) > 0 {
		out = applyJSONPatch(t, raw, resp.Patch)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// The handler's patch applied to the input must give exactly Inject's pod.
func TestHandlerPatchGivesInjectResult(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.name, func(t *testing.T) {
			cfg := testConfig(t, g)
			in := readPod(t, g.in)
			want := Inject(in, cfg)
			h := &Handler{Config: cfg, Log: logr.Discard()}
			raw := podJSON(t, in)
			resp := h.Handle(context.Background(), createRequest(raw))
			if want.Outcome == OutcomeDenied {
				if resp.Allowed || resp.Result.Message != want.Message() {
					t.Fatalf("allowed=%v message %q, want denial %q", resp.Allowed, resp.Result.Message, want.Message())
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			if diff := cmp.Diff(want.Warnings(), resp.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if want.Outcome != OutcomeInjected && len(resp.Patches) != 0 {
				t.Errorf("outcome %s but %d patch operations", want.Outcome, len(resp.Patches))
			}
			got := applyResponse(t, raw, resp)
			if diff := cmp.Diff(want.Pod, got); diff != "" {
				t.Errorf("patched pod differs from Inject's (-inject +patched):\n%s", diff)
			}
		})
	}
}

// Fields this build does not know pass through the patch untouched.
func TestHandlerKeepsUnknownFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"openshell"},
		"spec":{"futureField":{"x":1},"containers":[{"name":"agent","image":"node:22","futureContainerField":true}]}}`)
	h := &Handler{Config: Default(), Log: logr.Discard()}
	resp := h.Handle(context.Background(), createRequest(raw))
	if err := resp.Complete(createRequest(raw)); err != nil {
		t.Fatal(err)
	}
	out := applyJSONPatch(t, raw, resp.Patch)
	for _, s := range []string{`"futureField":{"x":1}`, `"futureContainerField":true`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("patched pod lost %s: %s", s, out)
		}
	}
}

// review sends one AdmissionReview body through controller-runtime's HTTP
// handler, as the API server would.
func review(t *testing.T, h *Handler, body []byte) (int, admissionv1.AdmissionReview) {
	t.Helper()
	wh := &admission.Webhook{Handler: h}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate-pods", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	wh.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %q: %v", rec.Body.String(), err)
		}
	}
	return rec.Code, out
}

func reviewBody(t *testing.T, mod func(*admissionv1.AdmissionRequest)) []byte {
	t.Helper()
	pod := readPod(t, "testdata/openshell-sandbox.yaml")
	r := createRequest(podJSON(t, pod)).AdmissionRequest
	if mod != nil {
		mod(&r)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &r,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerRawReviews(t *testing.T) {
	big := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "openshell",
		Annotations: map[string]string{"filler": strings.Repeat("x", 1<<20)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "node:22"}}}}
	tests := []struct {
		name        string
		body        func(t *testing.T) []byte
		wantHTTP    int
		wantCode    int32
		wantAllowed bool
		wantPatch   bool
		wantMsg     string
	}{
		{"malformed body", func(*testing.T) []byte { return []byte(`{"request":`) }, 200, 400, false, false, "unexpected end of JSON input"},
		{"no request", func(*testing.T) []byte {
			return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)
		}, 200, 400, false, false, "guardchain: the admission review carries no request"},
		{"wrong kind", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) {
				r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
				r.Resource = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
			})
		}, 200, 200, true, false, ""},
		{"delete", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Delete })
		}, 200, 200, true, false, ""},
		{"update", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update })
		}, 200, 200, true, false, ""},
		{"subresource", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.SubResource = "ephemeralcontainers" })
		}, 200, 200, true, false, ""},
		{"missing object", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Object.Raw = nil })
		}, 200, 400, false, false, "guardchain: the admission request carries no pod"},
		{"object not a pod", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`{"spec":{"containers":"agent"}}`) })
		}, 200, 400, false, false, "guardchain: decoding the pod: json: cannot unmarshal string"},
		{"object of 1 MiB", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Object.Raw = podJSON(t, big) })
		}, 200, 200, true, true, ""},
		{"dry run", func(t *testing.T) []byte {
			return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.DryRun = ptr.To(true) })
		}, 200, 200, true, true, ""},
		{"sandbox", func(t *testing.T) []byte { return reviewBody(t, nil) }, 200, 200, true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			h := &Handler{Config: Default(), Log: logr.Discard(), Metrics: m}
			code, out := review(t, h, tt.body(t))
			if code != tt.wantHTTP {
				t.Fatalf("HTTP %d, want %d", code, tt.wantHTTP)
			}
			resp := out.Response
			if resp == nil {
				t.Fatal("no response in the review")
			}
			if resp.Allowed != tt.wantAllowed || (resp.Result != nil && resp.Result.Code != tt.wantCode) {
				t.Errorf("allowed=%v result=%+v, want allowed=%v code %d", resp.Allowed, resp.Result, tt.wantAllowed, tt.wantCode)
			}
			if (len(resp.Patch) > 0) != tt.wantPatch {
				t.Errorf("patch %q, want patch=%v", resp.Patch, tt.wantPatch)
			}
			if tt.wantMsg != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tt.wantMsg)) {
				t.Errorf("message %+v lacks %q", resp.Result, tt.wantMsg)
			}
			if tt.wantPatch {
				if n := testutil.ToFloat64(m.Admissions.WithLabelValues("injected", "")); n != 1 {
					t.Errorf("guardchain_admissions_total{outcome=injected} = %v, want 1", n)
				}
			}
		})
	}
}

func TestHandlerDenialCarriesReasonInWarningLogAndMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := NewMetrics(reg)
	var logs []string
	log := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	h := &Handler{Config: Default(), Log: log, Metrics: m}
	pod := readPod(t, "testdata/tmp-hostpath-deny.yaml")
	resp := h.Handle(context.Background(), createRequest(podJSON(t, pod)))
	if resp.Allowed || resp.Result.Code != http.StatusForbidden {
		t.Fatalf("want a 403 denial, got %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.HasSuffix(resp.Warnings[0], "[tmp-volume-not-emptydir]") {
		t.Errorf("warnings %q", resp.Warnings)
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues("denied", "tmp-volume-not-emptydir")); n != 1 {
		t.Errorf("denied counter = %v", n)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"note"="tmp-volume-not-emptydir"`) || !strings.Contains(logs[0], "which is a hostPath") {
		t.Errorf("log lines %q, want one naming the reason", logs)
	}
}
