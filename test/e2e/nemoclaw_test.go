//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/webhook"
)

// The NemoClaw-shaped sandbox (test/nemoclaw, image nemoclaw-sandbox):
// USER 998:998, packaged preloads, an entrypoint that re-stages them with
// mv -f and exits on failure. Its pods run the image's own entrypoint.
const nemoclawApp = "e2e-nemoclaw"

var nemoclawCore = []string{"sandbox-safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard"}

// nemoclawPod is the pod template: the image's entrypoint and user unless mod
// changes them.
func (e *env) nemoclawPod(mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-nemoclaw-", Labels: map[string]string{"app": nemoclawApp}, Annotations: sandboxMarks()},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{Name: "agent", Image: e.image("nemoclaw-sandbox"), ImagePullPolicy: e.pull,
				Env: []corev1.EnvVar{{Name: "OPENSHELL_SANDBOX", Value: "e2e-nemoclaw"}, {Name: "NODE_USE_ENV_PROXY", Value: "1"}}}}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func (e *env) nemoclawDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": nemoclawApp}
	p := e.nemoclawPod(nil)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: nemoclawApp},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: p.Annotations}, Spec: p.Spec}},
	}
}

// imageChainSHA256 is the sha256 initguards reports for the image's
// packaged preloads: the same files the image was built from.
func imageChainSHA256(t *testing.T) string {
	t.Helper()
	paths, err := filepath.Glob("../nemoclaw/preloads/*.js")
	if err != nil || len(paths) == 0 {
		t.Fatalf("preloads: %v", err)
	}
	var ps []guards.Preload
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, guards.Preload{Name: filepath.Base(p), Bytes: b})
	}
	c, err := guards.FromPreloads(guards.PackagedDir, ps)
	if err != nil {
		t.Fatal(err)
	}
	return c.SHA256()
}

// stagedReport is guardchain-init's termination message.
func stagedReport(t *testing.T, p *corev1.Pod) (r struct {
	SHA256, Source, Ownership string
	Files                     []string
}) {
	t.Helper()
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name == webhook.InitContainerName && s.State.Terminated != nil {
			if err := json.Unmarshal([]byte(s.State.Terminated.Message), &r); err != nil {
				t.Fatalf("pod %s: %s termination message %q: %v", p.Name, s.Name, s.State.Terminated.Message, err)
			}
			return r
		}
	}
	t.Fatalf("pod %s: no terminated %s", p.Name, webhook.InitContainerName)
	return r
}

// checkNemoClawStarted: the image's entrypoint staged its preloads as uid,
// and its gateway loaded the image's preloads before its first line; the
// chain guardchain staged before it was the image's.
func (e *env) checkNemoClawStarted(t *testing.T, p *corev1.Pod, uid int, wantSHA string) {
	t.Helper()
	if r := stagedReport(t, p); r.Source != guards.PackagedDir || r.SHA256 != wantSHA {
		t.Errorf("pod %s: guardchain staged %+v, want the image's preloads (sha256 %s)", p.Name, r, wantSHA)
	}
	// The entrypoint's line, then the gateway's first line, a JSON object.
	logs := e.logsWith(t, p, "agent", "\n{")
	if want := fmt.Sprintf("[nemoclaw-start] staged 4 preloads as uid %d", uid); !strings.Contains(logs, want) {
		t.Errorf("pod %s: entrypoint did not say %q:\n%s", p.Name, want, logs)
	}
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "{") {
			line = l
		}
	}
	var got struct {
		Loaded, Image []string
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("pod %s: gateway output %q: %v", p.Name, logs, err)
	}
	var want []string
	for _, n := range nemoclawCore {
		want = append(want, "/tmp/nemoclaw-"+n+".js")
	}
	if !slices.Equal(got.Loaded, want) || !slices.Equal(got.Image, nemoclawCore) {
		t.Errorf("pod %s: gateway loaded %v (image preloads %v), want %v (%v)", p.Name, got.Loaded, got.Image, want, nemoclawCore)
	}
}

// waitPod waits for a pod by name to reach what done says.
func (e *env) waitPod(t *testing.T, ns, name, what string, done func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	waitFor(t, what, 3*time.Minute, func() error {
		var err error
		if p, err = e.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return err
		}
		return done(p)
	})
	return p
}

func ready(p *corev1.Pod) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("%s not ready (%s)", p.Name, p.Status.Phase)
}

