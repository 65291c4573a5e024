package certs

import (
	"bytes"
	"crypto/x509"
	"time"
)

// liveBundle is the caBundle of each webhook of the configuration: what the
// API server trusts when it calls a replica.
type liveBundle [][]byte

// trusts reports whether every webhook trusts ca.
func (l liveBundle) trusts(ca *x509.Certificate) bool {
	if ca == nil || len(l) == 0 {
		return false
	}
	for _, b := range l {
		if !containsCert(b, ca) {
			return false
		}
	}
	return true
}

// trustsLeaf reports whether every webhook accepts pair for names at now.
func (l liveBundle) trustsLeaf(pair KeyPair, names []string, now time.Time) bool {
	if len(l) == 0 {
		return false
	}
	for _, b := range l {
		if CheckServing(pair, b, names, now) != nil {
			return false
		}
	}
	return true
}

// all is every CA any webhook trusts.
func (l liveBundle) all() []byte { return bytes.Join(l, nil) }

// empty reports whether no webhook trusts anything yet.
func (l liveBundle) empty() bool { return len(bytes.TrimSpace(l.all())) == 0 }

func containsCert(bundle []byte, ca *x509.Certificate) bool {
	cs, _ := ParseCerts(bundle)
	for _, c := range cs {
		if c.Equal(ca) {
			return true
		}
	}
	return false
}

// joinBundles returns the certificates of the bundles, in order, that are
// still valid at now, as PEM, without duplicates. Unreadable input is
// skipped: a bundle is rebuilt from what can be read.
func joinBundles(now time.Time, bundles ...[]byte) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	for _, b := range bundles {
		cs, _ := ParseCerts(b)
		for _, c := range cs {
			if now.After(c.NotAfter) || seen[string(c.Raw)] {
				continue
			}
			seen[string(c.Raw)] = true
			out.Write(pemCert(c.Raw))
		}
	}
	return out.Bytes()
}

// retiring are the bundle's CAs other than signer.
func retiring(bundle []byte, signer *x509.Certificate) []*x509.Certificate {
	cs, _ := ParseCerts(bundle)
	var out []*x509.Certificate
	for _, c := range cs {
		if signer == nil || !c.Equal(signer) {
			out = append(out, c)
		}
	}
	return out
}

// issuerOf is the CA in bundle that signed pair's certificate, or nil.
func issuerOf(pair KeyPair, bundle []byte) *x509.Certificate {
	cert, _, err := pair.Parsed()
	if err != nil {
		return nil
	}
	cs, _ := ParseCerts(bundle)
	for _, c := range cs {
		if cert.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}
