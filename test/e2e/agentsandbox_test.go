//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/webhook"
)

// OpenShell's Kubernetes driver makes no pods: it creates an agent-sandbox
// Sandbox whose spec.podTemplate it renders, and agent-sandbox's controller
// makes the pod (named after the Sandbox, the template's labels plus
// agents.x-k8s.io/sandbox-name-hash, a controller owner reference). The
// templates below are what the driver renders (NVIDIA/OpenShell
// crates/openshell-driver-kubernetes/src/driver.rs, 2f7fb655), the image is
// the NemoClaw-shaped one, and its supervisor is the stand-in in
// test/openshell/supervisor, mounted from its image as the driver does.

const (
	// Managed mode puts each workspace in openshell-<gateway-id>-<workspace>.
	managedNS = "openshell-e2egw-team-a"
	// A namespace OpenShift has given a uid range; the driver takes its start.
	openshiftNS  = "e2e-openshift"
	openshiftUID = 1000680000

	supervisorDir     = "/opt/openshell/bin"
	supervisorVolume  = "openshell-supervisor-bin"
	clientTLSSecret   = "openshell-client-tls"
	sandboxTokenMount = "/var/run/secrets/openshell"
	sidecarStateDir   = "/run/openshell-sidecar"
	sidecarTLSDir     = "/etc/openshell-tls/proxy"
	controllerManager = "agent-sandbox-controller"
	// How long the controller is watched for fights with guarded pods.
	fightWindow = 2 * time.Minute
)

var (
	sandboxGVR      = schema.GroupVersionResource{Group: "agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxes"}
	sandboxTmplGVR  = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxtemplates"}
	warmPoolGVR     = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxwarmpools"}
	sandboxClaimGVR = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxclaims"}
)

// openshellSandbox is what the driver resolves for one sandbox.
type openshellSandbox struct {
	name, namespace string
	uid, gid        int64
	// sidecar: the sidecar topology (agent runs as the sandbox uid, a
	// separate network supervisor); otherwise combined (agent runs as root
	// and the supervisor drops to the sandbox uid).
	sidecar bool
	// id is the sandbox's UUID; empty for a warm pool's template, made
	// before any sandbox exists.
	id string
}

// mainProcessSpec is OPENSHELL_MAIN_PROCESS_SPEC as the driver encodes it:
// NemoClaw's entrypoint, then its gateway.
const mainProcessSpec = `{"version":1,"command":["/usr/local/bin/nemoclaw-start","node","/usr/local/lib/nemoclaw/gateway.js","gateway"],"tty":false}`

