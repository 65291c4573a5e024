package integration

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/certs"
)

// holdRequest, once armed, holds a client's nth request that match picks
// until released: a replica stopped between two calls, as a preempted
// process is.
type holdRequest struct {
	match   func(*http.Request) bool
	nth     int
	mu      sync.Mutex
	armed   bool
	seen    int
	held    chan struct{} // closed when the request is held
	release chan struct{}
}

func newHoldRequest(match func(*http.Request) bool, nth int) *holdRequest {
	return &holdRequest{match: match, nth: nth, held: make(chan struct{}), release: make(chan struct{})}
}

func isWrite(r *http.Request) bool { return r.Method != http.MethodGet }

func isBundleRead(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/mutatingwebhookconfigurations/")
}

func (h *holdRequest) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

func (h *holdRequest) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		h.mu.Lock()
		hold := false
		if h.armed && h.match(r) {
			h.seen++
			hold = h.seen == h.nth
		}
		h.mu.Unlock()
		if hold {
			close(h.held)
			<-h.release
		}
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Two replicas retire the old CA at about the same moment, and one is held
// between two calls while the other reconciles. Neither may leave the old CA
// in the caBundle, as a CA a replica may serve, for another RetireAfter:
//   - the retiring replica is held between writing the Secret and patching
//     the bundle; the other reads that Secret and the bundle that still
//     holds the old CA, with retirement due for it too, or its clock behind
//     and not due;
//   - the replica whose clock is behind reads the Secret before the
//     retirement and is held before reading the bundle until after it: it
//     puts the old CA back, and the next reconcile takes it out again.
func TestControlPlaneSelfManagedRetiredCAStaysRetiredWhenReplicasRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behind time.Duration // the second replica's clock
		// holdRetiring: the retiring replica is held at its second write;
		// otherwise the other is held at its read of the bundle.
		holdRetiring bool
	}{
		{"the other replica reads between the two writes", 0, true},
		{"the other replica's clock is behind, retirement not yet due", 30 * time.Second, true},
		{"the replica behind reads the old Secret and the new bundle", 30 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSelfManaged(t)
			s.retire = time.Hour
			var offset atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			behind := func() time.Time { return now().Add(-tc.behind) }
			advance := func(d time.Duration) { offset.Add(int64(d)) }
			hold := newHoldRequest(isBundleRead, 1)
			if tc.holdRetiring {
				hold = newHoldRequest(isWrite, 2)
			}
			held := impersonateThrough(t, s.id.namespace, s.id.sa, hold.wrap)
			clientA, clientB := held, s.id.client
			if !tc.holdRetiring {
				clientA, clientB = clientB, clientA
			}
			a := s.managerWith(t, clientA, t.TempDir(), now, nil)
			b := s.managerWith(t, clientB, t.TempDir(), behind, nil)

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

			first, second := a, b
			if !tc.holdRetiring {
				first, second = b, a
			}
			hold.arm()
			done := make(chan error, 1)
			go func() { _, err := first.Reconcile(context.Background()); done <- err }()
			select {
			case <-hold.held:
			case err := <-done:
				t.Fatalf("the held replica reconciled without the call it was to be held at (%v)", err)
			case <-time.After(time.Minute):
				t.Fatal("the held replica never made the call it was to be held at")
			}
			s.reconcile(t, second)
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
