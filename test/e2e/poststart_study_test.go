//go:build e2e && study

package e2e

// A study, not product code: would a native sidecar (an init container with
// restartPolicy: Always) that writes the chain in its postStart exec hook
// hold, that is, could the gateway never start without the complete chain?
// It runs only on the local cluster (build tag study), which it restarts the
// kubelet of and kills containers in:
//
//	make study-poststart
//
// The sidecar is guardchain-init as the webhook renders it for source
// embedded (its env, user, capabilities and /tmp mount), renamed, made
// restartable, in the node-sandbox image (busybox for sleep, initguards at
// /usr/bin/initguards), its main process sleep, its postStart hook
// initguards emit (or a faulty hook). Those pods are created outside the
// webhook's selection, so neither the webhook nor the enforcement policy
// sees them.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/webhook"
)

const sidecarName = "guardchain-sidecar"

// chainFiles is the embedded chain, proxy-env.sh last.
var chainFiles = []string{"nemoclaw-sandbox-safety-net.js", "nemoclaw-http-proxy-fix.js", "nemoclaw-nemotron-inference-fix.js",
	"nemoclaw-ciao-network-guard.js", "nemoclaw-slack-channel-guard.js", "nemoclaw-proxy-env.sh"}

// probeSh logs, first thing in an app container, what /tmp holds (uptime
// stamps: every container reads the host's /proc/uptime).
var probeSh = `read up _ </proc/uptime; have=; miss=
for f in ` + strings.Join(chainFiles, " ") + `; do if [ -f /tmp/$f ]; then have="$have $f"; else miss="$miss $f"; fi; done
echo "PROBE up=$up container=$HOSTNAME/$0 have=[$have ] missing=[$miss ]"
echo "PROBE up=$up have=[$have ] missing=[$miss ]" >> /study/app.log
ls -ln /tmp | sed 's/^/PROBE ls: /'
`

// hookLog appends a stamped line to /study/hook.log.
const hookLog = `hl() { read up _ </proc/uptime; echo "hook up=$up $*" >> /study/hook.log; }; `

const emitSh = `/usr/bin/initguards emit >>/study/emit.out 2>&1; rc=$?; hl "emit rc=$rc"; `

// hide leaves the state an interrupted or failed emit leaves: every guard in
// place, no proxy-env.sh (emit renames it in last).
const hideSh = `mkdir -p /tmp/.held && mv /tmp/nemoclaw-proxy-env.sh /tmp/.held/ && hl "partial: proxy-env.sh held back"; `

type studyKind struct {
	name string
	// app builds the unmutated pod.
	app func(e *env) *corev1.Pod
}

// The kinds of app: stock NemoClaw's entrypoint (the stand-in,
// test/nemoclaw/entrypoint.sh, as uid 998), a gateway that sources
// proxy-env.sh when it is there and starts anyway (optional), and one that
// only starts after sourcing it (sourcing: OpenShell's way, as root).
var studyKinds = []studyKind{
	{"nemoclaw", func(e *env) *corev1.Pod {
		return e.nemoclawPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Command = []string{"/bin/bash", "-c", probeSh +
				`exec /usr/local/bin/nemoclaw-start node /usr/local/lib/nemoclaw/gateway.js gateway`, "nemoclaw"}
		})
	}},
	{"optional", func(e *env) *corev1.Pod {
		return e.nemoclawPod(func(p *corev1.Pod) {
			c := &p.Spec.Containers[0]
			c.Image = e.image("node-sandbox")
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0))}
			c.Command = []string{"/bin/sh", "-c", probeSh +
				`if [ -f /tmp/nemoclaw-proxy-env.sh ]; then . /tmp/nemoclaw-proxy-env.sh; echo "GATEWAY sourced proxy-env.sh"; else echo "GATEWAY no proxy-env.sh, starting anyway"; fi; ` +
				`exec node -e 'console.log("GATEWAY loaded=" + JSON.stringify(Object.keys(require.cache))); setInterval(() => {}, 1 << 30)'`, "optional"}
		})
	}},
	{"sourcing", func(e *env) *corev1.Pod {
		return e.nemoclawPod(func(p *corev1.Pod) {
			c := &p.Spec.Containers[0]
			c.Image = e.image("node-sandbox")
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0))}
			c.Command = []string{"/bin/sh", "-c", probeSh +
				`. /tmp/nemoclaw-proxy-env.sh && echo "GATEWAY sourced proxy-env.sh; NODE_OPTIONS=$NODE_OPTIONS" && ` +
				`exec node -e 'console.log("GATEWAY loaded=" + JSON.stringify(Object.keys(require.cache))); setInterval(() => {}, 1 << 30)'`, "sourcing"}
		})
	}},
}

