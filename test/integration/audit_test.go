package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/guardchain/guardchain/audit"
	"github.com/guardchain/guardchain/internal/version"
	"github.com/guardchain/guardchain/webhook"
)

// userKubeconfig writes a kubeconfig for the test API server whose context's
// namespace is ns, as kubectl users have one.
func userKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["test"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	c.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	c.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test", Namespace: ns}
	c.CurrentContext = "test"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*c, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// running sets the status the kubelet writes once guardchain's init
// containers ran: each own init container terminated with exit code code.
func withStatus(p *corev1.Pod, phase corev1.PodPhase, code int32, msg string) {
	p.Status.Phase = phase
	for _, c := range p.Spec.InitContainers {
		s := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		if webhook.IsOwnInitContainer(c.Name) {
			// What initguards reports, as its termination message.
			s.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				Message: `{"sha256":"0a1b","source":"/usr/local/lib/nemoclaw/preloads","ownership":"uid:998:998","count":5}`}
			if c.Name == webhook.InitContainerName && code != 0 {
				// A failing init container, as the kubelet shows it between tries.
				s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
				s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", Message: msg}
			}
		}
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, s)
	}
}

func TestControlPlaneAuditClassifiesSandboxPods(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "audit", nil)
	cfg := testConfig(t, "")
	injectedPod := func(name string) *corev1.Pod {
		res := webhook.Inject(agentPod(name), cfg)
		if res.Outcome != webhook.OutcomeInjected {
			t.Fatalf("%s: %s", name, res.Outcome)
		}
		return res.Pod
	}
	stale := injectedPod("stale")
	stale.Annotations[webhook.AnnotationVersion] = "v0.0.1"
	forged := agentPod("forged")
	forged.Annotations[webhook.AnnotationStatus], forged.Annotations[webhook.AnnotationVersion] = webhook.StatusInjected, version.Version
	web := agentPod("web")
	web.Spec.Containers[0].Name = "web"
	pods := []struct {
		pod   *corev1.Pod
		phase corev1.PodPhase
		code  int32
	}{
		{injectedPod("guarded"), corev1.PodRunning, 0},
		{injectedPod("pending"), corev1.PodPending, -1},
		{stale, corev1.PodRunning, 0},
		{agentPod("unguarded"), corev1.PodRunning, -1},
		{forged, corev1.PodRunning, -1},
		{injectedPod("failed"), corev1.PodPending, 1},
		{web, corev1.PodRunning, -1},
	}
	for _, p := range pods {
		created, err := clientset.CoreV1().Pods(ns).Create(ctx, p.pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.code >= 0 {
			withStatus(created, p.phase, p.code, "initguards: emit: /tmp/nemoclaw-sandbox-safety-net.js: creating temp file: no space left on device")
			if _, err := clientset.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	kc := userKubeconfig(t, ns)
	var stdout, stderr bytes.Buffer
	code := audit.Main(ctx, []string{"--kubeconfig", kc, "--init-repository", "registry.local/guardchain/initguards", "-o", "json"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (unguarded and failed pods): %s", code, stderr.String())
	}
	var rep audit.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, stdout.String())
	}
	got := map[string]audit.State{}
	for _, r := range rep.Items {
		got[r.Name] = r.State
	}
	want := map[string]audit.State{"guarded": audit.Guarded, "pending": audit.Guarded, "stale": audit.Stale,
		"unguarded": audit.Unguarded, "forged": audit.Unguarded, "failed": audit.Failed}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if !strings.Contains(stderr.String(), "6 sandbox pods: 2 guarded, 1 stale, 2 unguarded, 1 failed") {
		t.Errorf("summary %q", stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := audit.Main(ctx, []string{"--kubeconfig", kc, "--init-repository", "registry.local/guardchain/initguards", "-n", ns}, &stdout, &stderr); code != 1 {
		t.Fatalf("table: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[0], "STATE") {
		t.Fatalf("table:\n%s", stdout.String())
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "failed ") && !strings.Contains(l, "guardchain-init exited 1: initguards: emit:") {
			t.Errorf("the failed row does not say why: %q", l)
		}
	}

	for _, name := range []string{"unguarded", "forged", "failed"} {
		if err := clientset.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	stdout.Reset()
	stderr.Reset()
	if code := audit.Main(ctx, []string{"--kubeconfig", kc, "--init-repository", "registry.local/guardchain/initguards", "-o", "yaml"}, &stdout, &stderr); code != 0 {
		t.Errorf("with only guarded and stale pods: exit %d: %s\n%s", code, stderr.String(), stdout.String())
	}
}
