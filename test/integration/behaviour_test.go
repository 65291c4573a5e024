package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/guardchain/guardchain/webhook"
)

// agentPod is a sandbox pod: OpenShell's annotation and a container agent.
func agentPod(name string) *corev1.Pod {
	return sandbox(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "node:22-slim"}}},
	})
}

// sandbox marks p as OpenShell marks every sandbox pod, so the webhook and
// the backstop select it.
func sandbox(p *corev1.Pod) *corev1.Pod {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[webhook.SandboxIDAnnotation] = "6f1c2a9e-3b7d-4c1e-9a55-0d2e8f4b7a10"
	return p
}

func injected(p *corev1.Pod) bool {
	return p.Annotations[webhook.AnnotationStatus] == webhook.StatusInjected && webhook.WritesChainFirst(&p.Spec)
}

func create(t *testing.T, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating %s/%s: %v", ns, p.Name, err)
	}
	return got
}

func testConfig(t *testing.T, extra string) webhook.Config {
	t.Helper()
	cfg, err := webhook.ParseConfig([]byte("initImage: registry.local/guardchain/initguards:test\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestControlPlaneSelection(t *testing.T) {
	cfg := testConfig(t, "allowedOverrides: [containers, source]\n")
	sel := namespace(t, "openshell", nil)
	optedOut := namespace(t, "opted-out", map[string]string{"guardchain.dev/inject": "disabled"})
	other := namespace(t, "other", nil)
	release := namespace(t, "guardchain-system", nil)
	srv := startWebhook(t, cfg)
	// Even when listed, kube-system and the release namespace are never selected.
	register(t, cfg, srv, webhook.RegistrationOptions{Namespaces: []string{sel, optedOut, "kube-system", release}, ReleaseNamespace: release})

	tests := []struct {
		name     string
		ns       string
		pod      *corev1.Pod
		injected bool
	}{
		{"selected namespace", sel, agentPod("a"), true},
		{"a sandbox by agent-sandbox's label", sel, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "labelled",
			Labels: map[string]string{webhook.SandboxNameHashLabel: "5d1c0a7e"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "node:22-slim"}}}}, true},
		{"not a sandbox", sel, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unmarked"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "node:22-slim"}}}}, false},
		{"no target container", sel, sandbox(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}), false},
		{"targets by annotation", sel, sandbox(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ann",
			Annotations: map[string]string{webhook.AnnotationContainers: "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}), true},
		{"other namespace", other, agentPod("a"), false},
		{"kube-system", "kube-system", agentPod("guardchain-selection-probe"), false},
		{"release namespace", release, agentPod("a"), false},
		// The opt-out label means nothing unless config names it.
		{"opt-out label without config", optedOut, agentPod("a"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := create(t, tt.ns, tt.pod)
			defer func() {
				_ = clientset.CoreV1().Pods(tt.ns).Delete(context.Background(), got.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			}()
			if injected(got) != tt.injected {
				t.Errorf("injected=%v, want %v: annotations %v", injected(got), tt.injected, got.Annotations)
			}
		})
	}

	t.Run("opt-out label where config allows it", func(t *testing.T) {
		cfg := testConfig(t, "namespaceOptOutLabel: guardchain.dev/inject\n")
		optedOut := namespace(t, "opted-out", map[string]string{"guardchain.dev/inject": "disabled"})
		in := namespace(t, "opted-in", map[string]string{"guardchain.dev/inject": "enabled"})
		srv := startWebhook(t, cfg)
		register(t, cfg, srv, webhook.RegistrationOptions{Namespaces: []string{in, optedOut}})
		if got := create(t, optedOut, agentPod("a")); injected(got) {
			t.Error("pod in an opted-out namespace was injected")
		}
		if got := create(t, in, agentPod("a")); !injected(got) {
			t.Error("pod in an opted-in namespace was not injected")
		}
	})
}

// adder is a second mutating webhook that adds a container "late" after
// guardchain has run, which makes the API server call guardchain again.
type adder struct{}

func (adder) Handle(_ context.Context, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "late" {
			return admission.Allowed("")
		}
	}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "late", Image: "node:22-slim"})
	b, _ := json.Marshal(&pod)
	return admission.PatchResponseFromRaw(req.Object.Raw, b)
}

