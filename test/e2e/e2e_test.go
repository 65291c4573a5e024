//go:build e2e

// Package e2e proves guardchain on a real cluster: whatever KUBECONFIG points
// at (kind through make e2e, the local cluster through make e2e-local). It
// installs the chart with helm and checks, with real kubelets and the real
// node binary, that the guard chain is in place before the gateway's first
// line, on every create and recreate.
//
// Environment:
//
//	KUBECONFIG                     the cluster (required)
//	GUARDCHAIN_E2E_TOOLS           directory with helm and kubectl (required)
//	GUARDCHAIN_E2E_AGENT_SANDBOX   directory with agent-sandbox-controller and
//	                               agent-sandbox-crds/ (deploy/tools/build-agent-sandbox.sh;
//	                               required by TestE2EAgentSandboxMakesGuardedOpenShellPods)
//	GUARDCHAIN_E2E_IMAGE_PREFIX    image repository prefix (localhost/guardchain)
//	GUARDCHAIN_E2E_IMAGE_TAG       image tag (e2e)
//	GUARDCHAIN_E2E_PULL_POLICY     Never for imported images, IfNotPresent for kind
//	GUARDCHAIN_E2E_VALUES          extra values file for the chart (optional)
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/internal/testwait"
	"github.com/guardchain/guardchain/webhook"
)

const (
	releaseNS = "guardchain-system"
	release   = "guardchain"
	sandboxNS = "openshell"
	otherNS   = "e2e-other"
)

// warnings collects the API server's warnings for one client.
type warnings struct{ msgs []string }

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) { w.msgs = append(w.msgs, text) }

