package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/webhook"
)

// testRepos are the init image repositories the corpus pods name: the test
// config's, the golden files', and a mirror a golden pod was rewritten to.
var testRepos = []string{"registry.local/guardchain/initguards", "ghcr.io/guardchain/initguards", "mirror.example.com/guardchain/initguards"}

// enforce installs the backstop for cfg on namespaces and waits until the API
// server applies it: in a probe namespace of its own, which no webhook
// selects, a bare sandbox pod (dry run) is refused, or warned about.
func enforce(t testing.TB, cfg webhook.Config, namespaces []string, actions ...admissionregistrationv1.ValidationAction) {
	t.Helper()
	enforceSelected(t, cfg, namespaces, nil, actions...)
}

// enforceSelected is enforce with the registration's objectSelector: the
// probe pods carry its matchLabels.
func enforceSelected(t testing.TB, cfg webhook.Config, namespaces []string, sel *metav1.LabelSelector, actions ...admissionregistrationv1.ValidationAction) {
	t.Helper()
	name := "guardchain-" + rand.String(6)
	probe := namespace(t, "policy-probe", nil)
	namespaces = append([]string{probe}, namespaces...)
	pol, bind := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{
		Registration: webhook.RegistrationOptions{Name: name, Namespaces: namespaces, ReleaseNamespace: "guardchain-system", ObjectSelector: sel},
		Repositories: testRepos, Actions: actions})
	forged := func(cfg webhook.Config) *corev1.Pod {
		p := forged(cfg)
		if sel != nil {
			p.Labels = sel.MatchLabels
		}
		return p
	}
	ctx := context.Background()
	api := clientset.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the policy: %v", err)
	}
	for _, b := range bind {
		if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating the binding %s: %v", b.Name, err)
		}
	}
	t.Cleanup(func() {
		for _, b := range bind {
			_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), b.Name, metav1.DeleteOptions{})
		}
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
		waitFor(t, "the policy to be dropped", func() error {
			_, err := dryRunCreate(namespaces[0], forged(cfg))
			return err
		})
	})
	cs, warned := clientWithWarnings(t)
	waitFor(t, "the API server to apply the policy", func() error {
		_, err := cs.CoreV1().Pods(namespaces[0]).Create(ctx, forged(cfg), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "guardchain: pod") {
			return nil
		}
		if hasPrefix(warned.all(), "Validation failed for ValidatingAdmissionPolicy '"+name+"'") {
			return nil
		}
		return fmt.Errorf("policy not applied yet (%v)", err) //nolint:errorlint // err may be nil here
	})
}

// forged is a sandbox pod that claims the chain by annotation only.
func forged(cfg webhook.Config) *corev1.Pod {
	p := probePod(cfg)
	p.Annotations = map[string]string{webhook.SandboxIDAnnotation: "forged", webhook.AnnotationStatus: webhook.StatusInjected, webhook.AnnotationVersion: "dev",
		webhook.AnnotationChain: guards.DefaultSHA256()}
	return p
}

// With the webhook and the backstop both in place, every corpus pod the
// webhook injects (or finds injected) is admitted; pods it skips for having
// no target or for Windows are untouched by the policy too; pods it skips for
// a /tmp it cannot take over (conflict: skip) are refused by it, as the
// README says.
func TestControlPlaneEnforcementAdmitsTheInjectedCorpus(t *testing.T) {
	ctx := context.Background()
	for _, pods := range corpusByConfig(t) {
		cfg := pods[0].cfg
		ns := namespace(t, "openshell", nil)
		register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}, ReleaseNamespace: "guardchain-system"})
		enforce(t, cfg, []string{ns})
		for _, c := range pods {
			t.Run(c.name, func(t *testing.T) {
				in := c.pod.DeepCopy()
				in.Namespace = ""
				res := webhook.Inject(in, cfg)
				_, err := clientset.CoreV1().Pods(ns).Create(ctx, in, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				switch {
				case res.Outcome == webhook.OutcomeInjected || res.Outcome == webhook.OutcomeUnchanged:
					if err != nil {
						t.Fatalf("an injected pod was refused: %v", err)
					}
				case res.Outcome == webhook.OutcomeDenied:
					if err == nil || !strings.Contains(err.Error(), res.Message()) {
						t.Fatalf("create: %v, want the webhook's denial", err)
					}
				case res.Reason == webhook.ReasonNoTargetContainer || res.Reason == webhook.ReasonWindowsPod:
					if err != nil {
						t.Fatalf("a pod the webhook leaves alone (%s) was refused: %v", res.Reason, err)
					}
				default: // skipped for its /tmp
					if err == nil || !strings.Contains(err.Error(), "guardchain: pod") {
						t.Fatalf("a pod skipped for %s was admitted unguarded (%v)", res.Reason, err)
					}
				}
			})
		}
	}
}

