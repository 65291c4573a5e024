package audit

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/webhook"
)

// judgeFor is the backstop's judgment for cfg, with the init image's
// repository.
func judgeFor(t *testing.T, cfg webhook.Config) *Judge {
	t.Helper()
	pol, _ := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{Registration: webhook.RegistrationOptions{Name: "test"},
		Repositories: []string{imageRepository(cfg.InitImage)}})
	j, err := NewJudge(pol.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func sandboxPod(name string, cs ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshell", Annotations: map[string]string{webhook.SandboxIDAnnotation: "id"}},
		Spec: corev1.PodSpec{Containers: cs}}
}

func TestClassify(t *testing.T) {
	cfg := webhook.Default()
	cfg.InitImage = "registry.local/initguards:1"
	ref := Reference{Judge: judgeFor(t, cfg), Version: "v1", Chain: "abc"}
	injected := func(mod func(*corev1.Pod)) *corev1.Pod {
		p := webhook.Inject(sandboxPod("p", corev1.Container{Name: "agent", Image: "node"}), cfg).Pod
		p.Annotations[webhook.AnnotationVersion], p.Annotations[webhook.AnnotationChain] = "v1", "abc"
		if mod != nil {
			mod(p)
		}
		return p
	}
	initStatus := func(s corev1.ContainerStatus) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			s.Name = webhook.InitContainerName
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{s}
		}
	}
	tests := []struct {
		name   string
		pod    *corev1.Pod
		want   State
		reason string
	}{
		{"injected, init done", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0,
			Message: `{"sha256":"def","source":"/usr/local/lib/nemoclaw/preloads","ownership":"uid:998:998","count":5}`}}})), Guarded, ""},
		{"init done without a report", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}})),
			Unguarded, "completed without reporting what it staged"},
		{"init reported another embedded chain", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0,
			Message: `{"sha256":"0123456789abcdef","source":"embedded","ownership":"uid:998:998","count":7}`}}})), Unguarded, "staged chain 0123456789ab, not the embedded chain abc"},
		{"injected, not started yet", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}})), Guarded, ""},
		{"older release", injected(func(p *corev1.Pod) { p.Annotations[webhook.AnnotationVersion] = "v0" }), Stale, "injected by v0, current v1"},
		{"other chain", injected(func(p *corev1.Pod) { p.Annotations[webhook.AnnotationChain] = "def" }), Stale, "chain def, current abc"},
		{"no annotations at all", injected(func(p *corev1.Pod) { p.Annotations = nil }), Stale, "injected by no release"},
		{"init failed, with initguards' report", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1,
			Message: `{"ownership":"uid:1000:1000","reason":"untrusted-preloads","error":"/usr/local/lib/nemoclaw/preloads/x.js: is a symlink; not trusted"}` + "\n"}}})),
			Failed, "guardchain-init exited 1: untrusted-preloads: /usr/local/lib/nemoclaw/preloads/x.js: is a symlink; not trusted"},
		{"auto fell back to the embedded chain", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0,
			Message: `{"sha256":"abc","source":"embedded","ownership":"uid:998:998","count":7,"fallback":"the image has no preloads in /usr/local/lib/nemoclaw/preloads; staged the embedded chain"}`}}})),
			Guarded, "the image has no preloads in /usr/local/lib/nemoclaw/preloads"},
		{"init failed", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "initguards: emit: x: boom\nmore"}}})), Failed, "guardchain-init exited 1: initguards: emit: x: boom"},
		{"init crash-looping", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}})), Failed, "guardchain-init exited 2: Error"},
		{"image not pullable", injected(initStatus(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}})), Failed, "guardchain-init waiting: ImagePullBackOff"},
		{"plain pod", sandboxPod("p", corev1.Container{Name: "agent"}), Unguarded, "no guardchain-init"},
		{"forged annotation", func() *corev1.Pod {
			p := sandboxPod("p", corev1.Container{Name: "agent"})
			p.Annotations[webhook.AnnotationStatus] = webhook.StatusInjected
			return p
		}(), Unguarded, "annotated injected, but has no guardchain-init first"},
		{"a writer that runs busybox true, annotations copied", injected(func(p *corev1.Pod) {
			for i := range p.Spec.InitContainers {
				if p.Spec.InitContainers[i].Name == webhook.InitContainerName {
					p.Spec.InitContainers[i].Image, p.Spec.InitContainers[i].Command, p.Spec.InitContainers[i].Args = "busybox", []string{"true"}, nil
				}
			}
		}), Unguarded, "does not run initguards emit as guardchain renders it"},
		{"a later webhook dropped the /tmp mount", injected(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = nil }),
			Unguarded, "container agent does not mount at /tmp the volume (and subPath) guardchain-init writes"},
		{"another volume at /tmp", injected(func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "other" }),
			Unguarded, "container agent does not mount"},
		{"init container not first", injected(func(p *corev1.Pod) {
			p.Spec.InitContainers = append([]corev1.Container{{Name: "early"}}, p.Spec.InitContainers...)
		}), Unguarded, "no guardchain-init first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Classify(tt.pod, ref)
			if got != tt.want || !strings.Contains(why, tt.reason) {
				t.Errorf("Classify = %s %q, want %s with %q", got, why, tt.want, tt.reason)
			}
		})
	}
}

func TestTargeted(t *testing.T) {
	cfg := webhook.Default()
	cfg.AllowedOverrides = []webhook.Override{webhook.OverrideContainers, webhook.OverrideSource}
	ref := Reference{Judge: judgeFor(t, cfg)}
	noAnn := webhook.Default()
	mark := map[string]string{webhook.SandboxIDAnnotation: "id"}
	pod := func(ann string, cs ...corev1.Container) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "openshell", Annotations: map[string]string{webhook.SandboxIDAnnotation: "id"}},
			Spec: corev1.PodSpec{Containers: cs}}
		if ann != "" {
			p.Annotations[webhook.AnnotationContainers] = ann
		}
		return p
	}
	sidecar := corev1.Container{Name: "agent", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}
	for _, tt := range []struct {
		name string
		pod  *corev1.Pod
		ref  Reference
		want bool
	}{
		{"agent", pod("", corev1.Container{Name: "agent"}), ref, true},
		{"not a sandbox", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent"}}}}, ref, false},
		{"a sandbox by agent-sandbox's label", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{webhook.SandboxNameHashLabel: "h"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent"}}}}, ref, true},
		{"other", pod("", corev1.Container{Name: "web"}), ref, false},
		{"by annotation", pod("web, x", corev1.Container{Name: "web"}), ref, true},
		{"annotation adds to config", pod("web", corev1.Container{Name: "agent"}), ref, true},
		{"annotation cannot opt out", pod("not-here", corev1.Container{Name: "agent"}), ref, true},
		{"annotation not allowed", pod("web", corev1.Container{Name: "web"}), Reference{Judge: judgeFor(t, noAnn)}, false},
		{"windows only", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: mark}, Spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/os": "windows"}, Containers: []corev1.Container{{Name: "agent"}}}}, ref, false},
		{"native sidecar", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: mark}, Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar}, Containers: []corev1.Container{{Name: "x"}}}}, ref, true},
	} {
		if got := tt.ref.Targeted(tt.pod); got != tt.want {
			t.Errorf("%s: Targeted = %v, want %v", tt.name, got, tt.want)
		}
	}
}
