package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/audit"
	"github.com/guardchain/guardchain/webhook"
)

// Pods written to look guarded while they are not, as a pod author would
// write them to get past guardchain: each is refused by the backstop alone
// (no webhook: as if it were bypassed), judged the same by the audit (which
// evaluates the policy's own expressions), and, where the webhook sees it as
// input, refused or rendered anew by the webhook. The spellings are the ones
// the kubelet and runc treat alike.
func TestControlPlaneAttacksAreRefusedByPolicyAuditAndWebhook(t *testing.T) {
	for _, variant := range []struct{ name, source, config string }{
		{"source auto, copied", "auto", "source: auto\nimageVolume: never\n"},
		{"source auto, image volume", "auto-image-volume", "source: auto\nimageVolume: always\n"},
		{"source embedded", "embedded", "source: embedded\n"},
	} {
		source := variant.source
		if source == "auto-image-volume" && floorRun(t) {
			t.Logf("%s: left out on the oldest release, whose API server has no image volumes (1.35+)", variant.name)
			continue
		}
		t.Run(variant.name, func(t *testing.T) {
			cfg := testConfig(t, variant.config)
			policyOnly, webhooked, judge := judgedWithWebhook(t, cfg)
			injected := func() *corev1.Pod {
				res := webhook.Inject(agentPod("attack"), cfg)
				if res.Outcome != webhook.OutcomeInjected {
					t.Fatalf("inject: %s %v", res.Outcome, res.Warnings())
				}
				res.Pod.Namespace = policyOnly // as the audit lists it
				return res.Pod
			}
			// The webhook's own pod is admitted and judged guarded: the
			// attacks below differ from it in one thing each.
			if _, err := dryRunCreate(policyOnly, injected()); err != nil {
				t.Fatalf("the webhook's own pod is refused: %v", err)
			}
			if probs, err := judge.Problems(injected()); err != nil || len(probs) > 0 {
				t.Fatalf("the audit judges the webhook's own pod: %v %v", probs, err)
			}
			for _, a := range attacks(source) {
				t.Run(a.name, func(t *testing.T) {
					p := injected()
					a.forge(p)
					_, err := dryRunCreate(policyOnly, p)
					if err == nil || !strings.Contains(err.Error(), a.want) {
						t.Errorf("policy: %v, want a refusal saying %q", err, a.want)
					}
					sel, serr := judge.Selects(p)
					probs, perr := judge.Problems(p)
					if serr != nil || perr != nil || !sel || len(probs) == 0 {
						t.Errorf("audit: selects %v, problems %v (%v %v), want it judged unguarded", sel, probs, serr, perr)
					} else if !slices.ContainsFunc(probs, func(m string) bool { return strings.Contains(m, a.want) }) {
						t.Errorf("audit problems %q lack %q", probs, a.want)
					}
					// Through the webhook, with the init hash it rendered
					// (a forged one): refused, or rendered anew and admitted.
					p.Namespace = webhooked
					got, err := dryRunCreate(webhooked, p)
					if err != nil {
						return
					}
					if probs, _ := judge.Problems(got); len(probs) > 0 {
						t.Errorf("the webhook admitted it as %v", probs)
					}
				})
			}
		})
	}
}

type attack struct {
	name, want string
	forge      func(p *corev1.Pod)
}

func writerOf(p *corev1.Pod) *corev1.Container { return initNamed(p, webhook.InitContainerName) }

func initNamed(p *corev1.Pod, name string) *corev1.Container {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return &p.Spec.InitContainers[i]
		}
	}
	return &corev1.Container{} // a forge of a missing container changes nothing
}

func addVolume(p *corev1.Pod, name string, src corev1.VolumeSource) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: src})
}

var emptyDir = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value = value
		}
	}
}

