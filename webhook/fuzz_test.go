package webhook

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// FuzzHandler: any bytes as an AdmissionReview body get an answer, never a
// panic, and a pod create that is answered with a patch gets one that applies.
func FuzzHandler(f *testing.F) {
	t := &testing.T{}
	f.Add(reviewBody(t, nil))
	f.Add([]byte(`{"request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"resource":{"resource":"pods","version":"v1"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"agent","volumeMounts":[{"name":"x","mountPath":"/tmp/"}]}]}}}}`))
	f.Add([]byte(`{"request":{"kind":{"kind":"Pod"},"resource":{"resource":"pods"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`not json`))
	h := &Handler{Config: Default(), Log: logr.Discard()}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := review(t, h, body)
		if code != 200 || out.Response == nil {
			return // controller-runtime answered the transport error itself
		}
		var ar admissionv1.AdmissionReview
		if json.Unmarshal(body, &ar) != nil || ar.Request == nil || len(out.Response.Patch) == 0 {
			return
		}
		var pod corev1.Pod
		if json.Unmarshal(ar.Request.Object.Raw, &pod) != nil {
			t.Fatalf("patched a pod that does not decode: %s", ar.Request.Object.Raw)
		}
		applyJSONPatch(t, ar.Request.Object.Raw, out.Response.Patch)
	})
}

// FuzzInject: for any pod that decodes, Inject is idempotent and its patch
// applied to the input gives its pod.
func FuzzInject(f *testing.F) {
	for _, g := range goldens(f) {
		b, err := os.ReadFile(g.in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(podJSON(f, mustYAMLPod(f, b)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pod corev1.Pod
		if json.Unmarshal(raw, &pod) != nil {
			return
		}
		cfg := Default()
		once := Inject(&pod, cfg)
		twice := Inject(once.Pod, cfg)
		if diff := cmp.Diff(once.Pod, twice.Pod); diff != "" {
			t.Fatalf("not idempotent:\n%s", diff)
		}
		if once.Outcome != OutcomeInjected {
			return
		}
		canon := podJSON(t, &pod)
		resp := (&Handler{Config: cfg, Log: logr.Discard()}).Handle(context.Background(), createRequest(canon))
		got := applyResponse(t, canon, resp)
		if diff := cmp.Diff(once.Pod, got); diff != "" {
			t.Fatalf("patch result differs from Inject (-inject +patch):\n%s", diff)
		}
	})
}