// podTemplate renders spec.podTemplate as the driver does for s.
func (e *env) podTemplate(s openshellSandbox) map[string]any {
	ids := func(env []corev1.EnvVar) []corev1.EnvVar {
		// apply_resolved_identity_env: the image's USER is never used.
		return append(env, corev1.EnvVar{Name: "OPENSHELL_OCI_IMAGE_USER", Value: ""},
			corev1.EnvVar{Name: "OPENSHELL_SANDBOX_UID", Value: fmt.Sprint(s.uid)},
			corev1.EnvVar{Name: "OPENSHELL_SANDBOX_GID", Value: fmt.Sprint(s.gid)})
	}
	env := []corev1.EnvVar{
		{Name: "OPENSHELL_MAIN_PROCESS_SPEC", Value: mainProcessSpec},
		{Name: "OPENSHELL_SANDBOX_ID", Value: s.id},
		{Name: "OPENSHELL_SANDBOX", Value: s.name},
		{Name: "OPENSHELL_ENDPOINT", Value: "https://openshell-gateway.openshell.svc:8080"},
		{Name: "OPENSHELL_TELEMETRY_ENABLED", Value: "false"},
		{Name: "OPENSHELL_NETWORK_RUNTIME_CAPABILITIES", Value: ""},
		{Name: "OPENSHELL_TLS_CA", Value: "/etc/openshell-tls/client/ca.crt"},
		{Name: "OPENSHELL_TLS_CERT", Value: "/etc/openshell-tls/client/tls.crt"},
		{Name: "OPENSHELL_TLS_KEY", Value: "/etc/openshell-tls/client/tls.key"},
		{Name: "OPENSHELL_K8S_SA_TOKEN_FILE", Value: sandboxTokenMount + "/token"},
	}
	mode := int32(0o400) // combined: the root supervisor reads them
	if s.sidecar {
		mode = 0o440 // sidecar: read through the pod's fsGroup
	}
	supervisorImage := e.image("openshell-supervisor")
	spec := corev1.PodSpec{
		ServiceAccountName:           "default",
		AutomountServiceAccountToken: ptr.To(false),
		RestartPolicy:                corev1.RestartPolicyNever,
		// Not the driver's (it sets none): the gateway stand-in runs as the
		// container's PID 1 in the combined topology and ignores SIGTERM, so
		// every Suspend or delete would wait the default 30 s.
		TerminationGracePeriodSeconds: ptr.To(int64(1)),
		SecurityContext:               &corev1.PodSecurityContext{FSGroup: ptr.To(s.gid)},
		Containers: []corev1.Container{{
			Name: "agent", Image: e.image("nemoclaw-sandbox"), ImagePullPolicy: e.pull,
			Command: []string{supervisorDir + "/openshell-sandbox", "--workdir", "/sandbox"},
			Env:     ids(env),
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYSLOG"}}},
			VolumeMounts: []corev1.VolumeMount{
				{Name: clientTLSSecret, MountPath: "/etc/openshell-tls/client", ReadOnly: true},
				{Name: "openshell-sa-token", MountPath: sandboxTokenMount, ReadOnly: true},
				{Name: supervisorVolume, MountPath: supervisorDir, ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: clientTLSSecret, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: clientTLSSecret, DefaultMode: ptr.To(mode)}}},
			{Name: "openshell-sa-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptr.To(mode),
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: "openshell-gateway", ExpirationSeconds: ptr.To(int64(3600)), Path: "token"}}}}}},
			// The supervisor binary, from its image (the driver's default side-load).
			{Name: supervisorVolume, VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: supervisorImage, PullPolicy: e.pull}}},
		},
	}
	agent := &spec.Containers[0]
	if s.sidecar {
		// apply_supervisor_sidecar_topology.
		spec.ShareProcessNamespace = ptr.To(true)
		state := corev1.VolumeMount{Name: "openshell-sidecar-state", MountPath: sidecarStateDir}
		tls := corev1.VolumeMount{Name: "openshell-supervisor-tls", MountPath: sidecarTLSDir}
		spec.Volumes = append(spec.Volumes,
			corev1.Volume{Name: state.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			corev1.Volume{Name: tls.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.InitContainers = append(spec.InitContainers, corev1.Container{
			Name: "openshell-network-init", Image: supervisorImage, ImagePullPolicy: e.pull,
			Command: []string{"/openshell-sandbox", "--mode=network-init", "--proxy-uid", "0", "--proxy-gid", fmt.Sprint(s.gid),
				"--sidecar-state-dir", sidecarStateDir, "--sidecar-tls-dir", sidecarTLSDir},
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN", "NET_RAW", "CHOWN", "FOWNER"}}},
			VolumeMounts: []corev1.VolumeMount{state, tls, {Name: clientTLSSecret, MountPath: "/etc/openshell-tls/client", ReadOnly: true}},
		})
		agent.Command = []string{supervisorDir + "/openshell-sandbox", "--mode=process", "--workdir", "/sandbox"}
		agent.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(s.uid), RunAsGroup: ptr.To(s.gid), RunAsNonRoot: ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		// The agent loses the gateway credentials; the network supervisor holds them.
		agent.VolumeMounts = []corev1.VolumeMount{{Name: supervisorVolume, MountPath: supervisorDir, ReadOnly: true}, state, tls}
		sidecarEnv := []corev1.EnvVar{
			{Name: "OPENSHELL_SUPERVISOR_TOPOLOGY", Value: "sidecar"},
			{Name: "OPENSHELL_NETWORK_ENFORCEMENT_MODE", Value: "sidecar-nftables"},
			{Name: "OPENSHELL_SSH_SOCKET_PATH", Value: "@openshell-sidecar-ssh"},
			{Name: "OPENSHELL_SIDECAR_CONTROL_SOCKET", Value: sidecarStateDir + "/control.sock"},
			{Name: "OPENSHELL_PROXY_TLS_DIR", Value: sidecarTLSDir},
		}
		var kept []corev1.EnvVar
		for _, v := range env {
			switch v.Name {
			case "OPENSHELL_ENDPOINT", "OPENSHELL_TLS_CA", "OPENSHELL_TLS_CERT", "OPENSHELL_TLS_KEY", "OPENSHELL_K8S_SA_TOKEN_FILE":
			default:
				kept = append(kept, v)
			}
		}
		agent.Env = ids(append(kept, sidecarEnv...))
		spec.Containers = append(spec.Containers, corev1.Container{
			Name: "openshell-supervisor-network", Image: supervisorImage, ImagePullPolicy: e.pull,
			Command: []string{"/openshell-sandbox", "--mode=network"},
			Env: ids(append([]corev1.EnvVar{{Name: "OPENSHELL_SANDBOX_ID", Value: s.id}, {Name: "OPENSHELL_SANDBOX", Value: s.name},
				{Name: "OPENSHELL_ENDPOINT", Value: "https://openshell-gateway.openshell.svc:8080"}}, sidecarEnv...)),
			// Binary-aware network policy (the driver's default) runs it as root.
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), RunAsGroup: ptr.To(s.gid), RunAsNonRoot: ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"SYS_PTRACE", "DAC_READ_SEARCH"}}},
			VolumeMounts: []corev1.VolumeMount{state, tls, {Name: "openshell-sa-token", MountPath: sandboxTokenMount, ReadOnly: true}},
		})
	}
	// The driver's workspace is a PVC from volumeClaimTemplates, seeded by a
	// root init container; this cluster has no storage provisioner, so an
	// emptyDir stands in for the claim, seeded the same way.
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	agent.VolumeMounts = append(agent.VolumeMounts, corev1.VolumeMount{Name: "workspace", MountPath: "/sandbox"})
	spec.InitContainers = append(spec.InitContainers, corev1.Container{
		Name: "workspace-init", Image: e.image("nemoclaw-sandbox"), ImagePullPolicy: e.pull,
		Command:         []string{"sh", "-c", "[ -f /workspace-pvc/.workspace-initialized ] || { if [ -d /sandbox ]; then cp -a /sandbox/. /workspace-pvc/; fi && touch /workspace-pvc/.workspace-initialized; }"},
		SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(0))},
		VolumeMounts:    []corev1.VolumeMount{{Name: "workspace", MountPath: "/workspace-pvc"}},
	})

	specMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		panic(err)
	}
	tmpl := map[string]any{"spec": specMap}
	if s.id != "" {
		tmpl["metadata"] = map[string]any{"annotations": map[string]any{webhook.SandboxIDAnnotation: s.id}}
	}
	return tmpl
}