// attacks are one-thing-different forgeries of an injected pod.
func attacks(source string) []attack {
	const unclean = "not clean and absolute"
	const settings = "does not have the configured settings"
	const program = "does not run initguards emit as guardchain renders it"
	var out []attack
	// A volume over a chain file, in every spelling of its path.
	for _, path := range []string{"tmp/nemoclaw-sandbox-safety-net.js", "/./tmp/nemoclaw-proxy-env.sh", "/tmp/./nemoclaw-proxy-env.sh",
		"/tmp/../tmp/nemoclaw-proxy-env.sh", "//tmp/nemoclaw-proxy-env.sh", "/tmp//nemoclaw-ciao-network-guard.js", "/tmp/nemoclaw-proxy-env.sh/"} {
		out = append(out, attack{"a file over a chain file at " + path, unclean, func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "fake", MountPath: path, SubPath: "x"})
			addVolume(p, "fake", emptyDir)
		}})
	}
	out = append(out, attack{"a file over a chain file at its clean path", "does not mount at /tmp", func(p *corev1.Pod) {
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "fake", MountPath: "/tmp/nemoclaw-proxy-env.sh", SubPath: "x"})
		addVolume(p, "fake", emptyDir)
	}})
	// A second emptyDir over /tmp, after the chain's (runc mounts it on top).
	for _, path := range []string{"tmp", "/./tmp", "/tmp/", "//tmp", "/tmp/.", "/tmp/../tmp", "/./tmp/."} {
		out = append(out, attack{"a second emptyDir at " + path, unclean, func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "other", MountPath: path})
			addVolume(p, "other", emptyDir)
		}})
	}
	// Anything more mounted in the writer: over its binary, over the
	// image's packaged preloads.
	for _, path := range []string{"/./guardchain/initguards", "guardchain/initguards", "/guardchain/initguards",
		"/usr/local/lib/nemoclaw/preloads/sandbox-safety-net.js", "/usr/local/lib/nemoclaw/preloads"} {
		want := program
		if !webhook.CleanMountPath(path) {
			want = unclean
		}
		out = append(out, attack{"a writer mount at " + path, want, func(p *corev1.Pod) {
			w := writerOf(p)
			w.VolumeMounts = append(w.VolumeMounts, corev1.VolumeMount{Name: "fake", MountPath: path, SubPath: "x", ReadOnly: true})
			addVolume(p, "fake", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "fake"}}})
		}})
	}
	// The writer's settings.
	for _, e := range []corev1.EnvVar{
		{Name: "GUARDCHAIN_REQUIRE", Value: "none"}, // a second entry: the kubelet takes the last
		{Name: "GUARDCHAIN_DIR", Value: "/elsewhere"},
		{Name: "GUARDCHAIN_SOURCE", Value: "image"},
		{Name: "GUARDCHAIN_PRELOADS_DIR", Value: "/evil"},
		{Name: "GUARDCHAIN_PROXY_HOST", Value: "203.0.113.9"},
		{Name: "GUARDCHAIN_EXTRA", Value: "1"},
		{Name: "NODE_OPTIONS", Value: "--require /evil.js"},
	} {
		out = append(out, attack{"writer env " + e.Name + "=" + e.Value + " added", settings, func(p *corev1.Pod) {
			w := writerOf(p)
			w.Env = append(w.Env, e)
		}})
	}
	for _, kv := range [][2]string{{"GUARDCHAIN_REQUIRE", "none"}, {"GUARDCHAIN_REQUIRE", "safety-net"}, {"GUARDCHAIN_DIR", "/var/tmp"},
		{"GUARDCHAIN_TERMINATION_LOG", "/tmp/log"}, {"GUARDCHAIN_OWNERSHIP", "nobody"}} {
		out = append(out, attack{"writer env " + kv[0] + " set to " + kv[1], settings, func(p *corev1.Pod) { setEnv(writerOf(p), kv[0], kv[1]) }})
	}
	out = append(out,
		attack{"writer env from a ConfigMap", settings, func(p *corev1.Pod) {
			writerOf(p).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}
		}},
		attack{"writer REQUIRE from a ConfigMap", settings, func(p *corev1.Pod) {
			w := writerOf(p)
			for i := range w.Env {
				if w.Env[i].Name == "GUARDCHAIN_REQUIRE" {
					w.Env[i] = corev1.EnvVar{Name: "GUARDCHAIN_REQUIRE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "x"}, Key: "k"}}}
				}
			}
		}},
		attack{"writer args with a flag", program, func(p *corev1.Pod) { writerOf(p).Args = []string{"emit", "--require", "none"} }},
		// The kubelet mounts the writer's termination message file there
		// (emit then fails to rename onto it: refused all the same).
		attack{"the writer's termination message over a chain file", program, func(p *corev1.Pod) {
			writerOf(p).TerminationMessagePath = "/tmp/nemoclaw-proxy-env.sh"
		}},
		// A restartable writer is no init container of guardchain's: one
		// more container that mounts the chain's volume.
		attack{"a restartable writer", "mounts the volume that holds the guard chain", func(p *corev1.Pod) {
			writerOf(p).RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		}},
		attack{"a busybox writer that does nothing", program, func(p *corev1.Pod) {
			w := writerOf(p)
			w.Image, w.Command, w.Args = "busybox:1.37", []string{"true"}, nil
		}},
		// Another container that writes the chain after guardchain-init.
		attack{"a later init container writing the chain's volume", "mounts the volume that holds the guard chain writable", func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "rewriter", Image: "busybox:1.37",
				VolumeMounts: []corev1.VolumeMount{{Name: webhook.VolumeName, MountPath: "/scratch"}}})
		}},
		attack{"a sidecar container writing the chain's volume", "mounts the volume that holds the guard chain writable", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "rewriter", Image: "busybox:1.37",
				VolumeMounts: []corev1.VolumeMount{{Name: webhook.VolumeName, MountPath: "/scratch"}}})
		}},
	)
	if source == "embedded" {
		out = append(out, attack{"a writer image from another repository", program, func(p *corev1.Pod) {
			writerOf(p).Image = "registry.example.com/initguards:latest"
		}})
		return out
	}
	binVolume := func(p *corev1.Pod) *corev1.Volume {
		for i := range p.Spec.Volumes {
			if p.Spec.Volumes[i].Name == webhook.BinVolumeName {
				return &p.Spec.Volumes[i]
			}
		}
		return &corev1.Volume{}
	}
	out = append(out,
		attack{"a writer image that is no target's", program, func(p *corev1.Pod) { writerOf(p).Image = "busybox:1.37" }},
		attack{"the writer's binary mount with a subPath", program, func(p *corev1.Pod) {
			w := writerOf(p)
			for i := range w.VolumeMounts {
				if w.VolumeMounts[i].MountPath == webhook.BinPath {
					w.VolumeMounts[i].SubPath = "sub"
				}
			}
		}},
	)
	if source == "auto-image-volume" {
		return append(out,
			attack{"the binary's image volume from another repository", program, func(p *corev1.Pod) {
				binVolume(p).Image = &corev1.ImageVolumeSource{Reference: "registry.example.com/initguards:latest"}
			}},
			attack{"the binary's volume an emptyDir nobody fills", program, func(p *corev1.Pod) {
				binVolume(p).VolumeSource = emptyDir
			}},
		)
	}
	bin := func(p *corev1.Pod) *corev1.Container { return initNamed(p, webhook.BinContainerName) }
	return append(out,
		attack{"copy-self to another path", program, func(p *corev1.Pod) {
			bin(p).Args = []string{"copy-self", "--to", "/guardchain/other"}
		}},
		attack{"guardchain-bin from another repository", program, func(p *corev1.Pod) { bin(p).Image = "registry.example.com/initguards:latest" }},
		attack{"guardchain-bin with a command", program, func(p *corev1.Pod) { bin(p).Command = []string{"/bin/sh", "-c", "cp /evil /guardchain/initguards"} }},
		attack{"guardchain-bin with env", program, func(p *corev1.Pod) { bin(p).Env = []corev1.EnvVar{{Name: "GODEBUG", Value: "x"}} }},
		attack{"guardchain-bin with another mount", program, func(p *corev1.Pod) {
			b := bin(p)
			b.VolumeMounts = append(b.VolumeMounts, corev1.VolumeMount{Name: webhook.VolumeName, MountPath: "/t"})
		}},
	)
}

