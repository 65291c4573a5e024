package integration

import (
	"os"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/webhook"
)

// End-to-end admission of the OpenShell sandbox pod through the real API
// server (server-side dry-run, so nothing accumulates), with and without
// guardchain registered. The ratio of the two is the webhook's cost as the
// API server sees it:
//
//	make test-integration-bench
func benchCreate(b *testing.B, withWebhook bool) {
	raw, err := os.ReadFile("../../webhook/testdata/openshell-sandbox.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(raw, &pod); err != nil {
		b.Fatal(err)
	}
	pod.Namespace = ""
	sandbox(&pod)
	cfg, err := webhook.ParseConfig([]byte("initImage: registry.local/guardchain/initguards:test\n"))
	if err != nil {
		b.Fatal(err)
	}
	ns := namespace(b, "bench", nil)
	if withWebhook {
		register(b, cfg, startWebhook(b, cfg), webhook.RegistrationOptions{Namespaces: []string{ns}})
	}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		got, err := dryRunCreate(ns, &pod)
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if injected(got) != withWebhook {
			b.Fatalf("injected=%v", injected(got))
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}

func BenchmarkControlPlaneCreateSandboxNoWebhook(b *testing.B) { benchCreate(b, false) }
func BenchmarkControlPlaneCreateSandboxWebhook(b *testing.B)   { benchCreate(b, true) }
