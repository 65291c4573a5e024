package prevcerts

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// KeyPair is a certificate and its key, PEM-encoded as in a kubernetes.io/tls
// Secret.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Parsed returns the leaf certificate and the key.
func (k KeyPair) Parsed() (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.X509KeyPair(k.CertPEM, k.KeyPEM)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("private key cannot sign")
	}
	return cert, signer, nil
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// issue signs tmpl (given a fresh key, serial and validity from now, less a
// minute for clock skew) with parent and parentKey; a nil parent self-signs.
func issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer, now time.Time, validity time.Duration) (KeyPair, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return KeyPair{}, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return KeyPair{}, fmt.Errorf("making a serial number: %w", err)
	}
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(validity)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing %s: %w", tmpl.Subject.CommonName, err)
	}
	return KeyPair{CertPEM: pemCert(der), KeyPEM: keyPEM}, nil
}

// NewCA makes a self-signed CA valid for validity.
func NewCA(commonName string, now time.Time, validity time.Duration) (KeyPair, error) {
	return issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, nil, nil, now, validity)
}

// NewServing makes a serving certificate for dnsNames signed by ca.
func NewServing(ca KeyPair, dnsNames []string, now time.Time, validity time.Duration) (KeyPair, error) {
	if len(dnsNames) == 0 {
		return KeyPair{}, errors.New("a serving certificate needs at least one DNS name")
	}
	caCert, caKey, err := ca.Parsed()
	if err != nil {
		return KeyPair{}, fmt.Errorf("reading CA: %w", err)
	}
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0]},
		DNSNames:    dnsNames,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey, now, validity)
}

// CheckServing says why pair cannot serve dnsNames at now, trusted by
// bundle, or nil when it can until at least renewAt.
func CheckServing(pair KeyPair, bundle []byte, dnsNames []string, now time.Time) error {
	cert, _, err := pair.Parsed()
	if err != nil {
		return fmt.Errorf("unreadable key pair: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return errors.New("CA bundle holds no certificate")
	}
	for _, name := range dnsNames {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now}); err != nil {
			return fmt.Errorf("not valid for %s: %w", name, err)
		}
	}
	return nil
}

// SameNames reports whether cert covers exactly names.
func SameNames(cert *x509.Certificate, names []string) bool {
	a, b := slices.Clone(cert.DNSNames), slices.Clone(names)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCerts reads every certificate of a PEM bundle.
func ParseCerts(bundle []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(bundle)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ServiceDNSNames are the names the API server may use for a Service.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}
