package prevcerts

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Secret keys. tls.crt, tls.key and ca.crt are what every TLS consumer
// expects; the signing CA's own pair is kept beside them.
const (
	KeyTLSCert   = "tls.crt"
	KeyTLSKey    = "tls.key"
	KeyCABundle  = "ca.crt"
	KeySignerCrt = "signer.crt"
	KeySignerKey = "signer.key"
)

// Options configure self-managed certificates.
type Options struct {
	Client kubernetes.Interface
	// Namespace and SecretName hold the CA and serving certificate.
	Namespace, SecretName string
	// WebhookConfigName is the MutatingWebhookConfiguration whose caBundle is
	// kept in step; only this one object is touched.
	WebhookConfigName string
	// DNSNames the serving certificate covers (the Service's names).
	DNSNames []string
	// CertDir receives tls.crt and tls.key for the server.
	CertDir string
	// LeafValidity (default 90 days) and RenewAfter (default 2/3): a leaf is
	// renewed once that fraction of its life has passed.
	LeafValidity time.Duration
	RenewAfter   float64
	// CAValidity (default 10 years); a new CA is rolled in once less than a
	// third of its life is left.
	CAValidity time.Duration
	// Propagation is how long the API server is given to load a new CA
	// bundle before leaves signed by the new CA are served (default 2m).
	Propagation time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log logr.Logger
	// Registry, when set, gets the certificate metrics.
	Registry prometheus.Registerer
}

// Manager keeps a CA and serving certificate in a Secret, the serving pair
// in CertDir and the CA bundle in the webhook configuration. Every replica
// runs one; the Secret's resourceVersion makes exactly one write win, and all
// replicas then serve what the Secret holds.
type Manager struct {
	o       Options
	metrics *certMetrics

	mu     sync.Mutex
	served *x509.Certificate // what CertDir holds, once valid
}

type certMetrics struct {
	expiry   prometheus.Gauge
	renewals *prometheus.CounterVec
	failures prometheus.Counter
}

// NewManager checks options and fills defaults.
func NewManager(o Options) (*Manager, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("certs: no Kubernetes client")
	case o.Namespace == "" || o.SecretName == "":
		return nil, errors.New("certs: namespace and secret name are required")
	case o.WebhookConfigName == "":
		return nil, errors.New("certs: webhook configuration name is required")
	case len(o.DNSNames) == 0:
		return nil, errors.New("certs: no DNS names for the serving certificate")
	case o.CertDir == "":
		return nil, errors.New("certs: no certificate directory")
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = 90 * 24 * time.Hour
	}
	if o.RenewAfter == 0 {
		o.RenewAfter = 2.0 / 3
	}
	if o.RenewAfter <= 0 || o.RenewAfter >= 1 {
		return nil, fmt.Errorf("certs: renew-after fraction %v must be between 0 and 1", o.RenewAfter)
	}
	if o.CAValidity == 0 {
		o.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if o.CAValidity <= o.LeafValidity {
		return nil, errors.New("certs: the CA must outlive the serving certificate")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Propagation == 0 {
		o.Propagation = 2 * time.Minute
	}
	m := &Manager{o: o}
	if o.Registry != nil {
		m.metrics = &certMetrics{
			expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guardchain_serving_cert_expiry_timestamp_seconds",
				Help: "When the served certificate expires (Unix time)."}),
			renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guardchain_cert_renewals_total",
				Help: "Certificates this replica issued, by kind (ca, serving)."}, []string{"kind"}),
			failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "guardchain_cert_failures_total",
				Help: "Certificate reconciles that failed."}),
		}
		for _, c := range []prometheus.Collector{m.metrics.expiry, m.metrics.renewals, m.metrics.failures} {
			if err := o.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("certs: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Start reconciles now and then every interval (and at the next renewal
// time, if sooner) until ctx ends. Failures are logged and retried; they
// never stop the server, which keeps serving its current certificate.
func (m *Manager) Start(ctx context.Context, interval time.Duration) error {
	for {
		next, err := m.Reconcile(ctx)
		wait := interval
		if err != nil {
			m.o.Log.Error(err, "reconciling certificates; retrying")
			if m.metrics != nil {
				m.metrics.failures.Inc()
			}
			wait = min(interval, 10*time.Second)
		} else if d := next.Sub(m.o.Now()); d > 0 && d < wait {
			wait = d
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Ready reports whether a valid certificate is being served; for /readyz.
func (m *Manager) Ready(*http.Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.served == nil {
		return errors.New("no serving certificate yet")
	}
	if m.o.Now().After(m.served.NotAfter) {
		return errors.New("serving certificate expired")
	}
	return nil
}

// state is what the Secret holds, parsed.
type state struct {
	signer KeyPair
	bundle []byte
	leaf   KeyPair
}

// Reconcile makes the Secret, CertDir and caBundle right, and returns when
// the serving certificate should next be looked at.
func (m *Manager) Reconcile(ctx context.Context) (time.Time, error) {
	for attempt := 0; attempt < 5; attempt++ {
		next, err := m.reconcileOnce(ctx)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Another replica wrote first: take what it wrote.
			m.o.Log.V(1).Info("another replica updated the certificate secret; reloading")
			continue
		}
		return next, err
	}
	return time.Time{}, errors.New("certs: the certificate secret kept changing under us")
}

func (m *Manager) reconcileOnce(ctx context.Context) (time.Time, error) {
	secrets := m.o.Client.CoreV1().Secrets(m.o.Namespace)
	sec, err := secrets.Get(ctx, m.o.SecretName, metav1.GetOptions{})
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return time.Time{}, fmt.Errorf("reading secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
	}
	var st state
	if exists {
		st = state{
			signer: KeyPair{CertPEM: sec.Data[KeySignerCrt], KeyPEM: sec.Data[KeySignerKey]},
			bundle: sec.Data[KeyCABundle],
			leaf:   KeyPair{CertPEM: sec.Data[KeyTLSCert], KeyPEM: sec.Data[KeyTLSKey]},
		}
	}
	bundleLive, err := m.liveBundleHas(ctx, st.signer)
	if err != nil {
		return time.Time{}, err
	}
	// How long the live bundle has trusted the signer: recorded in the Secret
	// the first time a replica sees it, so every replica agrees.
	var annotations map[string]string
	if exists {
		annotations = sec.Annotations
	}
	trustedFor, mark := m.trustedFor(st.signer, bundleLive, annotations)
	next, changed, waiting, err := m.plan(&st, trustedFor)
	if err != nil {
		return time.Time{}, err
	}
	// The mark matters only while a leaf waits to move to a new CA; written
	// then, and never otherwise, so a steady state causes no writes.
	if waiting && mark != "" && annotations[AnnotationTrustedSince] != mark {
		changed = true
	}
	if changed {
		if mark == "" {
			mark = annotations[AnnotationTrustedSince]
		}
		data := map[string][]byte{
			KeySignerCrt: st.signer.CertPEM, KeySignerKey: st.signer.KeyPEM,
			KeyCABundle: st.bundle, KeyTLSCert: st.leaf.CertPEM, KeyTLSKey: st.leaf.KeyPEM,
		}
		ann := map[string]string{}
		if mark != "" {
			ann[AnnotationTrustedSince] = mark
		}
		if exists {
			sec.Data = data
			if sec.Annotations == nil {
				sec.Annotations = map[string]string{}
			}
			for k, v := range ann {
				sec.Annotations[k] = v
			}
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		} else {
			_, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: m.o.SecretName, Namespace: m.o.Namespace, Annotations: ann,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "guardchain"}},
				Type: corev1.SecretTypeTLS, Data: data,
			}, metav1.CreateOptions{})
		}
		if err != nil {
			return time.Time{}, err // a conflict is retried by Reconcile
		}
	}
	if err := m.patchBundle(ctx, st.bundle); err != nil {
		return time.Time{}, err
	}
	if err := m.writeFiles(st.leaf); err != nil {
		return time.Time{}, err
	}
	return next, nil
}

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

