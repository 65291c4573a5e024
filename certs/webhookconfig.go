package certs

import (
	"bytes"
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