// A /tmp subPathExpr that would expand one way in the target and another
// in guardchain-init: refused by the webhook (with its reason), and by the
// backstop where a pod is written so by hand.
func TestControlPlaneSubPathExprThatDiffersIsRefused(t *testing.T) {
	cfg := testConfig(t, "")
	policyOnly := namespace(t, "openshell", nil)
	webhooked := namespace(t, "openshell", nil)
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{webhooked}})
	enforce(t, cfg, []string{policyOnly, webhooked})
	for _, tt := range []struct {
		name string
		env  []corev1.EnvVar
	}{
		{"a GUARDCHAIN_ variable", []corev1.EnvVar{{Name: "GUARDCHAIN_PROXY_HOST", Value: "agentdir"}, {Name: "D", Value: "$(GUARDCHAIN_PROXY_HOST)"}}},
		{"a resourceFieldRef", []corev1.EnvVar{{Name: "D", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := func() *corev1.Pod {
				p := agentPod("subpathexpr")
				p.Spec.Containers[0].Env = tt.env
				p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp", SubPathExpr: "$(D)"}}
				addVolume(p, "scratch", emptyDir)
				return p
			}
			_, err := dryRunCreate(webhooked, pod())
			if err == nil || !strings.Contains(err.Error(), string(webhook.ReasonSubPathExpr)) && !strings.Contains(err.Error(), "subPathExpr") {
				t.Errorf("webhook: %v, want a refusal naming the subPathExpr", err)
			}
			// Written by hand: the writer as the webhook rendered it before
			// this refusal (the target's env copied ahead of its own).
			p := pod()
			w := webhook.Inject(agentPod("x"), cfg).Pod
			p.Spec.InitContainers = w.Spec.InitContainers
			wr := writerOf(p)
			wr.Env = append(slices.Clone(tt.env), wr.Env...)
			for i := range wr.VolumeMounts {
				if wr.VolumeMounts[i].MountPath == "/tmp" {
					wr.VolumeMounts[i] = corev1.VolumeMount{Name: "scratch", MountPath: "/tmp", SubPathExpr: "$(D)"}
				}
			}
			p.Spec.Volumes = append(p.Spec.Volumes, w.Spec.Volumes...)
			if _, err := dryRunCreate(policyOnly, p); err == nil || !strings.Contains(err.Error(), "does not have the configured settings") {
				t.Errorf("policy: %v, want a refusal", err)
			}
		})
	}
}

