package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/webhook"
)

// kubeconfig writes a kubeconfig for the test API server, for helm.
func kubeconfig(t *testing.T) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	return p
}

// startControllerManager runs the real kube-controller-manager's deployment
// and replicaset controllers against the test API server until the test
// ends, so Deployments roll out ReplicaSets and pods as in a cluster (pods
// stay Pending: there is no scheduler or kubelet, so no rollout completes).
func startControllerManager(t *testing.T) {
	t.Helper()
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kube-controller-manager is built beside kube-apiserver by deploy/tools/build.sh (make test-integration, make test-integration-floor): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kubeconfig(t),
		"--controllers=deployment-controller,replicaset-controller", "--leader-elect=false", "--secure-port=0")
	logs, err := os.Create(filepath.Join(t.TempDir(), "kube-controller-manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kube-controller-manager: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("kube-controller-manager log (tail):\n%s", b)
		}
		logs.Close()
	})
}

// replicaSetsByConfig returns the ReplicaSets of ns by the config ConfigMap
// their pods mount.
func replicaSetsByConfig(t *testing.T, ns string) map[string]appsv1.ReplicaSet {
	t.Helper()
	list, err := clientset.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]appsv1.ReplicaSet{}
	for _, rs := range list.Items {
		out[configVolume(rs.Spec.Template.Spec)] = rs
	}
	return out
}

