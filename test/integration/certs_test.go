package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/certs"
)

func TestControlPlaneSelfManagedBootstrapAndRestartWithoutChurn(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	m := s.manager(t, dir, nil, nil)
	if err := m.Ready(nil); err == nil {
		t.Error("ready before any certificate")
	}
	s.reconcile(t, m)
	if err := m.Ready(nil); err != nil {
		t.Errorf("not ready after bootstrap: %v", err)
	}
	s.serveFrom(t, dir)
	s.waitInjecting(t)

	sec := s.secret(t)
	for _, k := range []string{certs.KeyTLSCert, certs.KeyTLSKey, certs.KeyCABundle, certs.KeySignerCrt, certs.KeySignerKey} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("secret lacks %s", k)
		}
	}
	if !bytes.Equal(s.bundle(t), sec.Data[certs.KeyCABundle]) {
		t.Error("webhook caBundle differs from the secret's ca.crt")
	}
	mwc, _ := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})

	// A restart (a new manager, a new empty cert dir) reuses everything.
	dir2 := t.TempDir()
	s.reconcile(t, s.manager(t, dir2, nil, nil))
	if got := s.secret(t); got.ResourceVersion != sec.ResourceVersion {
		t.Errorf("restart rewrote the secret (resourceVersion %s -> %s)", sec.ResourceVersion, got.ResourceVersion)
	}
	mwc2, _ := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})
	if mwc2.ResourceVersion != mwc.ResourceVersion {
		t.Errorf("restart rewrote the webhook configuration (resourceVersion %s -> %s)", mwc.ResourceVersion, mwc2.ResourceVersion)
	}
	got, _ := os.ReadFile(filepath.Join(dir2, "tls.crt"))
	if !bytes.Equal(got, sec.Data[certs.KeyTLSCert]) {
		t.Error("the restarted replica does not serve the secret's certificate")
	}
}

// A replica that starts after its Secret was deleted makes a new one with
// the chart's RBAC, instead of waiting forever for its first certificate.
// Its leaf is of a new CA, which joins a caBundle that trusts the deleted
// one: it reports ready only once the API server has had Propagation to
// load the new CA, leaving the admissions meanwhile to replicas serving
// leaves of the old one.
func TestControlPlaneSelfManagedRestartRecreatesDeletedSecret(t *testing.T) {
	s := newSelfManaged(t)
	s.reconcile(t, s.manager(t, t.TempDir(), nil, nil))
	if err := clientset.CoreV1().Secrets(s.secretNS).Delete(context.Background(), s.secretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := s.manager(t, dir, nil, nil)
	start := time.Now()
	if _, err := m.Reconcile(context.Background()); err != nil {
		t.Fatalf("a restarted replica cannot make its first certificate: %v", err)
	}
	// A second replica, starting meanwhile, serves a leaf of the same CA.
	second := s.manager(t, t.TempDir(), nil, nil)
	s.reconcile(t, second)
	for i, r := range []*certs.Manager{m, second} {
		if err := r.Ready(nil); err == nil {
			t.Errorf("replica %d is ready at once with a leaf of a CA the caBundle has just gained", i)
		} else if !strings.Contains(err.Error(), "joined the caBundle") {
			t.Errorf("replica %d is not ready, for another reason: %v", i, err)
		}
	}
	waitFor(t, "the restarted replicas to report ready", func() error { return errors.Join(m.Ready(nil), second.Ready(nil)) })
	// The Propagation is 2s; the mark records whole seconds.
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("ready %s after the new CA joined the caBundle, want the Propagation of 2s (less the mark's rounding)", waited)
	}
	if len(s.secret(t).Data[certs.KeySignerKey]) == 0 {
		t.Error("the recreated Secret holds no CA")
	}
	s.serveFrom(t, dir)
	s.waitInjecting(t)
}

