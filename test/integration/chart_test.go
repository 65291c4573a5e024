package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/webhook"
)

const (
	chartDir    = "../../charts/guardchain"
	release     = "gc"
	releaseNS   = "guardchain-system"
	releaseName = "gc-guardchain"
)

func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm is built beside kube-apiserver by deploy/tools/build.sh (make test-integration): %v", err)
	}
	return p
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// chartCase is one values file and what the Go side builds for it.
type chartCase struct {
	values string // "" for the defaults
	reg    webhook.RegistrationOptions
	cm     bool
	// action is the backstop's binding: Deny, or Warn and Audit.
	action []admissionregistrationv1.ValidationAction
}

var (
	deny = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	warn = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn, admissionregistrationv1.Audit}
)

func chartCases() []chartCase {
	svc := func() admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: releaseNS, Name: releaseName, Path: ptr.To(webhook.MutatePath), Port: ptr.To(int32(443))}}
	}
	return []chartCase{
		{"", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), ReleaseNamespace: releaseNS}, false, deny},
		{"ci/cert-manager-values.yaml", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), ReleaseNamespace: releaseNS}, true, deny},
		{"ci/restricted-values.yaml", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), Namespaces: []string{"openshell", "sandboxes"},
			ReleaseNamespace: releaseNS, FailurePolicy: admissionregistrationv1.Ignore,
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"openshell.dev/sandbox-managed": "true"}}}, false, warn},
	}
}

func render(t *testing.T, values string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	var args []string
	if values != "" {
		args = append(args, "-f", filepath.Join(chartDir, values))
	}
	return renderRelease(t, release, releaseNS, append(args, extra...)...)
}

