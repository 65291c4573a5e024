package integration

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/certs"
)

// webhookConfigPolicy names the ValidatingAdmissionPolicy and binding that
// keep the webhook's ServiceAccount to the caBundle of its webhook
// configuration, the one the chart names mwc.
func webhookConfigPolicy(mwc string) string { return mwc + "-webhookconfig" }

// webhookConfigRefusal is the start of every refusal of that policy.
func webhookConfigRefusal(id chartIdentity) string {
	return "guardchain: ServiceAccount " + id.namespace + "/" + id.sa + " may change only the caBundle of MutatingWebhookConfiguration " + id.webhookConfig
}

// waitWebhookConfigPolicy waits until the API server refuses, from the
// chart's ServiceAccount, an edit of its webhook configuration beyond the
// caBundle (a dry run: nothing is written either way).
func waitWebhookConfigPolicy(t *testing.T, id chartIdentity) {
	t.Helper()
	waitFor(t, "the chart's webhook configuration policy to take effect", func() error {
		mwc, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), id.webhookConfig, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(mwc.Webhooks) == 0 {
			mwc.Labels = map[string]string{"guardchain.dev/probe": "x"}
		} else if *mwc.Webhooks[0].FailurePolicy == admissionregistrationv1.Fail {
			mwc.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		} else {
			mwc.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Fail)
		}
		_, err = id.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(context.Background(), mwc,
			metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), webhookConfigRefusal(id)) {
			return fmt.Errorf("an edit beyond the caBundle is not refused yet: %v", err) //nolint:errorlint // err may be nil here
		}
		return nil
	})
}

