package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Annotations on the Secret: the clocks every replica must agree on.
const (
	// AnnotationTrustedSince records "<signer serial> <time>": when the
	// webhook configuration was first seen trusting the signing CA.
	AnnotationTrustedSince = "guardchain.dev/ca-trusted-since"
	// AnnotationRetiringSince records when the caBundle last gained a CA
	// other than the signer, or the leaf was last replaced while it held
	// one: those CAs leave the bundle RetireAfter later.
	AnnotationRetiringSince = "guardchain.dev/ca-retiring-since"
	// AnnotationRetired records "<time> <sha256> ...": when the retiring
	// CAs last left the caBundle, and their fingerprints. For Propagation
	// after that time a replica that finds one of them in the bundle (put
	// back by a replica that read the bundle before it was patched, or
	// planned from an older Secret with a clock behind) takes it out again
	// rather than keep it as a CA a replica may serve, unless its own
	// leaf or the Secret's is of that CA. Later, such a CA is kept: it came
	// back some other way (a rollback to the previous chart restores that
	// release's CA, and its replicas serve it).
	AnnotationRetired = "guardchain.dev/ca-retired"
)

// trustedFor is how long every webhook has trusted signer (negative: not
// yet), and the annotation value to record while something waits on it.
func (m *Manager) trustedFor(signer *x509.Certificate, live liveBundle, mark string) (time.Duration, string) {
	if !live.trusts(signer) {
		return -1, ""
	}
	now := m.o.Now()
	if t, ok := markedAt(mark, signer); ok {
		return now.Sub(t), mark
	}
	return 0, trustMark(signer, now)
}

// trustMark is the AnnotationTrustedSince value for ca trusted since t.
func trustMark(ca *x509.Certificate, t time.Time) string {
	return ca.SerialNumber.Text(16) + " " + stamp(t)
}

// markedAt is the time mark records for ca, if it is ca's.
func markedAt(mark string, ca *x509.Certificate) (time.Time, bool) {
	var s, ts string
	if _, err := fmt.Sscan(mark, &s, &ts); err != nil || ca == nil || s != ca.SerialNumber.Text(16) {
		return time.Time{}, false
	}
	return parseStamp(ts)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func parseStamp(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// retiredMark is the AnnotationRetired value for cas retired at t.
func retiredMark(cas []*x509.Certificate, t time.Time) string {
	parts := []string{stamp(t)}
	for _, c := range cas {
		parts = append(parts, fingerprint(c))
	}
	return strings.Join(parts, " ")
}

// withoutJustRetired is bundle less the CAs mark retired less than
// Propagation before now, but for keep. A mark up to clockSkew ahead of now
// counts (the retiring replica's clock is ahead); one further ahead, or
// unreadable, is ignored.
func (m *Manager) withoutJustRetired(bundle []byte, mark string, keep *x509.Certificate, now time.Time) []byte {
	f := strings.Fields(mark)
	if len(f) < 2 {
		return bundle
	}
	at, ok := parseStamp(f[0])
	if since := now.Sub(at); !ok || since >= m.o.Propagation || since < -clockSkew {
		return bundle
	}
	cs, _ := ParseCerts(bundle)
	var out []byte
	for _, c := range cs {
		if (keep != nil && keep.Equal(c)) || !slices.Contains(f[1:], fingerprint(c)) {
			out = append(out, pemCert(c.Raw)...)
		}
	}
	return out
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