func decodeManifests(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func into(t *testing.T, u *unstructured.Unstructured, out any) {
	t.Helper()
	b, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

var ignoreMeta = cmpopts.IgnoreFields(metav1.ObjectMeta{}, "Labels", "Annotations")

// configMapOf is the ConfigMap the rendered Deployment mounts as its config.
func configMapOf(t *testing.T, objs []*unstructured.Unstructured) *corev1.ConfigMap {
	t.Helper()
	d := find(objs, "Deployment", releaseName)
	if d == nil {
		t.Fatal("no Deployment")
	}
	var dep appsv1.Deployment
	into(t, d, &dep)
	name := configVolume(dep.Spec.Template.Spec)
	u := find(objs, "ConfigMap", name)
	if u == nil {
		t.Fatalf("the Deployment mounts ConfigMap %q, which the chart does not render", name)
	}
	var cm corev1.ConfigMap
	into(t, u, &cm)
	return &cm
}

// configVolume names the ConfigMap a webhook pod reads its config from.
func configVolume(spec corev1.PodSpec) string {
	for _, v := range spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	return ""
}

// The chart renders exactly the registration and cert-manager objects the Go
// code builds, from a config the webhook accepts: the two cannot drift.
func TestChartRendersWhatGoBuilds(t *testing.T) {
	for _, tc := range chartCases() {
		t.Run("values="+tc.values, func(t *testing.T) {
			objs := render(t, tc.values)
			cmap := configMapOf(t, objs)
			cfg, err := webhook.ParseConfig([]byte(cmap.Data["config.yaml"]))
			if err != nil {
				t.Fatalf("the chart's config.yaml is refused by the webhook: %v\n%s", err, cmap.Data["config.yaml"])
			}

			if tc.values == "" {
				// values.yaml's config is webhook.Default(), but for the
				// image, which the chart builds from initImage.
				want := webhook.Default()
				want.InitImage, want.ImagePullPolicy = cfg.InitImage, cfg.ImagePullPolicy
				if diff := cmp.Diff(want, cfg); diff != "" {
					t.Errorf("values.yaml's config differs from webhook.Default() (-Go +chart):\n%s", diff)
				}
			}

			var got admissionregistrationv1.MutatingWebhookConfiguration
			mwc := find(objs, "MutatingWebhookConfiguration", releaseName)
			if mwc == nil {
				t.Fatal("no MutatingWebhookConfiguration")
			}
			into(t, mwc, &got)
			want := webhook.MutatingWebhookConfiguration(cfg, tc.reg)
			if diff := cmp.Diff(want, &got, ignoreMeta); diff != "" {
				t.Errorf("chart's MutatingWebhookConfiguration differs from Go's (-go +chart):\n%s", diff)
			}

			checkEnforcement(t, objs, cfg, tc)

			cmOpts := certs.CertManagerOptions{Name: releaseName, Namespace: releaseNS, Service: releaseName}
			if tc.cm {
				if got := mwc.GetAnnotations()[certs.InjectCAFromAnnotation]; got != cmOpts.InjectCAFrom() {
					t.Errorf("inject-ca-from %q, want %q", got, cmOpts.InjectCAFrom())
				}
				built := certs.CertManager(cmOpts)
				for _, pair := range []struct {
					kind string
					want any
				}{{"Issuer", built.SelfSigned}, {"Certificate", built.CA}, {"Issuer", built.CAIssuer}, {"Certificate", built.Serving}} {
					name := pair.want.(metav1.Object).GetName()
					u := find(objs, pair.kind, name)
					if u == nil {
						t.Errorf("chart lacks %s %s", pair.kind, name)
						continue
					}
					var diff string
					switch w := pair.want.(type) {
					case *cmv1.Issuer:
						var g cmv1.Issuer
						into(t, u, &g)
						diff = cmp.Diff(w, &g)
					case *cmv1.Certificate:
						var g cmv1.Certificate
						into(t, u, &g)
						diff = cmp.Diff(w, &g)
					}
					if diff != "" {
						t.Errorf("%s %s differs (-go +chart):\n%s", pair.kind, name, diff)
					}
				}
			} else if find(objs, "Certificate", releaseName+"-serving") != nil {
				t.Error("cert-manager objects rendered in selfManaged mode")
			}
		})
	}
}

func TestChartLintStrict(t *testing.T) {
	for _, tc := range chartCases() {
		args := []string{"lint", "--strict", chartDir}
		if tc.values != "" {
			args = append(args, "-f", filepath.Join(chartDir, tc.values))
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("helm lint --strict %s: %v\n%s", tc.values, err, out)
		}
	}
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	tests := []struct{ set, want string }{
		{"config.proxy.port=70000", "at '/config/proxy/port': maximum: got 70,000, want 65,535"},
		{"certs.mode=vault", "at '/certs/mode': value must be one of 'selfManaged', 'certManager'"},
		{"config.ownership=admin", "at '/config/ownership'"},
		{"config.requiredGuards={safety-nett}", "at '/config/requiredGuards/0'"},
		{"webhook.failurePolicy=Maybe", "at '/webhook/failurePolicy'"},
		{"image.digest=latest", "at '/image/digest'"},
		{"replicas=3", "additional properties 'replicas' not allowed"},
	}
	for _, tt := range tests {
		out, err := helm(t, "template", release, chartDir, "--set", tt.set)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("--set %s: err=%v, output lacks %q:\n%s", tt.set, err, tt.want, out)
		}
	}
}

// Every rendered object, for every values file, is accepted by the real API
// server (server-side dry run), cert-manager's objects against the CRDs that
// ship in the cert-manager module.
func TestChartServerSideDryRun(t *testing.T) {
	installCertManagerCRDs(t)
	c, err := client.New(restConfig, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{releaseNS, "openshell"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, tc := range chartCases() {
		t.Run("values="+tc.values, func(t *testing.T) {
			for _, o := range render(t, tc.values) {
				if err := c.Create(ctx, o, client.DryRunAll); err != nil {
					t.Errorf("%s %s refused: %v", o.GetKind(), o.GetName(), err)
				}
			}
		})
	}
}

// installCertManagerCRDs installs cert-manager's Certificate and Issuer
// CRDs, from the cert-manager module, so the certManager mode's objects are
// accepted.
func installCertManagerCRDs(t *testing.T) {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("finding the cert-manager module: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(dir)), "deploy", "crds")
	if _, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(crds, "cert-manager.io_certificates.yaml"), filepath.Join(crds, "cert-manager.io_issuers.yaml"), "testdata/crds"},
	}); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
}

// valuesFile writes values YAML for one helm call.
func valuesFile(t *testing.T, yamlText string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(yamlText), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseWebhookConfig is what a webhook pod does with its config file.
func parseWebhookConfig(config string) error {
	if !strings.Contains(config, "initImage:") {
		config = "initImage: registry.local/guardchain/initguards:test\n" + config
	}
	_, err := webhook.ParseConfig([]byte(config))
	return err
}

// The chart refuses, at render time and naming the value, every config the
// webhook refuses: a bad value must stop helm, not crash-loop the new
// replicas. Each bad row is also fed to webhook.ParseConfig, which must refuse
// it too; each good row (the edges of the same rules) renders a config the
// webhook accepts.
func TestChartRefusesWhatTheWebhookRefuses(t *testing.T) {
	bad := []struct {
		name   string
		values string // helm values
		config string // the webhook config those values would give
		want   string // in helm's output
	}{
		{"zero size limit", "config: {volume: {sizeLimit: 0}}", "volume: {sizeLimit: 0}", "at '/config/volume/sizeLimit'"},
		{"zero size limit with unit", "config: {volume: {sizeLimit: 0Mi}}", "volume: {sizeLimit: 0Mi}", "at '/config/volume/sizeLimit'"},
		{"empty label in proxy host", "config: {proxy: {host: a..b, port: 3128}}", "proxy: {host: a..b, port: 3128}", "at '/config/proxy/host'"},
		{"proxy host label over 63", "config: {proxy: {host: " + strings.Repeat("a", 64) + ".example, port: 3128}}",
			"proxy: {host: " + strings.Repeat("a", 64) + ".example, port: 3128}", "at '/config/proxy/host'"},
		{"proxy host with IPv6 zone", "config: {proxy: {host: 'fe80::1%eth0', port: 3128}}", "proxy: {host: 'fe80::1%eth0', port: 3128}", "at '/config/proxy/host'"},
		{"proxy host bad IPv6", "config: {proxy: {host: 'a::b::c', port: 3128}}", "proxy: {host: 'a::b::c', port: 3128}", "at '/config/proxy/host'"},
		{"unknown cache redirect", "config: {cacheRedirects: HOME}", "cacheRedirects: HOME", "at '/config/cacheRedirects'"},
		{"cache redirects trailing comma", "config: {cacheRedirects: 'XDG_CACHE_HOME,'}", "cacheRedirects: 'XDG_CACHE_HOME,'", "at '/config/cacheRedirects'"},
		{"uid out of range", "config: {ownership: 'uid:4294967295'}", "ownership: 'uid:4294967295'", "at '/config/ownership'"},
		{"gid out of range", "config: {ownership: 'uid:1000:4294967296'}", "ownership: 'uid:1000:4294967296'", "at '/config/ownership'"},
		{"negative uid", "config: {ownership: 'uid:-1'}", "ownership: 'uid:-1'", "at '/config/ownership'"},
		{"request above limit", "config: {resources: {requests: {cpu: 200m}}}",
			"resources: {requests: {cpu: 200m, memory: 16Mi}, limits: {cpu: 100m, memory: 32Mi}}",
			"config.resources.requests.cpu (200m) exceeds config.resources.limits.cpu (100m)"},
		{"request above limit across units", "config: {resources: {requests: {memory: 1025Mi}, limits: {memory: 1Gi}}}",
			"resources: {requests: {memory: 1025Mi}, limits: {memory: 1Gi}}",
			"config.resources.requests.memory (1025Mi) exceeds config.resources.limits.memory (1Gi)"},
		{"not a quantity", "config: {resources: {requests: {cpu: 1.2.3}}}", "resources: {requests: {cpu: 1.2.3}}", "at '/config/resources/requests/cpu'"},
		{"relative CA path", "config: {gitSSLCAInfo: ca.pem}", "gitSSLCAInfo: ca.pem", "at '/config/gitSSLCAInfo'"},
		{"unclean preloads dir", "config: {preloadsDir: /a/./b}", "preloadsDir: /a/./b", `config.preloadsDir "/a/./b": want a clean absolute path`},
		{"preloads dir with ..", "config: {preloadsDir: /usr/local/lib/nemoclaw/preloads/..}", "preloadsDir: /usr/local/lib/nemoclaw/preloads/..", "want a clean absolute path"},
		{"unknown writer", "config: {writer: nobody}", "writer: nobody", "at '/config/writer'"},
		{"unknown source", "config: {source: registry}", "source: registry", "at '/config/source'"},
		{"bad opt-out label", "config: {namespaceOptOutLabel: 'opt out'}", "namespaceOptOutLabel: 'opt out'", "at '/config/namespaceOptOutLabel'"},
		{"opt-out label with empty prefix", "config: {namespaceOptOutLabel: /opt-out}", "namespaceOptOutLabel: /opt-out", "at '/config/namespaceOptOutLabel'"},
		{"opt-out label prefix over 253", "config: {namespaceOptOutLabel: " + strings.Repeat("a.", 127) + "b/opt-out}",
			"namespaceOptOutLabel: " + strings.Repeat("a.", 127) + "b/opt-out", "the prefix before / is longer than 253 characters"},
		{"guard listed twice", "config: {requiredGuards: [safety-net, safety-net]}", "requiredGuards: [safety-net, safety-net]", "at '/config/requiredGuards'"},
		{"space in init image tag", "initImage: {tag: 'v1 x'}", "initImage: 'ghcr.io/guardchain/initguards:v1 x'", "at '/initImage/tag'"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := parseWebhookConfig(tt.config); err == nil {
				t.Fatalf("the webhook accepts %q; the row tests nothing", tt.config)
			}
			out, err := helm(t, "template", release, chartDir, "-n", releaseNS, "-f", valuesFile(t, tt.values))
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("helm template with %s: err=%v, output lacks %q:\n%s", tt.values, err, tt.want, out)
			}
		})
	}

	good := []struct{ name, values string }{
		{"largest uid and gid", "config: {ownership: 'uid:4294967294:4294967294'}"},
		{"IPv6 proxy", "config: {proxy: {host: '::1', port: 3128}}"},
		{"IPv4-mapped IPv6 proxy", "config: {proxy: {host: '::ffff:10.0.0.1', port: 3128}}"},
		{"mixed-case proxy name", "config: {proxy: {host: Proxy.Example.COM, port: 3128}}"},
		{"cache redirects with spaces", "config: {cacheRedirects: ' XDG_CACHE_HOME , HISTFILE'}"},
		{"no cache redirects", "config: {cacheRedirects: none}"},
		{"empty cache redirects", "config: {cacheRedirects: ''}"},
		{"prefixed opt-out label", "config: {namespaceOptOutLabel: example.com/opt-out}"},
		{"request equal to limit in other units", "config: {resources: {requests: {memory: 1Gi}, limits: {memory: 1073741824}}}"},
		{"fractional cpu", "config: {resources: {requests: {cpu: 0.1}, limits: {cpu: 100m}}}"},
		{"fractional size limit", "config: {volume: {sizeLimit: .5Gi}}"},
		{"numeric size limit", "config: {volume: {sizeLimit: 1}}"},
		{"absolute CA path", "config: {gitSSLCAInfo: /etc/ssl/ca.pem}"},
	}
	for _, v := range guards.CacheRedirectVars() {
		good = append(good, struct{ name, values string }{"cache redirect " + v, "config: {cacheRedirects: " + v + "}"})
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helm(t, "template", release, chartDir, "-n", releaseNS, "-f", valuesFile(t, tt.values))
			if err != nil {
				t.Fatalf("helm template with %s: %v\n%s", tt.values, err, out)
			}
			cm := configMapOf(t, decodeManifests(t, out))
			if err := parseWebhookConfig(cm.Data["config.yaml"]); err != nil {
				t.Errorf("the webhook refuses the chart's config for %s: %v\n%s", tt.values, err, cm.Data["config.yaml"])
			}
		})
	}
}

