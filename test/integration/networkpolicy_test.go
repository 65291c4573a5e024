package integration

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// reach is who a NetworkPolicy lets reach one port of the pods it selects:
// everyone, or only the peers listed (none: no one).
type reach struct {
	everyone bool
	peers    []networkingv1.NetworkPolicyPeer
}

// reachOf reads np as the API documents it: a rule with no ports covers
// every port, a port with no number or name every port, and a rule with no
// from every source; the rules add up.
func reachOf(np *networkingv1.NetworkPolicy, name string, number int32) reach {
	var r reach
	for _, rule := range np.Spec.Ingress {
		covers := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			switch {
			case p.Port == nil,
				p.Port.Type == intstr.String && p.Port.StrVal == name,
				p.Port.Type == intstr.Int && (p.Port.IntVal == number || p.EndPort != nil && p.Port.IntVal <= number && number <= *p.EndPort):
				covers = true
			}
		}
		if !covers {
			continue
		}
		if len(rule.From) == 0 {
			r.everyone = true
		}
		r.peers = append(r.peers, rule.From...)
	}
	return r
}

// containerPorts are the webhook container's named ports.
func containerPorts(t *testing.T, dep *appsv1.Deployment) map[string]int32 {
	t.Helper()
	ports := map[string]int32{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "webhook" {
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
		}
	}
	return ports
}

// The NetworkPolicy (networkPolicy.enabled) leaves the webhook port open to
// every source (the API server may sit outside the pod network) and the
// probes port, which serves /metrics, /healthz and /readyz in plain HTTP and
// is the Service's metrics port, only to networkPolicy.metricsFrom: by
// default to no one. No other port is open. Each rendering is also accepted
// by the real API server.
func TestChartNetworkPolicy(t *testing.T) {
	prometheus := []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}, {
		IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"},
	}}
	c, err := client.New(restConfig, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		args    []string
		metrics []networkingv1.NetworkPolicyPeer
	}{
		{"default", []string{"--set", "networkPolicy.enabled=true"}, nil},
		{"empty metricsFrom", []string{"-f", valuesFile(t, "networkPolicy: {enabled: true, metricsFrom: []}")}, nil},
		{"a scraper", []string{"-f", valuesFile(t, `networkPolicy:
  enabled: true
  metricsFrom:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
    podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
  - ipBlock: {cidr: 10.0.0.0/24}
`)}, prometheus},
		{"ci/cert-manager-values.yaml", []string{"-f", filepath.Join(chartDir, "ci/cert-manager-values.yaml")}, prometheus[:1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderRelease(t, release, releaseNS, tt.args...)
			u := find(objs, "NetworkPolicy", releaseName)
			if u == nil {
				t.Fatal("no NetworkPolicy")
			}
			var np networkingv1.NetworkPolicy
			into(t, u, &np)
			var dep appsv1.Deployment
			into(t, find(objs, "Deployment", releaseName), &dep)
			ports := containerPorts(t, &dep)
			if ports["webhook"] == 0 || ports["probes"] == 0 {
				t.Fatalf("the webhook container's ports %v lack webhook or probes", ports)
			}
			var svc corev1.Service
			into(t, find(objs, "Service", releaseName), &svc)
			for _, p := range svc.Spec.Ports {
				if p.Name == "metrics" && p.TargetPort.String() != "probes" {
					t.Errorf("the Service's metrics port targets %s, not the probes port", p.TargetPort.String())
				}
			}
			if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policyTypes %v, want Ingress", np.Spec.PolicyTypes)
			}
			if got := reachOf(&np, "webhook", ports["webhook"]); !got.everyone {
				t.Errorf("the webhook port is open only to %v, want every source", got.peers)
			}
			got := reachOf(&np, "probes", ports["probes"])
			if got.everyone {
				t.Errorf("the probes port (metrics, health) is open to every source, want only %d peers: %+v", len(tt.metrics), tt.metrics)
			}
			if !reflect.DeepEqual(got.peers, tt.metrics) {
				t.Errorf("the probes port is open to %+v, want %+v", got.peers, tt.metrics)
			}
			if other := reachOf(&np, "", 9999); other.everyone || len(other.peers) > 0 {
				t.Errorf("port 9999 is open: %+v", other)
			}
			if err := c.Create(context.Background(), u, client.DryRunAll); err != nil {
				t.Errorf("the API server refuses the NetworkPolicy: %v", err)
			}
		})
	}
}

// A peer the API would refuse or that is not a peer at all stops helm at
// render time.
func TestChartNetworkPolicySchema(t *testing.T) {
	for _, tt := range []struct{ values, want string }{
		{"networkPolicy: {metricsFrom: [{}]}", "at '/networkPolicy/metricsFrom/0'"},
		{"networkPolicy: {metricsFrom: [{podSelecter: {}}]}", "at '/networkPolicy/metricsFrom/0'"},
		{"networkPolicy: {metricsFrom: [{ipBlock: {}}]}", "at '/networkPolicy/metricsFrom/0/ipBlock'"},
		{"networkPolicy: {metricsFrom: {podSelector: {}}}", "at '/networkPolicy/metricsFrom'"},
	} {
		out, err := helm(t, "template", release, chartDir, "-n", releaseNS, "-f", valuesFile(t, tt.values))
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("%s: err=%v, output lacks %q:\n%s", tt.values, err, tt.want, out)
		}
	}
}

// With a ServiceMonitor and the NetworkPolicy but no metricsFrom, the
// scrapes are dropped: helm install says so.
func TestChartNetworkPolicyWarnsOfDroppedScrapes(t *testing.T) {
	// helm's dry run maps the ServiceMonitor's kind through the API server.
	installCertManagerCRDs(t)
	kc := kubeconfig(t)
	const warning = "the ServiceMonitor's scrapes are dropped"
	for _, tt := range []struct {
		name string
		args []string
		warn bool
	}{
		{"no metricsFrom", []string{"--set", "networkPolicy.enabled=true,serviceMonitor.enabled=true"}, true},
		{"no ServiceMonitor", []string{"--set", "networkPolicy.enabled=true"}, false},
		{"no NetworkPolicy", []string{"--set", "serviceMonitor.enabled=true"}, false},
		{"ci/cert-manager-values.yaml", []string{"-f", filepath.Join(chartDir, "ci/cert-manager-values.yaml")}, false},
	} {
		out, err := helm(t, append([]string{"install", "notes", chartDir, "--dry-run=client", "--kubeconfig", kc, "-n", releaseNS}, tt.args...)...)
		if err != nil {
			t.Fatalf("%s: helm install --dry-run: %v\n%s", tt.name, err, out)
		}
		if got := strings.Contains(out, warning); got != tt.warn {
			t.Errorf("%s: the notes warn of dropped scrapes: %v, want %v", tt.name, got, tt.warn)
		}
	}
}
