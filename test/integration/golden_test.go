package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/webhook"
)

// corpus is every golden input of the webhook package plus the real-world
// shapes in testdata/, each with the config its .config.yaml gives, each a
// sandbox (OpenShell's annotation).
type corpusPod struct {
	name string
	pod  *corev1.Pod
	cfg  webhook.Config
}

func corpus(t *testing.T) []corpusPod {
	t.Helper()
	var out []corpusPod
	for _, dir := range []string{"../../webhook/testdata", "testdata"} {
		paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			base := strings.TrimSuffix(filepath.Base(p), ".yaml")
			if strings.Contains(base, ".") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(b, &pod); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			extra, _ := os.ReadFile(filepath.Join(dir, base+".config.yaml"))
			cfg, err := webhook.ParseConfig(append([]byte("initImage: registry.local/guardchain/initguards:test\n"), extra...))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			// OpenShell mounts its supervisor as an image volume, and
			// guardchain mounts the init image as one where a pod has one
			// (or config says always): API servers before 1.35 drop the
			// field and refuse the volume.
			if floorRun(t) && (slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Image != nil }) || cfg.ImageVolume == webhook.ImageVolumeAlways) {
				t.Logf("%s: left out on the oldest release: it has, or gets, an image volume (Kubernetes 1.35+)", p)
				continue
			}
			// Marked as OpenShell marks every sandbox pod, so the webhook and
			// the backstop select it.
			out = append(out, corpusPod{name: base, pod: sandbox(&pod), cfg: cfg})
		}
	}
	if len(out) < 40 {
		t.Fatalf("the corpus holds %d pods; keep at least 40", len(out))
	}
	return out
}

// corpusByConfig is the corpus in groups of one config, in corpus order, so
// one server and registration serve each group.
func corpusByConfig(t *testing.T) [][]corpusPod {
	t.Helper()
	index := map[string]int{}
	var groups [][]corpusPod
	for _, c := range corpus(t) {
		b, err := yaml.Marshal(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		i, ok := index[string(b)]
		if !ok {
			i = len(groups)
			index[string(b)] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	return groups
}

// serverSide drops what the API server sets on every object.
var serverSide = cmpopts.IgnoreFields(metav1.ObjectMeta{}, "Namespace", "UID", "ResourceVersion", "CreationTimestamp", "ManagedFields", "Generation")

// Every corpus pod, created through the API with the webhook registered,
// is stored exactly as Inject says (after the same server defaulting), and
// passes the API server's validation; denied pods are refused with Inject's
// message and not stored.
func TestControlPlaneStoresWhatInjectSays(t *testing.T) {
	ctx := context.Background()
	for _, pods := range corpusByConfig(t) {
		cfg := pods[0].cfg
		selected := namespace(t, "openshell", nil)
		plain := namespace(t, "plain", nil)
		srv := startWebhook(t, cfg)
		register(t, cfg, srv, webhook.RegistrationOptions{Namespaces: []string{selected}, ReleaseNamespace: "guardchain-system"})
		for _, c := range pods {
			t.Run(c.name, func(t *testing.T) {
				in := c.pod.DeepCopy()
				in.Namespace = ""
				res := webhook.Inject(in, cfg)
				got, err := clientset.CoreV1().Pods(selected).Create(ctx, in, metav1.CreateOptions{})
				if res.Outcome == webhook.OutcomeDenied {
					if err == nil || !strings.Contains(err.Error(), res.Message()) {
						t.Fatalf("create: %v, want a denial with %q", err, res.Message())
					}
					return
				}
				if err != nil {
					t.Fatalf("create through the webhook: %v", err)
				}
				// The same defaulting, without the webhook: Inject's pod created
				// (dry run) where the webhook does not apply.
				expect := res.Pod.DeepCopy()
				expect.Namespace = ""
				if expect.Name == "" {
					expect.Name = got.Name
					expect.GenerateName = ""
					got.GenerateName = ""
				}
				want, err := dryRunCreate(plain, expect)
				if err != nil {
					t.Fatalf("dry-run create of Inject's pod: %v", err)
				}
				// The init hash covers env copied from the target, which the API
				// server defaults (fieldRef apiVersion) before the webhook sees it.
				ignoreHash := cmpopts.IgnoreMapEntries(func(k, _ string) bool { return k == webhook.AnnotationInitHash })
				if diff := cmp.Diff(want, got, serverSide, ignoreHash); diff != "" {
					t.Errorf("stored pod differs from Inject's (-inject +stored):\n%s", diff)
				}
				_ = clientset.CoreV1().Pods(selected).Delete(ctx, got.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			})
		}
	}
}