type env struct {
	cfg                *rest.Config
	cs                 *kubernetes.Clientset
	tools, prefix, tag string
	pull               corev1.PullPolicy
	values, kubeconfig string
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{kubeconfig: os.Getenv("KUBECONFIG"), tools: os.Getenv("GUARDCHAIN_E2E_TOOLS"),
		prefix: or(os.Getenv("GUARDCHAIN_E2E_IMAGE_PREFIX"), "localhost/guardchain"), tag: or(os.Getenv("GUARDCHAIN_E2E_IMAGE_TAG"), "e2e"),
		pull: corev1.PullPolicy(or(os.Getenv("GUARDCHAIN_E2E_PULL_POLICY"), "Never")), values: os.Getenv("GUARDCHAIN_E2E_VALUES")}
	if e.kubeconfig == "" || e.tools == "" {
		t.Fatal("KUBECONFIG and GUARDCHAIN_E2E_TOOLS must be set (make e2e or make e2e-local)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	if e.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (e *env) image(name string) string { return e.prefix + "/" + name + ":" + e.tag }

// run runs a tool from the tools directory and returns its combined output.
func (e *env) run(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.tools, tool), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *env) must(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := e.run(t, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) helmArgs(verb string, extra ...string) []string {
	args := []string{verb, release, "../../charts/guardchain", "-n", releaseNS, "--wait", "--timeout", "3m",
		"--set", "image.repository=" + e.prefix + "/guardchain-webhook", "--set", "image.tag=" + e.tag,
		"--set", "image.pullPolicy=" + string(e.pull),
		"--set", "initImage.repository=" + e.prefix + "/initguards", "--set", "initImage.tag=" + e.tag,
		"--set", "initImage.pullPolicy=" + string(e.pull)}
	if e.values != "" {
		args = append(args, "-f", e.values)
	}
	return append(args, extra...)
}

// waitInjecting waits until the API server reaches the webhook: helm's
// --wait sees the Deployment ready, but the API server's view of the new
// endpoints and caBundle follows a moment later.
func (e *env) waitInjecting(t *testing.T) {
	t.Helper()
	waitFor(t, "the API server to reach the webhook", 2*time.Minute, func() error {
		p, err := e.cs.CoreV1().Pods(sandboxNS).Create(context.Background(), e.plainPod("", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && p.Annotations[webhook.AnnotationStatus] != webhook.StatusInjected {
			err = fmt.Errorf("not injected")
		}
		return err
	})
}

// step times one part of the run, for the report at the end.
func step(t *testing.T, name string) func() {
	start := time.Now()
	return func() { t.Logf("step %-28s %6.1f s", name, time.Since(start).Seconds()) }
}

func TestE2E(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	done := step(t, "helm install")
	// The defaults, but that pods may name more targets: e2e-sandbox names
	// its attacker and checker containers so they mount the chain.
	e.must(t, "helm", e.helmArgs("install", "--create-namespace", "--set", "config.allowedOverrides={containers,source}")...)
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	done()
	for _, ns := range []string{sandboxNS, otherNS} {
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	waitFor(t, "the default ServiceAccount in "+sandboxNS, time.Minute, func() error {
		_, err := e.cs.CoreV1().ServiceAccounts(sandboxNS).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if _, err := e.cs.CoreV1().ConfigMaps(sandboxNS).Create(ctx, probeConfigMap(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.waitInjecting(t)

	var pod *corev1.Pod
	t.Run("sandbox gateway starts with every required guard loaded", func(t *testing.T) {
		done := step(t, "sandbox deployment ready")
		if _, err := e.cs.AppsV1().Deployments(sandboxNS).Create(ctx, e.sandboxDeployment(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod = e.waitAppPod(t, "e2e-sandbox", "")
		done()
		e.checkGuardsLoaded(t, pod)
	})
	if pod == nil {
		t.FailNow()
	}

	t.Run("a non-root user cannot change, delete or replace the guards", func(t *testing.T) {
		logs := e.logs(t, pod, "attacker")
		for _, attack := range []string{"write", "delete", "replace", "symlink", "chmod", "proxy-env"} {
			if !strings.Contains(logs, attack+": refused") {
				t.Errorf("attack %s not refused:\n%s", attack, logs)
			}
		}
	})

	t.Run("initguards verify passes and the annotation carries the chain sha256", func(t *testing.T) {
		e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", sandboxNS, "exec", pod.Name, "-c", "checker", "--", "initguards", "verify")
		out := e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", sandboxNS, "exec", pod.Name, "-c", "checker", "--", "initguards", "print", "chain")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if want := "chain sha256:" + pod.Annotations[webhook.AnnotationChain]; lines[len(lines)-1] != want {
			t.Errorf("initguards print chain says %q, the pod's annotation %q", lines[len(lines)-1], want)
		}
	})

	t.Run("the chain is there again on every recreate", func(t *testing.T) {
		for i := 1; i <= 5; i++ {
			done := step(t, fmt.Sprintf("recreate %d", i))
			if err := e.cs.CoreV1().Pods(sandboxNS).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(1))}); err != nil {
				t.Fatal(err)
			}
			pod = e.waitAppPod(t, "e2e-sandbox", pod.Name)
			done()
			e.checkGuardsLoaded(t, pod)
		}
	})

	t.Run("helm test verifies a sandbox-shaped pod's chain", func(t *testing.T) {
		done := step(t, "helm test")
		e.must(t, "helm", "test", release, "-n", releaseNS, "--timeout", "2m")
		done()
	})

	e.testNemoClaw(t)

	t.Run("a pod that is not a sandbox is untouched", func(t *testing.T) {
		p := e.plainPod("outside", notSandbox)
		got, err := e.cs.CoreV1().Pods(otherNS).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.InitContainers) != 0 || got.Annotations[webhook.AnnotationStatus] != "" {
			t.Errorf("pod outside the selector was changed: %v %v", got.Annotations, got.Spec.InitContainers)
		}
	})

	t.Run("a sandbox in any other namespace is injected", func(t *testing.T) {
		p := e.plainPod("elsewhere", nil)
		got, err := e.cs.CoreV1().Pods(otherNS).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations[webhook.AnnotationStatus] != webhook.StatusInjected || !webhook.WritesChainFirst(&got.Spec) {
			t.Errorf("sandbox pod in %s was not injected: %v", otherNS, got.Annotations)
		}
	})

	t.Run("a pod with a refused /tmp volume is denied with the reason", func(t *testing.T) {
		p := e.plainPod("hostpath-tmp", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "host-tmp", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/tmp"}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host-tmp", MountPath: "/tmp"}}
		})
		w := &warnings{}
		cfg := rest.CopyConfig(e.cfg)
		cfg.WarningHandler = w
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cs.CoreV1().Pods(sandboxNS).Create(ctx, p, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "mounts /tmp from volume host-tmp, which is a hostPath") {
			t.Errorf("create: %v, want a denial naming the hostPath", err)
		}
		if len(w.msgs) != 1 || !strings.HasSuffix(w.msgs[0], "[tmp-volume-not-emptydir]") {
			t.Errorf("warnings %q, want the reason", w.msgs)
		}
	})

	t.Run("helm upgrade takes effect for new pods", func(t *testing.T) {
		done := step(t, "helm upgrade")
		e.must(t, "helm", e.helmArgs("upgrade", "--reuse-values", "--set", "config.proxy.port=8080")...)
		done()
		waitFor(t, "new pods to get the new proxy port", 2*time.Minute, func() error {
			got, err := e.cs.CoreV1().Pods(sandboxNS).Create(ctx, e.plainPod("", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return err
			}
			if v := envOf(got.Spec.InitContainers, webhook.InitContainerName, "GUARDCHAIN_PROXY_PORT"); v != "8080" {
				return fmt.Errorf("proxy port %q", v)
			}
			return nil
		})
	})

	t.Run("helm uninstall removes the webhook configuration", func(t *testing.T) {
		done := step(t, "helm uninstall")
		e.must(t, "helm", "uninstall", release, "-n", releaseNS, "--wait")
		done()
		if _, err := e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, release, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("webhook configuration still there (%v)", err)
		}
		// The API server drops the registration from its cache a moment
		// after the object goes; from then on pods are created untouched.
		var got *corev1.Pod
		waitFor(t, "pod creation after uninstall", 30*time.Second, func() error {
			var err error
			got, err = e.cs.CoreV1().Pods(sandboxNS).Create(ctx, e.plainPod("", nil), metav1.CreateOptions{})
			return err
		})
		if got.Annotations[webhook.AnnotationStatus] != "" {
			t.Error("pod injected after uninstall")
		}
	})
}

func envOf(cs []corev1.Container, container, name string) string {
	for _, c := range cs {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	testwait.Until(t, what, limit, f)
}

// probe.js prints, from the gateway's first line, which preloads ran, then
// keeps the process alive like a gateway.
const probeJS = `const loaded = Object.keys(require.cache).filter((k) => k !== __filename);
console.log(JSON.stringify({ loaded, nodeOptions: process.env.NODE_OPTIONS || '' }));
setInterval(() => {}, 1 << 30);
`

// attack.sh tries, as uid 1000, every way to tamper with the chain.
const attackSh = `cd /tmp || exit 1
try() { if sh -c "$2" 2>/dev/null; then echo "$1: ALLOWED"; else echo "$1: refused"; fi; }
try write 'echo x >> /tmp/nemoclaw-sandbox-safety-net.js'
try delete 'rm -f /tmp/nemoclaw-ciao-network-guard.js && ! test -e /tmp/nemoclaw-ciao-network-guard.js'
try replace 'echo evil > /tmp/evil.js && mv -f /tmp/evil.js /tmp/nemoclaw-nemotron-inference-fix.js'
try symlink 'ln -sf /etc/passwd /tmp/nemoclaw-http-proxy-fix.js'
try chmod 'chmod 0666 /tmp/nemoclaw-sandbox-safety-net.js'
try proxy-env 'echo "export NODE_OPTIONS=" >> /tmp/nemoclaw-proxy-env.sh'
exec sleep 100000
`

func probeConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e2e-probe"},
		Data: map[string]string{"probe.js": probeJS, "attack.sh": attackSh}}
}

// sandboxDeployment is shaped like an OpenShell sandbox (GUARDS.md): the
// agent runs as root, the gateway starts from . /tmp/nemoclaw-proxy-env.sh.
func (e *env) sandboxDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "e2e-sandbox"}
	probe := corev1.VolumeMount{Name: "probe", MountPath: "/probe", ReadOnly: true}
	node := e.image("node-sandbox")
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-sandbox"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{webhook.AnnotationContainers: "agent,attacker,checker",
					webhook.SandboxIDAnnotation: "6f1c2a9e-3b7d-4c1e-9a55-0d2e8f4b7a10"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					Containers: []corev1.Container{
						{Name: "agent", Image: node, ImagePullPolicy: e.pull,
							Command: []string{"/bin/sh", "-c", ". /tmp/nemoclaw-proxy-env.sh && exec node /probe/probe.js gateway"},
							Env: []corev1.EnvVar{{Name: "OPENSHELL_SANDBOX", Value: "e2e-sandbox"}, {Name: "NODE_USE_ENV_PROXY", Value: "1"},
								{Name: "NODE_OPTIONS", Value: "--max-old-space-size=256"}},
							SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0))},
							VolumeMounts:    []corev1.VolumeMount{probe}},
						{Name: "attacker", Image: node, ImagePullPolicy: e.pull, Command: []string{"/bin/sh", "/probe/attack.sh"},
							SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(1000))},
							VolumeMounts:    []corev1.VolumeMount{probe}},
						{Name: "checker", Image: node, ImagePullPolicy: e.pull, Command: []string{"/bin/sleep", "100000"},
							SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000))}},
					},
					Volumes: []corev1.Volume{{Name: "probe", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "e2e-probe"}}}}},
				},
			},
		},
	}
}