// sandboxObject is the Sandbox the driver creates for s.
func (e *env) sandboxObject(s openshellSandbox) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": sandboxGVR.GroupVersion().String(), "kind": "Sandbox",
		"metadata": map[string]any{"name": s.name, "namespace": s.namespace,
			"labels": map[string]any{"openshell.ai/sandbox-id": s.id, "openshell.ai/sandbox-name": s.name,
				"openshell.ai/sandbox-workspace": "default", "openshell.ai/managed-by": "openshell"}},
		"spec": map[string]any{"podTemplate": e.podTemplate(s)},
	}}
}

// agentSandbox is a running agent-sandbox controller and the clients for
// its objects.
type agentSandbox struct {
	dyn dynamic.Interface
	log string
}

// startAgentSandbox applies the CRDs and starts the controller on this
// host against KUBECONFIG, with its extensions (warm pools, claims); it is
// stopped at cleanup, and its log shown if the test failed.
func (e *env) startAgentSandbox(t *testing.T) *agentSandbox {
	t.Helper()
	dir := os.Getenv("GUARDCHAIN_E2E_AGENT_SANDBOX")
	if dir == "" {
		t.Fatal("GUARDCHAIN_E2E_AGENT_SANDBOX must name agent-sandbox's controller directory (deploy/tools/build-agent-sandbox.sh; make e2e or make e2e-local set it)")
	}
	crds := filepath.Join(dir, "agent-sandbox-crds")
	e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "apply", "--server-side", "-f", crds)
	e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
	t.Cleanup(func() { _, _ = e.run(t, "kubectl", "--kubeconfig", e.kubeconfig, "delete", "--wait=false", "-f", crds) })

	as := &agentSandbox{log: filepath.Join(t.TempDir(), "agent-sandbox-controller.log")}
	logf, err := os.Create(as.log)
	if err != nil {
		t.Fatal(err)
	}
	probe := freePort(t)
	cmd := exec.Command(filepath.Join(dir, "agent-sandbox-controller"), "--extensions", "--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:"+freePort(t), "--health-probe-bind-address=127.0.0.1:"+probe)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited: //nolint:errcheck // how it exited does not matter here
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited //nolint:errcheck // killed
		}
		if t.Failed() {
			b, _ := os.ReadFile(as.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("agent-sandbox-controller log (last 80 of %d lines, %s):\n%s", len(lines), as.log, strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	waitFor(t, "agent-sandbox-controller ready", time.Minute, func() error {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(as.log)
			t.Fatalf("agent-sandbox-controller exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get("http://127.0.0.1:" + probe + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if as.dyn, err = dynamic.NewForConfig(e.cfg); err != nil {
		t.Fatal(err)
	}
	return as
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// prepareNamespace makes ns as OpenShell finds or makes it: its default
// ServiceAccount and the client TLS Secret the driver copies in.
func (e *env) prepareNamespace(t *testing.T, ns string, annotations map[string]string, deleteAtEnd bool) {
	t.Helper()
	ctx := context.Background()
	_, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Annotations: annotations}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if deleteAtEnd {
		t.Cleanup(func() { _ = e.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	}
	waitFor(t, "the default ServiceAccount in "+ns, time.Minute, func() error {
		_, err := e.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	// Not a usable certificate: the stand-in supervisor never dials the gateway.
	_, err = e.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: clientTLSSecret}, Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{"ca.crt": "e2e", "tls.crt": "e2e", "tls.key": "e2e"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (as *agentSandbox) create(t *testing.T, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) {
	t.Helper()
	if _, err := as.dyn.Resource(gvr).Namespace(obj.GetNamespace()).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s %s/%s: %v", gvr.Resource, obj.GetNamespace(), obj.GetName(), err)
	}
}

// waitSandboxPod waits for the pod of Sandbox ns/name, other than one with
// UID notUID, to be Ready, and fails at once, with what the pod says, when it
// reaches a terminal phase instead (restartPolicy Never: a failed entrypoint
// is final).
func (e *env) waitSandboxPod(t *testing.T, ns, name string, notUID types.UID) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	var terminal bool
	waitFor(t, "the pod of Sandbox "+ns+"/"+name+" Ready", 3*time.Minute, func() error {
		var err error
		if p, err = e.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return err
		}
		if p.UID == notUID || p.DeletionTimestamp != nil {
			return fmt.Errorf("the earlier pod %s is still there", p.UID)
		}
		if terminal = agentEnded(p); terminal {
			return nil
		}
		return ready(p)
	})
	if terminal {
		t.Fatalf("pod %s/%s: the agent ended (pod %s) before the pod was Ready:\n%s", ns, name, p.Status.Phase, e.describePod(t, p))
	}
	return p
}

// agentEnded: the pod's agent container has exited, or the pod is in a
// terminal phase.
func agentEnded(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == "agent" && s.State.Terminated != nil {
			return true
		}
	}
	return false
}

// waitGateway waits for the gateway's first line in the agent's log, and
// fails at once, with what the pod says, if the agent exits first (the
// entrypoint refusing the chain it found, for one).
func (e *env) waitGateway(t *testing.T, p *corev1.Pod) {
	t.Helper()
	var ended *corev1.Pod
	waitFor(t, "the gateway's first line in "+p.Namespace+"/"+p.Name, 2*time.Minute, func() error {
		b, err := e.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "agent"}).DoRaw(context.Background())
		if err == nil && strings.Contains(string(b), "\n{") {
			return nil
		}
		cur, gerr := e.cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
		if gerr == nil && cur.UID == p.UID && agentEnded(cur) {
			ended = cur
			return nil
		}
		return fmt.Errorf("no gateway line yet (%w)", err)
	})
	if ended != nil {
		t.Fatalf("pod %s/%s: the agent exited before its gateway started:\n%s", p.Namespace, p.Name, e.describePod(t, ended))
	}
}

// describePod is what a failed sandbox pod says: guardchain's annotation,
// each container's end, and the agent's log.
func (e *env) describePod(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "  %s=%q\n", webhook.AnnotationStatus, p.Annotations[webhook.AnnotationStatus])
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if s.State.Terminated != nil {
			fmt.Fprintf(&b, "  %s: exit %d %s %q\n", s.Name, s.State.Terminated.ExitCode, s.State.Terminated.Reason, s.State.Terminated.Message)
		} else if s.State.Waiting != nil {
			fmt.Fprintf(&b, "  %s: waiting %s %q\n", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message)
		}
	}
	out, _ := e.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "agent"}).DoRaw(context.Background())
	fmt.Fprintf(&b, "  agent log:\n%s", out)
	return b.String()
}