// tmpDropper is a later mutating webhook that removes every /tmp mount.
type tmpDropper struct{}

func (tmpDropper) Handle(_ context.Context, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	for i := range pod.Spec.Containers {
		var keep []corev1.VolumeMount
		for _, m := range pod.Spec.Containers[i].VolumeMounts {
			if m.MountPath != webhook.TmpPath {
				keep = append(keep, m)
			}
		}
		pod.Spec.Containers[i].VolumeMounts = keep
	}
	b, _ := json.Marshal(&pod)
	return admission.PatchResponseFromRaw(req.Object.Raw, b)
}

func TestControlPlaneEnforcement(t *testing.T) {
	cfg := testConfig(t, "")
	ctx := context.Background()

	t.Run("a pod forged with guardchain's annotations is refused", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{namespace(t, "elsewhere", nil)}})
		enforce(t, cfg, []string{ns})
		_, err := dryRunCreate(ns, forged(cfg))
		if err == nil || !strings.Contains(err.Error(), "has no guardchain-init first among its init containers") {
			t.Fatalf("forged pod: %v", err)
		}
	})

	t.Run("without the registration a sandbox pod is refused, naming the pod; other pods are not", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		other := namespace(t, "other", nil)
		enforce(t, cfg, []string{ns})
		p := agentPod("unguarded")
		_, err := clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "guardchain: pod "+ns+"/unguarded has no guardchain-init first") {
			t.Fatalf("create: %v", err)
		}
		web := agentPod("web")
		web.Spec.Containers[0].Name = "web"
		if _, err := dryRunCreate(ns, web); err != nil {
			t.Errorf("a pod without a target container was refused: %v", err)
		}
		if _, err := dryRunCreate(other, agentPod("elsewhere")); err != nil {
			t.Errorf("a sandbox pod in a namespace not selected was refused: %v", err)
		}
	})

	t.Run("Warn and Audit admit the pod with the message as a warning", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		enforce(t, cfg, []string{ns}, admissionregistrationv1.Warn, admissionregistrationv1.Audit)
		cs, warned := clientWithWarnings(t)
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, agentPod("warned"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("create: %v", err)
		}
		if !strings.Contains(strings.Join(warned.all(), "\n"), "has no guardchain-init first") {
			t.Errorf("warnings %q lack the policy's message", warned.all())
		}
	})

	t.Run("a later webhook that drops the /tmp mount makes the pod refused", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Name: "a-guardchain-" + rand.String(4), Namespaces: []string{ns}})
		port := freePort(t)
		srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir(t)})
		srv.Register("/drop", &admission.Webhook{Handler: tmpDropper{}})
		serve(t, srv, port)
		reg := webhook.MutatingWebhookConfiguration(cfg, webhook.RegistrationOptions{Name: "z-dropper-" + rand.String(4), Namespaces: []string{ns}})
		reg.Webhooks[0].ClientConfig = clientConfig(port, "/drop")
		// Reinvoked too, so it has the last word after guardchain restores the mount.
		if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, reg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), reg.Name, metav1.DeleteOptions{})
		})
		waitFor(t, "the dropper to be called", func() error {
			p, err := dryRunCreate(ns, agentPod("probe"))
			if err == nil && mountsTmp(p.Spec.Containers[0]) {
				err = errString("dropper not called yet")
			}
			return err
		})
		enforce(t, cfg, []string{ns})
		_, err := dryRunCreate(ns, agentPod("dropped"))
		if err == nil || !strings.Contains(err.Error(), "container agent does not mount at /tmp the volume (and subPath) guardchain-init writes") {
			t.Fatalf("create: %v", err)
		}
	})

	t.Run("an annotation naming other containers adds targets, never opts out", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}})
		enforce(t, cfg, []string{ns})
		p := agentPod("opt-out")
		p.Annotations[webhook.AnnotationContainers] = "not-here"
		got, err := dryRunCreate(ns, p)
		if err != nil {
			t.Fatal(err)
		}
		if !injected(got) || !mountsTmp(got.Spec.Containers[0]) {
			t.Fatal("a pod opted its agent out of the chain by annotation")
		}
	})

	t.Run("chains forged or shadowed without the webhook are refused", func(t *testing.T) {
		ns := namespace(t, "openshell", nil)
		enforce(t, cfg, []string{ns})
		writer := func(p *corev1.Pod) *corev1.Container {
			for i := range p.Spec.InitContainers {
				if p.Spec.InitContainers[i].Name == webhook.InitContainerName {
					return &p.Spec.InitContainers[i]
				}
			}
			t.Fatal("no writer")
			return nil
		}
		for _, tt := range []struct {
			name, want string
			forge      func(p *corev1.Pod)
		}{
			{"the webhook's own pod", "", func(*corev1.Pod) {}},
			{"emit with other flags", "does not run initguards emit", func(p *corev1.Pod) { writer(p).Args = []string{"emit", "--dir", "/var/empty"} }},
			{"emit into another directory", "does not have the configured settings", func(p *corev1.Pod) {
				writer(p).Env = append(writer(p).Env, corev1.EnvVar{Name: "GUARDCHAIN_DIR", Value: "/elsewhere"})
			}},
			{"a restartable writer", "mounts the volume that holds the guard chain", func(p *corev1.Pod) {
				writer(p).RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
			}},
			{"a file over the copied binary", "does not run initguards emit", func(p *corev1.Pod) {
				writer(p).VolumeMounts = append(writer(p).VolumeMounts, corev1.VolumeMount{Name: "fake", MountPath: "/guardchain/initguards", SubPath: "x"})
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "fake", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			}},
			{"another volume at /tmp/ beside the chain's", "not clean and absolute", func(p *corev1.Pod) {
				p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "other", MountPath: "/tmp/"})
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "other", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			}},
			{"a file over proxy-env.sh", "not clean and absolute", func(p *corev1.Pod) {
				p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "other", MountPath: "//tmp/nemoclaw-proxy-env.sh", SubPath: "x"})
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "other", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := webhook.Inject(agentPod("forged"), cfg).Pod
				tt.forge(p)
				_, err := dryRunCreate(ns, p)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("create: %v, want a refusal with %q", err, tt.want)
				}
			})
		}
	})

	t.Run("a pod with 100 target containers stays within the CEL cost limits", func(t *testing.T) {
		big := testConfig(t, "allowedOverrides: [containers]\n")
		ns := namespace(t, "openshell", nil)
		bare := namespace(t, "unwebhooked", nil)
		register(t, big, startWebhook(t, big), webhook.RegistrationOptions{Namespaces: []string{ns}})
		enforce(t, big, []string{ns, bare})
		p := agentPod("hundred")
		var names []string
		for i := 0; i < 100; i++ {
			name := fmt.Sprintf("c%d", i)
			names = append(names, name)
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: "node:22-slim",
				VolumeMounts: []corev1.VolumeMount{{Name: fmt.Sprintf("v%d", i), MountPath: "/data"}}})
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("v%d", i), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}
		p.Spec.Containers = p.Spec.Containers[1:]
		p.Annotations[webhook.AnnotationContainers] = strings.Join(names, ",")
		got, err := dryRunCreate(ns, p)
		if err != nil {
			t.Fatalf("a pod with 100 targets: %v", err)
		}
		if !injected(got) {
			t.Fatal("not injected")
		}
		// And the same pod with one target's mount gone, where no webhook
		// runs, is judged, not failed on cost.
		got.Spec.Containers[99].VolumeMounts = got.Spec.Containers[99].VolumeMounts[:1]
		got.ObjectMeta = metav1.ObjectMeta{Name: "hundred-one-unmounted", Annotations: got.Annotations}
		_, err = dryRunCreate(bare, got)
		if err == nil || !strings.Contains(err.Error(), "container c99 does not mount at /tmp") {
			t.Fatalf("create: %v", err)
		}
	})
}