// sandboxMarks are what OpenShell puts on every sandbox pod; the webhook
// selects by them.
func sandboxMarks() map[string]string {
	return map[string]string{webhook.SandboxIDAnnotation: "6f1c2a9e-3b7d-4c1e-9a55-0d2e8f4b7a10"}
}

// notSandbox drops the marks: a pod that only looks like a sandbox.
func notSandbox(p *corev1.Pod) {
	delete(p.Annotations, webhook.SandboxIDAnnotation)
	delete(p.Labels, webhook.SandboxNameHashLabel)
}

func (e *env) plainPod(name string, mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, GenerateName: "e2e-", Annotations: sandboxMarks()},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{Name: "agent", Image: e.image("node-sandbox"), ImagePullPolicy: e.pull, Command: []string{"/bin/sleep", "100000"}}}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func (e *env) logs(t *testing.T, p *corev1.Pod, container string) string {
	t.Helper()
	return e.logsWith(t, p, container, "")
}

// logsWith waits until the container's log holds want ("" for anything).
func (e *env) logsWith(t *testing.T, p *corev1.Pod, container, want string) string {
	t.Helper()
	var out string
	waitFor(t, "logs of "+container, time.Minute, func() error {
		b, err := e.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
		if err == nil && (len(b) == 0 || !strings.Contains(string(b), want)) {
			err = fmt.Errorf("no %q in the output yet", want)
		}
		out = string(b)
		return err
	})
	return out
}