// sidecarPod is pod as the webhook injects it (source embedded), with
// guardchain-init turned into a restartable sidecar whose postStart runs
// hook. With study, every container also mounts an emptyDir at /study.
func (e *env) sidecarPod(t *testing.T, pod *corev1.Pod, hook string, study bool) *corev1.Pod {
	t.Helper()
	pod.Annotations[webhook.AnnotationSource] = "embedded"
	pod.Namespace = sandboxNS
	got, err := e.cs.CoreV1().Pods(sandboxNS).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[webhook.AnnotationStatus] != webhook.StatusInjected || len(got.Spec.InitContainers) != 1 {
		t.Fatalf("dry-run: not injected: %v", got.Annotations)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "study-", Labels: got.Labels, Annotations: got.Annotations}, Spec: got.Spec}
	notSandbox(p)
	p.Spec.NodeName = ""
	p.Spec.Priority = nil
	sc := &p.Spec.InitContainers[0]
	sc.Name = sidecarName
	sc.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	sc.Image = e.image("node-sandbox")
	sc.Command = []string{"/bin/sleep", "100000000"}
	sc.Args = nil
	if study {
		hook = hookLog + hook
	}
	sc.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", hook}}}}
	if study {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "study", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		m := corev1.VolumeMount{Name: "study", MountPath: "/study"}
		sc.VolumeMounts = append(sc.VolumeMounts, m)
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].VolumeMounts = append(p.Spec.Containers[i].VolumeMounts, m)
		}
	}
	return p
}

// watcher polls a pod and logs every change of its containers' states.
type watcher struct {
	e     *env
	t     *testing.T
	ns    string
	name  string
	t0    time.Time
	last  string
	lines []string
}

func containerLine(s corev1.ContainerStatus) string {
	st := "waiting"
	switch {
	case s.State.Running != nil:
		st = "running since " + s.State.Running.StartedAt.Format("15:04:05")
	case s.State.Terminated != nil:
		st = fmt.Sprintf("terminated(%s, exit %d)", s.State.Terminated.Reason, s.State.Terminated.ExitCode)
	case s.State.Waiting != nil:
		st = "waiting(" + s.State.Waiting.Reason + ")"
		if m := s.State.Waiting.Message; m != "" && s.State.Waiting.Reason != "CrashLoopBackOff" {
			st += " message=" + strconv.Quote(m)
		}
	}
	return fmt.Sprintf("%s=%s restarts=%d started=%v ready=%v", s.Name, st, s.RestartCount, s.Started != nil && *s.Started, s.Ready)
}

func (w *watcher) poll() *corev1.Pod {
	p, err := w.e.cs.CoreV1().Pods(w.ns).Get(context.Background(), w.name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && w.last != "gone" {
			w.last = "gone"
			w.note("pod gone")
		}
		return nil
	}
	var parts []string
	for _, s := range p.Status.InitContainerStatuses {
		parts = append(parts, containerLine(s))
	}
	for _, s := range p.Status.ContainerStatuses {
		parts = append(parts, containerLine(s))
	}
	cur := string(p.Status.Phase) + " ready=" + strconv.FormatBool(ready(p) == nil) + " | " + strings.Join(parts, " | ")
	if cur != w.last {
		w.last = cur
		w.note(cur)
	}
	return p
}

func (w *watcher) note(s string) {
	l := fmt.Sprintf("%-26s +%6.2fs %s", w.name, time.Since(w.t0).Seconds(), s)
	w.lines = append(w.lines, l)
	w.t.Log(l)
}

