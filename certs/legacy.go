package certs

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// legacy is what to start from when the Secret does not exist: what the
// earlier release's Secret holds, when its CA can still sign, or nothing.
//
// The earlier release sets the caBundle to its own Secret's bundle every
// minute, dropping any other CA. Its replicas and these run side by side
// during an upgrade or a rollback: with a CA of its own, this release's
// leaves would lose the API server's trust at their next reconcile, and
// admissions routed to them would fail. Taking its CA over, the two agree.
func (m *Manager) legacy(ctx context.Context) (stored, error) {
	if m.o.LegacySecretName == "" {
		return stored{}, nil
	}
	name := m.o.Namespace + "/" + m.o.LegacySecretName
	sec, err := m.o.Client.CoreV1().Secrets(m.o.Namespace).Get(ctx, m.o.LegacySecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return stored{}, nil
	}
	if err != nil {
		return stored{}, fmt.Errorf("reading the earlier release's secret %s: %w", name, err)
	}
	st := storedIn(sec)
	st.retiringSince, st.retired = "", "" // never the earlier release's to set
	if st.signer.CertPEM == nil {
		return stored{}, nil // empty, or cert-manager's: no CA key in it
	}
	ca, _, err := st.signer.Parsed()
	switch {
	case err != nil:
		m.o.Log.Info("not taking over the earlier release's CA", "reason", err.Error(), "from", name)
		return stored{}, nil
	case !ca.IsCA || !m.o.Now().Before(ca.NotAfter):
		m.o.Log.Info("not taking over the earlier release's CA", "reason", "not a CA, or expired", "from", name)
		return stored{}, nil
	}
	m.o.Log.Info("taking over the earlier release's CA (and serving certificate, if still good), so the upgrade changes no CA",
		"from", name, "secret", m.o.Namespace+"/"+m.o.SecretName, "ca", ca.SerialNumber.Text(16))
	return st, nil
}