func TestControlPlaneReinvocation(t *testing.T) {
	cfg := testConfig(t, "containers: [agent, late]\n")
	ns := namespace(t, "openshell", nil)
	guard := startWebhook(t, cfg)
	// Webhooks run in the order of their configurations' names.
	register(t, cfg, guard, webhook.RegistrationOptions{Name: "a-guardchain", Namespaces: []string{ns}})

	port := freePort(t)
	addSrv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir(t)})
	addSrv.Register("/add", &admission.Webhook{Handler: adder{}})
	serve(t, addSrv, port)
	addReg := webhook.MutatingWebhookConfiguration(cfg, webhook.RegistrationOptions{Name: "z-adder", Namespaces: []string{ns}})
	addReg.Webhooks[0].ClientConfig = clientConfig(port, "/add")
	addReg.Webhooks[0].ReinvocationPolicy = nil
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), addReg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), addReg.Name, metav1.DeleteOptions{})
	})
	waitFor(t, "the adder to be called", func() error {
		p, err := dryRunCreate(ns, agentPod("probe"))
		if err == nil && len(p.Spec.Containers) != 2 {
			err = errString("adder not called yet")
		}
		return err
	})

	before := admissions(t, guard.metrics)
	got := create(t, ns, agentPod("reinvoked"))
	calls := admissions(t, guard.metrics) - before
	if calls != 2 {
		t.Errorf("guardchain answered %v times for one create, want 2 (first call and reinvocation)", calls)
	}
	var names []string
	for _, c := range got.Spec.Containers {
		names = append(names, c.Name)
		if !mountsTmp(c) {
			t.Errorf("container %s has no /tmp mount after reinvocation", c.Name)
		}
	}
	if strings.Join(names, ",") != "agent,late" {
		t.Fatalf("containers %v", names)
	}
	if n := countInit(got); n != 1 || !injected(got) {
		t.Errorf("%d guardchain-init containers, want 1, after guardchain-bin and before any other", n)
	}
	vols := 0
	for _, v := range got.Spec.Volumes {
		if v.Name == webhook.VolumeName {
			vols++
		}
	}
	if vols != 1 {
		t.Errorf("%d %s volumes, want 1", vols, webhook.VolumeName)
	}
}

// admissions sums guardchain_admissions_total over its labels.
func admissions(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == "guardchain_admissions_total" {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

type errString string

func (e errString) Error() string { return string(e) }

func mountsTmp(c corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == webhook.TmpPath {
			return true
		}
	}
	return false
}

func countInit(p *corev1.Pod) int {
	n := 0
	for _, c := range p.Spec.InitContainers {
		if c.Name == webhook.InitContainerName {
			n++
		}
	}
	return n
}

func TestControlPlaneServerSideDryRun(t *testing.T) {
	cfg := testConfig(t, "")
	ns := namespace(t, "openshell", nil)
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}})
	got, err := dryRunCreate(ns, agentPod("dry"))
	if err != nil {
		t.Fatal(err)
	}
	if !injected(got) {
		t.Errorf("dry-run answer not injected: %v", got.Annotations)
	}
	if _, err := clientset.CoreV1().Pods(ns).Get(context.Background(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run stored the pod (get: %v)", err)
	}
}