// testNemoClaw runs with the chart installed with its defaults (but that
// pods may name targets, which these pods do not).
func (e *env) testNemoClaw(t *testing.T) {
	ctx := context.Background()
	sha := imageChainSHA256(t)
	t.Cleanup(func() { _ = e.cs.AppsV1().Deployments(sandboxNS).Delete(ctx, nemoclawApp, metav1.DeleteOptions{}) })

	t.Run("a stock NemoClaw sandbox (uid 998) starts with the image's preloads, on create and 3 recreates", func(t *testing.T) {
		done := step(t, "nemoclaw sandbox ready")
		if _, err := e.cs.AppsV1().Deployments(sandboxNS).Create(ctx, e.nemoclawDeployment(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := e.waitAppPod(t, nemoclawApp, "")
		done()
		e.checkNemoClawStarted(t, pod, 998, sha)
		for i := 1; i <= 3; i++ {
			done := step(t, fmt.Sprintf("nemoclaw recreate %d", i))
			if err := e.cs.CoreV1().Pods(sandboxNS).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(1))}); err != nil {
				t.Fatal(err)
			}
			pod = e.waitAppPod(t, nemoclawApp, pod.Name)
			done()
			e.checkNemoClawStarted(t, pod, 998, sha)
		}
	})

	t.Run("a sandbox that fills /tmp's caches past 64Mi is not evicted", func(t *testing.T) {
		// What an npm install does to npm_config_cache in /tmp. A /tmp capped
		// at 64Mi (the old default) gets the pod evicted at the kubelet's next
		// local-storage check (every 10 s, on usage measured every 5 s here);
		// so does an ephemeral-storage limit on guardchain's init container
		// (8Mi, the old default), which the kubelet takes as the whole pod's
		// when the sandbox's containers set none.
		// The Ready one: the pod the last recreate deleted may still be
		// listed, in a terminal phase (the kubelet sets it before removal).
		p := e.waitAppPod(t, nemoclawApp, "")
		e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", sandboxNS, "exec", p.Name, "-c", "agent", "--",
			"sh", "-c", "mkdir -p /tmp/.npm && dd if=/dev/zero of=/tmp/.npm/cache.bin bs=1M count=96 2>/dev/null && ls -l /tmp/.npm/cache.bin")
		time.Sleep(25 * time.Second)
		got, err := e.cs.CoreV1().Pods(sandboxNS).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != corev1.PodRunning || got.Status.Reason == "Evicted" || ready(got) != nil {
			t.Errorf("pod %s after 96Mi in /tmp: phase %s, reason %q: %s", p.Name, got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
	})

	// A pod says its entrypoint runs as root the way OpenShell says who runs
	// it: OPENSHELL_SANDBOX_UID (ownership auto reads it; the annotation is
	// the operator's to allow).
	rootEnv := corev1.EnvVar{Name: webhook.EnvSandboxUID, Value: "0"}
	t.Run("a root-runtime NemoClaw sandbox with ownership root starts", func(t *testing.T) {
		p, err := e.cs.CoreV1().Pods(sandboxNS).Create(ctx, e.nemoclawPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, rootEnv)
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), RunAsGroup: ptr.To(int64(0))}
		}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p = e.waitPod(t, sandboxNS, p.Name, "the root-runtime sandbox Ready", ready)
		e.checkNemoClawStarted(t, p, 0, sha)
		if r := stagedReport(t, p); r.Ownership != "root" {
			t.Errorf("staged with ownership %q, want root", r.Ownership)
		}
	})

	t.Run("control: ownership root makes the uid-998 entrypoint fail", func(t *testing.T) {
		p, err := e.cs.CoreV1().Pods(sandboxNS).Create(ctx, e.nemoclawPod(func(p *corev1.Pod) {
			// The env says root; the image's USER 998 runs the entrypoint.
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, rootEnv)
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
		}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p = e.waitPod(t, sandboxNS, p.Name, "the entrypoint to exit", func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodFailed {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		})
		code := int32(-1)
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "agent" && s.State.Terminated != nil {
				code = s.State.Terminated.ExitCode
			}
		}
		logs := e.logs(t, p, "agent")
		if code != 1 || !strings.Contains(logs, "nemoclaw-sandbox-safety-net.js failed") {
			t.Errorf("entrypoint exit %d, want 1 with the staging failure:\n%s", code, logs)
		}
	})
}

// waitAppPod waits for a Running, ready pod of app other than previous.
func (e *env) waitAppPod(t *testing.T, app, previous string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	waitFor(t, "a running "+app+" pod", 3*time.Minute, func() error {
		pods, err := e.cs.CoreV1().Pods(sandboxNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return err
		}
		// Any Ready one: a pod that failed or was evicted may still be listed.
		notYet := fmt.Errorf("no %s pod yet", app)
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Name == previous || p.DeletionTimestamp != nil {
				continue
			}
			if err := ready(p); err != nil {
				notYet = err
				continue
			}
			found = p
			return nil
		}
		return notYet
	})
	return found
}
