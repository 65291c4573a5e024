package podreview

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// sandboxReview is the review kube-apiserver sends for the example sandbox
// pod (test/integration checks that it still is).
const sandboxReview = "../deploy/examples/openshell-sandbox-review.json"

// labeller is a handler of another kind than guardchain's: it labels each
// pod create with its name's length, and panics for a pod named "panic".
type labeller struct{}

func (labeller) Handle(ctx context.Context, req admission.Request) admission.Response {
	var pod *corev1.Pod
	if len(req.Object.Raw) > 0 {
		pod = &corev1.Pod{}
		if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	return labeller{}.HandlePod(ctx, &req.AdmissionRequest, pod)
}

func (labeller) HandlePod(_ context.Context, req *admissionv1.AdmissionRequest, pod *corev1.Pod) admission.Response {
	if pod == nil {
		return admission.Allowed("no pod")
	}
	if pod.Name == "panic" {
		panic("a pod named panic")
	}
	return admission.Patched("labelled", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels/name-length",
		Value: strconv.Itoa(len(pod.Name))})
}

// plain is an admission.Handler only.
type plain struct{}

func (plain) Handle(ctx context.Context, req admission.Request) admission.Response {
	return labeller{}.Handle(ctx, req)
}

type answer struct {
	code int
	body string
}

func serve(h http.Handler, contentType string, body []byte) answer {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.ServeHTTP(rec, req)
	if n := rec.Result().Header.Get("Content-Length"); n != "" && n != strconv.Itoa(rec.Body.Len()) {
		return answer{-1, "Content-Length " + n + " for " + strconv.Itoa(rec.Body.Len()) + " bytes"}
	}
	return answer{rec.Code, rec.Body.String()}
}

// Any body gets from Webhook the answer admission.Webhook gives for the same
// handler, read in one pass where it is a v1 review of a pod.
func TestWebhookAnswersAsAdmissionWebhook(t *testing.T) {
	review, err := os.ReadFile(sandboxReview)
	if err != nil {
		t.Fatal(err)
	}
	renamed := func(name string) []byte {
		return bytes.Replace(review, []byte(`"name":"my-assistant","namespace"`), []byte(`"name":"`+name+`","namespace"`), 1)
	}
	for _, tt := range []struct {
		name, contentType string
		body              []byte
		onePass           bool
	}{
		{"the API server's review", "application/json", review, true},
		{"a panicking handler", "application/json", renamed("panic"), true},
		{"no object", "application/json", bytes.Replace(review, []byte(`"object":{`), []byte(`"object":null,"x":{`), 1), false},
		{"a v1beta1 review", "application/json", bytes.Replace(review, []byte(`admission.k8s.io/v1"`), []byte(`admission.k8s.io/v1beta1"`), 1), false},
		{"an unknown field", "application/json", bytes.Replace(review, []byte(`"request":{`), []byte(`"request":{"x":1,`), 1), false},
		{"malformed", "application/json", review[:len(review)/2], false},
		{"text/plain", "text/plain", review, false},
		{"empty", "application/json", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, ok := Decode(tt.body); tt.contentType == "application/json" && ok != tt.onePass {
				t.Errorf("read in one pass: %v, want %v", ok, tt.onePass)
			}
			var fallbacks int
			got := serve(Webhook{Handler: labeller{}, Log: logr.Discard(), Fallbacks: (*counter)(&fallbacks)}, tt.contentType, tt.body)
			want := serve(&admission.Webhook{Handler: labeller{}, RecoverPanic: ptr.To(true)}, tt.contentType, tt.body)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(answer{})); diff != "" {
				t.Errorf("Webhook answers differently from admission.Webhook (-admission.Webhook +Webhook):\n%s", diff)
			}
			if (fallbacks == 0) != tt.onePass {
				t.Errorf("%d fallbacks, read in one pass %v", fallbacks, tt.onePass)
			}
		})
	}
}

// A handler that takes no decoded pod is served by admission.Webhook.
func TestWebhookServesAPlainHandlerThroughAdmissionWebhook(t *testing.T) {
	review, err := os.ReadFile(sandboxReview)
	if err != nil {
		t.Fatal(err)
	}
	var fallbacks int
	got := serve(Webhook{Handler: plain{}, Log: logr.Discard(), Fallbacks: (*counter)(&fallbacks)}, "application/json", review)
	if fallbacks != 1 || got.code != http.StatusOK || !strings.Contains(got.body, `"patch":"`) {
		t.Errorf("%d fallbacks, answer %+v", fallbacks, got)
	}
}

type counter int

func (c *counter) Inc() { *c++ }

