package certs

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckServing(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("ca", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("other", now, 24*time.Hour)
	leaf, err := NewServing(ca, []string{"svc.ns.svc", "svc"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pair    KeyPair
		bundle  []byte
		names   []string
		at      time.Time
		wantErr string
	}{
		{"valid", leaf, ca.CertPEM, []string{"svc.ns.svc"}, now, ""},
		{"bundle of two", leaf, append(append([]byte{}, other.CertPEM...), ca.CertPEM...), []string{"svc"}, now, ""},
		{"wrong CA", leaf, other.CertPEM, []string{"svc"}, now, "not valid for svc: x509: certificate signed by unknown authority"},
		{"wrong name", leaf, ca.CertPEM, []string{"evil"}, now, "not valid for evil"},
		{"expired", leaf, ca.CertPEM, []string{"svc"}, now.Add(2 * time.Hour), "certificate has expired or is not yet valid"},
		{"garbage", KeyPair{CertPEM: []byte("x"), KeyPEM: []byte("y")}, ca.CertPEM, []string{"svc"}, now, "unreadable key pair"},
		{"empty bundle", leaf, nil, []string{"svc"}, now, "CA bundle holds no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckServing(tt.pair, tt.bundle, tt.names, tt.at)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestJoinBundlesDropsExpiredAndDuplicates(t *testing.T) {
	now := time.Now()
	a, _ := NewCA("a", now, time.Hour)
	b, _ := NewCA("b", now.Add(-3*time.Hour), time.Hour) // expired 2h ago
	bundle := append(append(append([]byte{}, a.CertPEM...), b.CertPEM...), a.CertPEM...)
	got, err := ParseCerts(joinBundles(now, bundle, a.CertPEM))
	if err != nil || len(got) != 1 || got[0].Subject.CommonName != "a" {
		t.Fatalf("joinBundles kept %d certs (%v)", len(got), err)
	}
}

func TestCertManagerObjects(t *testing.T) {
	o := CertManagerOptions{Name: "gc", Namespace: "guardchain-system", Service: "gc"}
	objs := CertManager(o)
	if !objs.CA.Spec.IsCA || objs.CA.Spec.IssuerRef.Name != objs.SelfSigned.Name {
		t.Error("the CA certificate must be a CA issued by the self-signed issuer")
	}
	if objs.CAIssuer.Spec.CA == nil || objs.CAIssuer.Spec.CA.SecretName != objs.CA.Spec.SecretName {
		t.Error("the CA issuer must use the CA certificate's secret")
	}
	if objs.Serving.Spec.IssuerRef.Name != objs.CAIssuer.Name {
		t.Error("the serving certificate must come from the CA issuer")
	}
	want := []string{"gc.guardchain-system.svc", "gc.guardchain-system.svc.cluster.local", "gc.guardchain-system", "gc"}
	if diff := cmp.Diff(want, objs.Serving.Spec.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if got := objs.Serving.Spec.RenewBefore.Duration; got != 30*24*time.Hour {
		t.Errorf("renewBefore %v, want 720h (renew at 2/3 of 90 days)", got)
	}
	if o.InjectCAFrom() != "guardchain-system/gc-serving" {
		t.Errorf("inject-ca-from %q", o.InjectCAFrom())
	}
}
