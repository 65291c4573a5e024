package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/certs"
)

// Deleting the Secret while replicas serve: it is recreated with a new CA,
// which rolls over like any other (the old CA stays in the caBundle while
// replicas serve its leaf), and no admission fails meanwhile. Either a
// serving replica notices first, or one that is starting and serves nothing
// yet.
func TestControlPlaneSelfManagedSecretDeletedWhileServing(t *testing.T) {
	for _, starting := range []bool{false, true} {
		t.Run(fmt.Sprintf("noticed by a starting replica=%v", starting), func(t *testing.T) {
			s := newSelfManagedReplicas(t, 2)
			reps := s.startReplicas(t, 300*time.Millisecond)
			oldCA := s.signer(t)

			stop := make(chan struct{})
			ok, failed, errs, done := createLoop(t, s.ns, stop)
			time.Sleep(500 * time.Millisecond)
			if starting {
				// A new pod, not yet in the Service, reconciles before the
				// serving replicas' next loop.
				for _, r := range reps {
					r.stopLoop()
				}
			}
			if err := clientset.CoreV1().Secrets(s.secretNS).Delete(context.Background(), s.secretName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if starting {
				s.reconcile(t, s.manager(t, t.TempDir(), nil, nil))
				for _, r := range reps {
					r.stopLoop = runLoop(t, r.m, 300*time.Millisecond)
				}
			}
			waitFor(t, "a new CA in a recreated Secret, served by every replica", func() error {
				sec, err := clientset.CoreV1().Secrets(s.secretNS).Get(context.Background(), s.secretName, metav1.GetOptions{})
				if err != nil {
					return err
				}
				ca, err := certs.ParseCerts(sec.Data[certs.KeySignerCrt])
				if err != nil || len(ca) == 0 {
					return fmt.Errorf("no CA in the recreated Secret: %v", err) //nolint:errorlint // err may be nil here
				}
				if ca[0].Equal(oldCA) {
					return fmt.Errorf("the recreated Secret holds the deleted CA")
				}
				return everyReplicaServes(t, reps, ca[0])
			})
			time.Sleep(time.Second)
			close(stop)
			<-done
			reportLoop(t, ok, failed, errs)
			if !bundleHas(s.bundle(t), oldCA) {
				t.Error("the deleted Secret's CA left the caBundle at once; a replica that has not reloaded would be refused")
			}
			if t.Failed() {
				for i, r := range reps {
					r.dumpLog(t, fmt.Sprint("replica ", i))
				}
			}
		})
	}
}

// A Secret that holds another CA than the caBundle trusts (restored from a
// backup, or written by an earlier release) is adopted without a refused
// admission: the caBundle keeps the CA the replicas serve until they serve
// leaves of the Secret's CA.
func TestControlPlaneSelfManagedSecretWithAnotherCA(t *testing.T) {
	s := newSelfManagedReplicas(t, 2)
	reps := s.startReplicas(t, 300*time.Millisecond)
	oldCA := s.signer(t)

	now := time.Now()
	other, err := certs.NewCA("restored CA", now, 400*day)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.NewServing(other, []string{"localhost"}, now, 90*day)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, _, _ := other.Parsed()

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	time.Sleep(500 * time.Millisecond)
	s.putSecret(t, map[string][]byte{certs.KeySignerCrt: other.CertPEM, certs.KeySignerKey: other.KeyPEM,
		certs.KeyCABundle: other.CertPEM, certs.KeyTLSCert: leaf.CertPEM, certs.KeyTLSKey: leaf.KeyPEM})
	waitFor(t, "every replica to serve a leaf of the Secret's CA", func() error {
		return everyReplicaServes(t, reps, otherCert)
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
	if got := s.signer(t); !got.Equal(otherCert) {
		t.Errorf("the Secret's CA was replaced (%s), want it kept (%s)", got.SerialNumber.Text(16), otherCert.SerialNumber.Text(16))
	}
	if !bundleHas(s.bundle(t), oldCA) {
		t.Error("the CA the replicas served left the caBundle at once")
	}
	if t.Failed() {
		for i, r := range reps {
			r.dumpLog(t, fmt.Sprint("replica ", i))
		}
	}
}

// A CA that leaves service (here the deleted Secret's) stays in the
// caBundle until every replica serves a leaf of the new CA, and leaves it
// RetireAfter later: at no moment does a replica serve a leaf the caBundle
// does not trust, even one that reloads a second after the others.
func TestControlPlaneSelfManagedRetiresOldCAAfterEveryReplicaMoved(t *testing.T) {
	s := newSelfManagedReplicas(t, 2)
	s.retire = 3 * time.Second
	reps := s.startReplicas(t, 300*time.Millisecond)
	oldCA := s.signer(t)

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	violations := watchTrust(s, reps, stop)
	time.Sleep(500 * time.Millisecond)
	if err := clientset.CoreV1().Secrets(s.secretNS).Delete(context.Background(), s.secretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new CA in the recreated Secret", func() error {
		if sec, err := clientset.CoreV1().Secrets(s.secretNS).Get(context.Background(), s.secretName, metav1.GetOptions{}); err != nil {
			return err
		} else if cs, _ := certs.ParseCerts(sec.Data[certs.KeySignerCrt]); len(cs) == 0 || cs[0].Equal(oldCA) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// The second replica misses the move to the new CA's leaf by a second.
	reps[1].stopLoop()
	newCA := s.signer(t)
	waitFor(t, "the first replica to serve the new CA's leaf", func() error { return everyReplicaServes(t, reps[:1], newCA) })
	time.Sleep(time.Second)
	reps[1].stopLoop = runLoop(t, reps[1].m, 300*time.Millisecond)
	waitFor(t, "the deleted Secret's CA to leave the caBundle", func() error {
		if bundleHas(s.bundle(t), oldCA) {
			return fmt.Errorf("still trusted")
		}
		return nil
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
	for _, v := range violations() {
		t.Error(v)
	}
	if err := everyReplicaServes(t, reps, s.signer(t)); err != nil {
		t.Error(err)
	}
	if cas, _ := certs.ParseCerts(s.bundle(t)); len(cas) != 1 {
		t.Errorf("the caBundle holds %d CAs once the old one retired, want 1", len(cas))
	}
	if t.Failed() {
		for i, r := range reps {
			r.dumpLog(t, fmt.Sprint("replica ", i))
		}
	}
}
