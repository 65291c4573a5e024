package certs

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
