// Package testwait polls a condition in tests that wait for a server, an API
// server or a cluster to catch up. Tests only.
package testwait

import (
	"testing"
	"time"
)

// Until calls f every 100 ms until it returns nil, and fails the test with
// f's last error if limit passes first.
func Until(t testing.TB, what string, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
