package webhook

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testInitImage pins the init image in golden files, so they do not change
// with the version being built.
const testInitImage = "ghcr.io/guardchain/initguards@sha256:4c1e7f3b0a9d8e2f6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615"

// golden is one fixture: NAME.yaml in, NAME.injected.yaml and
// NAME.outcome.yaml out, NAME.config.yaml (optional) over the test config.
type golden struct {
	name string
	in   string
}

func goldens(t testing.TB) []golden {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []golden
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), ".yaml")
		if strings.Contains(base, ".") {
			continue // .injected, .outcome, .config
		}
		out = append(out, golden{name: base, in: p})
	}
	if len(out) < 25 {
		t.Fatalf("only %d golden inputs in testdata/", len(out))
	}
	return out
}

func testConfig(t testing.TB, g golden) Config {
	t.Helper()
	base := "initImage: " + testInitImage + "\n"
	extra, err := os.ReadFile(filepath.Join("testdata", g.name+".config.yaml"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(base + string(extra)))
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	return cfg
}

func readPod(t testing.TB, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &p
}

// outcomeFile is what NAME.outcome.yaml holds.
type outcomeFile struct {
	Outcome  Outcome  `json:"outcome"`
	Reason   Reason   `json:"reason,omitempty"`
	Message  string   `json:"message,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func outcomeOf(r Result) outcomeFile {
	o := outcomeFile{Outcome: r.Outcome, Reason: r.Reason, Warnings: r.Warnings()}
	if r.Outcome == OutcomeDenied {
		o.Message = r.Message()
	}
	return o
}

// compareGolden checks got against path (rewriting it under -update) by
// parsing both, so the diff is of objects, and the text must match too, so a
// stale file fails even when it parses the same.
func compareGolden[T any](t *testing.T, path string, got T) {
	t.Helper()
	b, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./webhook -update)", err)
	}
	var wantObj T
	if err := yaml.UnmarshalStrict(want, &wantObj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if diff := cmp.Diff(wantObj, got); diff != "" {
		t.Errorf("%s differs (-want +got); if the change is meant, run go test ./webhook -update\n%s", path, diff)
	} else if string(want) != string(b) {
		t.Errorf("%s is not in canonical form; run go test ./webhook -update", path)
	}
}

func TestInjectGolden(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.name, func(t *testing.T) {
			in := readPod(t, g.in)
			before := in.DeepCopy()
			cfg := testConfig(t, g)
			res := Inject(in, cfg)
			if diff := cmp.Diff(before, in); diff != "" {
				t.Fatalf("Inject changed its input:\n%s", diff)
			}
			compareGolden(t, filepath.Join("testdata", g.name+".injected.yaml"), res.Pod)
			compareGolden(t, filepath.Join("testdata", g.name+".outcome.yaml"), outcomeOf(res))
			if (res.Outcome == OutcomeInjected) != (res.Pod != in) {
				t.Errorf("outcome %s but pod changed=%v", res.Outcome, res.Pod != in)
			}
		})
	}
}

// Reinvocation: the API server may call the webhook again with its own
// output; nothing may be added twice.
func TestInjectIsIdempotent(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.name, func(t *testing.T) {
			cfg := testConfig(t, g)
			once := Inject(readPod(t, g.in), cfg)
			twice := Inject(once.Pod, cfg)
			if diff := cmp.Diff(once.Pod, twice.Pod); diff != "" {
				t.Errorf("Inject(Inject(p)) != Inject(p) (-once +twice):\n%s", diff)
			}
			if once.Outcome == OutcomeInjected && twice.Outcome != OutcomeUnchanged {
				t.Errorf("second pass outcome %s, want unchanged", twice.Outcome)
			}
		})
	}
}

// The example pod is the golden input of today's shape, comments aside.
func TestExampleIsTheGoldenSandbox(t *testing.T) {
	strip := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip("../deploy/examples/openshell-sandbox-pod.yaml") != strip("testdata/openshell-combined.yaml") {
		t.Error("deploy/examples/openshell-sandbox-pod.yaml and webhook/testdata/openshell-combined.yaml differ; keep them the same")
	}
}

// The example Sandbox's pod template is the example pod, less what the
// agent-sandbox controller adds (name, namespace, its label, the owner).
func TestExampleSandboxMakesTheExamplePod(t *testing.T) {
	var sb struct {
		Metadata struct {
			Name, Namespace string
		}
		Spec struct {
			PodTemplate corev1.PodTemplateSpec `json:"podTemplate"`
		}
	}
	b, err := os.ReadFile("../deploy/examples/openshell-sandbox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &sb); err != nil {
		t.Fatal(err)
	}
	pod := readPod(t, "../deploy/examples/openshell-sandbox-pod.yaml")
	if pod.Name != sb.Metadata.Name || pod.Namespace != sb.Metadata.Namespace {
		t.Errorf("pod %s/%s, Sandbox %s/%s", pod.Namespace, pod.Name, sb.Metadata.Namespace, sb.Metadata.Name)
	}
	// The controller turns volumeClaimTemplates into PVC volumes named
	// <template>-<sandbox>.
	want := sb.Spec.PodTemplate.Spec.DeepCopy()
	want.Volumes = append(want.Volumes, corev1.Volume{Name: "workspace", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "workspace-" + sb.Metadata.Name}}})
	if diff := cmp.Diff(*want, pod.Spec); diff != "" {
		t.Errorf("the example pod is not what the controller makes of the example Sandbox (-sandbox +pod):\n%s", diff)
	}
	// It also names the annotations it propagated from the template.
	wantAnn := map[string]string{"agents.x-k8s.io/propagated-annotations": "openshell.io/sandbox-id"}
	for k, v := range sb.Spec.PodTemplate.Annotations {
		wantAnn[k] = v
	}
	if diff := cmp.Diff(wantAnn, pod.Annotations); diff != "" {
		t.Errorf("pod annotations differ from the template's (-template +pod):\n%s", diff)
	}
	if pod.Labels[SandboxNameHashLabel] == "" || len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Kind != "Sandbox" {
		t.Errorf("the pod lacks the controller's label or owner: %v %v", pod.Labels, pod.OwnerReferences)
	}
}

// The handler's injectForPatch decides and mutates exactly as Inject does,
// and leaves its input unchanged though the result shares parts of it.
func TestInjectForPatchIsInject(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.name, func(t *testing.T) {
			cfg := testConfig(t, g)
			want := Inject(readPod(t, g.in), cfg)
			in := readPod(t, g.in)
			before := in.DeepCopy()
			got := injectForPatch(in, cfg)
			if diff := cmp.Diff(before, in); diff != "" {
				t.Fatalf("injectForPatch changed its input:\n%s", diff)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("injectForPatch differs from Inject (-Inject +injectForPatch):\n%s", diff)
			}
			// Reinvoked on its own output, as the API server may.
			again := injectForPatch(got.Pod, cfg)
			if diff := cmp.Diff(Inject(want.Pod, cfg), again); diff != "" {
				t.Errorf("reinvoked, injectForPatch differs from Inject:\n%s", diff)
			}
		})
	}
}
