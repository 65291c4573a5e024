package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/test/integration/internal/prevcerts"
)

// previousChart is the chart of the previous release (commit 4b05e25), as
// it was, kept to test upgrades from it and rollbacks to it. Its webhook
// kept the CA in the Helm-rendered <fullname>-tls Secret and, every minute,
// set the caBundle to that Secret's bundle; internal/prevcerts is that code.
const previousChart = "testdata/chart-4b05e25"

// certReplica is one webhook replica's certificate code, of either release,
// as the release's ServiceAccount, serving from its own directory.
type certReplica struct {
	name  string
	dir   string
	names []string
	tick  func(context.Context) error
	ready func() error // this release's replicas: /readyz's certificate check
}

// served is the pair the replica serves, as its server would read it.
func (c *certReplica) served(t *testing.T) certs.KeyPair {
	t.Helper()
	crt, err := os.ReadFile(filepath.Join(c.dir, certs.KeyTLSCert))
	if err != nil {
		t.Fatalf("%s serves nothing: %v", c.name, err)
	}
	key, err := os.ReadFile(filepath.Join(c.dir, certs.KeyTLSKey))
	if err != nil {
		t.Fatalf("%s serves nothing: %v", c.name, err)
	}
	return certs.KeyPair{CertPEM: crt, KeyPEM: key}
}

func (c *certReplica) mustTick(t *testing.T) {
	t.Helper()
	if err := c.tick(context.Background()); err != nil {
		t.Fatalf("%s: reconciling: %v", c.name, err)
	}
}