func TestControlPlaneSelfManagedReplicasRace(t *testing.T) {
	s := newSelfManaged(t)
	const replicas = 4
	dirs := make([]string, replicas)
	errs := make(chan error, replicas)
	var wg sync.WaitGroup
	for i := range dirs {
		dirs[i] = t.TempDir()
		m := s.manager(t, dirs[i], nil, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Reconcile(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a replica failed: %v", err)
		}
	}
	want := s.secret(t).Data[certs.KeyTLSCert]
	for i, d := range dirs {
		got, err := os.ReadFile(filepath.Join(d, "tls.crt"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("replica %d serves another certificate than the secret's (%v)", i, err)
		}
	}
}
func TestControlPlaneSelfManagedLeafRenewalUnderLoad(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	// Issued 61 days ago: past 2/3 of its 90 days, still valid.
	past := func() time.Time { return time.Now().Add(-61 * day) }
	s.reconcile(t, s.manager(t, dir, past, nil))
	srv := s.serveFrom(t, dir)
	s.waitInjecting(t)
	before := servedSerial(t, srv.port)

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	time.Sleep(500 * time.Millisecond)
	log := &logBuffer{}
	s.reconcile(t, s.manager(t, dir, nil, log))
	if !log.has("due for renewal") {
		t.Errorf("no log line saying why the certificate was renewed: %v", log.lines)
	}
	waitFor(t, "the renewed certificate to be served", func() error {
		if servedSerial(t, srv.port) == before {
			return fmt.Errorf("still serving %s", before)
		}
		return nil
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
}

func TestControlPlaneSelfManagedCARolloverUnderLoad(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	// CA issued 270 days ago (400-day life: under a third left now), leaf
	// renewed 10 days ago under the old CA, so it is valid now.
	s.reconcile(t, s.manager(t, dir, func() time.Time { return time.Now().Add(-270 * day) }, nil))
	s.reconcile(t, s.manager(t, dir, func() time.Time { return time.Now().Add(-10 * day) }, nil))
	srv := s.serveFrom(t, dir)
	s.waitInjecting(t)
	oldCA := s.secret(t).Data[certs.KeySignerCrt]
	oldLeaf := servedSerial(t, srv.port)

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	time.Sleep(500 * time.Millisecond)

	log := &logBuffer{}
	m := s.manager(t, dir, nil, log)
	s.reconcile(t, m)
	if !log.has("rolling over the CA") {
		t.Errorf("no log line for the CA rollover: %v", log.lines)
	}
	sec := s.secret(t)
	if bytes.Equal(sec.Data[certs.KeySignerCrt], oldCA) {
		t.Fatal("the CA was not rolled over")
	}
	bundle, _ := certs.ParseCerts(s.bundle(t))
	if len(bundle) != 2 {
		t.Fatalf("caBundle holds %d CAs during the rollover, want the new and the old", len(bundle))
	}
	if servedSerial(t, srv.port) != oldLeaf {
		t.Error("the leaf moved to the new CA before the API server trusted it")
	}
	// Reconcile as the periodic loop would until the leaf moves over.
	waitFor(t, "the leaf to move to the new CA", func() error {
		s.reconcile(t, m)
		if servedSerial(t, srv.port) == oldLeaf {
			return fmt.Errorf("still serving the old CA's leaf")
		}
		return nil
	})
	newCA, _ := certs.ParseCerts(s.secret(t).Data[certs.KeySignerCrt])
	served := leafCert(t, srv.port)
	if err := served.CheckSignatureFrom(newCA[0]); err != nil {
		t.Errorf("served leaf not signed by the new CA: %v", err)
	}
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
}
func TestControlPlaneSelfManagedReplacesBadSecrets(t *testing.T) {
	now := time.Now()
	ca, _ := certs.NewCA("old", now.Add(-200*day), 400*day)
	expired, _ := certs.NewServing(ca, []string{"localhost"}, now.Add(-100*day), 90*day)
	wrongName, _ := certs.NewServing(ca, []string{"evil.example"}, now, 90*day)
	tests := []struct {
		name string
		data map[string][]byte
		log  string
	}{
		{"garbage", map[string][]byte{certs.KeySignerCrt: []byte("garbage"), certs.KeySignerKey: []byte("garbage"),
			certs.KeyTLSCert: []byte("x"), certs.KeyTLSKey: []byte("y"), certs.KeyCABundle: []byte("z")}, "replacing an unreadable CA"},
		{"expired leaf", map[string][]byte{certs.KeySignerCrt: ca.CertPEM, certs.KeySignerKey: ca.KeyPEM,
			certs.KeyTLSCert: expired.CertPEM, certs.KeyTLSKey: expired.KeyPEM, certs.KeyCABundle: ca.CertPEM}, `"reason"="expired `},
		{"wrong DNS name", map[string][]byte{certs.KeySignerCrt: ca.CertPEM, certs.KeySignerKey: ca.KeyPEM,
			certs.KeyTLSCert: wrongName.CertPEM, certs.KeyTLSKey: wrongName.KeyPEM, certs.KeyCABundle: ca.CertPEM}, "DNS names [evil.example], want [localhost]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSelfManaged(t)
			s.putSecret(t, tt.data)
			dir := t.TempDir()
			log := &logBuffer{}
			s.reconcile(t, s.manager(t, dir, nil, log))
			if !log.has(tt.log) {
				t.Errorf("no log line with %q: %v", tt.log, log.lines)
			}
			sec := s.secret(t)
			if err := certs.CheckServing(certs.KeyPair{CertPEM: sec.Data[certs.KeyTLSCert], KeyPEM: sec.Data[certs.KeyTLSKey]},
				sec.Data[certs.KeyCABundle], []string{"localhost"}, time.Now()); err != nil {
				t.Errorf("the replaced certificate does not serve localhost: %v", err)
			}
			s.serveFrom(t, dir)
			s.waitInjecting(t)
		})
	}
}
