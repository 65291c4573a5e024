package integration

import (
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
)

// helmRelease is the chart installed with the real helm into the test API
// server, in its own namespace. Its webhook selects only a namespace no
// test creates pods in: nothing serves it here.
type helmRelease struct {
	name, ns   string
	kubeconfig string
	chart      string   // the chart of the current revision
	base       []string // --set arguments every install and upgrade gets
}

func installRelease(t *testing.T, args ...string) *helmRelease {
	t.Helper()
	return installChart(t, chartDir, args...)
}

// installChart installs chart, this one or another release's.
func installChart(t *testing.T, chart string, args ...string) *helmRelease {
	t.Helper()
	r := &helmRelease{name: "guardchain-" + rand.String(5), ns: namespace(t, "guardchain-system", nil), kubeconfig: kubeconfig(t), chart: chart}
	r.base = []string{"--set", "webhook.namespaces={unserved-" + rand.String(5) + "}"}
	r.helm(t, append(append([]string{"install", r.name, chart}, r.base...), args...)...)
	t.Cleanup(func() { _, _ = r.try(t, "uninstall", r.name) })
	return r
}

func (r *helmRelease) try(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helm(t, append(args, "-n", r.ns, "--kubeconfig", r.kubeconfig)...)
}

func (r *helmRelease) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.try(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// upgrade keeps the values given so far and applies args on top.
func (r *helmRelease) upgrade(t *testing.T, args ...string) {
	t.Helper()
	r.helm(t, append(append([]string{"upgrade", r.name, r.chart, "--reuse-values"}, r.base...), args...)...)
}

// upgradeTo upgrades to chart with its default values and args.
func (r *helmRelease) upgradeTo(t *testing.T, chart string, args ...string) {
	t.Helper()
	r.chart = chart
	r.helm(t, append(append([]string{"upgrade", r.name, chart}, r.base...), args...)...)
}

// manifest is what helm recorded for revision rev.
func (r *helmRelease) manifest(t *testing.T, rev int) string {
	t.Helper()
	return r.helm(t, "get", "manifest", r.name, "--revision", strconv.Itoa(rev))
}

// objects are the objects of the current revision.
func (r *helmRelease) objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return decodeManifests(t, r.helm(t, "get", "manifest", r.name))
}
