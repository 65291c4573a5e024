package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/audit"
	"github.com/guardchain/guardchain/webhook"
)

// What a sixth look got through: a target's termination message file
// mounted over a chain file, a mount that a symlink in another volume moves
// onto /tmp, an update of the annotations that chose a pod's settings, and,
// with an objectSelector, two updates that took a pod out of the checks.

// mountAttacks are forgeries of an injected pod's target (the first
// container) that runc would carry over /tmp or a chain file.
func mountAttacks() []attack {
	const unclean = "not clean and absolute"
	const over = "over its files"
	const nested = "inside another of its volumes whose files a container can write"
	target := func(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }
	// mountEmptyDir adds an emptyDir named name and mounts it in the target
	// at path.
	mountEmptyDir := func(p *corev1.Pod, name, path string) {
		addVolume(p, name, emptyDir)
		target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path})
	}
	// pair mounts an emptyDir (where a symlink may be left) at outer and
	// another at inner, in the target.
	pair := func(name, outer, inner string) attack {
		return attack{name, nested, func(p *corev1.Pod) {
			addVolume(p, "links", emptyDir)
			addVolume(p, "decoy", emptyDir)
			target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: "links", MountPath: outer},
				corev1.VolumeMount{Name: "decoy", MountPath: inner})
		}}
	}
	var out []attack
	// The kubelet bind-mounts a fresh, world-writable file at the
	// termination message path, after the volumes (and deeper paths later).
	for _, path := range []string{"/tmp/nemoclaw-sandbox-safety-net.js", "/tmp/nemoclaw-proxy-env.sh", "/tmp"} {
		out = append(out, attack{"the termination message at " + path, over, func(p *corev1.Pod) { target(p).TerminationMessagePath = path }})
	}
	for _, path := range []string{"tmp/nemoclaw-ciao-network-guard.js", "/tmp//./nemoclaw-proxy-env.sh", "/./tmp/nemoclaw-proxy-env.sh",
		"/tmp/../tmp/nemoclaw-proxy-env.sh", "/tmp/nemoclaw-proxy-env.sh/", "//tmp/nemoclaw-proxy-env.sh", "/dev/../tmp/nemoclaw-proxy-env.sh"} {
		out = append(out, attack{"the termination message at " + path, unclean, func(p *corev1.Pod) { target(p).TerminationMessagePath = path }})
	}
	// A volume at /a in which an earlier container left tmp -> /tmp, and
	// another at /a/tmp: runc resolves /a/tmp through the symlink and mounts
	// the second over the chain. Every volume a container (or its
	// provisioner, or an image) can fill is such an /a.
	outers := map[string]corev1.VolumeSource{
		"an emptyDir":             emptyDir,
		"a persistentVolumeClaim": {PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "links"}},
		"an ephemeral volume": {Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Mi")}}}}}},
	}
	for kind, src := range outers {
		out = append(out, attack{"a mount inside " + kind + " at /a", nested, func(p *corev1.Pod) {
			addVolume(p, "links", src)
			addVolume(p, "decoy", emptyDir)
			target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: "links", MountPath: "/a"},
				corev1.VolumeMount{Name: "decoy", MountPath: "/a/tmp"})
		}})
	}
	out = append(out,
		attack{"a mount inside a subPath of an emptyDir", nested, func(p *corev1.Pod) {
			addVolume(p, "links", emptyDir)
			target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: "links", MountPath: "/a", SubPath: "s"},
				corev1.VolumeMount{Name: "links", MountPath: "/a/b/tmp", SubPath: "t"})
		}},
		attack{"a read-only mount inside an emptyDir", nested, func(p *corev1.Pod) {
			addVolume(p, "links", emptyDir)
			addVolume(p, "decoy", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "decoy"}}})
			target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: "links", MountPath: "/a", ReadOnly: true},
				corev1.VolumeMount{Name: "decoy", MountPath: "/a/tmp", ReadOnly: true})
		}},
		attack{"the termination message inside an emptyDir", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "links", "/a")
			target(p).TerminationMessagePath = "/a/tmp/nemoclaw-proxy-env.sh"
		}},
		attack{"a block device inside an emptyDir", nested, func(p *corev1.Pod) {
			addVolume(p, "links", emptyDir)
			addVolume(p, "disk", corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "disk"}})
			target(p).VolumeMounts = append(target(p).VolumeMounts, corev1.VolumeMount{Name: "links", MountPath: "/a"})
			target(p).VolumeDevices = []corev1.VolumeDevice{{Name: "disk", DevicePath: "/a/tmp/nemoclaw-proxy-env.sh"}}
		}},
		// /dev/shm is the pod's, in every container: any may leave
		// x -> /tmp there.
		attack{"a mount inside /dev/shm", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "decoy", "/dev/shm/x")
		}},
		attack{"the termination message inside /dev/shm", nested, func(p *corev1.Pod) {
			target(p).TerminationMessagePath = "/dev/shm/x/nemoclaw-proxy-env.sh"
		}},
		// The image's /var/run -> /run and merged /usr: /var/run/x is
		// inside a volume at /run.
		pair("a mount at /var/run/x inside an emptyDir at /run", "/run", "/var/run/x"),
		pair("a mount at /lib/x inside an emptyDir at /usr/lib", "/usr/lib", "/lib/x"),
		pair("a mount at /run/x inside an emptyDir at /var/run", "/var/run", "/run/x"),
		// A volume at /var hides the image's /var/run -> /run: /var/run
		// is whatever the volume holds there.
		pair("a mount at /var/run inside an emptyDir at /var", "/var", "/var/run"),
		pair("a mount at /var/lock inside an emptyDir at /var", "/var", "/var/lock"),
		attack{"the termination message at /var/run/x inside an emptyDir at /var", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "links", "/var")
			target(p).TerminationMessagePath = "/var/run/nemoclaw-proxy-env.sh"
		}},
		// The runtime's own mounts (/etc/hosts, /etc/hostname,
		// /etc/resolv.conf, /dev/shm, runc's masked /sys paths, CRI-O's
		// /run/secrets) go through a target volume around them.
		attack{"an emptyDir at /etc, around /etc/hosts and /etc/hostname", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "sysdir", "/etc")
		}},
		attack{"an emptyDir at /dev, around /dev/shm", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "sysdir", "/dev")
			target(p).TerminationMessagePath = "/termination-log"
		}},
		attack{"an emptyDir at /sys, around /sys/firmware", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "sysdir", "/sys")
		}},
		attack{"an emptyDir at /var/run, around /run/secrets", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "sysdir", "/var/run")
		}},
		// A volume at / holds every other path (runc refuses it, so such
		// a pod would not start; refused all the same).
		attack{"an emptyDir at /", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "root", "/")
		}},
		// The chain's own volume: any uid may leave a symlink in the
		// sticky /tmp (a second target, before the first starts).
		attack{"a mount inside the chain's /tmp", nested, func(p *corev1.Pod) {
			mountEmptyDir(p, "decoy", "/tmp/cache")
		}},
	)
	return out
}