func (m *Manager) count(kind string) {
	if m.metrics != nil {
		m.metrics.renewals.WithLabelValues(kind).Inc()
	}
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

// liveBundleHas reports whether the webhook configuration already trusts
// signer, so leaves it signs can be served.
func (m *Manager) liveBundleHas(ctx context.Context, signer KeyPair) (bool, error) {
	if signer.CertPEM == nil {
		return false, nil
	}
	mwc, err := m.o.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, m.o.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading webhook configuration %s: %w", m.o.WebhookConfigName, err)
	}
	want := bytes.TrimSpace(signer.CertPEM)
	for _, w := range mwc.Webhooks {
		if !bytes.Contains(w.ClientConfig.CABundle, want) {
			return false, nil
		}
	}
	return len(mwc.Webhooks) > 0, nil
}

// patchBundle sets caBundle on every webhook of our configuration, writing
// only when it differs so GitOps tools see no churn.
func (m *Manager) patchBundle(ctx context.Context, bundle []byte) error {
	api := m.o.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := api.Get(ctx, m.o.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading webhook configuration %s: %w", m.o.WebhookConfigName, err)
	}
	changed := false
	for i := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating caBundle of %s: %w", m.o.WebhookConfigName, err)
	}
	m.o.Log.Info("updated the webhook configuration's CA bundle", "webhookConfiguration", m.o.WebhookConfigName)
	return nil
}

// writeFiles puts the serving pair where the server reads it, atomically
// (the certwatcher may read at any moment), and only when it changed.
func (m *Manager) writeFiles(leaf KeyPair) error {
	cert, _, err := leaf.Parsed()
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	crtPath, keyPath := filepath.Join(m.o.CertDir, KeyTLSCert), filepath.Join(m.o.CertDir, KeyTLSKey)
	if cur, err := os.ReadFile(crtPath); err != nil || !bytes.Equal(cur, leaf.CertPEM) {
		// Key first: the watcher reloads on the certificate's change.
		if err := writeAtomic(keyPath, leaf.KeyPEM, 0o600); err != nil {
			return err
		}
		if err := writeAtomic(crtPath, leaf.CertPEM, 0o644); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.served = cert
	m.mu.Unlock()
	if m.metrics != nil {
		m.metrics.expiry.Set(float64(cert.NotAfter.Unix()))
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
