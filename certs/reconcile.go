package certs

import (
	"context"
	"errors"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reconcile makes the Secret, CertDir and caBundle right, and returns when
// the certificates should next be looked at.
func (m *Manager) Reconcile(ctx context.Context) (time.Time, error) {
	// One at a time: the loop and the server's first-certificate wait both
	// call it, and the files are written as a pair.
	m.reconciling.Lock()
	defer m.reconciling.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		next, err := m.reconcileOnce(ctx)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Another replica wrote first: take what it wrote.
			m.o.Log.V(1).Info("another replica updated the certificate secret or the webhook configuration; reloading")
			continue
		}
		return next, err
	}
	return time.Time{}, errors.New("certs: the certificate secret kept changing under us")
}

func (m *Manager) reconcileOnce(ctx context.Context) (time.Time, error) {
	secrets := m.o.Client.CoreV1().Secrets(m.o.Namespace)
	sec, err := secrets.Get(ctx, m.o.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec, err = nil, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
	}
	mwc, err := m.webhookConfig(ctx)
	if err != nil {
		return time.Time{}, err
	}
	cur := storedIn(sec)
	if sec == nil {
		if cur, err = m.legacy(ctx); err != nil {
			return time.Time{}, err
		}
	}
	d, err := m.plan(cur, liveBundleOf(mwc), m.readServed())
	if err != nil {
		return time.Time{}, err
	}
	// The Secret first: the caBundle gains a CA only once the Secret holds
	// it. A replica that then reads the Secret and a bundle not yet patched
	// finds the CAs the Secret retired named in it (AnnotationRetired).
	if sec == nil || !d.equal(cur) {
		if err := m.writeSecret(ctx, sec, d.stored, mwc); err != nil {
			return time.Time{}, err // a conflict is retried by Reconcile
		}
	}
	if err := m.patchBundle(ctx, mwc, d.bundle); err != nil {
		return time.Time{}, err
	}
	if err := m.writeFiles(d.leaf); err != nil {
		return time.Time{}, err
	}
	m.setReadyAt(d.stored)
	return d.next, nil
}

// setReadyAt: a replica serving a leaf of a CA that joined a caBundle
// trusting other CAs is ready Propagation after it joined (the mark): until
// the API server has loaded it, replicas serving those others take the
// admissions. A CA with no mark joined an empty caBundle (nothing else could
// serve: waiting would only refuse admissions longer) or was trusted before
// any replica timed it.
func (m *Manager) setReadyAt(st stored) {
	var at time.Time
	if t, ok := markedAt(st.trustedSince, issuerOf(st.leaf, st.bundle)); ok {
		at = t.Add(m.o.Propagation)
	}
	m.mu.Lock()
	m.readyAt = at
	m.mu.Unlock()
}

func storedIn(sec *corev1.Secret) stored {
	if sec == nil {
		return stored{}
	}
	return stored{
		signer:        KeyPair{CertPEM: sec.Data[KeySignerCrt], KeyPEM: sec.Data[KeySignerKey]},
		bundle:        sec.Data[KeyCABundle],
		leaf:          KeyPair{CertPEM: sec.Data[KeyTLSCert], KeyPEM: sec.Data[KeyTLSKey]},
		trustedSince:  sec.Annotations[AnnotationTrustedSince],
		retiringSince: sec.Annotations[AnnotationRetiringSince],
		retired:       sec.Annotations[AnnotationRetired],
	}
}

// writeSecret creates the Secret (sec nil) or updates sec to hold st. A
// created Secret is owned by the webhook configuration, so it goes when
// that goes (helm uninstall); it is never Helm's.
func (m *Manager) writeSecret(ctx context.Context, sec *corev1.Secret, st stored, owner *admissionregistrationv1.MutatingWebhookConfiguration) error {
	secrets := m.o.Client.CoreV1().Secrets(m.o.Namespace)
	data := map[string][]byte{
		KeySignerCrt: st.signer.CertPEM, KeySignerKey: st.signer.KeyPEM,
		KeyCABundle: st.bundle, KeyTLSCert: st.leaf.CertPEM, KeyTLSKey: st.leaf.KeyPEM,
	}
	if sec == nil {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: m.o.SecretName, Namespace: m.o.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "guardchain"},
				// Set only on create: changing owners later would need delete
				// on the Secret where OwnerReferencesPermissionEnforcement runs.
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration",
					Name: owner.Name, UID: owner.UID,
				}}},
			Type: corev1.SecretTypeTLS,
		}
	}
	sec.Data = data
	setAnnotation(&sec.ObjectMeta, AnnotationTrustedSince, st.trustedSince)
	setAnnotation(&sec.ObjectMeta, AnnotationRetiringSince, st.retiringSince)
	setAnnotation(&sec.ObjectMeta, AnnotationRetired, st.retired)
	var err error
	if sec.ResourceVersion == "" {
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	} else {
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
	}
	return nil
}

// setAnnotation sets key to value, or removes it when value is empty.
func setAnnotation(meta *metav1.ObjectMeta, key, value string) {
	if value == "" {
		delete(meta.Annotations, key)
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[key] = value
}