func (e *env) checkGuardsLoaded(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if !webhook.WritesChainFirst(&p.Spec) {
		t.Fatalf("pod %s: guardchain's init containers are not first", p.Name)
	}
	// The gateway's first line is a JSON object.
	logs := e.logsWith(t, p, "agent", "\n{")
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "{") {
			line = l
		}
	}
	var got struct {
		Loaded      []string `json:"loaded"`
		NodeOptions string   `json:"nodeOptions"`
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("pod %s: gateway output %q: %v", p.Name, logs, err)
	}
	want := []string{"/tmp/nemoclaw-sandbox-safety-net.js", "/tmp/nemoclaw-http-proxy-fix.js",
		"/tmp/nemoclaw-nemotron-inference-fix.js", "/tmp/nemoclaw-ciao-network-guard.js"}
	if !slices.Equal(got.Loaded, want) {
		t.Errorf("pod %s: preloads before the gateway's first line %v, want %v", p.Name, got.Loaded, want)
	}
	if !strings.HasPrefix(got.NodeOptions, "--max-old-space-size=256 ") {
		t.Errorf("pod %s: the pod's NODE_OPTIONS was not kept: %q", p.Name, got.NodeOptions)
	}
	if !strings.Contains(logs, "[sandbox-safety-net] loaded (argv[2]=gateway)") {
		t.Errorf("pod %s: the safety net did not arm:\n%s", p.Name, logs)
	}
}