// checkGuardedSandbox: guardchain injected the pod, its init container gave
// the chain to the sandbox identity, and the image's entrypoint, started by
// the supervisor as that identity, re-staged the chain and started a gateway
// that loaded it before its first line.
func (e *env) checkGuardedSandbox(t *testing.T, p *corev1.Pod, uid, gid int64, sha string) {
	t.Helper()
	if got := p.Annotations[webhook.AnnotationStatus]; got != webhook.StatusInjected {
		t.Errorf("pod %s/%s: %s=%q, want %q", p.Namespace, p.Name, webhook.AnnotationStatus, got, webhook.StatusInjected)
	}
	if !webhook.WritesChainFirst(&p.Spec) {
		t.Fatalf("pod %s/%s: guardchain's init containers are not first (%s):\n%s", p.Namespace, p.Name, initNames(p), e.describePod(t, p))
	}
	if got, want := stagedReport(t, p).Ownership, fmt.Sprintf("uid:%d:%d", uid, gid); got != want {
		t.Errorf("pod %s/%s: guardchain-init gave the chain to %s, want the sandbox identity %s", p.Namespace, p.Name, got, want)
	}
	e.waitGateway(t, p)
	e.checkNemoClawStarted(t, p, int(uid), sha)
}

func initNames(p *corev1.Pod) string {
	var ns []string
	for _, c := range p.Spec.InitContainers {
		ns = append(ns, c.Name)
	}
	return strings.Join(ns, ", ")
}

// sandboxReady reports the Sandbox's Ready condition.
func (as *agentSandbox) sandboxReady(ns, name string) error {
	u, err := as.dyn.Resource(sandboxGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			if m["status"] == "True" {
				return nil
			}
			return fmt.Errorf("Sandbox %s/%s Ready=%v: %v %v", ns, name, m["status"], m["reason"], m["message"])
		}
	}
	return fmt.Errorf("Sandbox %s/%s has no Ready condition yet", ns, name)
}