// Every values file in ci/ is one of chartCases, so lint, render and the
// server-side dry run cover it.
func TestChartCasesCoverEveryCIValuesFile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tc := range chartCases() {
		covered[tc.values] = true
	}
	for _, f := range files {
		rel, _ := filepath.Rel(chartDir, f)
		if !covered[rel] {
			t.Errorf("%s is not in chartCases", rel)
		}
	}
}

// A webhook.namespaces entry the registration would exclude (the release
// namespace, kube-system) makes helm fail with a message naming it, instead
// of installing a selector that silently selects nothing.
func TestChartRefusesUnselectableNamespaces(t *testing.T) {
	tests := []struct{ namespaces, want string }{
		{"{openshell," + releaseNS + "}", "webhook.namespaces lists " + releaseNS + ", the release namespace"},
		{"{" + releaseNS + "}", "webhook.namespaces lists " + releaseNS + ", the release namespace"},
		{"{kube-system}", "webhook.namespaces lists kube-system"},
	}
	for _, tt := range tests {
		out, err := helm(t, "template", release, chartDir, "-n", releaseNS, "--set", "webhook.namespaces="+tt.namespaces)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("helm template --set webhook.namespaces=%s: err=%v, output lacks %q:\n%s", tt.namespaces, err, tt.want, out)
		}
	}

	// helm install through the real API server: refused before anything is created.
	ns := namespace(t, "guardchain-system", nil)
	kc := kubeconfig(t)
	out, err := helm(t, "install", "selfsel", chartDir, "--kubeconfig", kc, "-n", ns, "--set", "webhook.namespaces={openshell,"+ns+"}")
	if want := "webhook.namespaces lists " + ns + ", the release namespace"; err == nil || !strings.Contains(out, want) {
		t.Fatalf("helm install: err=%v, output lacks %q:\n%s", err, want, out)
	}
	if out, err := helm(t, "status", "selfsel", "--kubeconfig", kc, "-n", ns); err == nil {
		t.Errorf("a release exists after the refused install:\n%s", out)
	}
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "selfsel-guardchain", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused install left its webhook configuration (get: %v)", err)
	}
}

