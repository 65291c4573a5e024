package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/guardchain/guardchain/webhook"
)

// What a webhook outage does to the cluster, with failurePolicy Fail and
// nothing listening at the webhook's address: the registration's
// matchConditions let only sandbox pods reach it, so those are refused (no
// sandbox starts unguarded) and every other pod of the cluster is admitted as
// if guardchain were not installed, in any namespace, with a container named
// agent or not. The registration before sandboxes were selected by their
// marks (namespace openshell, any pod with an agent container) refused every
// such pod there too. The numbers are logged, each beside a baseline taken in
// the same run.
func TestControlPlaneOutageRefusesOnlySandboxes(t *testing.T) {
	cfg := testConfig(t, "")
	ctx := context.Background()
	sandboxNS := namespace(t, "openshell", nil)
	workspaceNS := namespace(t, "openshell-gw-ws", nil)
	teamNS := namespace(t, "team", nil)
	dead := clientConfig(freePort(t), webhook.MutatePath) // nothing listens there

	pods := func(ns string) map[string]*corev1.Pod {
		agent := func() *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "outage-"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "node:22-slim"}}}}
		}
		web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "outage-"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}
		byLabel := agent()
		byLabel.Labels = map[string]string{webhook.SandboxNameHashLabel: "5d1c0a7e"}
		return map[string]*corev1.Pod{
			"sandbox (annotation)": sandbox(agent()),
			"sandbox (label)":      byLabel,
			"agent, not a sandbox": agent(),
			"web":                  web,
		}
	}
	// outcome dry-run creates each kind of pod n times in each namespace and
	// returns, per namespace and kind, how many were refused, and the
	// latency of every admitted one.
	type key struct{ ns, kind string }
	outcome := func(n int) (map[key]int, []time.Duration) {
		refused := map[key]int{}
		var took []time.Duration
		for i := 0; i < n; i++ {
			for _, ns := range []string{sandboxNS, workspaceNS, teamNS} {
				for kind, p := range pods(ns) {
					start := time.Now()
					_, err := dryRunCreate(ns, p)
					switch {
					case err == nil:
						took = append(took, time.Since(start))
					case strings.Contains(err.Error(), "failed calling webhook"):
						refused[key{ns, kind}]++
					default:
						t.Fatalf("%s in %s: %v", kind, ns, err)
					}
				}
			}
		}
		return refused, took
	}
	install := func(mwc *admissionregistrationv1.MutatingWebhookConfiguration) {
		created, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the API server to call the dead webhook", func() error {
			if _, err := dryRunCreate(sandboxNS, probePod(cfg)); err == nil {
				return fmt.Errorf("a sandbox pod is still admitted")
			}
			return nil
		})
		t.Cleanup(func() {
			_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
			waitFor(t, "the dead registration to be dropped", func() error {
				_, err := dryRunCreate(sandboxNS, probePod(cfg))
				return err
			})
		})
	}
	const n = 20
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}

	baseRefused, base := outcome(n)
	if len(baseRefused) != 0 {
		t.Fatalf("refused without any webhook: %v", baseRefused)
	}

	// Today's registration, as the chart renders it by default: every
	// namespace but kube-system and the release namespace.
	now := webhook.MutatingWebhookConfiguration(cfg, webhook.RegistrationOptions{Name: "guardchain-outage-" + rand.String(4),
		ClientConfig: dead, ReleaseNamespace: "guardchain-system"})
	install(now)
	refused, during := outcome(n)
	for _, ns := range []string{sandboxNS, workspaceNS, teamNS} {
		for kind := range pods(ns) {
			want := 0
			if strings.HasPrefix(kind, "sandbox") {
				want = n
			}
			if got := refused[key{ns, kind}]; got != want {
				t.Errorf("outage: %s in %s: %d of %d refused, want %d", kind, ns, got, n, want)
			}
		}
	}
	t.Logf("outage, sandboxes selected by their marks in every namespace: %d of %d sandbox pods refused, %d of %d other pods admitted; "+
		"admission of the others: median %v, without the registration %v (%.2fx)",
		countIf(refused, func(k key) bool { return strings.HasPrefix(k.kind, "sandbox") }), 2*3*n, len(during), 2*3*n,
		median(during).Round(10*time.Microsecond), median(base).Round(10*time.Microsecond), float64(median(during))/float64(median(base)))

	// The registration before: namespace openshell, any pod with an agent
	// container, marks or not.
	before := now.DeepCopy()
	before.Name = "guardchain-before-" + rand.String(4)
	before.Webhooks[0].Name = before.Name + ".guardchain.dev"
	before.Webhooks[0].NamespaceSelector.MatchExpressions = append(before.Webhooks[0].NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{sandboxNS}})
	before.Webhooks[0].MatchConditions = slices.DeleteFunc(before.Webhooks[0].MatchConditions,
		func(c admissionregistrationv1.MatchCondition) bool { return c.Name == "is-sandbox" })
	_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, now.Name, metav1.DeleteOptions{})
	install(before)
	waitFor(t, "today's registration to be dropped", func() error {
		if _, err := dryRunCreate(workspaceNS, probePod(cfg)); err != nil {
			return err
		}
		return nil
	})
	refusedBefore, _ := outcome(n)
	if got := refusedBefore[key{sandboxNS, "agent, not a sandbox"}]; got != n {
		t.Errorf("the earlier registration refused %d of %d non-sandbox agent pods in its namespace during an outage, want all", got, n)
	}
	if got := refusedBefore[key{workspaceNS, "sandbox (annotation)"}]; got != 0 {
		t.Errorf("the earlier registration refused %d sandboxes outside its namespace; it never selected them", got)
	}
	t.Logf("outage, the earlier registration (namespace %s, any agent pod): refused there %d of %d agent pods that are no sandbox; "+
		"sandboxes in other namespaces admitted unguarded: %d of %d",
		sandboxNS, refusedBefore[key{sandboxNS, "agent, not a sandbox"}], n,
		2*n-refusedBefore[key{workspaceNS, "sandbox (annotation)"}]-refusedBefore[key{workspaceNS, "sandbox (label)"}], 2*n)
}

func countIf[K comparable](m map[K]int, f func(K) bool) int {
	total := 0
	for k, v := range m {
		if f(k) {
			total += v
		}
	}
	return total
}
