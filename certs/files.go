package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

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

// readServed is the pair this replica serves now, or an empty one: the
// files outlive a container restart, and the Secret may be gone.
func (m *Manager) readServed() KeyPair {
	crt, err := os.ReadFile(filepath.Join(m.o.CertDir, KeyTLSCert))
	if err != nil {
		return KeyPair{}
	}
	key, err := os.ReadFile(filepath.Join(m.o.CertDir, KeyTLSKey))
	if err != nil {
		return KeyPair{}
	}
	return KeyPair{CertPEM: crt, KeyPEM: key}
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// A failed write or chmod fails the whole write (it was lost to a
	// shadowed err before).
	if _, err = tmp.Write(data); err == nil {
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