// checkEnforcement: the chart's backstop policy and binding are the ones
// webhook.EnforcementPolicy builds for the same config and values.
func checkEnforcement(t *testing.T, objs []*unstructured.Unstructured, cfg webhook.Config, tc chartCase) {
	t.Helper()
	var values struct {
		InitImage struct {
			Repository string `json:"repository"`
		} `json:"initImage"`
		Enforcement struct {
			ExtraRepositories []string `json:"extraRepositories"`
		} `json:"enforcement"`
	}
	for _, f := range []string{"values.yaml", tc.values} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(chartDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &values); err != nil {
			t.Fatal(err)
		}
	}
	wantPol, wantBind := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{Registration: tc.reg,
		Repositories: append([]string{values.InitImage.Repository}, values.Enforcement.ExtraRepositories...), Actions: tc.action})
	var gotPol admissionregistrationv1.ValidatingAdmissionPolicy
	u := find(objs, "ValidatingAdmissionPolicy", releaseName)
	if u == nil {
		t.Fatal("no ValidatingAdmissionPolicy")
	}
	into(t, u, &gotPol)
	if diff := cmp.Diff(wantPol, &gotPol, ignoreMeta); diff != "" {
		t.Errorf("chart's ValidatingAdmissionPolicy differs from Go's (-go +chart):\n%s", diff)
	}
	n := 0
	for _, o := range objs {
		if name, _, _ := unstructured.NestedString(o.Object, "spec", "policyName"); o.GetKind() == "ValidatingAdmissionPolicyBinding" && name == releaseName {
			n++
		}
	}
	if n != len(wantBind) {
		t.Errorf("the chart binds the backstop %d times, Go %d", n, len(wantBind))
	}
	for _, want := range wantBind {
		name := want.Name
		u := find(objs, "ValidatingAdmissionPolicyBinding", name)
		if u == nil {
			t.Errorf("no ValidatingAdmissionPolicyBinding %s", name)
			continue
		}
		var got admissionregistrationv1.ValidatingAdmissionPolicyBinding
		into(t, u, &got)
		if diff := cmp.Diff(want, &got, ignoreMeta); diff != "" {
			t.Errorf("chart's ValidatingAdmissionPolicyBinding %s differs from Go's (-go +chart):\n%s", name, diff)
		}
	}
}