// After create: an UPDATE may not change the images guardchain's init
// containers (and so the chain) come from, and an ephemeral container may
// not mount the chain's volume.
func TestControlPlaneUpdatesAndEphemeralContainersAreChecked(t *testing.T) {
	cfg := testConfig(t, "")
	ctx := context.Background()
	ns := namespace(t, "openshell", nil)
	enforce(t, cfg, []string{ns})
	for _, tt := range []struct {
		name  string
		image func(p *corev1.Pod) *string
	}{
		{webhook.InitContainerName, func(p *corev1.Pod) *string { return &writerOf(p).Image }},
		{webhook.BinContainerName, func(p *corev1.Pod) *string { return &initNamed(p, webhook.BinContainerName).Image }},
		{"agent", func(p *corev1.Pod) *string { return &p.Spec.Containers[0].Image }},
	} {
		t.Run("an update of "+tt.name+"'s image", func(t *testing.T) {
			p := webhook.Inject(agentPod("upd-"+strings.ToLower(tt.name)), cfg).Pod
			p, err := clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			*tt.image(p) = "registry.local/guardchain/initguards:other"
			_, err = clientset.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
			// Refused: by the image rule, or first by another that the new
			// image breaks (a writer that runs in no target's image).
			if err == nil || !strings.Contains(err.Error(), "guardchain: pod ") {
				t.Errorf("update: %v, want a refusal", err)
			}
		})
	}
	t.Run("a label on an injected pod is still fine", func(t *testing.T) {
		p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(agentPod("labelled"), cfg).Pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Labels = map[string]string{"x": "y"}
		if _, err := clientset.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Errorf("label update refused: %v", err)
		}
	})
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("an ephemeral container mounting the chain's volume (readOnly %v)", readOnly), func(t *testing.T) {
			p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(agentPod(fmt.Sprintf("eph-%v", readOnly)), cfg).Pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debugger", Image: "busybox:1.37", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy: corev1.PullIfNotPresent,
				VolumeMounts:    []corev1.VolumeMount{{Name: webhook.VolumeName, MountPath: "/tmp", ReadOnly: readOnly}},
				SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"DAC_OVERRIDE", "FOWNER"}}}}})
			_, err = clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
			// Read-only too: a privileged debugger remounts it read-write.
			if err == nil || !strings.Contains(err.Error(), "container debugger is not a target but mounts the volume that holds the guard chain") {
				t.Errorf("ephemeral container: %v, want a refusal", err)
			}
		})
	}
	t.Run("a pod an earlier release injected, with other settings, can still be labelled but not re-imaged", func(t *testing.T) {
		earlier := namespace(t, "openshell", nil)
		old := testConfig(t, "proxy: {host: 10.9.9.9, port: 3128}\n")
		p, err := clientset.CoreV1().Pods(earlier).Create(ctx, webhook.Inject(agentPod("earlier"), old).Pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		enforce(t, cfg, []string{earlier})
		p.Labels = map[string]string{"x": "y"}
		if p, err = clientset.CoreV1().Pods(earlier).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("label update of a pod an earlier release injected: %v", err)
		}
		p.Spec.Containers[0].Image = "node:23-slim"
		if _, err := clientset.CoreV1().Pods(earlier).Update(ctx, p, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "an update may not change the images") {
			t.Errorf("image update: %v, want a refusal", err)
		}
	})
	t.Run("a pod created before guardchain can still be updated", func(t *testing.T) {
		before := namespace(t, "openshell", nil)
		p, err := clientset.CoreV1().Pods(before).Create(ctx, agentPod("before"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		enforce(t, cfg, []string{before})
		p.Labels = map[string]string{"x": "y"}
		if _, err := clientset.CoreV1().Pods(before).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Errorf("update of a pod guardchain never injected: %v", err)
		}
	})
}

