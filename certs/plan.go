package certs

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
)

// stored is what the Secret holds, parsed.
type stored struct {
	signer KeyPair
	// bundle is the caBundle: the signer first, then the retiring CAs.
	bundle []byte
	// leaf is what every replica serves.
	leaf          KeyPair
	trustedSince  string // AnnotationTrustedSince
	retiringSince string // AnnotationRetiringSince
	retired       string // AnnotationRetired
}

func (s stored) equal(o stored) bool {
	return bytes.Equal(s.signer.CertPEM, o.signer.CertPEM) && bytes.Equal(s.signer.KeyPEM, o.signer.KeyPEM) &&
		bytes.Equal(s.bundle, o.bundle) && bytes.Equal(s.leaf.CertPEM, o.leaf.CertPEM) && bytes.Equal(s.leaf.KeyPEM, o.leaf.KeyPEM) &&
		s.trustedSince == o.trustedSince && s.retiringSince == o.retiringSince && s.retired == o.retired
}

// decision is what a reconcile makes true: the Secret holds stored, the
// webhook configuration trusts its bundle, this replica serves its leaf;
// next is when to look again.
type decision struct {
	stored
	next time.Time
}

const reasonRetiredCA = "signed by a retired CA"

// plan decides what the Secret must hold from what it holds (cur), what the
// API server trusts (live) and what this replica serves (served), logging
// every reason for a change. The rules that keep every admission working
// through any change of CA:
//   - a CA the API server trusts stays in the bundle until no replica can be
//     serving a leaf it signed (RetireAfter after the leaf moved away);
//   - the leaf moves to a new CA only once the API server has trusted that CA
//     for Propagation; until then replicas keep serving a leaf it trusts.
func (m *Manager) plan(cur stored, live liveBundle, served KeyPair) (decision, error) {
	now := m.o.Now()
	st := cur
	if !m.checkCA(st, now) {
		ca, err := NewCA("guardchain webhook CA", now, m.o.CAValidity)
		if err != nil {
			return decision{}, fmt.Errorf("making a CA: %w", err)
		}
		// The previous CA stays trusted while its leaves may still be served.
		st.bundle = joinBundles(now, ca.CertPEM, st.bundle, st.signer.CertPEM)
		st.signer = ca
		m.count("ca")
	}
	signer, _, _ := st.signer.Parsed()
	curSigner, _, _ := cur.signer.Parsed()

	// Whatever the API server trusts now stays trusted: a replica may be
	// serving a leaf of it (the Secret was deleted or holds another CA).
	// But not a CA the Secret retired moments ago: no replica serves its
	// leaves, and the bundle still holds it only because a replica read it
	// before the retiring one patched it, or planned from an older Secret
	// with a clock behind. The signer and the Secret's leaf's CA are in
	// st.bundle; the CA of the leaf served here stays whoever wrote the mark.
	st.bundle = joinBundles(now, st.signer.CertPEM, st.bundle,
		m.withoutJustRetired(live.all(), st.retired, issuerOf(served, live.all()), now))
	if added := newCAs(retiring(cur.bundle, curSigner), retiring(st.bundle, signer)); len(added) > 0 {
		m.o.Log.Info("keeping CAs in the caBundle while replicas may serve their leaves", "cas", serials(added),
			"retireAfter", m.o.RetireAfter.String())
		st.retiringSince = stamp(now)
	}

	trustedFor, mark := m.trustedFor(signer, live, cur.trustedSince)
	if trustedFor < 0 {
		// Not trusted (yet, or any more): the clock starts when it is.
		st.trustedSince = ""
		if !live.empty() {
			// It joins a caBundle that trusts other CAs, whose leaves
			// replicas may serve: from now, for every replica, and a
			// replica serving its leaf is ready only Propagation later.
			st.trustedSince = trustMark(signer, now)
		}
	}
	if m.keepServing(st, signer, live, served, trustedFor, now) {
		m.o.Log.Info("keeping the served certificate until the API server has trusted the Secret's CA for a while",
			"secret", m.o.Namespace+"/"+m.o.SecretName, "trustedFor", trustedFor.String())
		st.leaf = served
	}

	waiting := false
	switch reason := m.leafProblem(st, signer, now); {
	case reason == "":
	case reason == reasonRetiredCA && trustedFor < m.o.Propagation && live.trustsLeaf(st.leaf, m.o.DNSNames, now):
		// Serve the old leaf until the API server has trusted the new CA
		// for a while: a leaf it cannot verify would fail every admission.
		m.o.Log.Info("serving the previous CA's certificate until the new CA is trusted", "trustedFor", trustedFor.String())
		waiting = true
		if mark != "" {
			st.trustedSince = mark
		}
	default:
		if st.leaf.CertPEM != nil {
			m.o.Log.Info("replacing the serving certificate", "reason", reason, "secret", m.o.Namespace+"/"+m.o.SecretName)
		}
		leaf, err := NewServing(st.signer, m.o.DNSNames, now, m.o.LeafValidity)
		if err != nil {
			return decision{}, fmt.Errorf("making a serving certificate: %w", err)
		}
		st.leaf = leaf
		m.count("serving")
		if len(retiring(st.bundle, signer)) > 0 {
			// Replicas move to this leaf within a reconcile interval; the
			// retiring CAs' clock starts now.
			st.retiringSince = stamp(now)
		}
	}
	if waiting {
		wait := m.o.Propagation - max(trustedFor, 0)
		return decision{stored: st, next: now.Add(min(wait, 5*time.Second))}, nil
	}
	cert, _, _ := st.leaf.Parsed()
	next := m.renewAt(cert)
	if old := retiring(st.bundle, signer); len(old) == 0 {
		st.retiringSince = ""
	} else if since, ok := parseStamp(st.retiringSince); !ok {
		st.retiringSince = stamp(now)
	} else if retireAt := since.Add(m.o.RetireAfter); now.Before(retireAt) {
		next = minTime(next, retireAt)
	} else {
		m.o.Log.Info("retiring CAs no replica serves any more", "cas", serials(old), "secret", m.o.Namespace+"/"+m.o.SecretName)
		st.bundle = joinBundles(now, st.signer.CertPEM)
		st.retiringSince = ""
		st.retired = retiredMark(old, now)
	}
	return decision{stored: st, next: next}, nil
}

