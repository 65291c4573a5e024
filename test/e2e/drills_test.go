//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/webhook"
)

// Fault drills: two webhook replicas with failurePolicy Fail while 8 workers
// create sandbox pods (server-side dry-run) for the whole of each drill.
// The API server does not retry a failed webhook call, so every dropped
// connection is a refused pod. Every drill: no pod is admitted without the
// chain. Rollout restart, helm upgrade and certificate rotation: none is
// refused either. SIGKILL of one replica: the refusals and their window are
// reported, and they must have ended once the replica is back. API server
// restart: every create after it is ready again is injected.
//
// The drills need the local cluster (make drills): GUARDCHAIN_DRILLS_CLUSTER
// names deploy/local/cluster.sh, which kills containers and restarts the
// API server.
const (
	drillWorkers = 8
	// settle is the steady load before and after each disruption.
	settle = 3 * time.Second
	// drillLimit and drillMax bound every burst.
	drillLimit = 10 * time.Minute
	drillMax   = 200000
)

type drills struct {
	*env
	cluster string
	pods    []summary
}

func TestDrills(t *testing.T) {
	e := setup(t)
	cluster := os.Getenv("GUARDCHAIN_DRILLS_CLUSTER")
	if cluster == "" {
		t.Fatal("GUARDCHAIN_DRILLS_CLUSTER must name the local cluster's script (make drills sets it)")
	}
	// The drills kill and restart parts of the cluster through that script:
	// they run only against the cluster it started.
	state := or(os.Getenv("GUARDCHAIN_LOCAL_STATE"), "/tmp/guardchain-local")
	local, err := clientcmd.BuildConfigFromFlags("", filepath.Join(state, "admin.kubeconfig"))
	if err != nil {
		t.Fatalf("the drills run only against the local cluster (deploy/local), and none is up under %s: %v", state, err)
	}
	if local.Host != e.cfg.Host {
		t.Fatalf("the drills run only against the local cluster (deploy/local) at %s; KUBECONFIG %s points at %s", local.Host, e.kubeconfig, e.cfg.Host)
	}
	d := &drills{env: e, cluster: cluster}
	ctx := context.Background()
	e.must(t, "helm", e.helmArgs("install", "--create-namespace", "--set", "replicaCount=2")...)
	// helmArgs' values file asks for one replica; every upgrade keeps two.
	t.Cleanup(func() { _, _ = e.run(t, "helm", "uninstall", release, "-n", releaseNS, "--wait") })
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sandboxNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	waitFor(t, "the default ServiceAccount in "+sandboxNS, time.Minute, func() error {
		_, err := e.cs.CoreV1().ServiceAccounts(sandboxNS).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	e.waitInjecting(t)
	d.waitSteady(t)

	t.Run("rollout restart", func(t *testing.T) {
		s := d.drill(t, "rollout restart", func(t *testing.T) {
			d.kubectl(t, "rollout", "restart", "deployment/"+release)
			d.kubectl(t, "rollout", "status", "deployment/"+release, "--timeout", "3m")
			d.waitSteady(t)
		})
		noRefusals(t, s)
	})
	t.Run("helm upgrade with a new configuration", func(t *testing.T) {
		s := d.drill(t, "helm upgrade (config)", func(t *testing.T) {
			e.must(t, "helm", e.helmArgs("upgrade", "--reuse-values", "--set", "replicaCount=2", "--set", "config.proxy.port=3129")...)
			d.waitSteady(t)
		})
		noRefusals(t, s)
		got, err := e.cs.CoreV1().Pods(sandboxNS).Create(ctx, burstPod(t), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if v := envOf(got.Spec.InitContainers, webhook.InitContainerName, "GUARDCHAIN_PROXY_PORT"); v != "3129" {
			t.Errorf("after the upgrade a new pod gets proxy port %q, want 3129", v)
		}
	})
	t.Run("certificate rotation: leaf, then CA", func(t *testing.T) {
		s := d.drill(t, "cert rotation (leaf, CA)", func(t *testing.T) {
			d.rotateLeaf(t)
			d.rotateCA(t)
		})
		noRefusals(t, s)
	})
	t.Run("SIGKILL of one replica", func(t *testing.T) {
		var back time.Time
		var rs []result
		s := d.drillResults(t, "SIGKILL one replica", &rs, func(t *testing.T) {
			back = d.killOne(t)
		})
		// Refusals are the cost of a replica vanishing; they end once the
		// API server stops sending to it, before it is back.
		for _, r := range rs {
			if r.outcome == refused && r.start.After(back) {
				t.Errorf("refused after the killed replica was Ready again (%s): %s", back.Format(time.StampMilli), r.err)
				break
			}
		}
		t.Logf("SIGKILL: %d of %d creates refused over %.2f s; first: %s", s.refused, s.creates, s.window.Seconds(), s.firstRefusal)
	})
	t.Run("API server restart", func(t *testing.T) {
		var back time.Time
		var rs []result
		d.drillResults(t, "API server restart", &rs, func(t *testing.T) {
			back = d.restartAPIServer(t)
		})
		n := 0
		for _, r := range rs {
			if r.start.Before(back) {
				continue
			}
			n++
			if r.outcome != injected {
				t.Errorf("create %d after the API server was ready again (%s): outcome %d: %s", n, back.Format(time.StampMilli), r.outcome, r.err)
			}
		}
		if n == 0 {
			t.Error("no create after the API server was back")
		}
	})

	t.Log("drill results:\n" + summaryHeader + "\n|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range d.pods {
		t.Log(s.String())
	}
}

func noRefusals(t *testing.T, s summary) {
	t.Helper()
	if s.refused > 0 || s.unreachable > 0 {
		t.Errorf("%s: %d creates refused, %d without an answer over %.2f s; first: %s%s", s.name, s.refused, s.unreachable,
			s.window.Seconds(), s.firstRefusal, s.firstError)
	}
}

// drill runs act under a burst with settle time either side, and checks
// that no pod was admitted without the chain.
func (d *drills) drill(t *testing.T, name string, act func(*testing.T)) summary {
	var rs []result
	return d.drillResults(t, name, &rs, act)
}

func (d *drills) drillResults(t *testing.T, name string, rs *[]result, act func(*testing.T)) summary {
	t.Helper()
	b := startBurst(t, d.cfg, drillWorkers, drillLimit, drillMax)
	time.Sleep(settle)
	act(t)
	time.Sleep(settle)
	*rs = b.stop()
	s := summarize(name, *rs)
	d.pods = append(d.pods, s)
	t.Log(summaryHeader)
	t.Log(s.String())
	if s.unguarded > 0 {
		t.Errorf("%s: %d pods admitted without the chain; first: %s", name, s.unguarded, s.firstUnguarded)
	}
	if s.injected == 0 {
		t.Errorf("%s: no pod was injected during the drill", name)
	}
	return s
}

func (d *drills) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return d.must(t, "kubectl", append([]string{"--kubeconfig", d.kubeconfig, "-n", releaseNS}, args...)...)
}

// webhookPods are the webhook Deployment's pods, by name.
func (d *drills) webhookPods(t *testing.T) []corev1.Pod {
	t.Helper()
	l, err := d.cs.CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=guardchain,app.kubernetes.io/instance=" + release})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return l.Items
}

// waitSteady waits for two Ready replicas and no pod of the webhook still
// terminating (a draining replica still has connections to close).
func (d *drills) waitSteady(t *testing.T) {
	t.Helper()
	waitFor(t, "two Ready webhook replicas and none terminating", 3*time.Minute, func() error {
		pods := d.webhookPods(t)
		ready := 0
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("%s is terminating", p.Name)
			}
			if readyPod(&p) {
				ready++
			}
		}
		if ready != 2 || len(pods) != 2 {
			return fmt.Errorf("%d pods, %d Ready", len(pods), ready)
		}
		return nil
	})
}