// What a second review got through, each refused now: a hand-written writer
// whose copy of the target's env differs from the target's (the kubelet
// expands a subPathExpr with the last entry of a name), a fixed owner
// changed, a writer run in a decoy target's image, and a debugger sharing a
// target's process namespace.
func TestControlPlaneReviewFindingsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "ownership: root\nallowedOverrides: [containers, source]\n")
	ns, judge := judged(t, cfg)
	refused := func(t *testing.T, p *corev1.Pod, want string) {
		t.Helper()
		p.Namespace = ns
		if _, err := dryRunCreate(ns, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy: %v, want a refusal saying %q", err, want)
		}
		if probs, err := judge.Problems(p); err != nil || len(probs) == 0 {
			t.Errorf("audit: %v %v, want it judged unguarded", probs, err)
		}
	}
	t.Run("a writer whose copy of a subPathExpr variable differs from the target's", func(t *testing.T) {
		p := agentPod("twice")
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "D", Value: "writerdir"}, {Name: "D", Value: "agentdir"}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp", SubPathExpr: "$(D)"}}
		addVolume(p, "scratch", emptyDir)
		p = webhook.Inject(p, cfg).Pod
		w := writerOf(p)
		w.Env = slices.DeleteFunc(w.Env, func(e corev1.EnvVar) bool { return e.Name == "D" && e.Value == "agentdir" })
		refused(t, p, "does not have the configured settings")
	})
	t.Run("a fixed owner changed", func(t *testing.T) {
		p := webhook.Inject(agentPod("owner"), cfg).Pod
		setEnv(writerOf(p), "GUARDCHAIN_OWNERSHIP", "uid:1000:1000")
		refused(t, p, "does not have the configured settings")
	})
	t.Run("a writer in a decoy target's image", func(t *testing.T) {
		p := agentPod("decoy")
		p.Annotations[webhook.AnnotationContainers] = "decoy"
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "decoy", Image: "attacker.example/preloads:1"})
		p = webhook.Inject(p, cfg).Pod
		writerOf(p).Image = "attacker.example/preloads:1"
		refused(t, p, "does not run initguards emit as guardchain renders it")
	})
	t.Run("an ephemeral container in a target's process namespace", func(t *testing.T) {
		p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(agentPod("debugged"), cfg).Pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{TargetContainerName: "agent",
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox:1.37",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
				SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE", "SYS_ADMIN"}}}}})
		_, err = clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), "may not share the process namespace of agent") {
			t.Errorf("ephemeral container: %v, want a refusal", err)
		}
	})
}