// Each forgery is refused by the backstop alone, judged unguarded by the
// audit, and refused by the webhook (which sees the target as input).
func TestControlPlaneMountsOverOrIntoTheChainAreRefused(t *testing.T) {
	for _, variant := range []struct{ name, config string }{
		{"source auto", "source: auto\nimageVolume: never\n"},
		{"source embedded", "source: embedded\n"},
	} {
		t.Run(variant.name, func(t *testing.T) {
			cfg := testConfig(t, variant.config)
			policyOnly, webhooked, judge := judgedWithWebhook(t, cfg)
			for _, a := range mountAttacks() {
				t.Run(a.name, func(t *testing.T) {
					// Offline-injected, then forged: the backstop alone.
					p := webhook.Inject(agentPod("mount"), cfg).Pod
					p.Namespace = policyOnly
					a.forge(p)
					if _, err := dryRunCreate(policyOnly, p); err == nil || !strings.Contains(err.Error(), a.want) {
						t.Errorf("policy: %v, want a refusal saying %q", err, a.want)
					}
					if probs, err := judge.Problems(p); err != nil || !containsAny(probs, a.want) {
						t.Errorf("audit: problems %q (%v), want one saying %q", probs, err, a.want)
					}
					// Written so before the webhook sees it.
					q := agentPod("mount")
					a.forge(q)
					q.Namespace = webhooked
					if got, err := dryRunCreate(webhooked, q); err == nil {
						t.Errorf("webhook: admitted, annotated %v", got.Annotations)
					}
					if res := webhook.Inject(q, cfg); res.Outcome != webhook.OutcomeDenied {
						t.Errorf("inject: %s %v, want it denied", res.Outcome, res.Warnings())
					}
				})
			}
		})
	}
}