func readyPod(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// killOne sends SIGKILL to one replica's process and returns when the
// kubelet has restarted it and it is Ready again.
func (d *drills) killOne(t *testing.T) time.Time {
	t.Helper()
	pod := d.webhookPods(t)[0]
	var id string
	var restarts int32
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == "webhook" {
			id, restarts = c.ContainerID, c.RestartCount
		}
	}
	if id == "" {
		t.Fatalf("%s: no webhook container ID", pod.Name)
	}
	killed := time.Now()
	out, err := exec.Command(d.cluster, "kill-container", id).CombinedOutput()
	if err != nil {
		t.Fatalf("kill-container %s: %v\n%s", id, err, out)
	}
	var back time.Time
	waitFor(t, pod.Name+" to restart and be Ready", 2*time.Minute, func() error {
		p, err := d.cs.CoreV1().Pods(releaseNS).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == "webhook" && c.RestartCount > restarts && readyPod(p) {
				back = time.Now()
				return nil
			}
		}
		return fmt.Errorf("not restarted and Ready yet")
	})
	t.Logf("killed %s; Ready again after %.1f s", pod.Name, back.Sub(killed).Seconds())
	return back
}

// restartAPIServer stops the API server and starts it again; it returns
// when the API server is ready.
func (d *drills) restartAPIServer(t *testing.T) time.Time {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(d.cluster, "restart-apiserver").CombinedOutput()
	if err != nil {
		t.Fatalf("restart-apiserver: %v\n%s", err, out)
	}
	back := time.Now()
	t.Logf("API server restarted in %.1f s:\n%s", back.Sub(start).Seconds(), out)
	return back
}