// What a third look got through, each refused now: a regular container with
// guardchain's name that writes the chain's volume, a non-target container
// that mounts it read-only (a privileged one remounts it), a debugger in a
// pod that shares its process namespace, and a writer whose securityContext
// leaves /tmp without the sticky bit.
func TestControlPlaneThirdReviewFindingsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns, webhooked, judge := judgedWithWebhook(t, cfg)
	// refused: by the policy and the audit, and, through the webhook,
	// refused or (rendered anew) judged guarded.
	refused := func(t *testing.T, p *corev1.Pod, want string) {
		t.Helper()
		p.Namespace = ns
		if _, err := dryRunCreate(ns, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy: %v, want a refusal saying %q", err, want)
		}
		if probs, err := judge.Problems(p); err != nil || len(probs) == 0 {
			t.Errorf("audit: %v %v, want it judged unguarded", probs, err)
		}
		p.Namespace = webhooked
		if got, err := dryRunCreate(webhooked, p); err == nil {
			if probs, _ := judge.Problems(got); len(probs) > 0 {
				t.Errorf("the webhook admitted it as %v", probs)
			}
		}
	}
	scratch := func(p *corev1.Pod) {
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp"}}
		addVolume(p, "scratch", emptyDir)
	}
	t.Run("a regular container named guardchain-bin writing the chain's volume", func(t *testing.T) {
		// (With a copying image source, guardchain-bin is an init
		// container already, and the API refuses a second of the name.)
		for _, source := range []string{"embedded"} {
			p := agentPod("named-" + source)
			p.Annotations[webhook.AnnotationSource] = source
			scratch(p)
			p = webhook.Inject(p, cfg).Pod
			p.Spec.Containers = append([]corev1.Container{{Name: webhook.BinContainerName, Image: "busybox:1.37",
				VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/chain"}}}}, p.Spec.Containers...)
			refused(t, p, "mounts the volume that holds the guard chain")
		}
	})
	t.Run("an init container named guardchain-bin before an embedded writer", func(t *testing.T) {
		p := agentPod("bin-first")
		p.Annotations[webhook.AnnotationSource] = "embedded"
		p = webhook.Inject(p, cfg).Pod
		p.Spec.InitContainers = append([]corev1.Container{{Name: webhook.BinContainerName, Image: "busybox:1.37",
			VolumeMounts: []corev1.VolumeMount{{Name: webhook.VolumeName, MountPath: "/chain"}}}}, p.Spec.InitContainers...)
		refused(t, p, "guardchain: pod ")
	})
	t.Run("a privileged native sidecar with a read-only mount of the chain's volume", func(t *testing.T) {
		p := webhook.Inject(agentPod("remount"), cfg).Pod
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "helper", Image: "busybox:1.37",
			RestartPolicy:   ptr.To(corev1.ContainerRestartPolicyAlways),
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			VolumeMounts:    []corev1.VolumeMount{{Name: webhook.VolumeName, MountPath: "/chain", ReadOnly: true}}})
		refused(t, p, "mounts the volume that holds the guard chain")
	})
	t.Run("a writer run as the owner in a pod that does not ask to run as non-root", func(t *testing.T) {
		p := webhook.Inject(agentPod("nonsticky"), cfg).Pod
		sc := writerOf(p).SecurityContext
		sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot = ptr.To(int64(998)), ptr.To(int64(998)), ptr.To(true)
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		refused(t, p, "does not have the configured settings")
	})
	t.Run("an ephemeral container in a pod that shares its process namespace", func(t *testing.T) {
		pod := agentPod("sharedpid")
		pod.Spec.ShareProcessNamespace = ptr.To(true)
		p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(pod, cfg).Pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "busybox:1.37", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(998)), RunAsGroup: ptr.To(int64(998))}}})
		_, err = clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), "no ephemeral container in a pod that shares its process namespace") {
			t.Errorf("ephemeral container: %v, want a refusal", err)
		}
	})
}