func (m *Manager) renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(time.Duration(float64(life) * m.o.RenewAfter))
}

// checkCA says whether the signing CA can go on signing; logs why not.
func (m *Manager) checkCA(st stored, now time.Time) bool {
	if st.signer.CertPEM == nil {
		m.o.Log.Info("creating a CA and serving certificate", "secret", m.o.Namespace+"/"+m.o.SecretName)
		return false
	}
	ca, _, err := st.signer.Parsed()
	switch {
	case err != nil:
		m.o.Log.Info("replacing an unreadable CA", "reason", err.Error(), "secret", m.o.Namespace+"/"+m.o.SecretName)
		return false
	case !ca.IsCA:
		m.o.Log.Info("replacing a signer that is not a CA", "secret", m.o.Namespace+"/"+m.o.SecretName)
		return false
	case ca.NotAfter.Sub(now) < ca.NotAfter.Sub(ca.NotBefore)/3 || ca.NotAfter.Sub(now) < m.o.LeafValidity:
		m.o.Log.Info("rolling over the CA", "reason", fmt.Sprintf("it expires %s", ca.NotAfter.Format(time.RFC3339)))
		return false
	}
	return true
}

// leafProblem says why the serving certificate must be replaced, or "".
func (m *Manager) leafProblem(st stored, signer *x509.Certificate, now time.Time) string {
	if st.leaf.CertPEM == nil {
		return "none yet"
	}
	cert, _, err := st.leaf.Parsed()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	if now.After(cert.NotAfter) {
		return "expired " + cert.NotAfter.Format(time.RFC3339)
	}
	if !SameNames(cert, m.o.DNSNames) {
		return fmt.Sprintf("DNS names %v, want %v", cert.DNSNames, m.o.DNSNames)
	}
	if err := CheckServing(st.leaf, st.bundle, m.o.DNSNames, now); err != nil {
		return err.Error()
	}
	if err := cert.CheckSignatureFrom(signer); err != nil {
		return reasonRetiredCA
	}
	if !now.Before(m.renewAt(cert)) {
		return "due for renewal (" + fmt.Sprint(m.o.RenewAfter*100) + "% of its life passed)"
	}
	return ""
}

// keepServing says whether this replica should go on serving served rather
// than move to the Secret's leaf: it should when the API server trusts
// served but has not trusted the Secret's leaf's CA for Propagation, as
// after the Secret was deleted or replaced by one with another CA. The
// Secret then holds served, and its leaf moves to the signer once that is
// safe, as in a CA rollover.
func (m *Manager) keepServing(st stored, signer *x509.Certificate, live liveBundle, served KeyPair, trustedFor time.Duration, now time.Time) bool {
	if served.CertPEM == nil || bytes.Equal(served.CertPEM, st.leaf.CertPEM) {
		return false
	}
	cert, _, err := served.Parsed()
	if err != nil || !SameNames(cert, m.o.DNSNames) || !live.trustsLeaf(served, m.o.DNSNames, now) {
		return false
	}
	leafCA, servedCA := issuerOf(st.leaf, st.bundle), issuerOf(served, live.all())
	if leafCA != nil && servedCA != nil && leafCA.Equal(servedCA) {
		return false // the same CA: the Secret's leaf is as trusted as this one
	}
	safe := leafCA != nil && live.trusts(leafCA) && (!leafCA.Equal(signer) || trustedFor >= m.o.Propagation)
	return !safe
}

func newCAs(before, after []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, a := range after {
		known := false
		for _, b := range before {
			known = known || a.Equal(b)
		}
		if !known {
			out = append(out, a)
		}
	}
	return out
}

func serials(cs []*x509.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.SerialNumber.Text(16)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