// TestE2EAgentSandboxMakesGuardedOpenShellPods runs agent-sandbox's
// controller, the pod creator OpenShell uses, on Sandboxes shaped as
// OpenShell's driver renders them, with guardchain installed: every pod it
// makes (combined and sidecar topologies, the default, an OpenShift and a
// managed-mode namespace; after a Suspend and Resume, after a pod delete,
// from a warm pool) has the chain owned by the sandbox identity and reaches
// its gateway with it; and the controller neither recreates nor rewrites
// guarded pods.
func TestE2EAgentSandboxMakesGuardedOpenShellPods(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	sha := imageChainSHA256(t)

	done := step(t, "helm install")
	e.must(t, "helm", e.helmArgs("install", "--create-namespace")...)
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	done()
	done = step(t, "agent-sandbox up")
	as := e.startAgentSandbox(t)
	done()
	// openshell is shared with the other tests: only this test's Sandboxes
	// go at the end (their pods with them); its own namespaces go whole.
	e.prepareNamespace(t, sandboxNS, nil, false)
	e.prepareNamespace(t, managedNS, nil, true)
	e.prepareNamespace(t, openshiftNS, map[string]string{"openshift.io/sa.scc.uid-range": fmt.Sprintf("%d/10000", openshiftUID)}, true)
	e.waitSandboxInjected(t)

	steady := []struct {
		what string
		s    openshellSandbox
	}{
		{"combined topology, uid 1000, namespace openshell", openshellSandbox{name: "e2e-as-combined", namespace: sandboxNS, uid: 1000, gid: 1000}},
		{"sidecar topology, uid 1000", openshellSandbox{name: "e2e-as-sidecar", namespace: sandboxNS, uid: 1000, gid: 1000, sidecar: true}},
		{"OpenShift SCC range, uid 1000680000", openshellSandbox{name: "e2e-as-openshift", namespace: openshiftNS, uid: openshiftUID, gid: openshiftUID}},
		{"managed-mode namespace " + managedNS, openshellSandbox{name: "e2e-as-managed", namespace: managedNS, uid: 1000, gid: 1000}},
	}
	lifecycle := openshellSandbox{name: "e2e-as-lifecycle", namespace: sandboxNS, uid: 1000, gid: 1000, id: string(uuid.NewUUID())}
	// Cleanups run last first: the wait for the pods after the deletes.
	t.Cleanup(func() { e.waitSandboxPodsGone(t, sandboxNS) })
	for i := range steady {
		steady[i].s.id = string(uuid.NewUUID())
	}
	for _, s := range []openshellSandbox{steady[0].s, steady[1].s, steady[2].s, steady[3].s, lifecycle} {
		as.create(t, sandboxGVR, e.sandboxObject(s))
		if s.namespace == sandboxNS {
			t.Cleanup(func() {
				_ = as.dyn.Resource(sandboxGVR).Namespace(s.namespace).Delete(context.Background(), s.name, metav1.DeleteOptions{})
			})
		}
	}

	done = step(t, "4 OpenShell sandboxes ready")
	pods := map[string]*corev1.Pod{}
	for _, c := range steady {
		t.Run(c.what+": the gateway starts with the chain, owned by the sandbox uid", func(t *testing.T) {
			p := e.waitSandboxPod(t, c.s.namespace, c.s.name, "")
			waitFor(t, "Sandbox Ready", time.Minute, func() error { return as.sandboxReady(c.s.namespace, c.s.name) })
			if p.Labels[webhook.SandboxNameHashLabel] == "" || metav1.GetControllerOf(p) == nil || metav1.GetControllerOf(p).Kind != "Sandbox" {
				t.Errorf("pod %s/%s: labels %v, controller %v: not made by agent-sandbox's controller", p.Namespace, p.Name, p.Labels, metav1.GetControllerOf(p))
			}
			e.checkGuardedSandbox(t, p, c.s.uid, c.s.gid, sha)
			pods[c.s.namespace+"/"+c.s.name] = p
		})
	}
	done()

	// From here on, for fightWindow, every write to the steady pods and
	// their Sandboxes is recorded while the other cases run.
	var watched []types.NamespacedName
	for _, c := range steady {
		if pods[c.s.namespace+"/"+c.s.name] != nil {
			watched = append(watched, types.NamespacedName{Namespace: c.s.namespace, Name: c.s.name})
		}
	}
	ch := startChurnWatch(t, e, as, watched)

	t.Run("Suspended, then Running: the new pod starts with the chain", func(t *testing.T) {
		p := e.waitSandboxPod(t, sandboxNS, lifecycle.name, "")
		e.checkGuardedSandbox(t, p, lifecycle.uid, lifecycle.gid, sha)
		done := step(t, "suspend")
		as.setOperatingMode(t, sandboxNS, lifecycle.name, "Suspended")
		waitFor(t, "the suspended Sandbox's pod gone", 2*time.Minute, func() error {
			_, err := e.cs.CoreV1().Pods(sandboxNS).Get(ctx, lifecycle.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod still there (%w)", err)
		})
		done()
		done = step(t, "resume")
		as.setOperatingMode(t, sandboxNS, lifecycle.name, "Running")
		p = e.waitSandboxPod(t, sandboxNS, lifecycle.name, p.UID)
		done()
		e.checkGuardedSandbox(t, p, lifecycle.uid, lifecycle.gid, sha)
	})

	t.Run("pod deleted: the controller's new pod starts with the chain", func(t *testing.T) {
		p := e.waitSandboxPod(t, sandboxNS, lifecycle.name, "")
		done := step(t, "pod delete")
		if err := e.cs.CoreV1().Pods(sandboxNS).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		p = e.waitSandboxPod(t, sandboxNS, lifecycle.name, p.UID)
		done()
		e.checkGuardedSandbox(t, p, lifecycle.uid, lifecycle.gid, sha)
	})

	t.Run("warm pool: the claimed pod was guarded before the claim and keeps its gateway", func(t *testing.T) {
		e.testWarmPool(t, as, sha)
	})

	t.Run(fmt.Sprintf("the controller neither recreates nor rewrites guarded pods over %v", fightWindow), func(t *testing.T) {
		if len(watched) == 0 {
			t.Fatal("no steady sandbox pod to watch")
		}
		ch.finish(t)
	})
}

// waitSandboxInjected waits until the API server reaches the webhook, with a
// pod shaped as the controller makes them (dry run).
func (e *env) waitSandboxInjected(t *testing.T) {
	t.Helper()
	waitFor(t, "the API server to reach the webhook", 2*time.Minute, func() error {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-as-", Labels: map[string]string{webhook.SandboxNameHashLabel: "0123abcd"},
			Annotations: map[string]string{webhook.SandboxIDAnnotation: string(uuid.NewUUID())}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: e.image("nemoclaw-sandbox"), ImagePullPolicy: e.pull}}}}
		got, err := e.cs.CoreV1().Pods(sandboxNS).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Annotations[webhook.AnnotationStatus] != webhook.StatusInjected {
			err = fmt.Errorf("not injected")
		}
		return err
	})
}