func containsAny(msgs []string, want string) bool {
	for _, m := range msgs {
		if strings.Contains(m, want) {
			return true
		}
	}
	return false
}

// A mount inside a volume only the kubelet writes, without symlinks that
// leave it (configMap, secret, downwardAPI, projected), and one beside /tmp
// rather than in it, stay admitted by all three.
func TestControlPlaneMountsInsideKubeletWrittenVolumesAreAdmitted(t *testing.T) {
	cfg := testConfig(t, "")
	policyOnly, webhooked, judge := judgedWithWebhook(t, cfg)
	for kind, src := range map[string]corev1.VolumeSource{
		"configMap":   {ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		"secret":      {Secret: &corev1.SecretVolumeSource{SecretName: "cfg"}},
		"downwardAPI": {DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
		"projected":   {Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}},
	} {
		t.Run("inside a "+kind, func(t *testing.T) {
			p := agentPod("nested")
			addVolume(p, "outer", src)
			addVolume(p, "inner", emptyDir)
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "outer", MountPath: "/etc/app"}, {Name: "inner", MountPath: "/etc/app/state"},
				{Name: "inner", MountPath: "/var/tmp", SubPath: "x"}}
			q := p.DeepCopy()
			q.Namespace = webhooked
			got, err := dryRunCreate(webhooked, q)
			if err != nil || !injected(got) {
				t.Fatalf("webhook: %v", err)
			}
			if probs, _ := judge.Problems(got); len(probs) > 0 {
				t.Errorf("audit: %v", probs)
			}
			r := webhook.Inject(p, cfg).Pod
			r.Namespace = policyOnly
			if _, err := dryRunCreate(policyOnly, r); err != nil {
				t.Errorf("policy: %v", err)
			}
		})
	}
	// A larger shared memory, as pods mount it: at /dev/shm itself, with
	// nothing inside.
	t.Run("an emptyDir at /dev/shm", func(t *testing.T) {
		p := agentPod("shm")
		addVolume(p, "shm", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}})
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "shm", MountPath: "/dev/shm"}}
		q := p.DeepCopy()
		q.Namespace = webhooked
		got, err := dryRunCreate(webhooked, q)
		if err != nil || !injected(got) {
			t.Fatalf("webhook: %v", err)
		}
		if probs, _ := judge.Problems(got); len(probs) > 0 {
			t.Errorf("audit: %v", probs)
		}
	})
}