// TestE2EReadyOverhead measures pod create to Ready of the NemoClaw-shaped
// image with a plain command, for every start path guardchain ships:
// without guardchain (not a sandbox), the embedded chain (one init
// container), source auto with the init image as an image volume (one; the
// pod mounts an image volume of its own, as OpenShell's pods do) and source
// auto with the copy (two). 20 pods of each, interleaved, each created after
// a random delay so creation does not lock onto the kubelet's 1 s relist. It
// logs the median and p90 of each and asserts only that every pod became
// Ready with the start path it asked for.
func TestE2EReadyOverhead(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.must(t, "helm", e.helmArgs("install", "--create-namespace")...)
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	for _, ns := range []string{sandboxNS, otherNS} {
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	e.waitInjecting(t)
	// An image volume of the pod's own, as OpenShell mounts its supervisor.
	ownImageVolume := func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "supervisor", VolumeSource: corev1.VolumeSource{
			Image: &corev1.ImageVolumeSource{Reference: e.image("initguards"), PullPolicy: e.pull}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "supervisor", MountPath: "/opt/openshell/bin", ReadOnly: true})
	}
	paths := []struct {
		name, ns, source string
		inits            int // guardchain's init containers
		mod              func(*corev1.Pod)
	}{
		{"without guardchain", otherNS, "", 0, notSandbox},
		{"embedded", sandboxNS, "embedded", 1, nil},
		{"auto, image volume", sandboxNS, "auto", 1, ownImageVolume},
		{"auto, copy", sandboxNS, "auto", 2, nil},
	}
	const n = 20
	took := make([][]time.Duration, len(paths))
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < n; i++ {
		for j, path := range paths {
			time.Sleep(time.Duration(rnd.Int64N(int64(time.Second))))
			pod := e.nemoclawPod(func(p *corev1.Pod) {
				p.Spec.Containers[0].Command = []string{"/bin/sleep", "100000"}
				if path.source != "" {
					p.Annotations[webhook.AnnotationSource] = path.source
				}
				if path.mod != nil {
					path.mod(p)
				}
			})
			start := time.Now()
			p, err := e.cs.CoreV1().Pods(path.ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", path.name, err)
			}
			own := 0
			for _, c := range p.Spec.InitContainers {
				if webhook.IsOwnInitContainer(c.Name) {
					own++
				}
			}
			if got := p.Annotations[webhook.AnnotationChainSource]; got != path.source || own != path.inits {
				t.Fatalf("%s: pod in %s has source %q and %d guardchain init containers, want %q and %d", path.name, path.ns, got, own, path.source, path.inits)
			}
			e.waitPod(t, path.ns, p.Name, "pod Ready", ready)
			took[j] = append(took[j], time.Since(start))
			_ = e.cs.CoreV1().Pods(path.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		}
	}
	quantile := func(d []time.Duration, q float64) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[int(q*float64(len(d)-1)+0.5)].Round(10 * time.Millisecond)
	}
	var b strings.Builder
	for j, path := range paths {
		fmt.Fprintf(&b, "\n  %-20s median %v, p90 %v", path.name, quantile(took[j], 0.5), quantile(took[j], 0.9))
	}
	t.Logf("pod create to Ready, %d pods each, interleaved (%s):%s", n, e.clusterVersions(t), b.String())
}

// clusterVersions names what a measurement ran on: the API server's version
// and each node's kubelet and container runtime.
func (e *env) clusterVersions(t *testing.T) string {
	t.Helper()
	v, err := e.cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := e.cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := "kube-apiserver " + v.GitVersion
	for _, n := range nodes.Items {
		out += fmt.Sprintf(", node %s: kubelet %s, %s", n.Name, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion)
	}
	return out
}