// What a fourth look got through, each refused now: marks removed by an
// UPDATE to take the pod out of the checks, a subPathExpr from a value that
// can change after create, the audit passing ephemeral containers, and a
// block device in a target's /tmp.
func TestControlPlaneFourthReviewFindingsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns, judge := judged(t, cfg)
	debugger := corev1.EphemeralContainer{TargetContainerName: "agent", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debugger", Image: "busybox:1.37", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}}
	t.Run("marks removed, then a debugger and new images", func(t *testing.T) {
		p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(agentPod("stripped"), cfg).Pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(p.Annotations, webhook.SandboxIDAnnotation)
		if p, err = clientset.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("removing the marks: %v", err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, debugger)
		if _, err := clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{}); err == nil {
			t.Error("a debugger in a target's process namespace admitted once the marks were gone")
		}
		p.Spec.EphemeralContainers = nil
		p.Spec.Containers[0].Image = "attacker.example/agent:1"
		if _, err := clientset.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err == nil {
			t.Error("a new agent image admitted once the marks were gone")
		}
		if !(audit.Reference{Judge: judge}).Targeted(p) {
			t.Error("the audit no longer looks at the pod once its marks are gone")
		}
	})
	t.Run("the audit judges ephemeral containers", func(t *testing.T) {
		p := webhook.Inject(agentPod("debugged"), cfg).Pod
		p.Namespace = ns
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugger}
		if probs, err := judge.Problems(p); err != nil || len(probs) == 0 {
			t.Errorf("audit: %v %v, want a debugger in a target's process namespace judged unguarded", probs, err)
		}
	})
	t.Run("a hand-written subPathExpr from an annotation", func(t *testing.T) {
		p := agentPod("annotated-subpath")
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "D", Value: "a"}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp", SubPathExpr: "$(D)"}}
		addVolume(p, "scratch", emptyDir)
		p = webhook.Inject(p, cfg).Pod
		fromAnnotation := corev1.EnvVar{Name: "D", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['d']"}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{fromAnnotation}
		w := writerOf(p)
		for i := range w.Env {
			if w.Env[i].Name == "D" {
				w.Env[i] = fromAnnotation
			}
		}
		p.Namespace = ns
		if _, err := dryRunCreate(ns, p); err == nil || !strings.Contains(err.Error(), "does not have the configured settings") {
			t.Errorf("policy: %v, want a refusal", err)
		}
		if probs, _ := judge.Problems(p); len(probs) == 0 {
			t.Error("audit: judged guarded")
		}
	})
	t.Run("a hand-written block device over a chain file", func(t *testing.T) {
		p := webhook.Inject(agentPod("device"), cfg).Pod
		p.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "blk", DevicePath: "/tmp/nemoclaw-sandbox-safety-net.js"}}
		addVolume(p, "blk", corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeMode: ptr.To(corev1.PersistentVolumeBlock),
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}}})
		p.Namespace = ns
		if _, err := dryRunCreate(ns, p); err == nil || !strings.Contains(err.Error(), "does not mount at /tmp") {
			t.Errorf("policy: %v, want a refusal", err)
		}
		if probs, _ := judge.Problems(p); len(probs) == 0 {
			t.Error("audit: judged guarded")
		}
	})
}

