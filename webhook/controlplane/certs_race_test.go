package controlplane

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/certs"
)

// holdSecondWrite, once armed, lets a client's first write through and
// holds the second until released: a replica stopped between writing the
// Secret and the webhook configuration, as a preempted process is.
type holdSecondWrite struct {
	mu      sync.Mutex
	armed   bool
	writes  int
	held    chan struct{} // closed when the second write is held
	release chan struct{}
}

func newHoldSecondWrite() *holdSecondWrite {
	return &holdSecondWrite{held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdSecondWrite) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

func (h *holdSecondWrite) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet {
			h.mu.Lock()
			hold := false
			if h.armed {
				h.writes++
				hold = h.writes == 2
			}
			h.mu.Unlock()
			if hold {
				close(h.held)
				<-h.release
			}
		}
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Two replicas retire the old CA at about the same moment, and one is held
// between its two writes: the Secret written, the caBundle not yet patched.
// The other reads that Secret, then the bundle that still holds the old CA,
// and must not keep it there, as a CA a replica may serve, for another
// RetireAfter: whether retirement is due for it too, or its clock is behind
// and it is not.
func TestControlPlaneSelfManagedRetiredCAStaysRetiredWhenReplicasRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behind time.Duration // the other replica's clock
	}{
		{"the other replica reads between the two writes", 0},
		{"the other replica's clock is behind, retirement not yet due", 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSelfManaged(t)
			s.retire = time.Hour
			var offset atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			behind := func() time.Time { return now().Add(-tc.behind) }
			advance := func(d time.Duration) { offset.Add(int64(d)) }
			hold := newHoldSecondWrite()
			a := s.managerWith(t, impersonateThrough(t, s.id.namespace, s.id.sa, hold.wrap), t.TempDir(), now, nil)
			b := s.manager(t, t.TempDir(), behind, nil)

			s.reconcile(t, a)
			s.reconcile(t, b)
			oldCA := s.signer(t)
			// A new CA (the Secret was deleted); the leaf moves to it once
			// the API server has trusted it for Propagation (2 s here).
			if err := clientset.CoreV1().Secrets(s.secretNS).Delete(context.Background(), s.secretName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			s.reconcile(t, a)
			advance(3*time.Second + tc.behind)
			s.reconcile(t, a)
			s.reconcile(t, b)
			newCA := s.signer(t)
			if leaf, _ := certs.ParseCerts(s.secret(t).Data[certs.KeyTLSCert]); newCA.Equal(oldCA) || !bundleHas(s.bundle(t), oldCA) ||
				len(leaf) == 0 || leaf[0].CheckSignatureFrom(newCA) != nil {
				t.Fatal("setup: want the leaf moved to a new CA, the old one retiring in the caBundle")
			}
			// Due for the first replica; for the second only if its clock is not
			// behind (certificates are backdated a minute, so 30 s of skew is fine).
			advance(s.retire + 15*time.Second)

			hold.arm()
			done := make(chan error, 1)
			go func() { _, err := a.Reconcile(context.Background()); done <- err }()
			select {
			case <-hold.held:
			case err := <-done:
				t.Fatalf("the first replica retired the old CA in one write (%v); the test needs two", err)
			case <-time.After(time.Minute):
				t.Fatal("the first replica never made a second write")
			}
			s.reconcile(t, b)
			close(hold.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Each looks again, as its loop would.
			s.reconcile(t, b)
			s.reconcile(t, a)
			for _, in := range []struct {
				what   string
				bundle []byte
			}{{"the webhook configuration's caBundle", s.bundle(t)}, {"the Secret's " + certs.KeyCABundle, s.secret(t).Data[certs.KeyCABundle]}} {
				cas, _ := certs.ParseCerts(in.bundle)
				if len(cas) != 1 || !cas[0].Equal(newCA) {
					t.Errorf("%s holds %d CAs (old one back: %v), want only the signer", in.what, len(cas), bundleHas(in.bundle, oldCA))
				}
			}
		})
	}
}
