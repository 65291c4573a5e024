package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// renderRelease renders the chart as release in ns (helm template), with
// extra helm arguments such as --set.
func renderRelease(t *testing.T, rel, ns string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", rel, chartDir, "-n", ns}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return decodeManifests(t, out)
}

// webhookArgs are the --name=value arguments the chart gives the webhook.
func webhookArgs(t *testing.T, objs []*unstructured.Unstructured) (args map[string]string, serviceAccount string) {
	t.Helper()
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string `json:"serviceAccountName"`
					Containers         []struct {
						Name string   `json:"name"`
						Args []string `json:"args"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			into(t, o, &dep)
		}
	}
	args = map[string]string{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != "webhook" {
			continue
		}
		for _, a := range c.Args {
			if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok {
				args[k] = v
			}
		}
	}
	if len(args) == 0 || dep.Spec.Template.Spec.ServiceAccountName == "" {
		t.Fatal("the chart renders no webhook container with arguments and a ServiceAccount")
	}
	return args, dep.Spec.Template.Spec.ServiceAccountName
}

// chartIdentity is the webhook as the chart deploys it in one release: a
// client acting as the chart's ServiceAccount with exactly the chart's RBAC,
// and the names the chart passes on the webhook's command line.
type chartIdentity struct {
	client        kubernetes.Interface
	namespace, sa string // the ServiceAccount client acts as
	secretName    string
	legacySecret  string
	webhookConfig string
	service       string
}

// asChartServiceAccount renders release in ns with the default values,
// creates what the chart gives the certificate code (its ServiceAccount,
// Roles and bindings, any Secret it renders, and the policies that confine
// the ServiceAccount to its Secret and to the caBundle of its webhook
// configuration) in the API server, and returns a client that impersonates
// that ServiceAccount once the Secret policy is in effect (the other needs
// the webhook configuration to exist: waitWebhookConfigPolicy).
func asChartServiceAccount(t *testing.T, rel, ns string) chartIdentity {
	t.Helper()
	objs := renderRelease(t, rel, ns)
	args, sa := webhookArgs(t, objs)
	applyCertObjects(t, objs, args["cert-secret"], webhookConfigPolicy(args["webhook-config"]))
	id := chartIdentity{client: impersonate(t, ns, sa), namespace: ns, sa: sa, secretName: args["cert-secret"], legacySecret: args["legacy-cert-secret"],
		webhookConfig: args["webhook-config"], service: args["service"]}
	waitFor(t, "the chart's Secret policy to take effect", func() error {
		_, err := id.client.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: id.secretName + "-probe"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: nil, corev1.TLSPrivateKeyKey: nil}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "may write only the Secret") {
			return fmt.Errorf("a Secret of another name is not refused yet: %v", err) //nolint:errorlint // err may be nil here
		}
		return nil
	})
	return id
}

// applyCertObjects creates the rendered ServiceAccount, Roles, bindings and
// Secrets, and the ValidatingAdmissionPolicies named in policies with their
// bindings (the ones confining the ServiceAccount; not the pod backstop);
// the cluster-scoped ones are removed when the test ends.
func applyCertObjects(t *testing.T, objs []*unstructured.Unstructured, policies ...string) {
	t.Helper()
	c, err := client.New(restConfig, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "Secret":
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if !slices.Contains(policies, o.GetName()) {
				continue
			}
			o := o
			t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
		case "ClusterRole", "ClusterRoleBinding":
			o := o
			t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
		default:
			continue
		}
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating the chart's %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// impersonate returns a client acting as ServiceAccount ns/sa, once the API
// server's authorizer has seen its bindings.
func impersonate(t *testing.T, ns, sa string) kubernetes.Interface {
	t.Helper()
	return impersonateThrough(t, ns, sa, nil)
}

// impersonateThrough is impersonate with the client's transport wrapped by
// wrap (nil: not wrapped).
func impersonateThrough(t *testing.T, ns, sa string, wrap transport.WrapperFunc) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.WrapTransport = wrap
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the chart's RBAC to take effect", func() error {
		r, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(context.Background(), &authorizationv1.SelfSubjectRulesReview{
			Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, rule := range r.Status.ResourceRules {
			for _, res := range rule.Resources {
				seen[res] = true
			}
		}
		if !seen["secrets"] || !seen["mutatingwebhookconfigurations"] {
			return fmt.Errorf("the rules of %s are not in effect yet: %v", cfg.Impersonate.UserName, r.Status.ResourceRules)
		}
		return nil
	})
	return cs
}