// previousReplica starts a replica of the previous release with its chart's
// arguments; the release's current revision must be of that chart.
func (r *helmRelease) previousReplica(t *testing.T, name string) *certReplica {
	t.Helper()
	args, sa := webhookArgs(t, r.objects(t))
	c := &certReplica{name: name, dir: t.TempDir(), names: certs.ServiceDNSNames(args["service"], r.ns)}
	m, err := prevcerts.NewManager(prevcerts.Options{Client: impersonate(t, r.ns, sa), Namespace: r.ns, SecretName: args["cert-secret"],
		WebhookConfigName: args["webhook-config"], DNSNames: c.names, CertDir: c.dir, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	c.tick = func(ctx context.Context) error { _, err := m.Reconcile(ctx); return err }
	return c
}

// currentReplica starts a replica of this release with the chart's
// arguments; the release's current revision must be of this chart.
func (r *helmRelease) currentReplica(t *testing.T, name string) *certReplica {
	t.Helper()
	args, sa := webhookArgs(t, r.objects(t))
	c := &certReplica{name: name, dir: t.TempDir(), names: certs.ServiceDNSNames(args["service"], r.ns)}
	m, err := certs.NewManager(certs.Options{Client: impersonate(t, r.ns, sa), Namespace: r.ns, SecretName: args["cert-secret"],
		LegacySecretName: args["legacy-cert-secret"], WebhookConfigName: args["webhook-config"], DNSNames: c.names, CertDir: c.dir,
		Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	c.tick = func(ctx context.Context) error { _, err := m.Reconcile(ctx); return err }
	c.ready = func() error { return m.Ready(nil) }
	return c
}

// untrusted says which replicas serve a leaf the live caBundle rejects.
func (r *helmRelease) untrusted(t *testing.T, mwc string, reps ...*certReplica) error {
	t.Helper()
	bundle := r.liveBundle(t, mwc)
	for _, c := range reps {
		if err := certs.CheckServing(c.served(t), bundle, c.names, time.Now()); err != nil {
			return fmt.Errorf("%s serves a leaf the caBundle does not trust: %w", c.name, err)
		}
	}
	return nil
}

// allowed waits until the release's ServiceAccount may verb the Secret
// name: helm has just replaced its Role, and the authorizer follows.
func (r *helmRelease) allowed(t *testing.T, verb, name string) {
	t.Helper()
	_, sa := webhookArgs(t, r.objects(t))
	c := impersonate(t, r.ns, sa)
	waitFor(t, verb+" on Secret "+name, func() error { return canDo(c, r.ns, verb, name) })
}

func canDo(c kubernetes.Interface, ns, verb, name string) error {
	rev, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Resource: "secrets", Name: name}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if !rev.Status.Allowed {
		return fmt.Errorf("not allowed yet: %s", rev.Status.Reason)
	}
	return nil
}

// Upgrading from the previous release and going back to it, with both
// releases' replicas reconciling in turn: after every reconcile of either
// (several each, as their minute loops would), the caBundle trusts the leaf
// every replica serves, and the upgrade changes no CA. Back by helm rollback
// to a revision that recorded the CA (any upgrade of the previous chart after
// its webhook started), or by helm upgrade to the previous chart, whose
// template reads the Secret as it is.
func TestChartUpgradeFromThePreviousReleaseAndBack(t *testing.T) {
	for _, back := range []struct {
		name string
		do   func(t *testing.T, r *helmRelease)
	}{
		{"helm rollback", func(t *testing.T, r *helmRelease) {
			r.helm(t, "rollback", r.name, "2")
			r.chart = previousChart
		}},
		{"helm upgrade to the previous chart", func(t *testing.T, r *helmRelease) { r.upgradeTo(t, previousChart) }},
	} {
		t.Run(back.name, func(t *testing.T) {
			r := installChart(t, previousChart) // revision 1
			old := r.previousReplica(t, "the previous release's replica")
			old.mustTick(t)
			r.upgradeTo(t, previousChart, "--set", "logLevel=1") // revision 2 records the Secret's data
			args, _ := webhookArgs(t, r.objects(t))
			mwc, legacy := args["webhook-config"], args["cert-secret"]
			sec, err := clientset.CoreV1().Secrets(r.ns).Get(context.Background(), legacy, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ca := caOf(t, sec)
			check := func(step string, reps ...*certReplica) {
				t.Helper()
				if err := r.untrusted(t, mwc, reps...); err != nil {
					t.Errorf("%s: %v", step, err)
				}
			}

			r.upgradeTo(t, chartDir) // revision 3
			w := r.selfManaged(t)
			r.allowed(t, "get", w.secret)
			cur := r.currentReplica(t, "the upgraded replica")
			cur.mustTick(t)
			check("the upgraded replica started", old, cur)
			if err := cur.ready(); err != nil {
				t.Errorf("the upgraded replica serves the CA the API server trusts, but is not ready: %v", err)
			}
			for i := 1; i <= 3; i++ {
				if err := old.tick(context.Background()); err != nil {
					t.Errorf("the previous release's reconcile %d failed: %v", i, err)
				}
				check(fmt.Sprintf("after the previous release's reconcile %d", i), old, cur)
				cur.mustTick(t)
				check(fmt.Sprintf("after the upgraded release's reconcile %d", i), old, cur)
			}
			if !w.signer(t).Equal(ca) {
				t.Error("the upgrade changed the CA: the upgraded replicas serve another CA's leaves than the previous release's")
			}

			back.do(t, r) // revision 4
			r.allowed(t, "update", legacy)
			again := r.previousReplica(t, "a replica of the previous release started after the upgraded one")
			again.mustTick(t)
			check("the previous release's replica started", again, cur)
			for i := 1; i <= 3; i++ {
				// Under the previous Role, this release's replicas cannot read
				// their Secret: they fail to reconcile and serve what they do.
				if err := cur.tick(context.Background()); err == nil {
					t.Errorf("the upgraded release's reconcile %d went through under the previous release's Role", i)
				}
				again.mustTick(t)
				check(fmt.Sprintf("after the previous release's reconcile %d", i), again, cur)
			}
		})
	}
}

// What the previous chart's Secret holds decides what is taken over: a CA
// that can sign, with its serving certificate when that is still good for
// the Service's names; nothing from a CA that cannot sign, or from
// cert-manager's Secret of the same name (no CA key).
func TestControlPlaneSelfManagedTakesOverThePreviousCA(t *testing.T) {
	now := time.Now()
	ca, _ := certs.NewCA("guardchain webhook CA", now.Add(-day), 400*day)
	leaf, _ := certs.NewServing(ca, []string{"localhost"}, now.Add(-day), 90*day)
	otherNames, _ := certs.NewServing(ca, []string{"guardchain.elsewhere.svc"}, now.Add(-day), 90*day)
	expired, _ := certs.NewCA("guardchain webhook CA", now.Add(-400*day), 399*day)
	caCert, _, _ := ca.Parsed()
	secret := func(signer, pair certs.KeyPair) map[string][]byte {
		d := map[string][]byte{certs.KeyCABundle: ca.CertPEM, certs.KeyTLSCert: pair.CertPEM, certs.KeyTLSKey: pair.KeyPEM}
		if signer.CertPEM != nil {
			d[certs.KeySignerCrt], d[certs.KeySignerKey] = signer.CertPEM, signer.KeyPEM
		}
		return d
	}
	tests := []struct {
		name               string
		data               map[string][]byte
		takesCA, takesLeaf bool
	}{
		{"CA and serving certificate", secret(ca, leaf), true, true},
		{"serving certificate for other names", secret(ca, otherNames), true, false},
		{"expired CA", secret(expired, leaf), false, false},
		{"cert-manager's Secret", secret(certs.KeyPair{}, leaf), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSelfManaged(t)
			if _, err := clientset.CoreV1().Secrets(s.secretNS).Create(context.Background(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: s.id.legacySecret, Namespace: s.secretNS},
				Type:       corev1.SecretTypeOpaque, Data: tt.data}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			s.reconcile(t, s.manager(t, dir, nil, nil))
			if got := s.signer(t).Equal(caCert); got != tt.takesCA {
				t.Errorf("CA taken over: %v, want %v", got, tt.takesCA)
			}
			served := (&certReplica{dir: dir}).served(t)
			if got := bytes.Equal(served.CertPEM, leaf.CertPEM); got != tt.takesLeaf {
				t.Errorf("serving certificate taken over: %v, want %v", got, tt.takesLeaf)
			}
			s.serveFrom(t, dir)
			s.waitInjecting(t)
		})
	}
}