// watchAll polls the pods every 100 ms for d.
func watchAll(ws []*watcher, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for _, w := range ws {
			w.poll()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uptimeNow is the host's /proc/uptime, the clock the containers stamp with.
func uptimeNow(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// report logs what the pod's containers said, its events and the study files.
func (e *env) report(t *testing.T, w *watcher, upAtT0 float64) {
	t.Helper()
	ctx := context.Background()
	t.Logf("==== %s: uptime at its t0 = %.2f", w.name, upAtT0)
	for _, prev := range []bool{true, false} {
		for _, c := range []string{"agent", sidecarName} {
			b, err := e.cs.CoreV1().Pods(w.ns).GetLogs(w.name, &corev1.PodLogOptions{Container: c, Previous: prev}).DoRaw(ctx)
			if err == nil && len(b) > 0 {
				t.Logf("---- %s logs of %s (previous=%v):\n%s", w.name, c, prev, b)
			}
		}
	}
	for _, c := range []string{sidecarName, "agent"} {
		out, err := e.run(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", w.ns, "exec", w.name, "-c", c, "--",
			"sh", "-c", "echo '# /study/hook.log'; cat /study/hook.log; echo '# /study/app.log'; cat /study/app.log; echo '# /study/emit.out'; cat /study/emit.out; echo '# ls -ln /tmp /tmp/.held'; ls -ln /tmp /tmp/.held 2>&1")
		t.Logf("---- %s exec in %s (err %v):\n%s", w.name, c, err, out)
		if err == nil {
			break
		}
	}
	state := os.Getenv("GUARDCHAIN_LOCAL_STATE")
	if state == "" {
		state = "/tmp/guardchain-local"
	}
	if out, err := exec.Command("sh", "-c", "grep -h -- '"+w.name+"' "+state+"/logs/kubelet*.log | grep -i 'hook\\|lifecycle\\|kill' | cut -c1-600 | head -20").CombinedOutput(); err == nil {
		t.Logf("---- %s kubelet log lines (hook, lifecycle, kill):\n%s", w.name, out)
	}
	evs, err := e.cs.CoreV1().Events(w.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + w.name})
	if err == nil {
		slices.SortFunc(evs.Items, func(a, b corev1.Event) int { return a.FirstTimestamp.Compare(b.FirstTimestamp.Time) })
		var b strings.Builder
		for _, ev := range evs.Items {
			fmt.Fprintf(&b, "  %s..%s x%d %s %s %s: %s\n", ev.FirstTimestamp.Format("15:04:05"), ev.LastTimestamp.Format("15:04:05"), ev.Count,
				ev.Type, ev.Reason, ev.InvolvedObject.FieldPath, ev.Message)
		}
		t.Logf("---- %s events:\n%s", w.name, b.String())
	}
}

func (e *env) clusterScript(t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	out, err := exec.Command("../../deploy/local/cluster.sh", args...).CombinedOutput()
	t.Logf("cluster.sh %s (%.1f s, err %v):\n%s", strings.Join(args, " "), time.Since(start).Seconds(), err, out)
	if err != nil {
		t.Fatal(err)
	}
}

// faultCase creates one pod of each kind with hook, runs during (if any)
// once they exist, watches them for d and reports.
func (e *env) faultCase(t *testing.T, hook string, d time.Duration, during func(ws []*watcher)) []*watcher {
	t.Helper()
	ctx := context.Background()
	var ws []*watcher
	up0 := uptimeNow(t)
	t0 := time.Now()
	for _, k := range studyKinds {
		p := e.sidecarPod(t, k.app(e), hook, true)
		p.GenerateName = "study-" + k.name + "-"
		got, err := e.cs.CoreV1().Pods(otherNS).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, &watcher{e: e, t: t, ns: otherNS, name: got.Name, t0: t0})
	}
	if during != nil {
		during(ws)
	}
	watchAll(ws, d)
	for _, w := range ws {
		e.report(t, w, up0)
	}
	return ws
}

func TestPostStartStudy(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.must(t, "helm", e.helmArgs("install", "--create-namespace")...)
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	for _, ns := range []string{sandboxNS, otherNS} {
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	waitFor(t, "the default ServiceAccount in "+otherNS, time.Minute, func() error {
		_, err := e.cs.CoreV1().ServiceAccounts(otherNS).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	e.waitInjecting(t)
	t.Logf("cluster: %s", e.clusterVersions(t))
	cleanup := func() {
		_ = e.cs.CoreV1().Pods(otherNS).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, metav1.ListOptions{})
		waitFor(t, "the study pods to go", 2*time.Minute, func() error {
			l, err := e.cs.CoreV1().Pods(otherNS).List(ctx, metav1.ListOptions{})
			if err == nil && len(l.Items) > 0 {
				err = fmt.Errorf("%d pods left", len(l.Items))
			}
			return err
		})
	}
	only := os.Getenv("STUDY_ONLY") // e.g. "4" or "ready"; empty: all

	if only == "" || only == "ready" {
		t.Run("ready", func(t *testing.T) { e.studyReady(t) })
		cleanup()
	}

	if only == "" || only == "1" {
		t.Run("1 hook fails", func(t *testing.T) {
			e.faultCase(t, emitSh+hideSh+`hl "exiting 1"; echo "hook: emit done, proxy-env.sh held back, failing" >&2; exit 1`, 45*time.Second, nil)
		})
		cleanup()
	}
	if only == "" || only == "2" {
		t.Run("2 hook hangs", func(t *testing.T) {
			ws := e.faultCase(t, emitSh+hideSh+`hl "sleeping 100000"; sleep 100000; hl "slept"`, 45*time.Second, nil)
			// How long does deleting a pod whose hook hangs take?
			start := time.Now()
			for _, w := range ws {
				_ = e.cs.CoreV1().Pods(w.ns).Delete(ctx, w.name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(1))})
			}
			for time.Since(start) < 3*time.Minute {
				gone := 0
				for _, w := range ws {
					if w.poll() == nil {
						gone++
					}
				}
				if gone == len(ws) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("delete (grace 1 s) to gone: %.1f s (limit 180 s)", time.Since(start).Seconds())
		})
		cleanup()
	}
	if only == "" || only == "3" {
		t.Run("3 kubelet restart during the hook", func(t *testing.T) {
			e.faultCase(t, emitSh+hideSh+`hl "sleeping 25"; sleep 25; mv /tmp/.held/nemoclaw-proxy-env.sh /tmp/ && hl "done: proxy-env.sh in place"`, 60*time.Second,
				func(ws []*watcher) {
					// Until both sidecars are in their hook (the sleep), then restart.
					waitFor(t, "both hooks to sleep", time.Minute, func() error {
						for _, w := range ws {
							out, err := e.run(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", w.ns, "exec", w.name, "-c", sidecarName, "--", "cat", "/study/hook.log")
							if err != nil || !strings.Contains(out, "sleeping 25") {
								return fmt.Errorf("%s: %v %s", w.name, err, out)
							}
						}
						return nil
					})
					for _, w := range ws {
						w.poll()
						w.note("restarting the kubelet")
					}
					e.clusterScript(t, "restart-kubelet")
					for _, w := range ws {
						w.note("kubelet healthy again")
					}
				})
		})
		cleanup()
	}
	if only == "" || only == "4" {
		t.Run("4 sidecar restarts while the app runs", func(t *testing.T) {
			e.faultCase(t, `hl start; sleep 3; `+emitSh+`hl "done"`, 20*time.Second, func(ws []*watcher) {
				for _, w := range ws {
					e.waitPod(t, w.ns, w.name, w.name+" Ready", ready)
				}
				watchAll(ws, 5*time.Second)
				for _, w := range ws {
					p := w.poll()
					id := ""
					for _, s := range p.Status.InitContainerStatuses {
						if s.Name == sidecarName {
							id = s.ContainerID
						}
					}
					w.note("killing the sidecar's main process " + id)
					e.clusterScript(t, "kill-container", id)
				}
			})
		})
		cleanup()
	}
}

// studyReady measures pod create to Ready as TestE2EReadyOverhead does, for
// no injection, the shipped init container (embedded) and the postStart
// sidecar, interleaved, each created after a random delay of 0-1 s.
func (e *env) studyReady(t *testing.T) {
	ctx := context.Background()
	n := 25
	if v, err := strconv.Atoi(os.Getenv("STUDY_N")); err == nil {
		n = v
	}
	sleepCmd := func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/bin/sleep", "100000"} }
	paths := []struct {
		name string
		make func() (*corev1.Pod, string)
	}{
		{"without guardchain", func() (*corev1.Pod, string) {
			return e.nemoclawPod(func(p *corev1.Pod) { sleepCmd(p); notSandbox(p) }), otherNS
		}},
		{"init container (embedded)", func() (*corev1.Pod, string) {
			return e.nemoclawPod(func(p *corev1.Pod) { sleepCmd(p); p.Annotations[webhook.AnnotationSource] = "embedded" }), sandboxNS
		}},
		{"postStart sidecar", func() (*corev1.Pod, string) {
			p := e.sidecarPod(t, e.nemoclawPod(sleepCmd), "exec /usr/bin/initguards emit", false)
			return p, otherNS
		}},
	}
	took := make([][]time.Duration, len(paths))
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < n; i++ {
		for j, path := range paths {
			pod, ns := path.make()
			time.Sleep(time.Duration(rnd.Int64N(int64(time.Second))))
			start := time.Now()
			p, err := e.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", path.name, err)
			}
			inits := len(p.Spec.InitContainers)
			if want := []int{0, 1, 1}[j]; inits != want {
				t.Fatalf("%s: %d init containers, want %d", path.name, inits, want)
			}
			e.waitPod(t, ns, p.Name, "pod Ready", ready)
			took[j] = append(took[j], time.Since(start))
			_ = e.cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		}
	}
	quantile := func(d []time.Duration, q float64) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[int(q*float64(len(d)-1)+0.5)].Round(10 * time.Millisecond)
	}
	var b strings.Builder
	for j, path := range paths {
		fmt.Fprintf(&b, "\n  %-28s median %v, p90 %v, min %v, max %v", path.name, quantile(took[j], 0.5), quantile(took[j], 0.9),
			quantile(took[j], 0), quantile(took[j], 1))
	}
	t.Logf("pod create to Ready, %d pods each, interleaved (%s):%s", n, e.clusterVersions(t), b.String())
	for j, path := range paths {
		var s []string
		for _, d := range took[j] {
			s = append(s, strconv.FormatInt(d.Milliseconds(), 10))
		}
		t.Logf("raw ms %s: %s", path.name, strings.Join(s, " "))
	}
}
