//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const auditNS = "e2e-audit"

// kubectlGuardchain builds the kubectl plugin and runs `kubectl guardchain
// audit ARGS` with it on PATH, as a user would; it returns the output and
// the exit code.
func (e *env) kubectlGuardchain(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.tools, "kubectl"), append([]string{"guardchain", "audit", "--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("kubectl guardchain audit: %v\n%s", err, out)
	}
	return string(out), 0
}

// TestE2EAudit: sandbox pods created while guardchain is not installed are
// unguarded (the audit exits 1); after the install and a rollout restart
// they are guarded (exit 0).
func TestE2EAudit(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	plugin := t.TempDir()
	build := exec.Command("go", "build", "-o", plugin, "../../cmd/kubectl-guardchain")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-guardchain: %v\n%s", err, out)
	}
	for _, ns := range []string{auditNS, sandboxNS} {
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{auditNS, sandboxNS} {
		waitFor(t, "the default ServiceAccount in "+ns, time.Minute, func() error {
			_, err := e.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		})
	}
	labels := map[string]string{"app": "audit-sandbox"}
	p := e.plainPod("", nil)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "audit-sandbox"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: p.Annotations}, Spec: p.Spec}}}
	if _, err := e.cs.AppsV1().Deployments(auditNS).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rollout := func() {
		e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", auditNS, "rollout", "status", "deployment/audit-sandbox", "--timeout=3m")
	}
	rollout()

	out, code := e.kubectlGuardchain(t, plugin, "-n", auditNS)
	t.Logf("before install: kubectl guardchain audit -n %s (exit %d):\n%s", auditNS, code, out)
	if code != 1 || strings.Count(out, " unguarded ") != 2 || !strings.Contains(out, "ReplicaSet/audit-sandbox-") {
		t.Errorf("before install: exit %d, want 1 with 2 unguarded pods and their owner", code)
	}

	e.must(t, "helm", e.helmArgs("install", "--create-namespace", "--set", "webhook.namespaces={"+sandboxNS+","+auditNS+"}")...)
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	e.waitInjecting(t)
	// The plugin is built here, without the images' version stamp: tell it
	// the release the cluster runs, as an operator with another build would.
	ver := strings.Fields(e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", releaseNS, "exec", "deploy/"+release, "--", "/guardchain-webhook", "version"))
	// "guardchain-webhook VERSION chain sha256:SHA"
	if len(ver) != 4 || !strings.HasPrefix(ver[3], "sha256:") {
		t.Fatalf("guardchain-webhook version: %q", ver)
	}
	current := []string{"--release", ver[1], "--chain", strings.TrimPrefix(ver[3], "sha256:")}
	e.must(t, "kubectl", "--kubeconfig", e.kubeconfig, "-n", auditNS, "rollout", "restart", "deployment/audit-sandbox")
	rollout()
	// rollout status returns once the new pods are ready; the old ones may
	// still be terminating, which the audit leaves out.
	waitFor(t, "only the restarted pods", 2*time.Minute, func() error {
		out, code = e.kubectlGuardchain(t, plugin, append([]string{"-n", auditNS, "-o", "json"}, current...)...)
		if code != 0 {
			return errors.New(out)
		}
		return nil
	})
	out, code = e.kubectlGuardchain(t, plugin, append([]string{"-n", auditNS}, current...)...)
	t.Logf("after install and rollout restart: kubectl guardchain audit -n %s (exit %d):\n%s", auditNS, code, out)
	if code != 0 || strings.Count(out, " guarded ") != 2 {
		t.Errorf("after install and restart: exit %d, want 0 with 2 guarded pods", code)
	}
	_ = e.cs.AppsV1().Deployments(auditNS).Delete(ctx, "audit-sandbox", metav1.DeleteOptions{})
}