// The self-managed certificates live in the Secret <release>-selfmanaged
// (certs/), which every replica reads each reconcile and serves from. The
// leaf rotates as a renewal does: a new serving certificate from the same
// CA written into the Secret, as the replica that renews writes it. The CA
// rotates as the certs code rolls over a CA it cannot read: emptied in the
// Secret (a kubernetes.io/tls Secret must keep its keys), a new CA joins the
// bundle beside the old one and its leaf is served once the API server has
// trusted it for a while. Each step waits until both replicas serve the
// result.
const tlsSecret = release + "-selfmanaged"

func (d *drills) rotateLeaf(t *testing.T) {
	t.Helper()
	sec, err := d.cs.CoreV1().Secrets(releaseNS).Get(context.Background(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := d.secretCert(t, certs.KeyTLSCert)
	signer := certs.KeyPair{CertPEM: sec.Data[certs.KeySignerCrt], KeyPEM: sec.Data[certs.KeySignerKey]}
	renewed, err := certs.NewServing(signer, old.DNSNames, time.Now(), old.NotAfter.Sub(old.NotBefore))
	if err != nil {
		t.Fatalf("renewing the serving certificate with the Secret's CA: %v", err)
	}
	d.setSecretKeys(t, map[string][]byte{certs.KeyTLSCert: renewed.CertPEM, certs.KeyTLSKey: renewed.KeyPEM})
	leaf, _, err := renewed.Parsed()
	if err != nil {
		t.Fatal(err)
	}
	d.waitServed(t, "the renewed serving certificate", leaf)
}

func (d *drills) rotateCA(t *testing.T) {
	t.Helper()
	oldCA := d.secretCert(t, certs.KeySignerCrt)
	d.setSecretKeys(t, map[string][]byte{certs.KeySignerCrt: nil, certs.KeySignerKey: nil})
	var leaf *x509.Certificate
	// The new CA signs a leaf only once the API server has trusted it for
	// the propagation time (certs.Options.Propagation, 2 minutes).
	waitFor(t, "a serving certificate from a new CA", 6*time.Minute, func() error {
		ca := d.secretCert(t, certs.KeySignerCrt)
		leaf = d.secretCert(t, certs.KeyTLSCert)
		if ca == nil || ca.SerialNumber.Cmp(oldCA.SerialNumber) == 0 {
			return fmt.Errorf("no new CA yet")
		}
		if leaf == nil || leaf.CheckSignatureFrom(ca) != nil {
			return fmt.Errorf("the serving certificate is not the new CA's yet")
		}
		return nil
	})
	d.waitServed(t, "the new CA's serving certificate", leaf)
}

func (d *drills) secretCert(t *testing.T, key string) *x509.Certificate {
	t.Helper()
	s, err := d.cs.CoreV1().Secrets(releaseNS).Get(context.Background(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(s.Data[key])
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("secret %s key %s: %v", tlsSecret, key, err)
	}
	return c
}

// setSecretKeys writes values into the Secret's data (nil: empty).
func (d *drills) setSecretKeys(t *testing.T, data map[string][]byte) {
	t.Helper()
	var ops []string
	var keys []string
	for k, v := range data {
		ops = append(ops, fmt.Sprintf(`{"op":"replace","path":"/data/%s","value":%q}`,
			strings.ReplaceAll(k, "/", "~1"), base64.StdEncoding.EncodeToString(v)))
		keys = append(keys, k)
	}
	slices.Sort(keys)
	patch := "[" + strings.Join(ops, ",") + "]"
	if _, err := d.cs.CoreV1().Secrets(releaseNS).Patch(context.Background(), tlsSecret, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("writing %v in the Secret: %v", keys, err)
	}
	t.Logf("wrote %v in secret %s at %s", keys, tlsSecret, time.Now().Format(time.StampMilli))
}

// waitServed waits until every replica reports leaf's expiry as its served
// certificate's (guardchain_serving_cert_expiry_timestamp_seconds).
func (d *drills) waitServed(t *testing.T, what string, leaf *x509.Certificate) {
	t.Helper()
	want := float64(leaf.NotAfter.Unix())
	waitFor(t, "both replicas to serve "+what, 3*time.Minute, func() error {
		for _, p := range d.webhookPods(t) {
			b, err := d.cs.CoreV1().Pods(releaseNS).ProxyGet("http", p.Name, "8081", "metrics", nil).DoRaw(context.Background())
			if err != nil {
				return err
			}
			got, ok := metric(b, "guardchain_serving_cert_expiry_timestamp_seconds")
			if !ok || got != want {
				return fmt.Errorf("%s serves a certificate expiring %v, want %v", p.Name, got, want)
			}
		}
		return nil
	})
	t.Logf("both replicas serve %s (serial %s) at %s", what, leaf.SerialNumber.Text(16), time.Now().Format(time.StampMilli))
}

// metric reads an unlabelled sample from Prometheus text.
func metric(text []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