// The audit judges a running pod by its annotations as they are: an update
// may not change the ones that chose its settings (it runs what they said
// at create), while other annotations still change freely.
func TestControlPlaneUpdatesOfTheSettingsAnnotationsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns, judge := judged(t, cfg)
	for i, tt := range []struct{ from, to string }{{"embedded", "auto"}, {"auto", "embedded"}, {"embedded", ""}, {"", "embedded"}} {
		t.Run(tt.from+" to "+tt.to, func(t *testing.T) {
			p := agentPod(fmt.Sprintf("relabel-%d", i))
			if tt.from != "" {
				p.Annotations[webhook.AnnotationSource] = tt.from
			}
			got, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(p, cfg).Pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ok := got.DeepCopy()
			ok.Annotations["example.com/note"] = "changed"
			if _, err := clientset.CoreV1().Pods(ns).Update(ctx, ok, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("another annotation's update: %v", err)
			}
			if tt.to == "" {
				delete(got.Annotations, webhook.AnnotationSource)
			} else {
				got.Annotations[webhook.AnnotationSource] = tt.to
			}
			if _, err := clientset.CoreV1().Pods(ns).Update(ctx, got, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "may not change the guardchain.dev/ annotations") {
				t.Errorf("update: %v, want a refusal", err)
			}
			if probs, _ := judge.Problems(got); len(probs) == 0 {
				t.Errorf("audit: the pod as the refused update would leave it judged guarded")
			}
		})
	}
}

// With webhook.objectSelector set, the labels it reads are pinned on an
// injected pod: removing one is refused (without it the pod would leave the
// checks), as is changing the images with it in place; a sandbox pod the
// selector leaves out is neither injected, nor refused, nor reported.
func TestControlPlaneTheSelectedLabelsOfAnInjectedPodArePinned(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns := namespace(t, "openshell", nil)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"openshell.dev/sandbox-managed": "true"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"test"}}}}
	enforceSelected(t, cfg, []string{ns}, sel)
	pol, _ := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{Registration: webhook.RegistrationOptions{Name: "judge", ObjectSelector: sel},
		Repositories: testRepos})
	judge, err := audit.NewJudge(pol.Spec)
	if err != nil {
		t.Fatal(err)
	}
	unlabelled := agentPod("unlabelled")
	if _, err := dryRunCreate(ns, unlabelled); err != nil {
		t.Errorf("a pod the objectSelector leaves out: %v, want it admitted uninjected", err)
	}
	if sel, err := judge.Selects(unlabelled); err != nil || sel {
		t.Errorf("audit: selects the pod the objectSelector leaves out (%v)", err)
	}
	p := agentPod("selected")
	p.Labels = map[string]string{"openshell.dev/sandbox-managed": "true"}
	if _, err := dryRunCreate(ns, p.DeepCopy()); err == nil {
		t.Error("a selected pod without the chain was admitted")
	}
	got, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(p, cfg).Pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(q *corev1.Pod){
		"removing the selected label":   func(q *corev1.Pod) { delete(q.Labels, "openshell.dev/sandbox-managed") },
		"changing the selected label":   func(q *corev1.Pod) { q.Labels["openshell.dev/sandbox-managed"] = "no" },
		"adding a label it excludes by": func(q *corev1.Pod) { q.Labels["tier"] = "test" },
	} {
		q := got.DeepCopy()
		edit(q)
		if _, err := clientset.CoreV1().Pods(ns).Update(ctx, q, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil ||
			!strings.Contains(err.Error(), "may not change the labels") {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	q := got.DeepCopy()
	q.Labels["example.com/other"] = "x"
	if _, err := clientset.CoreV1().Pods(ns).Update(ctx, q, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("another label: %v", err)
	}
	for i := range got.Spec.InitContainers {
		got.Spec.InitContainers[i].Image = "busybox:1.37"
	}
	if _, err := clientset.CoreV1().Pods(ns).Update(ctx, got, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "may not change the images") {
		t.Errorf("changing the images: %v, want a refusal", err)
	}
}

// An ephemeral container comes by update: one with an unclean mount path is
// refused then, as the audit judges it.
func TestControlPlaneEphemeralContainersWithUncleanMountsAreRefused(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, "")
	ns, judge := judged(t, cfg)
	p := agentPod("debugged")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "web", Image: "busybox:1.37"})
	addVolume(p, "scratch", emptyDir)
	got, err := clientset.CoreV1().Pods(ns).Create(ctx, webhook.Inject(p, cfg).Pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "web", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox:1.37", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "scratch"}}}}}
	if _, err := clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, got.Name, got, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "not clean and absolute") {
		t.Errorf("ephemeral container: %v, want a refusal", err)
	}
	if probs, _ := judge.Problems(got); !containsAny(probs, "not clean and absolute") {
		t.Errorf("audit: %v", probs)
	}
	got.Spec.EphemeralContainers[0].VolumeMounts[0].MountPath = "/scratch"
	if _, err := clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, got.Name, got, metav1.UpdateOptions{}); err != nil {
		t.Errorf("a clean one: %v", err)
	}
}