func TestControlPlaneFailurePolicyFailWhenWebhookDown(t *testing.T) {
	cfg := testConfig(t, "")
	ns := namespace(t, "openshell", nil)
	other := namespace(t, "other", nil)
	srv := startWebhook(t, cfg)
	mwc := register(t, cfg, srv, webhook.RegistrationOptions{Namespaces: []string{ns}})
	srv.stop()

	_, err := clientset.CoreV1().Pods(ns).Create(context.Background(), agentPod("unguarded"), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "`+mwc.Webhooks[0].Name+`"`) {
		t.Fatalf("create with the webhook down: %v, want a clear webhook failure", err)
	}
	t.Logf("the API server says: %v", err)
	if _, err := clientset.CoreV1().Pods(ns).Get(context.Background(), "unguarded", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a pod was stored without the webhook (get: %v)", err)
	}
	if got := create(t, other, agentPod("elsewhere")); injected(got) {
		t.Error("pod outside the selector was injected")
	}
	// Restart so the registration's cleanup can see it dropped.
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{namespace(t, "openshell", nil)}})
	_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
}

func TestControlPlaneWarningsReachClient(t *testing.T) {
	cfg := testConfig(t, "conflict: skip\n")
	ns := namespace(t, "openshell", nil)
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}})
	cs, warnings := clientWithWarnings(t)
	pod := agentPod("hostpath-tmp")
	pod.Spec.Volumes = []corev1.Volume{{Name: "host-tmp", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/tmp"}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host-tmp", MountPath: "/tmp"}}
	got, err := cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if injected(got) {
		t.Error("skipped pod was injected")
	}
	want := "guardchain: container agent mounts /tmp from volume host-tmp, which is a hostPath, not an emptyDir"
	if !hasPrefix(warnings.all(), want) {
		t.Errorf("client warnings %q lack %q", warnings.all(), want)
	}
}

// Which ownership policies pass which Pod Security level, on a pod that is
// itself restricted-compliant. The matrix is logged for the docs.
func TestControlPlanePodSecurity(t *testing.T) {
	restricted := func() *corev1.Pod {
		p := agentPod("psa")
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		return p
	}
	tests := []struct {
		name, config, level string
		admitted            bool
	}{
		{"root", "ownership: root", "baseline", true},
		{"root", "ownership: root", "restricted", false},
		// The pod runs as non-root, so writer auto picks the owner.
		{"defaults (uid:998:998, writer auto, auto source)", "", "baseline", true},
		{"defaults (uid:998:998, writer auto, auto source)", "", "restricted", true},
		{"root writer", "writer: root", "baseline", true},
		{"root writer", "writer: root", "restricted", false},
		{"owner writer", "ownership: uid:1000:1000\nwriter: owner", "baseline", true},
		{"owner writer", "ownership: uid:1000:1000\nwriter: owner", "restricted", true},
		{"owner writer, embedded", "ownership: uid:1000:1000\nwriter: owner\nsource: embedded", "restricted", true},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.level, func(t *testing.T) {
			cfg := testConfig(t, tt.config+"\n")
			ns := namespace(t, "psa-"+tt.level, map[string]string{"pod-security.kubernetes.io/enforce": tt.level})
			// register probes the first namespace, which must admit any pod.
			probe := namespace(t, "psa-probe", nil)
			register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{probe, ns}})
			got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), restricted(), metav1.CreateOptions{})
			if (err == nil) != tt.admitted {
				t.Fatalf("admitted=%v (%v), want %v", err == nil, err, tt.admitted)
			}
			if err == nil && !injected(got) {
				t.Fatal("admitted but not injected")
			}
			t.Logf("%s, PodSecurity %s: admitted=%v %v", tt.name, tt.level, err == nil, err)
		})
	}
}

// An empty NODE_OPTIONS reaches the webhook without its "value" key (the API
// server drops empty strings); with nodeOptions: append the stored pod carries
// the tokens, and the variable after it is untouched.
func TestControlPlaneNodeOptionsAppendToEmptyValue(t *testing.T) {
	cfg := testConfig(t, "nodeOptions: append\n")
	ns := namespace(t, "openshell", nil)
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}})
	pod := agentPod("empty-node-options")
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "NODE_OPTIONS", Value: ""}, {Name: "LOG_LEVEL", Value: "info"}}
	got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create with an empty NODE_OPTIONS: %v", err)
	}
	if !injected(got) {
		t.Fatalf("not injected: %v", got.Annotations)
	}
	want := []corev1.EnvVar{
		{Name: "NODE_OPTIONS", Value: "--require /tmp/nemoclaw-sandbox-safety-net.js --require /tmp/nemoclaw-nemotron-inference-fix.js --require /tmp/nemoclaw-ciao-network-guard.js"},
		{Name: "LOG_LEVEL", Value: "info"},
	}
	if diff := cmp.Diff(want, got.Spec.Containers[0].Env); diff != "" {
		t.Errorf("stored env (-want +got):\n%s", diff)
	}
}