// podsNaming lists the live pods of ns that mount ConfigMap cm as their config.
func podsNaming(t *testing.T, ns, cm string) []corev1.Pod {
	t.Helper()
	list, err := clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if configVolume(p.Spec) == cm && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func deploymentConfig(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := clientset.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return configVolume(d.Spec.Template.Spec)
}

func configMapData(t *testing.T, ns, name string) (map[string]string, error) {
	t.Helper()
	cm, err := clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

// A helm upgrade that carries a config the webhook refuses (here one past the
// schema with --skip-schema-validation, as any rule the chart cannot check
// would be) rolls out new replicas that cannot start, and must leave the
// running replicas, and restarts of them, with the config they started with.
// Then: helm rollback returns to it and drops the bad one, and a ConfigMap no
// ReplicaSet names any more is dropped at the next upgrade.
func TestChartUpgradeWithBadConfigKeepsRunningReplicasConfig(t *testing.T) {
	startControllerManager(t)
	ns := namespace(t, "guardchain-upgrade", nil)
	target := namespace(t, "openshell", nil)
	kc := kubeconfig(t)
	const rel = "upgrade"
	name := rel + "-guardchain"
	base := []string{chartDir, "--kubeconfig", kc, "-n", ns, "--set", "webhook.namespaces={" + target + "}"}
	run := func(args ...string) {
		t.Helper()
		if out, err := helm(t, args...); err != nil {
			t.Fatalf("helm %s: %v\n%s", args[0], err, out)
		}
	}
	run(append([]string{"install", rel}, base...)...)
	t.Cleanup(func() {
		if out, err := helm(t, "uninstall", rel, "--kubeconfig", kc, "-n", ns); err != nil {
			t.Errorf("helm uninstall: %v\n%s", err, out)
		}
	})

	good := deploymentConfig(t, ns, name)
	waitFor(t, "2 replicas of the installed config", func() error {
		if n := len(podsNaming(t, ns, good)); n != 2 {
			return fmt.Errorf("%d pods mount %s", n, good)
		}
		return nil
	})
	goodData, err := configMapData(t, ns, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := parseWebhookConfig(goodData["config.yaml"]); err != nil {
		t.Fatalf("the installed config is refused: %v", err)
	}

	// The bad upgrade.
	run(append([]string{"upgrade", rel}, append(base, "--skip-schema-validation", "--set", "config.volume.sizeLimit=0")...)...)
	bad := deploymentConfig(t, ns, name)
	if bad == good {
		t.Fatalf("the upgrade kept ConfigMap %s; a new config must get a new one", good)
	}
	badData, err := configMapData(t, ns, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := parseWebhookConfig(badData["config.yaml"]); err == nil || !strings.Contains(err.Error(), "volume.sizeLimit") {
		t.Fatalf("the upgraded config is not the bad one (validate: %v)", err)
	}
	waitFor(t, "the rollout to start a replica of the bad config", func() error {
		if n := len(podsNaming(t, ns, bad)); n == 0 {
			return fmt.Errorf("no pod mounts %s", bad)
		}
		return nil
	})
	if data, err := configMapData(t, ns, good); err != nil || !cmp.Equal(data, goodData) {
		t.Fatalf("after the bad upgrade the running replicas' ConfigMap %s is gone or changed (err %v):\n%s", good, err, cmp.Diff(goodData, data))
	}
	if n := len(podsNaming(t, ns, good)); n != 2 {
		t.Errorf("%d replicas of the good config after the bad upgrade, want 2 (the new ones never become ready)", n)
	}
	// A replica of the good config that restarts (here: is replaced) finds it.
	victim := podsNaming(t, ns, good)[0]
	if err := clientset.CoreV1().Pods(ns).Delete(context.Background(), victim.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old ReplicaSet to replace its pod", func() error {
		pods := podsNaming(t, ns, good)
		for _, p := range pods {
			if p.Name == victim.Name {
				return fmt.Errorf("%s not gone yet", victim.Name)
			}
		}
		if len(pods) != 2 {
			return fmt.Errorf("%d pods mount %s", len(pods), good)
		}
		return nil
	})
	if _, err := configMapData(t, ns, good); err != nil {
		t.Fatalf("the replaced replica's ConfigMap: %v", err)
	}

	// helm rollback: back to the good config; the bad one is dropped.
	run("rollback", rel, "1", "--kubeconfig", kc, "-n", ns)
	if got := deploymentConfig(t, ns, name); got != good {
		t.Errorf("after rollback the Deployment mounts %s, want %s", got, good)
	}
	if _, err := configMapData(t, ns, bad); !apierrors.IsNotFound(err) {
		t.Errorf("after rollback the bad ConfigMap %s is still there (get: %v)", bad, err)
	}
	if data, err := configMapData(t, ns, good); err != nil || !cmp.Equal(data, goodData) {
		t.Errorf("after rollback ConfigMap %s is gone or changed (err %v)", good, err)
	}

	// Cleanup: a good change keeps the old config while its ReplicaSet
	// lives; once the Deployment controller has pruned that ReplicaSet (done
	// here by hand: pruning waits for a finished rollout, which needs a
	// kubelet), the next upgrade drops it.
	run(append([]string{"upgrade", rel}, append(base, "--set", "config.proxy.port=8080")...)...)
	next := deploymentConfig(t, ns, name)
	if next == good || next == bad {
		t.Fatalf("the good change kept ConfigMap %s", next)
	}
	if _, err := configMapData(t, ns, good); err != nil {
		t.Fatalf("ConfigMap %s of the still running replicas was dropped: %v", good, err)
	}
	var old appsv1.ReplicaSet
	waitFor(t, "the ReplicaSet of the new config", func() error {
		byConfig := replicaSetsByConfig(t, ns)
		if _, ok := byConfig[next]; !ok {
			return fmt.Errorf("no ReplicaSet mounts %s yet", next)
		}
		old = byConfig[good]
		return nil
	})
	if err := clientset.AppsV1().ReplicaSets(ns).Delete(context.Background(), old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	run(append([]string{"upgrade", rel}, append(base, "--set", "config.proxy.port=8080")...)...)
	if _, err := configMapData(t, ns, good); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s, which no ReplicaSet names, was kept (get: %v)", good, err)
	}
	if _, err := configMapData(t, ns, next); err != nil {
		t.Errorf("the current ConfigMap %s: %v", next, err)
	}
}

// The chart's helm test pod, rendered with ci/restricted-values.yaml, is
// admitted in a namespace that enforces the restricted Pod Security level,
// and the chart's own registration (its objectSelector) selects it, so the
// webhook injects it: helm test can pass there.
func TestChartTestPodPassesRestrictedPodSecurity(t *testing.T) {
	ns := namespace(t, "psa-restricted", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	objs := render(t, "ci/restricted-values.yaml", "--set", "webhook.namespaces={"+ns+"}")
	cfg, err := webhook.ParseConfig([]byte(configMapOf(t, objs).Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	srv := startWebhook(t, cfg)

	// The chart's registration as rendered, aimed at the server in this process.
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	into(t, find(objs, "MutatingWebhookConfiguration", releaseName), &mwc)
	mwc.Name = "psa-" + rand.String(6)
	mwc.Webhooks[0].ClientConfig = clientConfig(srv.port, webhook.MutatePath)
	ctx := context.Background()
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	// A restricted pod with the selector's labels shows the registration is live.
	probe := sandbox(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Labels: mwc.Webhooks[0].ObjectSelector.MatchLabels},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: cfg.Containers[0], Image: "probe:1", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	})
	waitFor(t, "the API server to call the webhook", func() error {
		p, err := dryRunCreate(ns, probe)
		if err == nil && !injected(p) {
			err = fmt.Errorf("probe pod not injected yet")
		}
		return err
	})

	u := find(objs, "Pod", releaseName+"-test")
	if u == nil {
		t.Fatal("no test pod rendered")
	}
	var pod corev1.Pod
	into(t, u, &pod)
	got, err := dryRunCreate(ns, &pod)
	if err != nil {
		t.Fatalf("the helm test pod is refused in a restricted namespace: %v", err)
	}
	if !injected(got) {
		t.Errorf("the helm test pod is not selected by the chart's registration (labels %v, objectSelector %v)",
			pod.Labels, mwc.Webhooks[0].ObjectSelector)
	}
}