// What a fifth look got through, each refused now: a debugger in an init
// container's process namespace, and a /tmp subPathExpr naming a variable
// the pod does not declare (the kubelet fills Service links in).
func TestControlPlaneFifthReviewFindingsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns, webhooked, judge := judgedWithWebhook(t, cfg)
	for _, target := range []string{webhook.InitContainerName, webhook.BinContainerName} {
		t.Run("a debugger in "+target+"'s process namespace", func(t *testing.T) {
			p, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(agentPod("dbg-"+target), cfg).Pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: target, EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debugger", Image: "busybox:1.37", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}}}
			if _, err := clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{}); err == nil ||
				!strings.Contains(err.Error(), "or of an init container") {
				t.Errorf("ephemeral container: %v, want a refusal", err)
			}
			if probs, _ := judge.Problems(p); len(probs) == 0 {
				t.Error("audit: judged guarded")
			}
		})
	}
	for _, expr := range []string{"d$(GCPROBE_SERVICE_HOST)", "$(KUBERNETES_SERVICE_HOST)", "$(D)-x"} {
		t.Run("a /tmp subPathExpr "+expr, func(t *testing.T) {
			p := agentPod("servicelink")
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "D", Value: "a"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp", SubPathExpr: expr}}
			addVolume(p, "scratch", emptyDir)
			if _, err := dryRunCreate(webhooked, p.DeepCopy()); err == nil || !strings.Contains(err.Error(), "write it as one $(NAME)") {
				t.Errorf("webhook: %v, want a refusal", err)
			}
			// Written by hand as the webhook renders a subPathExpr pod.
			q := agentPod("servicelink")
			q.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "D", Value: "a"}}
			q.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/tmp", SubPathExpr: "$(D)"}}
			addVolume(q, "scratch", emptyDir)
			q = webhook.Inject(q, cfg).Pod
			q.Spec.Containers[0].VolumeMounts[0].SubPathExpr = expr
			for i := range writerOf(q).VolumeMounts {
				if writerOf(q).VolumeMounts[i].MountPath == "/tmp" {
					writerOf(q).VolumeMounts[i].SubPathExpr = expr
				}
			}
			q.Namespace = ns
			if _, err := dryRunCreate(ns, q); err == nil || !strings.Contains(err.Error(), "does not have the configured settings") {
				t.Errorf("policy: %v, want a refusal", err)
			}
			if probs, _ := judge.Problems(q); len(probs) == 0 {
				t.Error("audit: judged guarded")
			}
		})
	}
}

// judged is cfg's backstop on a fresh sandbox namespace, and the audit's
// judgment by the same expressions.
func judged(t *testing.T, cfg webhook.Config) (ns string, judge *audit.Judge) {
	t.Helper()
	ns = namespace(t, "openshell", nil)
	enforce(t, cfg, []string{ns})
	return ns, judgeOf(t, cfg)
}

// judgedWithWebhook is judged with two namespaces: one the backstop alone
// judges, one the webhook serves too.
func judgedWithWebhook(t *testing.T, cfg webhook.Config) (policyOnly, webhooked string, judge *audit.Judge) {
	t.Helper()
	policyOnly, webhooked = namespace(t, "openshell", nil), namespace(t, "openshell", nil)
	// Registered first, so that the policy is gone when the registration's
	// cleanup probes for it to be dropped.
	register(t, cfg, startWebhook(t, cfg), webhook.RegistrationOptions{Namespaces: []string{webhooked}})
	enforce(t, cfg, []string{policyOnly, webhooked})
	return policyOnly, webhooked, judgeOf(t, cfg)
}

// judgeOf is the audit's judgment for cfg: the backstop's own expressions.
func judgeOf(t *testing.T, cfg webhook.Config) *audit.Judge {
	t.Helper()
	pol, _ := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{Registration: webhook.RegistrationOptions{Name: "judge"}, Repositories: testRepos})
	judge, err := audit.NewJudge(pol.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return judge
}
