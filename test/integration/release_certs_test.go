package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/guardchain/guardchain/certs"
)

// releaseWebhook is the self-managed certificate code as the chart runs it
// in a release: the chart's arguments and its ServiceAccount's RBAC.
type releaseWebhook struct {
	r      *helmRelease
	secret string
	mwc    string
}

func (r *helmRelease) selfManaged(t *testing.T) *releaseWebhook {
	t.Helper()
	args, _ := webhookArgs(t, r.objects(t))
	if args["cert-mode"] != "selfManaged" {
		t.Fatalf("the release runs the webhook with --cert-mode=%s", args["cert-mode"])
	}
	return &releaseWebhook{r: r, secret: args["cert-secret"], mwc: args["webhook-config"]}
}

// reconcile runs one replica's reconcile, started with an empty certificate
// directory, at the given clock (nil: now).
func (w *releaseWebhook) reconcile(t *testing.T, now func() time.Time) {
	t.Helper()
	objs := w.r.objects(t)
	args, sa := webhookArgs(t, objs)
	m, err := certs.NewManager(certs.Options{Client: impersonate(t, w.r.ns, sa), Namespace: w.r.ns, SecretName: args["cert-secret"],
		LegacySecretName: args["legacy-cert-secret"], WebhookConfigName: args["webhook-config"], DNSNames: certs.ServiceDNSNames(args["service"], w.r.ns), CertDir: t.TempDir(),
		Now: now, Log: logr.Discard(), CAValidity: 400 * day, Propagation: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reconcile(context.Background()); err != nil {
		t.Fatalf("reconciling as the release's webhook: %v", err)
	}
}

func (w *releaseWebhook) secretNow(t *testing.T) *corev1.Secret {
	t.Helper()
	sec, err := clientset.CoreV1().Secrets(w.r.ns).Get(context.Background(), w.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func (w *releaseWebhook) signer(t *testing.T) *x509.Certificate {
	t.Helper()
	return caOf(t, w.secretNow(t))
}

// ownedByWebhookConfig fails unless the Secret is the webhook's, not Helm's:
// owned by the webhook configuration (deleted with it), with no Helm
// release metadata.
func (w *releaseWebhook) ownedByWebhookConfig(t *testing.T) {
	t.Helper()
	sec := w.secretNow(t)
	mwc, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), w.mwc, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned := false
	for _, o := range sec.OwnerReferences {
		owned = owned || (o.Kind == "MutatingWebhookConfiguration" && o.UID == mwc.UID)
	}
	if !owned {
		t.Errorf("the Secret is not owned by the webhook configuration: %+v", sec.OwnerReferences)
	}
	if sec.Annotations["meta.helm.sh/release-name"] != "" || sec.Labels["app.kubernetes.io/managed-by"] == "Helm" {
		t.Error("the Secret carries Helm's release metadata")
	}
}

// liveBundle is the caBundle of the release's webhook configuration.
func (r *helmRelease) liveBundle(t *testing.T, name string) []byte {
	t.Helper()
	mwc, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mwc.Webhooks[0].ClientConfig.CABundle
}

// noKeyInManifests fails if any revision's manifest, as helm get manifest
// shows it, holds key material or any Secret data.
func (r *helmRelease) noKeyInManifests(t *testing.T, revisions int) {
	t.Helper()
	for rev := 1; rev <= revisions; rev++ {
		m := r.manifest(t, rev)
		// The PEM header, plain or base64 as at the start of a Secret value.
		for _, bad := range []string{"PRIVATE KEY", "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"} {
			if strings.Contains(m, bad) {
				t.Errorf("revision %d's manifest holds %q", rev, bad)
			}
		}
		for _, o := range decodeManifests(t, m) {
			if o.GetKind() != "Secret" {
				continue
			}
			if _, ok := o.Object["data"]; ok {
				t.Errorf("revision %d's manifest holds the data of Secret %s", rev, o.GetName())
			}
		}
	}
}

// helm rollback, to the first revision or a later one, neither changes nor
// wipes the webhook's CA, and no revision's manifest holds a private key.
func TestChartRollbackKeepsTheCA(t *testing.T) {
	r := installRelease(t) // revision 1
	w := r.selfManaged(t)
	// A CA made 270 days ago, with 400 days of life: due to roll over today.
	w.reconcile(t, func() time.Time { return time.Now().Add(-270 * day) })
	r.upgrade(t, "--set", "logLevel=1") // revision 2
	first := w.signer(t)
	w.reconcile(t, nil)
	if w.signer(t).Equal(first) {
		t.Fatal("the CA did not roll over")
	}
	r.upgrade(t, "--set", "logLevel=2") // revision 3
	w.ownedByWebhookConfig(t)
	want := w.secretNow(t)

	for _, rev := range []int{2, 1} { // revisions 4 and 5
		r.helm(t, "rollback", r.name, strconv.Itoa(rev))
		got := w.secretNow(t)
		for k, v := range want.Data {
			if !bytes.Equal(got.Data[k], v) {
				t.Errorf("helm rollback to %d changed %s of the CA Secret", rev, k)
			}
		}
		if !bytes.Equal(r.liveBundle(t, w.mwc), want.Data[certs.KeyCABundle]) {
			t.Errorf("helm rollback to %d changed the caBundle", rev)
		}
		// The webhook, reconciling after the rollback, keeps what it had.
		w.reconcile(t, nil)
		if !w.signer(t).Equal(caOf(t, want)) {
			t.Errorf("after helm rollback to %d the webhook serves another CA", rev)
		}
	}
	r.noKeyInManifests(t, 5)
}

func caOf(t *testing.T, sec *corev1.Secret) *x509.Certificate {
	t.Helper()
	cs, err := certs.ParseCerts(sec.Data[certs.KeySignerCrt])
	if err != nil || len(cs) == 0 {
		t.Fatalf("no CA: %v", err)
	}
	return cs[0]
}

// helm upgrade keeps the CA, the caBundle and the Secret as they are, and
// the upgraded webhook starts without writing either.
func TestChartUpgradeKeepsTheCA(t *testing.T) {
	r := installRelease(t)
	w := r.selfManaged(t)
	w.reconcile(t, nil)
	w.ownedByWebhookConfig(t)
	before, bundle := w.secretNow(t), r.liveBundle(t, w.mwc)

	r.upgrade(t, "--set", "config.proxy.port=8080") // a new config: the Deployment rolls
	w.reconcile(t, nil)                             // a replica of the new revision
	after := w.secretNow(t)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the upgrade, or the new replica, rewrote the CA Secret (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	if !caOf(t, after).Equal(caOf(t, before)) {
		t.Error("helm upgrade changed the CA")
	}
	if !bytes.Equal(r.liveBundle(t, w.mwc), bundle) {
		t.Error("helm upgrade changed the caBundle")
	}
	r.noKeyInManifests(t, 2)
}

// standInForCertManager writes what cert-manager writes in the certManager
// mode (no cert-manager runs here): the serving Secret, issued by its CA,
// and that CA as the webhook configuration's caBundle (its cainjector).
func standInForCertManager(t *testing.T, r *helmRelease) *x509.Certificate {
	t.Helper()
	objs := r.objects(t)
	var name, mwcName string
	for _, o := range objs {
		if o.GetKind() == "Certificate" {
			if isCA, _, _ := unstructured.NestedBool(o.Object, "spec", "isCA"); !isCA {
				name, _, _ = unstructured.NestedString(o.Object, "spec", "secretName")
			}
		}
		if o.GetKind() == "MutatingWebhookConfiguration" {
			mwcName = o.GetName()
		}
	}
	if name == "" || mwcName == "" {
		t.Fatal("the certManager release renders no serving Certificate or no webhook configuration")
	}
	now := time.Now()
	ca, err := certs.NewCA(r.name+"-ca", now, 400*day)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.NewServing(ca, certs.ServiceDNSNames(r.name, r.ns), now, 90*day)
	if err != nil {
		t.Fatal(err)
	}
	secrets := clientset.CoreV1().Secrets(r.ns)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.ns,
		Annotations: map[string]string{"cert-manager.io/certificate-name": r.name + "-serving"}},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM}}
	if _, err := secrets.Create(context.Background(), sec, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		old, err := secrets.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old.Data = sec.Data
		if _, err := secrets.Update(context.Background(), old, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	mwcs := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := mwcs.Get(context.Background(), mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
	}
	if _, err := mwcs.Update(context.Background(), mwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cert, _, _ := ca.Parsed()
	return cert
}

// certs.mode switches both ways with helm upgrade: cert-manager's Secret
// and the webhook's own never collide, and on each return to selfManaged
// the caBundle keeps cert-manager's CA while replicas of the certManager
// revision may still be serving.
func TestChartSwitchesCertModesBothWays(t *testing.T) {
	installCertManagerCRDs(t)
	r := installRelease(t, "--set", "certs.mode=certManager") // revision 1
	cmCA := standInForCertManager(t, r)

	r.upgrade(t, "--set", "certs.mode=selfManaged") // revision 2
	w := r.selfManaged(t)
	w.reconcile(t, nil)
	own := w.signer(t)
	for _, ca := range []*x509.Certificate{own, cmCA} {
		if !bundleHas(r.liveBundle(t, w.mwc), ca) {
			t.Errorf("after the switch to selfManaged the caBundle lacks %s", ca.Subject.CommonName)
		}
	}

	r.upgrade(t, "--set", "certs.mode=certManager") // revision 3
	cmCA = standInForCertManager(t, r)

	r.upgrade(t, "--set", "certs.mode=selfManaged") // revision 4
	w.reconcile(t, nil)
	if !w.signer(t).Equal(own) {
		t.Error("the webhook's CA did not survive the round trip through certManager")
	}
	for _, ca := range []*x509.Certificate{own, cmCA} {
		if !bundleHas(r.liveBundle(t, w.mwc), ca) {
			t.Errorf("after the second switch to selfManaged the caBundle lacks %s", ca.Subject.CommonName)
		}
	}
	r.noKeyInManifests(t, 4)
}
