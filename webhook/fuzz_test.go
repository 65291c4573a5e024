package webhook

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
	f.Add([]byte(`{"request":{"uid":"2","kind":{"kind":"Pod","version":"v1"},"resource":{"resource":"pods","version":"v1"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"agent","env":[{"name":"NODE_OPTIONS"}]}]}}}}`))
	configs := fuzzConfigs()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, cfg := range configs {
			code, out := review(t, &Handler{Config: cfg, Log: logr.Discard()}, body)
			if code != 200 || out.Response == nil {
				return // controller-runtime answered the transport error itself
			}
			var ar admissionv1.AdmissionReview
			if json.Unmarshal(body, &ar) != nil || ar.Request == nil || len(out.Response.Patch) == 0 {
				continue
			}
			var pod corev1.Pod
			if json.Unmarshal(ar.Request.Object.Raw, &pod) != nil {
				t.Fatalf("patched a pod that does not decode: %s", ar.Request.Object.Raw)
			}
			applyJSONPatch(t, ar.Request.Object.Raw, out.Response.Patch)
		}
	})
}

// fuzzConfigs are the configurations every fuzz input runs under: the
// default, and one that edits NODE_OPTIONS, whose patch touches existing env
// entries.
func fuzzConfigs() []Config {
	appendCfg := Default()
	appendCfg.NodeOptions = NodeOptionsAppend
	appendCfg.Containers = []string{"agent", "gateway"}
	return []Config{Default(), appendCfg}
}

// FuzzInject: for any pod that decodes and each of fuzzConfigs, Inject is
// idempotent and its patch applied to the input gives its pod.
func FuzzInject(f *testing.F) {
	for _, g := range goldens(f) {
		b, err := os.ReadFile(g.in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(podJSON(f, mustYAMLPod(f, b)))
	}
	configs := fuzzConfigs()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pod corev1.Pod
		if json.Unmarshal(raw, &pod) != nil {
			return
		}
		for _, cfg := range configs {
			once := Inject(&pod, cfg)
			twice := Inject(once.Pod, cfg)
			if diff := cmp.Diff(once.Pod, twice.Pod); diff != "" {
				t.Fatalf("nodeOptions %s: not idempotent:\n%s", cfg.NodeOptions, diff)
			}
			before := pod.DeepCopy()
			if diff := cmp.Diff(once, injectForPatch(&pod, cfg)); diff != "" {
				t.Fatalf("nodeOptions %s: injectForPatch differs from Inject:\n%s", cfg.NodeOptions, diff)
			}
			if diff := cmp.Diff(before, &pod); diff != "" {
				t.Fatalf("nodeOptions %s: injectForPatch changed its input:\n%s", cfg.NodeOptions, diff)
			}
			if once.Outcome != OutcomeInjected {
				continue
			}
			canon := podJSON(t, &pod)
			resp := (&Handler{Config: cfg, Log: logr.Discard()}).Handle(context.Background(), createRequest(canon))
			got := applyResponse(t, canon, resp)
			// The patched pod went through JSON, where an empty list and
			// none are one (omitempty): they are one here too.
			if diff := cmp.Diff(once.Pod, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("nodeOptions %s: patch result differs from Inject (-inject +patch):\n%s", cfg.NodeOptions, diff)
			}
		}
	})
}
