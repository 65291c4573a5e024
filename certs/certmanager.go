package certs

import (
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InjectCAFromAnnotation tells cert-manager's cainjector which Certificate's
// CA to put into the webhook configuration's caBundle.
const InjectCAFromAnnotation = "cert-manager.io/inject-ca-from"

// CertManagerOptions name the objects of the certManager mode.
type CertManagerOptions struct {
	// Name prefixes every object (the Helm release's full name).
	Name, Namespace string
	// Service is the webhook Service the serving certificate names.
	Service string
	// CADuration (default 10 years), LeafDuration (default 90 days) and
	// LeafRenewBefore (default a third of LeafDuration, so leaves renew at
	// 2/3 of their life, as in selfManaged).
	CADuration, LeafDuration, LeafRenewBefore time.Duration
}

// CertManagerObjects are cert-manager's CA-issuer chain for the webhook: a
// SelfSigned Issuer signs a CA Certificate, a CA Issuer backed by that CA
// signs the serving Certificate. Leaves renew under the same CA, so the
// caBundle stays the same across renewals. The chart renders exactly these.
type CertManagerObjects struct {
	SelfSigned *cmv1.Issuer
	CA         *cmv1.Certificate
	CAIssuer   *cmv1.Issuer
	Serving    *cmv1.Certificate
}

// CertManager builds the four objects.
func CertManager(o CertManagerOptions) CertManagerObjects {
	if o.CADuration == 0 {
		o.CADuration = 10 * 365 * 24 * time.Hour
	}
	if o.LeafDuration == 0 {
		o.LeafDuration = 90 * 24 * time.Hour
	}
	if o.LeafRenewBefore == 0 {
		o.LeafRenewBefore = o.LeafDuration / 3
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "guardchain"}}
	}
	ecdsa := &cmv1.CertificatePrivateKey{Algorithm: cmv1.ECDSAKeyAlgorithm, Size: 256}
	issuerTM := metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.IssuerKind}
	certTM := metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.CertificateKind}
	return CertManagerObjects{
		SelfSigned: &cmv1.Issuer{TypeMeta: issuerTM, ObjectMeta: meta(o.Name + "-selfsigned"),
			Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		CA: &cmv1.Certificate{TypeMeta: certTM, ObjectMeta: meta(o.Name + "-ca"), Spec: cmv1.CertificateSpec{
			IsCA:       true,
			CommonName: o.Name + "-ca",
			SecretName: o.Name + "-ca",
			Duration:   &metav1.Duration{Duration: o.CADuration},
			PrivateKey: ecdsa,
			IssuerRef:  cmmeta.IssuerReference{Name: o.Name + "-selfsigned", Kind: cmv1.IssuerKind, Group: "cert-manager.io"},
		}},
		CAIssuer: &cmv1.Issuer{TypeMeta: issuerTM, ObjectMeta: meta(o.Name + "-ca"),
			Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: o.Name + "-ca"}}}},
		Serving: &cmv1.Certificate{TypeMeta: certTM, ObjectMeta: meta(o.Name + "-serving"), Spec: cmv1.CertificateSpec{
			DNSNames:    ServiceDNSNames(o.Service, o.Namespace),
			SecretName:  o.Name + "-tls",
			Duration:    &metav1.Duration{Duration: o.LeafDuration},
			RenewBefore: &metav1.Duration{Duration: o.LeafRenewBefore},
			PrivateKey:  ecdsa,
			Usages:      []cmv1.KeyUsage{cmv1.UsageDigitalSignature, cmv1.UsageServerAuth},
			IssuerRef:   cmmeta.IssuerReference{Name: o.Name + "-ca", Kind: cmv1.IssuerKind, Group: "cert-manager.io"},
		}},
	}
}

// InjectCAFrom is the annotation value for the webhook configuration.
func (o CertManagerOptions) InjectCAFrom() string { return o.Namespace + "/" + o.Name + "-serving" }
