package certs

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
)

// AnnotationTrustedSince records "<signer serial> <time>": when the webhook
// configuration was first seen trusting the signing CA.
const AnnotationTrustedSince = "guardchain.dev/ca-trusted-since"

// trustedFor is how long the live bundle has trusted signer (negative: not
// yet), and the annotation value to record.
func (m *Manager) trustedFor(signer KeyPair, live bool, ann map[string]string) (time.Duration, string) {
	cert, _, err := signer.Parsed()
	if !live || err != nil {
		return -1, ""
	}
	serial := cert.SerialNumber.Text(16)
	if v := ann[AnnotationTrustedSince]; v != "" {
		var s, ts string
		if _, err := fmt.Sscan(v, &s, &ts); err == nil && s == serial {
			if t, err := time.Parse(time.RFC3339, ts); err == nil {
				return m.o.Now().Sub(t), v
			}
		}
	}
	return 0, serial + " " + m.o.Now().UTC().Format(time.RFC3339)
}

// plan decides what the Secret must hold, logging every reason for a change.
func (m *Manager) plan(st *state, trustedFor time.Duration) (next time.Time, changed, waiting bool, err error) {
	now := m.o.Now()
	caOK := m.checkCA(st, now)
	if !caOK {
		ca, err := NewCA("guardchain webhook CA", now, m.o.CAValidity)
		if err != nil {
			return time.Time{}, false, false, err
		}
		old := st.signer
		st.signer = ca
		// Keep the previous CA trusted while its leaves may still be served.
		st.bundle = append(append([]byte(nil), ca.CertPEM...), unexpired(st.bundle, old.CertPEM, now)...)
		changed = true
		trustedFor = -1
		m.count("ca")
	} else if pruned := unexpired(st.bundle, nil, now); !bytes.Equal(pruned, st.bundle) {
		st.bundle = pruned
		changed = true
	}
	signer, _, _ := st.signer.Parsed()

	reason := m.leafProblem(st, signer, now)
	switch {
	case reason == "":
	case reason == "signed by a retired CA" && trustedFor < m.o.Propagation:
		// Serve the old leaf until the API server has trusted the new CA
		// for a while: a leaf it cannot verify would fail every admission.
		m.o.Log.Info("serving the previous CA's certificate until the new CA is trusted", "trustedFor", trustedFor.String())
		wait := m.o.Propagation - max(trustedFor, 0)
		return now.Add(min(wait, 5*time.Second)), changed, true, nil
	default:
		if st.leaf.CertPEM != nil {
			m.o.Log.Info("replacing the serving certificate", "reason", reason, "secret", m.o.Namespace+"/"+m.o.SecretName)
		}
		leaf, err := NewServing(st.signer, m.o.DNSNames, now, m.o.LeafValidity)
		if err != nil {
			return time.Time{}, false, false, err
		}
		st.leaf = leaf
		changed = true
		m.count("serving")
	}
	cert, _, _ := st.leaf.Parsed()
	return m.renewAt(cert), changed, false, nil
}

func (m *Manager) renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(time.Duration(float64(life) * m.o.RenewAfter))
}

// checkCA says whether the signing CA can go on signing; logs why not.
func (m *Manager) checkCA(st *state, now time.Time) bool {
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
	if !bytes.Contains(st.bundle, bytes.TrimSpace(st.signer.CertPEM)) {
		st.bundle = append(append([]byte(nil), st.signer.CertPEM...), st.bundle...)
	}
	return true
}

// leafProblem says why the serving certificate must be replaced, or "".
func (m *Manager) leafProblem(st *state, signer *x509.Certificate, now time.Time) string {
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
		return "signed by a retired CA"
	}
	if !now.Before(m.renewAt(cert)) {
		return "due for renewal (" + fmt.Sprint(m.o.RenewAfter*100) + "% of its life passed)"
	}
	return ""
}

// unexpired returns the bundle's certificates (plus extra) that are still
// valid at now, as PEM, without duplicates.
func unexpired(bundle, extra []byte, now time.Time) []byte {
	certsIn, _ := ParseCerts(append(append([]byte(nil), bundle...), extra...))
	var out bytes.Buffer
	seen := map[string]bool{}
	for _, c := range certsIn {
		if now.After(c.NotAfter) || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		out.Write(pemCert(c.Raw))
	}
	return out.Bytes()
}