// FuzzDecodeAgrees: a body the one-pass reader takes, sigs.k8s.io/json's
// strict decode (case-sensitive, no unknown or duplicate names) takes too,
// to the same values. A body only the strict decode takes is left to
// admission.Webhook, which answers it as ever.
func FuzzDecodeAgrees(f *testing.F) {
	for _, b := range corpusReviews(f) {
		f.Add(b)
	}
	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`
	for _, req := range []string{
		`{"uid":"1","object":{"metadata":{"name":"x","generation":1e2}}}`,
		`{"uid":"1","object":{"metadata":{"Name":"x"}}}`,
		`{"uid":"1","object":{"metadata":{"labels":{"a":"1","a":"2"}}}}`,
		`{"uid":"1","object":{"metadata":{"name":"\ud800"}}}`,
		`{"uid":"1","object":{"metadata":{"name":"a"}},"object":{}}`,
		`{"uid":"1","oldObject":{"a": 1 },"options":{"b":[1, 2]},"object":{"metadata":{"managedFields":[{"fieldsV1":{"f:a": {}}}]}}}`,
		`{"uid":"1","dryRun":null,"object":{"spec":{"securityContext":{"runAsUser":null},"overhead":{"cpu":"1"}}}}`,
		`{"uid":"1","userInfo":{"extra":{"a":["b"]}},"object":{"kind":"Pod","spec":{"containers":[{"name":"a","livenessProbe":{"httpGet":{"port":"http"}}}]}}}`,
		`null`,
	} {
		f.Add([]byte(head + req + `}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeReview(body)
		if !ok {
			return
		}
		var req podRequest
		rev := podReview{Request: &req}
		strictErrs, err := kjson.UnmarshalStrict(body, &rev)
		if err != nil || len(strictErrs) > 0 {
			t.Fatalf("read in one pass, but the strict decode refuses it: %v %v", err, strictErrs)
		}
		if diff := cmp.Diff(&req, got); diff != "" {
			t.Fatalf("read differently (-strict +one pass):\n%s", diff)
		}
	})
}

// The reviews of the corpus are read in one pass.
func TestDecodeReadsTheCorpus(t *testing.T) {
	for p, b := range corpusReviews(t) {
		if _, pod, ok := Decode(b); !ok || pod == nil || len(pod.Spec.Containers) == 0 {
			t.Errorf("%s: read in one pass %v, pod %v", p, ok, pod != nil)
		}
	}
}

// The answer is written field by field: a field a Kubernetes release adds
// to AdmissionResponse would be left out, so any change to its fields
// fails here until encodeAnswer writes it.
func TestAnswerFieldsAreKnown(t *testing.T) {
	var got []string
	typ := reflect.TypeFor[admissionv1.AdmissionResponse]()
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Name+" "+typ.Field(i).Tag.Get("json"))
	}
	want := []string{"UID uid", "Allowed allowed", "Result status,omitempty", "Patch patch,omitempty",
		"PatchType patchType,omitempty", "AuditAnnotations auditAnnotations,omitempty", "Warnings warnings,omitempty"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AdmissionResponse's fields changed (-encodeAnswer writes +the type has):\n%s", diff)
	}
}

// Every answer's shape is written as encoding/json writes it.
func TestEncodeAnswerIsEncodingJSON(t *testing.T) {
	pt := admissionv1.PatchTypeJSONPatch
	for _, r := range []admissionv1.AdmissionResponse{
		{},
		{UID: "a<b>&\u2028", Allowed: true},
		{UID: "1", Result: &metav1.Status{Code: 403, Message: "denied: <x> & \"y\"", Reason: metav1.StatusReasonForbidden}},
		{UID: "1", Allowed: true, Result: &metav1.Status{Code: 200}, Patch: []byte(`[{"op":"add","path":"/a","value":"<&>"}]`), PatchType: &pt},
		{UID: "1", Allowed: true, Patch: []byte{}, AuditAnnotations: map[string]string{"b": "2", "a": "<1>"}, Warnings: []string{"w1", "w<2>"}},
		{UID: "1", Allowed: true, AuditAnnotations: map[string]string{}, Warnings: []string{}},
	} {
		var got, want bytes.Buffer
		if err := encodeAnswer(&got, &r); err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(&want).Encode(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: reviewKind}, Response: &r}); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("encodeAnswer\n%s\nencoding/json\n%s", got.String(), want.String())
		}
	}
}

// rawPatcher patches every pod with one value, as a handler gives it.
type rawPatcher struct{ value any }

func (p rawPatcher) Handle(ctx context.Context, req admission.Request) admission.Response {
	return p.HandlePod(ctx, &req.AdmissionRequest, nil)
}

func (p rawPatcher) HandlePod(context.Context, *admissionv1.AdmissionRequest, *corev1.Pod) admission.Response {
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels", Value: p.value})
}

// A value a handler encoded itself gets the answer admission.Webhook gives:
// a json.RawMessage is compacted and escaped as there, a malformed one
// refused as there; only a Marshalled one is written as it is.
func TestEncodedValuesAnswerAsAdmissionWebhook(t *testing.T) {
	review, err := os.ReadFile(sandboxReview)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{
		json.RawMessage(`{ "a" : "<b>" }`),
		json.RawMessage(`{"a":`),
		Marshalled(`{"a":"\u003cb\u003e"}`),
		Marshalled(nil),
	} {
		got := serve(Webhook{Handler: rawPatcher{v}, Log: logr.Discard()}, "application/json", review)
		want := serve(&admission.Webhook{Handler: rawPatcher{v}, RecoverPanic: ptr.To(true)}, "application/json", review)
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(answer{})); diff != "" {
			t.Errorf("%T %s: answered differently (-admission.Webhook +Webhook):\n%s", v, v, diff)
		}
	}
}

// corpusReviews are the benchmark set's reviews (webhook/testdata/reviews)
// and the API server's captured one, by path.
func corpusReviews(t testing.TB) map[string][]byte {
	paths, err := filepath.Glob("../webhook/testdata/reviews/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no reviews: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range append(paths, sandboxReview) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}
