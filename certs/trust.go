package certs

import (
	"crypto/x509"
	"fmt"
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
	// AnnotationRetired lists the serials of the CAs last retired from the
	// caBundle. A replica that finds one of them in the bundle (written by
	// a replica that planned from an older Secret, or whose clock is
	// behind) takes it out again rather than keep it as a CA a replica may
	// serve.
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
