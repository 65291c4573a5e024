package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
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
	// LegacySecretName, when set, is the Secret an earlier release kept its
	// CA in (the previous chart's <fullname>-tls). When SecretName does not
	// exist yet, a CA there that can still sign is taken over, with its
	// serving certificate: the upgrade changes no CA, so replicas of both
	// releases serve leaves the caBundle trusts, whichever set it last.
	LegacySecretName string
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
	// bundle before leaves signed by the new CA are served, or a replica
	// serving one reports ready (default 2m).
	Propagation time.Duration
	// RetireAfter is how long a CA other than the signer stays in the
	// caBundle after the leaf last moved away from it or it joined the
	// bundle (default 24h). Every replica reloads the Secret's leaf each
	// reconcile interval; this is many intervals more, for replicas that
	// cannot reach the API server for a while.
	RetireAfter time.Duration
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

	reconciling sync.Mutex // one reconcile at a time

	mu      sync.Mutex
	served  *x509.Certificate // what CertDir holds, once valid
	readyAt time.Time         // not ready before: served's CA is new to the caBundle
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
	if o.RetireAfter == 0 {
		o.RetireAfter = 24 * time.Hour
	}
	if o.Propagation < 0 || o.RetireAfter < 0 {
		return nil, errors.New("certs: propagation and retire-after must not be negative")
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

// Ready reports whether a valid certificate is being served, one the API
// server has had time to trust; for /readyz.
func (m *Manager) Ready(*http.Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	switch {
	case m.served == nil:
		return errors.New("no serving certificate yet")
	case now.After(m.served.NotAfter):
		return errors.New("serving certificate expired")
	case now.Before(m.readyAt):
		joined := m.readyAt.Add(-m.o.Propagation)
		return fmt.Errorf("the serving certificate's CA joined the caBundle %s ago; ready once the API server has had %s to load it",
			now.Sub(joined).Round(time.Second), m.o.Propagation)
	}
	return nil
}

func (m *Manager) count(kind string) {
	if m.metrics != nil {
		m.metrics.renewals.WithLabelValues(kind).Inc()
	}
}