// In a pod that shares its process namespace, a container running as the
// chain's owner reaches the target's /tmp through /proc/<pid>/root: each
// container but the targets must say its user, and not the owner's.
func TestControlPlaneSameUserContainersInASharedProcessNamespaceAreRefused(t *testing.T) {
	cfg := testConfig(t, "")
	policyOnly, webhooked, judge := judgedWithWebhook(t, cfg)
	user := func(uid int64) *corev1.SecurityContext { return &corev1.SecurityContext{RunAsUser: &uid} }
	shared := func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }
	for _, tt := range []struct {
		name    string
		shared  func(p *corev1.Pod)
		helper  *corev1.SecurityContext
		refused bool
		target  func(c *corev1.Container)
	}{
		// The owner is 998 (OPENSHELL_SANDBOX_UID) while the target runs as
		// 1000: a helper as 1000 reaches the target's processes, and a
		// writer that is not root leaves /tmp without the sticky bit.
		{"shareProcessNamespace, the target's uid", shared, user(1000), true, func(c *corev1.Container) {
			c.SecurityContext = user(1000)
			c.Env = []corev1.EnvVar{{Name: "OPENSHELL_SANDBOX_UID", Value: "998"}}
		}},
		{"shareProcessNamespace, the target's OPENSHELL_SANDBOX_UID", shared, user(1500), true, func(c *corev1.Container) {
			c.SecurityContext = user(0)
			c.Env = []corev1.EnvVar{{Name: "OPENSHELL_SANDBOX_UID", Value: "1500"}}
		}},
		{"shareProcessNamespace, a target without a user", shared, user(1234), true, func(c *corev1.Container) { c.SecurityContext = nil }},
		{"shareProcessNamespace, the owner's uid", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, user(998), true, nil},
		{"hostPID, the owner's uid", func(p *corev1.Pod) { p.Spec.HostPID = true }, user(998), true, nil},
		{"shareProcessNamespace, no user", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, nil, true, nil},
		{"shareProcessNamespace, root", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, user(0), false, nil},
		{"shareProcessNamespace, another uid", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, user(1234), false, nil},
		{"no shared namespace, no user", func(*corev1.Pod) {}, nil, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			build := func() *corev1.Pod {
				p := agentPod("pidns")
				p.Spec.Containers[0].SecurityContext = user(998)
				if tt.target != nil {
					tt.target(&p.Spec.Containers[0])
				}
				tt.shared(p)
				return p
			}
			withHelper := func(p *corev1.Pod) {
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: "busybox:1.37", SecurityContext: tt.helper})
			}
			q := build()
			withHelper(q)
			q.Namespace = webhooked
			if _, err := dryRunCreate(webhooked, q); (err != nil) != tt.refused {
				t.Errorf("webhook: %v, want refused %v", err, tt.refused)
			}
			// The webhook's pod without the helper, which is then added.
			r := webhook.Inject(build(), cfg).Pod
			withHelper(r)
			r.Namespace = policyOnly
			if _, err := dryRunCreate(policyOnly, r); (err != nil) != tt.refused || (err != nil && !strings.Contains(err.Error(), "shares its process namespace")) {
				t.Errorf("policy: %v, want refused %v", err, tt.refused)
			}
			if probs, _ := judge.Problems(r); (len(probs) > 0) != tt.refused {
				t.Errorf("audit: %v, want problems %v", probs, tt.refused)
			}
		})
	}
}