// The chart's ClusterRole lets the webhook's ServiceAccount get and update
// its MutatingWebhookConfiguration, by name, to keep the caBundle. The
// chart's policy keeps it to that: a compromised webhook cannot add a
// webhook (say, for every Secret in the cluster, sent to a server of its
// choosing), send admissions elsewhere, widen or narrow what its webhooks
// see, make them fail open, or have the configuration deleted (an owner
// reference) or kept (a finalizer). The certificate code's caBundle updates
// go through, and a cluster admin may still make every one of those edits.
func TestChartWebhookConfigPolicyConfinesTheWebhookToTheCABundle(t *testing.T) {
	ns := namespace(t, "guardchain-system", nil)
	rel := "guardchain-" + rand.String(5)
	id := asChartServiceAccount(t, rel, ns)
	ctx := context.Background()
	admin := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	asSA := id.client.AdmissionregistrationV1().MutatingWebhookConfigurations()

	// The chart's webhook configuration, narrowed to a namespace no pod is
	// created in (it fails closed and nothing serves it), with a second
	// webhook as a second replica's would be: the caBundle is kept per
	// webhook, and their order is theirs.
	objs := renderRelease(t, rel, ns, "--set", "webhook.namespaces={nothing-"+rand.String(5)+"}")
	if find(objs, "ValidatingAdmissionPolicy", webhookConfigPolicy(id.webhookConfig)) == nil {
		t.Errorf("the chart renders no ValidatingAdmissionPolicy %s", webhookConfigPolicy(id.webhookConfig))
	}
	u := find(objs, "MutatingWebhookConfiguration", id.webhookConfig)
	if u == nil {
		t.Fatalf("the chart renders no MutatingWebhookConfiguration %s", id.webhookConfig)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	into(t, u, &mwc)
	second := *mwc.Webhooks[0].DeepCopy()
	second.Name = "r1." + second.Name
	mwc.Webhooks = append(mwc.Webhooks, second)
	if _, err := admin.Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	if find(objs, "ValidatingAdmissionPolicy", webhookConfigPolicy(id.webhookConfig)) != nil {
		waitWebhookConfigPolicy(t, id)
	}

	// The caBundle, as the certificate code keeps it: first one written
	// whole, then the real reconcile, which makes its Secret and CA.
	ca, _ := servingPKI()
	cur, err := admin.Get(ctx, mwc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cur.Webhooks {
		cur.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
	}
	if _, err := asSA.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("the ServiceAccount's caBundle update was refused: %v", err)
	}
	m, err := certs.NewManager(certs.Options{Client: id.client, Namespace: ns, SecretName: id.secretName, LegacySecretName: id.legacySecret,
		WebhookConfigName: id.webhookConfig, DNSNames: certs.ServiceDNSNames(id.service, ns), CertDir: t.TempDir(), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reconcile(ctx); err != nil {
		t.Fatalf("the certificate code's reconcile, as the ServiceAccount: %v", err)
	}
	after, err := admin.Get(ctx, mwc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := clientset.CoreV1().Secrets(ns).Get(ctx, id.secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range after.Webhooks {
		if !bytes.Contains(w.ClientConfig.CABundle, bytes.TrimSpace(signer.Data[certs.KeySignerCrt])) {
			t.Errorf("webhook %s: the caBundle lacks the CA the reconcile made", w.Name)
		}
	}

	which := webhookConfigRefusal(id) + ", not which webhooks it holds"
	where := webhookConfigRefusal(id) + ", not where its webhooks send admissions"
	what := webhookConfigRefusal(id) + ", not which requests its webhooks see"
	how := webhookConfigRefusal(id) + ", not how its webhooks are called"
	meta := webhookConfigRefusal(id) + ", not its labels, annotations, ownerReferences or finalizers"
	type config = admissionregistrationv1.MutatingWebhookConfiguration
	edits := []struct {
		name string
		edit func(*config)
		want string
	}{
		{"adding a webhook for Secrets in every namespace", func(c *config) {
			c.Webhooks = append(c.Webhooks, admissionregistrationv1.MutatingWebhook{
				Name:         "secrets.attacker.example",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://attacker.example/mutate")},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}}}},
				NamespaceSelector:       &metav1.LabelSelector{},
				FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
			})
		}, which},
		{"removing a webhook", func(c *config) { c.Webhooks = c.Webhooks[:1] }, which},
		{"removing every webhook", func(c *config) { c.Webhooks = nil }, which},
		{"renaming a webhook", func(c *config) { c.Webhooks[1].Name = "r2." + c.Webhooks[0].Name }, which},
		{"reordering the webhooks", func(c *config) { c.Webhooks[0], c.Webhooks[1] = c.Webhooks[1], c.Webhooks[0] }, which},
		{"clientConfig.url instead of the Service", func(c *config) {
			c.Webhooks[0].ClientConfig.Service = nil
			c.Webhooks[0].ClientConfig.URL = ptr.To("https://attacker.example/mutate-pods")
		}, where},
		{"another Service", func(c *config) { c.Webhooks[1].ClientConfig.Service.Name = "attacker" }, where},
		{"another Service namespace", func(c *config) { c.Webhooks[0].ClientConfig.Service.Namespace = "default" }, where},
		{"another Service path", func(c *config) { c.Webhooks[0].ClientConfig.Service.Path = ptr.To("/other") }, where},
		{"another Service port", func(c *config) { c.Webhooks[0].ClientConfig.Service.Port = ptr.To(int32(8443)) }, where},
		{"rules for Secrets too", func(c *config) {
			c.Webhooks[0].Rules[0].Resources = append(c.Webhooks[0].Rules[0].Resources, "secrets")
		}, what},
		{"rules for UPDATE too", func(c *config) {
			c.Webhooks[1].Rules[0].Operations = append(c.Webhooks[1].Rules[0].Operations, admissionregistrationv1.Update)
		}, what},
		{"no rules", func(c *config) { c.Webhooks[0].Rules = nil }, what},
		{"a namespaceSelector for every namespace", func(c *config) { c.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{} }, what},
		{"an objectSelector that selects nothing", func(c *config) {
			c.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"guardchain.dev/never": "x"}}
		}, what},
		{"no matchConditions", func(c *config) { c.Webhooks[0].MatchConditions = nil }, what},
		{"a matchCondition that matches everything", func(c *config) { c.Webhooks[1].MatchConditions[0].Expression = "true" }, what},
		{"matchPolicy Exact", func(c *config) { c.Webhooks[0].MatchPolicy = ptr.To(admissionregistrationv1.Exact) }, what},
		{"failurePolicy Ignore", func(c *config) { c.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore) }, how},
		{"sideEffects NoneOnDryRun", func(c *config) {
			c.Webhooks[0].SideEffects = ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun)
		}, how},
		{"timeoutSeconds 1", func(c *config) { c.Webhooks[0].TimeoutSeconds = ptr.To(int32(1)) }, how},
		{"reinvocationPolicy Never", func(c *config) {
			c.Webhooks[0].ReinvocationPolicy = ptr.To(admissionregistrationv1.NeverReinvocationPolicy)
		}, how},
		{"admissionReviewVersions v1beta1 too", func(c *config) {
			c.Webhooks[0].AdmissionReviewVersions = append(c.Webhooks[0].AdmissionReviewVersions, "v1beta1")
		}, how},
		{"the caBundle and failurePolicy Ignore at once", func(c *config) {
			for i := range c.Webhooks {
				c.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
				c.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			}
		}, how},
		{"a label", func(c *config) { c.Labels["app.kubernetes.io/managed-by"] = "attacker" }, meta},
		{"cert-manager's CA injection", func(c *config) {
			c.Annotations = map[string]string{certs.InjectCAFromAnnotation: "default/attacker"}
		}, meta},
		{"an owner that does not exist (the garbage collector would delete it)", func(c *config) {
			c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Namespace", Name: "gone", UID: "0e4a3d2c-0000-4000-8000-000000000000"}}
		}, meta},
		{"a finalizer", func(c *config) { c.Finalizers = []string{"attacker.example/keep"} }, meta},
	}
	current := func() *config {
		c, err := admin.Get(ctx, mwc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, e := range edits {
		before := current()
		c := before.DeepCopy()
		e.edit(c)
		_, err := asSA.Update(ctx, c, metav1.UpdateOptions{})
		switch {
		case err == nil:
			t.Errorf("%s, as the ServiceAccount: admitted", e.name)
			// Put it back, so the next edit starts from the chart's.
			back := current()
			before.ResourceVersion = back.ResourceVersion
			if _, err := admin.Update(ctx, before, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("restoring the webhook configuration: %v", err)
			}
		case !strings.Contains(err.Error(), e.want):
			t.Errorf("%s, as the ServiceAccount: refused with %q, want %q", e.name, err, e.want)
		default:
			t.Logf("%s, as the ServiceAccount: %v", e.name, err)
		}
		c.ResourceVersion = current().ResourceVersion
		if _, err := admin.Update(ctx, c, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("%s, as a cluster admin: %v", e.name, err)
		}
	}
	if got := current(); !equalButCABundle(got, after) {
		t.Errorf("the webhook configuration changed:\n%+v\nwas\n%+v", got.Webhooks, after.Webhooks)
	}
}

// equalButCABundle compares a and b's webhooks and the metadata the policy
// keeps, caBundle aside.
func equalButCABundle(a, b *admissionregistrationv1.MutatingWebhookConfiguration) bool {
	mask := func(c *admissionregistrationv1.MutatingWebhookConfiguration) *admissionregistrationv1.MutatingWebhookConfiguration {
		c = c.DeepCopy()
		for i := range c.Webhooks {
			c.Webhooks[i].ClientConfig.CABundle = nil
		}
		c.ObjectMeta = metav1.ObjectMeta{Labels: c.Labels, Annotations: c.Annotations, OwnerReferences: c.OwnerReferences, Finalizers: c.Finalizers}
		return c
	}
	return reflect.DeepEqual(mask(a), mask(b))
}

// The policy compares every field of a webhook but the caBundle, and the
// metadata a client may change: a field a later Kubernetes adds to
// MutatingWebhook, WebhookClientConfig or ObjectMeta fails this test when
// k8s.io/api brings it, until the policy compares it too (or it is listed
// here as one the API server keeps to itself).
func TestChartWebhookConfigPolicyComparesEveryField(t *testing.T) {
	objs := renderRelease(t, release, releaseNS)
	vap := find(objs, "ValidatingAdmissionPolicy", webhookConfigPolicy(releaseName))
	if vap == nil {
		t.Fatalf("the chart renders no ValidatingAdmissionPolicy %s", webhookConfigPolicy(releaseName))
	}
	var pol admissionregistrationv1.ValidatingAdmissionPolicy
	into(t, vap, &pol)
	var cel strings.Builder
	for _, v := range pol.Spec.Variables {
		cel.WriteString(v.Expression + "\n")
	}
	for _, v := range pol.Spec.Validations {
		cel.WriteString(v.Expression + "\n")
	}
	compared := func(prefix string, typ reflect.Type, skip ...string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || slices.Contains(skip, name) {
				continue
			}
			if !strings.Contains(cel.String(), prefix+name+")") {
				t.Errorf("the policy does not compare %s%s (no has(%s%s) in its expressions)", prefix, name, prefix, name)
			}
		}
	}
	compared("w.", reflect.TypeFor[admissionregistrationv1.MutatingWebhook](), "clientConfig")
	compared("w.clientConfig.", reflect.TypeFor[admissionregistrationv1.WebhookClientConfig](), "caBundle")
	// The name cannot change; the rest the API server sets, or keeps as it was.
	compared("object.metadata.", reflect.TypeFor[metav1.ObjectMeta](), "name", "generateName", "namespace", "selfLink", "uid",
		"resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields")
}

// The policy comes and goes with the Secret policy: both confine the
// ServiceAccount that selfManaged certificates give RBAC to, and neither is
// needed in certManager mode, where that ServiceAccount has none.
func TestChartWebhookConfigPolicyRenders(t *testing.T) {
	confinementPolicyRenders(t, webhookConfigPolicy(releaseName), "the webhook configuration policy")
}
