package certs

import (
	"bytes"
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// webhookConfig reads the one MutatingWebhookConfiguration this manager keeps.
func (m *Manager) webhookConfig(ctx context.Context) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	mwc, err := m.o.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, m.o.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading webhook configuration %s: %w", m.o.WebhookConfigName, err)
	}
	return mwc, nil
}

func liveBundleOf(mwc *admissionregistrationv1.MutatingWebhookConfiguration) liveBundle {
	l := make(liveBundle, len(mwc.Webhooks))
	for i, w := range mwc.Webhooks {
		l[i] = w.ClientConfig.CABundle
	}
	return l
}

// patchBundle sets caBundle on every webhook of mwc, writing only when it
// differs so GitOps tools see no churn.
func (m *Manager) patchBundle(ctx context.Context, mwc *admissionregistrationv1.MutatingWebhookConfiguration, bundle []byte) error {
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
	if _, err := m.o.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating caBundle of %s: %w", m.o.WebhookConfigName, err)
	}
	m.o.Log.Info("updated the webhook configuration's CA bundle", "webhookConfiguration", m.o.WebhookConfigName)
	return nil
}
