package certs

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

const day = 24 * time.Hour

func planManager(now time.Time) *Manager {
	return &Manager{o: Options{Namespace: "ns", SecretName: "certs", DNSNames: []string{"svc.ns.svc"},
		LeafValidity: 90 * day, RenewAfter: 2.0 / 3, CAValidity: 400 * day, Propagation: 2 * time.Minute,
		RetireAfter: day, Now: func() time.Time { return now }, Log: logr.Discard()}}
}

// pki is a CA and a leaf it signed, issued at.
func pki(t *testing.T, at time.Time) (KeyPair, KeyPair, *x509.Certificate) {
	t.Helper()
	ca, err := NewCA("test CA", at, 400*day)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := NewServing(ca, []string{"svc.ns.svc"}, at, 90*day)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, _ := ca.Parsed()
	return ca, leaf, cert
}

func signedBy(t *testing.T, leaf KeyPair, ca *x509.Certificate) bool {
	t.Helper()
	c, _, err := leaf.Parsed()
	return err == nil && c.CheckSignatureFrom(ca) == nil
}

func has(bundle []byte, ca *x509.Certificate) bool { return containsCert(bundle, ca) }

func TestPlan(t *testing.T) {
	now := time.Now()
	ca0, leaf0, ca0Cert := pki(t, now.Add(-10*day))
	ca1, leaf1, ca1Cert := pki(t, now.Add(-time.Hour))
	renewed0, err := NewServing(ca0, []string{"svc.ns.svc"}, now.Add(-time.Hour), 90*day)
	if err != nil {
		t.Fatal(err)
	}
	both := joinBundles(now, ca1.CertPEM, ca0.CertPEM)
	serial1 := ca1Cert.SerialNumber.Text(16)

	tests := []struct {
		name   string
		cur    stored
		live   liveBundle
		served KeyPair
		check  func(t *testing.T, d decision)
	}{
		{"bootstrap", stored{}, liveBundle{nil}, KeyPair{}, func(t *testing.T, d decision) {
			signer, _, err := d.signer.Parsed()
			if err != nil || !signedBy(t, d.leaf, signer) {
				t.Fatalf("no CA and leaf: %v", err)
			}
			if len(retiring(d.bundle, signer)) != 0 || d.retiringSince != "" {
				t.Errorf("a fresh bundle holds retiring CAs (since %q)", d.retiringSince)
			}
			if d.trustedSince != "" {
				t.Errorf("trust mark %q on a CA that joins an empty caBundle: replicas would wait for nothing", d.trustedSince)
			}
		}},
		{"steady state changes nothing", stored{signer: ca0, bundle: joinBundles(now, ca0.CertPEM), leaf: leaf0},
			liveBundle{joinBundles(now, ca0.CertPEM)}, leaf0, func(t *testing.T, d decision) {
				if !d.equal(stored{signer: ca0, bundle: joinBundles(now, ca0.CertPEM), leaf: leaf0}) {
					t.Error("the Secret would be rewritten in a steady state")
				}
			}},
		{"Secret deleted, replica serving", stored{}, liveBundle{ca0.CertPEM}, leaf0, func(t *testing.T, d decision) {
			signer, _, _ := d.signer.Parsed()
			if signer.Equal(ca0Cert) {
				t.Fatal("the deleted CA came back without its key")
			}
			if !bytes.Equal(d.leaf.CertPEM, leaf0.CertPEM) {
				t.Error("the Secret does not hold the leaf the API server trusts while the new CA propagates")
			}
			if !has(d.bundle, signer) || !has(d.bundle, ca0Cert) {
				t.Error("the caBundle lacks the new CA or the one being served")
			}
			if d.retiringSince != stamp(now) || d.next.After(now.Add(5*time.Second)) {
				t.Errorf("retiring since %q, next look %v: want now and within 5s", d.retiringSince, d.next.Sub(now))
			}
		}},
		{"Secret deleted, replica starting", stored{}, liveBundle{ca0.CertPEM}, KeyPair{}, func(t *testing.T, d decision) {
			signer, _, _ := d.signer.Parsed()
			if !signedBy(t, d.leaf, signer) || !has(d.bundle, ca0Cert) {
				t.Error("want a leaf of the new CA, and the served CA kept in the caBundle")
			}
			if d.trustedSince != trustMark(signer, now) {
				t.Errorf("trust mark %q, want the new CA's, now: replicas serving its leaf are ready Propagation later", d.trustedSince)
			}
		}},
		{"Secret holds a CA the API server does not trust", stored{signer: ca1, bundle: ca1.CertPEM, leaf: leaf1},
			liveBundle{ca0.CertPEM}, leaf0, func(t *testing.T, d decision) {
				if !bytes.Equal(d.signer.CertPEM, ca1.CertPEM) {
					t.Error("the Secret's CA was replaced")
				}
				if !bytes.Equal(d.leaf.CertPEM, leaf0.CertPEM) {
					t.Error("the replica would move to a leaf the API server does not trust yet")
				}
				if !bytes.Equal(d.bundle, both) {
					t.Error("the caBundle is not the Secret's CA and the served one")
				}
			}},
		{"leaf moves once the new CA was trusted long enough",
			stored{signer: ca1, bundle: both, leaf: leaf0, trustedSince: serial1 + " " + stamp(now.Add(-3*time.Minute)),
				retiringSince: stamp(now.Add(-3 * time.Minute))},
			liveBundle{both}, leaf0, func(t *testing.T, d decision) {
				if !signedBy(t, d.leaf, ca1Cert) {
					t.Error("the leaf did not move to the new CA")
				}
				if !has(d.bundle, ca0Cert) || d.retiringSince != stamp(now) {
					t.Errorf("the old CA must stay for RetireAfter from now (since %q)", d.retiringSince)
				}
			}},
		{"the new CA not yet trusted long enough",
			stored{signer: ca1, bundle: both, leaf: leaf0, retiringSince: stamp(now.Add(-2 * day))},
			liveBundle{both}, leaf0, func(t *testing.T, d decision) {
				if !bytes.Equal(d.leaf.CertPEM, leaf0.CertPEM) || !has(d.bundle, ca0Cert) {
					t.Error("moved or retired while the new CA was trusted for less than Propagation")
				}
				if d.trustedSince != serial1+" "+stamp(now) {
					t.Errorf("trust mark %q, want it recorded now", d.trustedSince)
				}
			}},
		{"retiring CAs leave RetireAfter after the move",
			stored{signer: ca1, bundle: both, leaf: leaf1, retiringSince: stamp(now.Add(-day - time.Second))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, joinBundles(now, ca1.CertPEM)) || d.retiringSince != "" {
					t.Errorf("the old CA is still in the caBundle (since %q)", d.retiringSince)
				}
				if want := retiredMark([]*x509.Certificate{ca0Cert}, now); d.retired != want {
					t.Errorf("retired %q recorded, want %q", d.retired, want)
				}
			}},
		{"a CA the Secret retired moments ago does not come back from a stale caBundle",
			stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1, retired: retiredMark([]*x509.Certificate{ca0Cert}, now.Add(-10*time.Second))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, joinBundles(now, ca1.CertPEM)) || d.retiringSince != "" {
					t.Errorf("the retired CA is back in the caBundle (retiring since %q)", d.retiringSince)
				}
			}},
		{"nor from a replica whose clock is behind the retiring one's",
			stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1, retired: retiredMark([]*x509.Certificate{ca0Cert}, now.Add(30*time.Second))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, joinBundles(now, ca1.CertPEM)) {
					t.Error("the retired CA is back in the caBundle")
				}
			}},
		{"a mark further ahead than clock skew is ignored",
			stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1, retired: retiredMark([]*x509.Certificate{ca0Cert}, now.Add(6*time.Hour))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, both) {
					t.Error("a mark dated hours ahead dropped a CA the API server trusts")
				}
			}},
		{"a mark never drops the CA of the leaf this replica serves",
			// A Secret written with another CA and a mark naming the served one.
			stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1, retired: retiredMark([]*x509.Certificate{ca0Cert}, now)},
			liveBundle{ca0.CertPEM}, leaf0, func(t *testing.T, d decision) {
				if !has(d.bundle, ca0Cert) || !bytes.Equal(d.leaf.CertPEM, leaf0.CertPEM) {
					t.Error("the served leaf's CA left the caBundle, or the replica moved to a leaf the API server does not trust")
				}
			}},
		{"a retired CA that comes back later stays, as any CA the caBundle gains",
			// As when a rollback to the previous chart restores its CA, which its replicas serve.
			stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1, retired: retiredMark([]*x509.Certificate{ca0Cert}, now.Add(-time.Hour))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, both) || d.retiringSince != stamp(now) {
					t.Errorf("the CA that came back was dropped or its clock not started (since %q)", d.retiringSince)
				}
			}},
		{"retiring CAs stay until then",
			stored{signer: ca1, bundle: both, leaf: leaf1, retiringSince: stamp(now.Add(-time.Hour))},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, both) {
					t.Error("the old CA left the caBundle early")
				}
				if want := now.Add(-time.Hour).Add(day).Truncate(time.Second); d.next.After(want.Add(time.Second)) {
					t.Errorf("next look %v, want by the retirement at %v", d.next, want)
				}
			}},
		{"a renewed leaf of the same CA is not reverted", stored{signer: ca0, bundle: joinBundles(now, ca0.CertPEM), leaf: renewed0},
			liveBundle{joinBundles(now, ca0.CertPEM)}, leaf0, func(t *testing.T, d decision) {
				if !bytes.Equal(d.leaf.CertPEM, renewed0.CertPEM) {
					t.Error("the replica put its older leaf back")
				}
			}},
		{"a CA that appears in the caBundle stays", stored{signer: ca1, bundle: joinBundles(now, ca1.CertPEM), leaf: leaf1},
			liveBundle{both}, leaf1, func(t *testing.T, d decision) {
				if !bytes.Equal(d.bundle, both) || d.retiringSince != stamp(now) {
					t.Errorf("the caBundle's other CA was dropped or its clock not started (since %q)", d.retiringSince)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := planManager(now).plan(tt.cur, tt.live, tt.served)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, d)
		})
	}
}
