package integration

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
)

// The chart's Role lets the webhook's ServiceAccount create Secrets in the
// release namespace, because RBAC cannot narrow create to a name. The
// chart's policy keeps it to its own Secret: a compromised webhook cannot
// mint a token for another ServiceAccount (a service-account-token Secret,
// which the token controller fills in) nor write any other Secret, and the
// certificate code's own create and update go through.
func TestChartSecretPolicyConfinesTheWebhookToItsSecret(t *testing.T) {
	ns := namespace(t, "guardchain-system", nil)
	id := asChartServiceAccount(t, "guardchain-"+rand.String(5), ns)
	sa := strings.TrimSuffix(id.secretName, "-selfmanaged") // the chart's fullname
	secrets := id.client.CoreV1().Secrets(ns)
	ctx := context.Background()
	token := func(name, account string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{corev1.ServiceAccountNameKey: account}}, Type: corev1.SecretTypeServiceAccountToken}
	}
	tls := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: []byte("c"), corev1.TLSPrivateKeyKey: []byte("k")}}
	}
	refused := []struct {
		name   string
		secret *corev1.Secret
		want   string
	}{
		{"a token for another ServiceAccount", token("default-token", "default"), "may write only the Secret " + ns + "/" + id.secretName},
		{"a token for its own ServiceAccount", token(sa+"-token", sa), "may write only the Secret"},
		{"a token under its Secret's name", token(id.secretName, "default"), "never a ServiceAccount token"},
		{"an Opaque Secret under its Secret's name", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: id.secretName}}, "may create only a kubernetes.io/tls Secret"},
		{"another TLS Secret", tls("other"), "not " + ns + "/other"},
		{"a generated name", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: id.secretName + "-"}, Type: corev1.SecretTypeTLS,
			Data: tls("").Data}, "may write only the Secret"},
		{"its Secret tied to a ServiceAccount", func() *corev1.Secret {
			s := tls(id.secretName)
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "default"}
			return s
		}(), "kubernetes.io/service-account.* annotations"},
	}
	for _, tt := range refused {
		_, err := secrets.Create(ctx, tt.secret, metav1.CreateOptions{})
		if err == nil {
			t.Errorf("%s: created", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "guardchain: ServiceAccount "+ns+"/"+sa) {
			t.Errorf("%s: refused with %q, want a message naming the ServiceAccount and %q", tt.name, err, tt.want)
		}
	}

	// Its own Secret, as the certificate code writes it, may be created and
	// updated; an update may not tie it to a ServiceAccount either.
	own, err := secrets.Create(ctx, tls(id.secretName), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating its own Secret: %v", err)
	}
	own.Data[corev1.TLSCertKey] = []byte("renewed")
	if own, err = secrets.Update(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating its own Secret: %v", err)
	}
	tied := own.DeepCopy()
	tied.Annotations = map[string]string{corev1.ServiceAccountNameKey: sa, corev1.ServiceAccountUIDKey: "x"}
	if _, err := secrets.Update(ctx, tied, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "kubernetes.io/service-account.* annotations") {
		t.Errorf("an update tying its Secret to a ServiceAccount: %v", err)
	}
	retyped := own.DeepCopy()
	retyped.Type = corev1.SecretTypeServiceAccountToken
	if _, err := secrets.Update(ctx, retyped, metav1.UpdateOptions{}); err == nil {
		t.Error("its Secret was turned into a token Secret")
	} else {
		t.Logf("turning its Secret into a token Secret: %v", err)
	}

	// Anyone else is not matched: the release's admin may still write any Secret.
	if _, err := clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the policy refused a Secret created by another user: %v", err)
	}
}

// The policy comes with selfManaged certificates (the mode whose Role may
// create Secrets), also from a previous release's values that lack the key,
// and goes with certs.selfManaged.secretPolicy=false or certManager.
func TestChartSecretPolicyRenders(t *testing.T) {
	confinementPolicyRenders(t, releaseName+"-selfmanaged", "the Secret policy")
}

// confinementPolicyRenders checks that a policy confining the webhook's
// ServiceAccount renders with its Deny binding by default, and goes with
// certs.selfManaged.secretPolicy=false or certManager.
func confinementPolicyRenders(t *testing.T, policy, what string) {
	t.Helper()
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--set", "certs.selfManaged.secretPolicy=false"}, false},
		{[]string{"-f", filepath.Join(chartDir, "ci/cert-manager-values.yaml")}, false},
	} {
		objs := renderRelease(t, release, releaseNS, tt.args...)
		vap, binding := find(objs, "ValidatingAdmissionPolicy", policy), find(objs, "ValidatingAdmissionPolicyBinding", policy)
		if got := vap != nil && binding != nil; got != tt.want {
			t.Errorf("%v: %s and its binding rendered: %v, want %v", tt.args, what, got, tt.want)
		}
		if binding != nil {
			if actions, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !slices.Equal(actions, []string{"Deny"}) {
				t.Errorf("%v: %s's binding %v, want Deny", tt.args, what, actions)
			}
			if name, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); name != policy {
				t.Errorf("%v: the binding names policy %q, want %q", tt.args, name, policy)
			}
		}
	}
}