// waitSandboxPodsGone waits, at cleanup, until the pods of this test's
// Sandboxes in ns are gone, so later tests find the namespace as it was.
func (e *env) waitSandboxPodsGone(t *testing.T, ns string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pods, err := e.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: webhook.SandboxNameHashLabel})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("pods of this test's Sandboxes still in %s after 2 minutes", ns)
}

func (as *agentSandbox) setOperatingMode(t *testing.T, ns, name, mode string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"operatingMode":%q}}`, mode)
	if _, err := as.dyn.Resource(sandboxGVR).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("Sandbox %s/%s operatingMode %s: %v", ns, name, mode, err)
	}
}

// testWarmPool: a SandboxTemplate of OpenShell's combined shape (no
// sandbox id: a warm pod exists before any sandbox does), a pool of 2, and a
// claim. The claim adopts a warm Sandbox whose pod is already running: that
// pod, guarded when the pool made it, is what the claim hands out, not a new
// one; and the pod the pool makes to refill is guarded too.
func (e *env) testWarmPool(t *testing.T, as *agentSandbox, sha string) {
	ctx := context.Background()
	const pool = "e2e-as-pool"
	s := openshellSandbox{name: pool, namespace: sandboxNS, uid: 1000, gid: 1000}
	as.create(t, sandboxTmplGVR, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": sandboxTmplGVR.GroupVersion().String(), "kind": "SandboxTemplate",
		"metadata": map[string]any{"name": pool, "namespace": sandboxNS},
		"spec":     map[string]any{"podTemplate": e.podTemplate(s), "networkPolicyManagement": "Unmanaged"},
	}})
	as.create(t, warmPoolGVR, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": warmPoolGVR.GroupVersion().String(), "kind": "SandboxWarmPool",
		"metadata": map[string]any{"name": pool, "namespace": sandboxNS},
		"spec":     map[string]any{"replicas": int64(2), "sandboxTemplateRef": map[string]any{"name": pool}},
	}})
	t.Cleanup(func() {
		for _, gvr := range []schema.GroupVersionResource{sandboxClaimGVR, warmPoolGVR, sandboxTmplGVR} {
			_ = as.dyn.Resource(gvr).Namespace(sandboxNS).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
		}
	})

	done := step(t, "warm pool of 2 ready")
	warm := e.waitWarmPods(t, pool, 2, nil)
	done()
	for _, p := range warm {
		e.checkGuardedSandbox(t, p, s.uid, s.gid, sha)
	}

	done = step(t, "claim adopted")
	as.create(t, sandboxClaimGVR, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": sandboxClaimGVR.GroupVersion().String(), "kind": "SandboxClaim",
		"metadata": map[string]any{"name": "e2e-as-claim", "namespace": sandboxNS},
		"spec":     map[string]any{"warmPoolRef": map[string]any{"name": pool}},
	}})
	var claimed string
	waitFor(t, "the claim to get a sandbox", 2*time.Minute, func() error {
		u, err := as.dyn.Resource(sandboxClaimGVR).Namespace(sandboxNS).Get(ctx, "e2e-as-claim", metav1.GetOptions{})
		if err != nil {
			return err
		}
		claimed, _, _ = unstructured.NestedString(u.Object, "status", "sandbox", "name")
		if claimed == "" {
			return fmt.Errorf("no sandbox yet: %v", u.Object["status"])
		}
		return nil
	})
	done()
	p, err := e.cs.CoreV1().Pods(sandboxNS).Get(ctx, claimed, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the claimed Sandbox %s's pod: %v", claimed, err)
	}
	if w, ok := warm[p.Name]; !ok || w.UID != p.UID {
		t.Errorf("the claim handed out pod %s (%s), not one of the warm pods %v", p.Name, p.UID, keys(warm))
	}
	if err := ready(p); err != nil {
		t.Errorf("claimed pod: %v", err)
	}
	e.checkGuardedSandbox(t, p, s.uid, s.gid, sha)

	done = step(t, "warm pool refilled")
	refill := e.waitWarmPods(t, pool, 1, warm)
	done()
	for _, p := range refill {
		e.checkGuardedSandbox(t, p, s.uid, s.gid, sha)
	}
}

// waitWarmPods waits for n Ready pods of the warm pool that are not in
// except, and returns them by name. A pool's pods carry its label.
func (e *env) waitWarmPods(t *testing.T, pool string, n int, except map[string]*corev1.Pod) map[string]*corev1.Pod {
	t.Helper()
	got := map[string]*corev1.Pod{}
	waitFor(t, fmt.Sprintf("%d Ready pods of warm pool %s", n, pool), 3*time.Minute, func() error {
		pods, err := e.cs.CoreV1().Pods(sandboxNS).List(context.Background(), metav1.ListOptions{LabelSelector: "agents.x-k8s.io/warm-pool-sandbox"})
		if err != nil {
			return err
		}
		clear(got)
		notYet := fmt.Errorf("%d of %d", 0, n)
		for i := range pods.Items {
			p := &pods.Items[i]
			if _, old := except[p.Name]; old || p.DeletionTimestamp != nil || !strings.HasPrefix(p.Name, pool) {
				continue
			}
			if p.Status.Phase == corev1.PodFailed {
				t.Fatalf("warm pod %s failed:\n%s", p.Name, e.describePod(t, p))
			}
			if err := ready(p); err != nil {
				notYet = err
				continue
			}
			got[p.Name] = p
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d Ready (%w)", len(got), n, notYet)
		}
		return nil
	})
	return got
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// churn records every change to a set of guarded pods and their Sandboxes
// from the moment they are all Ready.
type churn struct {
	start   time.Time
	watched map[types.NamespacedName]bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	pods      map[types.NamespacedName]*podChurn
	sandboxes map[types.NamespacedName]*sandboxChurn
	errs      []error
}

type podChurn struct {
	uid        types.UID
	deleted    int            // the pod deleted
	recreated  int            // a pod of another UID under its name
	updates    int            // every write (resourceVersion change)
	byManager  map[string]int // whose managedFields entry each write changed
	metaOrSpec int            // writes that changed labels, annotations, owner references or spec
	changed    map[string]int // what each write changed in the status
	last       *corev1.Pod
}

type sandboxChurn struct {
	generation        int64
	generationChanges int
	updates           int
}

func startChurnWatch(t *testing.T, e *env, as *agentSandbox, watched []types.NamespacedName) *churn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &churn{start: time.Now(), watched: map[types.NamespacedName]bool{}, cancel: cancel,
		pods: map[types.NamespacedName]*podChurn{}, sandboxes: map[types.NamespacedName]*sandboxChurn{}}
	t.Cleanup(c.stop)
	for _, k := range watched {
		c.watched[k] = true
	}
	pods, err := e.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: webhook.SandboxNameHashLabel})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if k := (types.NamespacedName{Namespace: p.Namespace, Name: p.Name}); c.watched[k] {
			c.pods[k] = &podChurn{uid: p.UID, byManager: map[string]int{}, changed: map[string]int{}, last: p}
		}
	}
	sbs, err := as.dyn.Resource(sandboxGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sbs.Items {
		if k := (types.NamespacedName{Namespace: s.GetNamespace(), Name: s.GetName()}); c.watched[k] {
			c.sandboxes[k] = &sandboxChurn{generation: s.GetGeneration()}
		}
	}
	podW, err := watchtools.NewRetryWatcherWithContext(ctx, pods.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = webhook.SandboxNameHashLabel
			return e.cs.CoreV1().Pods("").Watch(ctx, o)
		}})
	if err != nil {
		t.Fatal(err)
	}
	sbW, err := watchtools.NewRetryWatcherWithContext(ctx, sbs.GetResourceVersion(), &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return as.dyn.Resource(sandboxGVR).Watch(ctx, o)
		}})
	if err != nil {
		t.Fatal(err)
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		defer podW.Stop()
		for ev := range podW.ResultChan() {
			c.podEvent(ev)
		}
	}()
	go func() {
		defer c.wg.Done()
		defer sbW.Stop()
		for ev := range sbW.ResultChan() {
			c.sandboxEvent(ev)
		}
	}()
	go func() { <-ctx.Done(); podW.Stop(); sbW.Stop() }()
	return c
}

func (c *churn) podEvent(ev watch.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := ev.Object.(*corev1.Pod)
	if !ok {
		if ev.Type == watch.Error {
			c.errs = append(c.errs, fmt.Errorf("pod watch: %w", apierrors.FromObject(ev.Object)))
		}
		return
	}
	k := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	pc := c.pods[k]
	if pc == nil {
		return
	}
	switch {
	case ev.Type == watch.Deleted:
		pc.deleted++
	case p.UID != pc.uid:
		pc.recreated++
		pc.uid = p.UID
	case ev.Type == watch.Modified:
		pc.updates++
		for _, m := range changedManagers(pc.last.ManagedFields, p.ManagedFields) {
			pc.byManager[m]++
		}
		if !equality.Semantic.DeepEqual(pc.last.Labels, p.Labels) || !equality.Semantic.DeepEqual(pc.last.Annotations, p.Annotations) ||
			!equality.Semantic.DeepEqual(pc.last.OwnerReferences, p.OwnerReferences) || !equality.Semantic.DeepEqual(pc.last.Spec, p.Spec) {
			pc.metaOrSpec++
		}
		for _, f := range statusChanges(&pc.last.Status, &p.Status) {
			pc.changed[f]++
		}
	}
	pc.last = p
}

func (c *churn) sandboxEvent(ev watch.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := ev.Object.(*unstructured.Unstructured)
	if !ok {
		if ev.Type == watch.Error {
			c.errs = append(c.errs, fmt.Errorf("Sandbox watch: %w", apierrors.FromObject(ev.Object)))
		}
		return
	}
	sc := c.sandboxes[types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}]
	if sc == nil || ev.Type != watch.Modified {
		return
	}
	sc.updates++
	if u.GetGeneration() != sc.generation {
		sc.generationChanges++
		sc.generation = u.GetGeneration()
	}
}

// changedManagers names (manager, operation, subresource) of each
// managedFields entry that a write added or changed.
func changedManagers(before, after []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, a := range after {
		same := false
		for _, b := range before {
			if a.Manager == b.Manager && a.Operation == b.Operation && a.Subresource == b.Subresource {
				same = equality.Semantic.DeepEqual(a.Time, b.Time) && bytes.Equal(fieldsRaw(a.FieldsV1), fieldsRaw(b.FieldsV1))
				break
			}
		}
		if !same {
			name := a.Manager + " " + string(a.Operation)
			if a.Subresource != "" {
				name += " " + a.Subresource
			}
			out = append(out, name)
		}
	}
	return out
}

// statusChanges names the fields of a pod's status that differ: top-level
// ones, and conditions by type.
func statusChanges(before, after *corev1.PodStatus) []string {
	var out []string
	fields := func(s *corev1.PodStatus) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		b, _ := json.Marshal(s)
		_ = json.Unmarshal(b, &m)
		return m
	}
	b, a := fields(before), fields(after)
	for k, v := range a {
		if k != "conditions" && !bytes.Equal(v, b[k]) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	for _, ac := range after.Conditions {
		same := false
		for _, bc := range before.Conditions {
			if bc.Type == ac.Type {
				same = equality.Semantic.DeepEqual(ac, bc)
			}
		}
		if !same {
			out = append(out, "conditions["+string(ac.Type)+"]")
		}
	}
	sort.Strings(out)
	return out
}

func fieldsRaw(f *metav1.FieldsV1) []byte {
	if f == nil {
		return nil
	}
	return f.GetRawBytes()
}

func (c *churn) stop() {
	c.cancel()
	c.wg.Wait()
}

// finish waits out the rest of the window, stops the watches and checks
// what they saw. The bounds:
//   - no recreation: nothing about a guarded pod makes the controller
//     replace it (it recreates only a pod that is gone);
//   - no write by the controller to a guarded pod, and no change to its
//     labels, annotations, owner references or spec by anyone: the
//     controller patches an owned pod only when its labels or annotations
//     drift from the template's and its own tracking keys
//     (updatePodMetadata), and guardchain adds only guardchain.dev/*
//     annotations besides init containers, volumes and mounts, which it
//     never compares;
//   - no change to a Sandbox's spec (generation) at all, and at most 1 write
//     to its status per Sandbox: the controller writes status only when it
//     differs, so a Ready Sandbox over a Ready pod has nothing to write
//     (measured: none); 1 leaves room for a late pod IP or condition;
//   - at most 1 write to a pod in all: the kubelet fills in the pod's
//     status.resources once after its containers started, which can fall
//     inside the window (measured on v1.37.2: exactly that one write per
//     pod, nothing else).
func (c *churn) finish(t *testing.T) {
	t.Helper()
	if rest := fightWindow - time.Since(c.start); rest > 0 {
		t.Logf("watching %v more", rest.Round(time.Second))
		time.Sleep(rest)
	}
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs {
		t.Error(err)
	}
	var ks []types.NamespacedName
	for k := range c.watched {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
	for _, k := range ks {
		pc, sc := c.pods[k], c.sandboxes[k]
		if pc == nil || sc == nil {
			t.Errorf("%s: pod or Sandbox not found at the window's start", k)
			continue
		}
		managers, _ := json.Marshal(pc.byManager)
		changed, _ := json.Marshal(pc.changed)
		t.Logf("%s over %v: pod deleted %d, recreated %d, pod writes %d (labels/annotations/owners/spec %d; by manager %s; status fields %s); Sandbox writes %d, spec changes %d",
			k, time.Since(c.start).Round(time.Second), pc.deleted, pc.recreated, pc.updates, pc.metaOrSpec, managers, changed, sc.updates, sc.generationChanges)
		if pc.deleted != 0 || pc.recreated != 0 {
			t.Errorf("%s: the pod was deleted %d times and recreated %d times", k, pc.deleted, pc.recreated)
		}
		controllerWrites := 0
		for m, n := range pc.byManager {
			if strings.HasPrefix(m, controllerManager+" ") {
				controllerWrites += n
			}
		}
		if controllerWrites != 0 || pc.metaOrSpec != 0 {
			t.Errorf("%s: the controller wrote the guarded pod %d times; %d writes changed its labels, annotations, owners or spec", k, controllerWrites, pc.metaOrSpec)
		}
		if pc.updates > 1 {
			t.Errorf("%s: %d writes to a steady pod, want at most 1", k, pc.updates)
		}
		if sc.generationChanges != 0 || sc.updates > 1 {
			t.Errorf("%s: the Sandbox's spec changed %d times, %d writes in all; want none and at most 1", k, sc.generationChanges, sc.updates)
		}
	}
}