// helm upgrade --reuse-values renders this chart with the previous release's
// values, which lack every key added since (writer, source, preloadsDir,
// enforcement): the chart must still render a config the webhook accepts, a
// test pod with no empty setting, and the backstop.
func TestChartRendersWithThePreviousReleasesValues(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile("testdata/chart/values-previous-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "template", release, dir, "-n", releaseNS)
	if err != nil {
		t.Fatalf("helm template with the previous release's values: %v\n%s", err, out)
	}
	objs := decodeManifests(t, out)
	cm := configMapOf(t, objs)
	cfg, err := webhook.ParseConfig([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("config.yaml refused: %v", err)
	}
	if cfg.Ownership != "root" || cfg.Source != webhook.SourceAuto || cfg.Writer != webhook.WriterAuto {
		t.Errorf("ownership %s, source %s, writer %s: want the previous ownership and this release's defaults for the rest", cfg.Ownership, cfg.Source, cfg.Writer)
	}
	var pod corev1.Pod
	u := find(objs, "Pod", releaseName+"-test")
	if u == nil {
		t.Fatal("no test pod")
	}
	into(t, u, &pod)
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Value == "" {
			t.Errorf("test pod env %s is empty", e.Name)
		}
	}
	if find(objs, "ValidatingAdmissionPolicy", releaseName) == nil {
		t.Error("no backstop policy")
	}
	if find(objs, "ValidatingAdmissionPolicy", releaseName+"-selfmanaged") == nil {
		t.Error("no policy confining the webhook's ServiceAccount to its Secret")
	}
}
