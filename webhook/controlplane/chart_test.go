package controlplane

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/certs"
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
}

func chartCases() []chartCase {
	svc := func() admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: releaseNS, Name: releaseName, Path: ptr.To(webhook.MutatePath), Port: ptr.To(int32(443))}}
	}
	return []chartCase{
		{"", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), Namespaces: []string{"openshell"}, ReleaseNamespace: releaseNS}, false},
		{"ci/cert-manager-values.yaml", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), Namespaces: []string{"openshell"}, ReleaseNamespace: releaseNS}, true},
		{"ci/restricted-values.yaml", webhook.RegistrationOptions{Name: releaseName, ClientConfig: svc(), Namespaces: []string{"openshell", "sandboxes"},
			ReleaseNamespace: releaseNS, FailurePolicy: admissionregistrationv1.Ignore,
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"openshell.dev/sandbox-managed": "true"}}}, false},
	}
}

func render(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	var args []string
	if values != "" {
		args = append(args, "-f", filepath.Join(chartDir, values))
	}
	return renderRelease(t, release, releaseNS, args...)
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

// The chart renders exactly the registration and cert-manager objects the Go
// code builds, from a config the webhook accepts: the two cannot drift.
func TestChartRendersWhatGoBuilds(t *testing.T) {
	for _, tc := range chartCases() {
		t.Run("values="+tc.values, func(t *testing.T) {
			objs := render(t, tc.values)
			cmObj := find(objs, "ConfigMap", releaseName)
			if cmObj == nil {
				t.Fatal("no ConfigMap")
			}
			var cmap corev1.ConfigMap
			into(t, cmObj, &cmap)
			cfg, err := webhook.ParseConfig([]byte(cmap.Data["config.yaml"]))
			if err != nil {
				t.Fatalf("the chart's config.yaml is refused by the webhook: %v\n%s", err, cmap.Data["config.yaml"])
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
