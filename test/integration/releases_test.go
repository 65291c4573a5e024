package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The Kubernetes releases guardchain is tested on: the newest, which the
// local cluster and the e2e suite run (deploy/tools/kube), and the oldest it
// supports (deploy/tools/kube-floor), which the chart's kubeVersion admits
// and nothing older. make test runs these tests on both.

const toolsDir = "../../deploy/tools"

// floorRun says whether this run is against the oldest supported release
// (make test-integration-floor).
func floorRun(t testing.TB) bool {
	t.Helper()
	switch r := os.Getenv("GUARDCHAIN_KUBE_RELEASE"); r {
	case "", "newest":
		return false
	case "floor":
		return true
	default:
		t.Fatalf("GUARDCHAIN_KUBE_RELEASE=%q: want floor or newest", r)
		return false
	}
}

// pinnedKube is the k8s.io/kubernetes version that the wrapper module
// deploy/tools/<wrapper> requires (and build.sh builds).
func pinnedKube(t testing.TB, wrapper string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(toolsDir, wrapper, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 3 && fields[0] == "require" && fields[1] == "k8s.io/kubernetes" {
			return fields[2]
		}
	}
	t.Fatalf("deploy/tools/%s/go.mod has no 'require k8s.io/kubernetes' line", wrapper)
	return ""
}

// minor is the minor number of a version like v1.30.14.
func minor(t testing.TB, v string) int {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) < 2 || parts[0] != "1" {
		t.Fatalf("version %q is not v1.MINOR...", v)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatalf("version %q: %v", v, err)
	}
	return n
}

// The run is against the release it says: a floor run that started the
// newest kube-apiserver (or the other way round) would prove nothing.
func TestControlPlaneRunsThePinnedRelease(t *testing.T) {
	want := pinnedKube(t, "kube")
	if floorRun(t) {
		want = pinnedKube(t, "kube-floor")
	}
	if serverVersion != want {
		t.Fatalf("kube-apiserver reports %s, want %s (deploy/tools/build.sh%s)", serverVersion, want, map[bool]string{true: " --floor"}[floorRun(t)])
	}
}

// The chart's kubeVersion admits exactly the releases from the tested floor
// on: helm refuses the minor before it, and the README names both tested
// releases.
func TestChartKubeVersionIsTheTestedFloor(t *testing.T) {
	floor, newest := pinnedKube(t, "kube-floor"), pinnedKube(t, "kube")
	fm := minor(t, floor)
	if nm := minor(t, newest); nm <= fm {
		t.Fatalf("the floor %s is not older than the newest %s", floor, newest)
	}

	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		KubeVersion string `json:"kubeVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(">=1.%d.0-0", fm); chart.KubeVersion != want {
		t.Errorf("Chart.yaml kubeVersion %q, want %q: the oldest release the tests run on is %s", chart.KubeVersion, want, floor)
	}

	for _, v := range []string{floor, fmt.Sprintf("v1.%d.0", fm), newest} {
		if out, err := helm(t, "template", release, chartDir, "--kube-version", v); err != nil {
			t.Errorf("helm template --kube-version %s: %v\n%s", v, err, out)
		}
	}
	older := fmt.Sprintf("v1.%d.99", fm-1)
	out, err := helm(t, "template", release, chartDir, "--kube-version", older)
	if err == nil || !strings.Contains(out, "incompatible with Kubernetes "+older) {
		if len(out) > 400 {
			out = out[:400] + "..."
		}
		t.Errorf("helm template --kube-version %s: err=%v, want the chart's kubeVersion to refuse it:\n%s", older, err, out)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("Kubernetes 1.%d or later", fm), floor, newest} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}
