package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/internal/testwait"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writePair(t *testing.T, dir string, kp certs.KeyPair) {
	t.Helper()
	// Write then rename, as the kubelet's atomic Secret update does.
	for name, b := range map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServerServesTLSProbesMetricsAndRotatedCerts(t *testing.T) {
	now := time.Now()
	ca, err := certs.NewCA("test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf1, _ := certs.NewServing(ca, []string{"localhost"}, now, time.Hour)

	reg := prometheus.NewRegistry()
	port := freePort(t)
	// The first certificate arrives during Prepare, as in selfManaged mode;
	// /healthz answers meanwhile and /readyz does not.
	certDir := t.TempDir()
	prepared := make(chan struct{})
	srv, err := NewServer(ServerOptions{Config: Default(), Log: logr.Discard(), Host: "127.0.0.1", Port: port,
		CertDir: certDir, ProbeAddr: "127.0.0.1:0", Registry: reg, ShutdownDelay: time.Second,
		Prepare: func(ctx context.Context) error {
			<-prepared
			writePair(t, certDir, leaf1)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	probe := "http://" + srv.ProbeAddr()
	get := func(path string) (int, string, error) {
		resp, err := http.Get(probe + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	testwait.Until(t, "healthz before the certificate", 20*time.Second, func() error {
		code, _, err := get("/healthz")
		if err == nil && code != 200 {
			err = &httpErr{code, "healthz"}
		}
		return err
	})
	if code, _, err := get("/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the certificate: %d %v, want 503", code, err)
	}
	close(prepared)
	testwait.Until(t, "readyz", 20*time.Second, func() error {
		code, body, err := get("/readyz")
		if err == nil && code != 200 {
			err = &httpErr{code, body}
		}
		return err
	})
	if code, _, err := get("/healthz"); err != nil || code != 200 {
		t.Fatalf("healthz %d %v", code, err)
	}

	url := "https://127.0.0.1:" + strconv.Itoa(port) + MutatePath
	resp, err := client.Post(url, "application/json", bytes.NewReader(reviewBody(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ar.Response == nil || !ar.Response.Allowed || len(ar.Response.Patch) == 0 {
		t.Fatalf("answer over TLS: %+v", ar.Response)
	}

	// HTTP/1.1 only, whatever the client offers: a client that offers h2
	// gets HTTP/1.1, and one that wants only h2 is refused.
	for _, offer := range [][]string{{"h2", "http/1.1"}, {"h2"}} {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: offer})
		if len(offer) == 1 {
			if err == nil {
				conn.Close()
				t.Errorf("a client offering only h2 was served (%q)", conn.ConnectionState().NegotiatedProtocol)
			}
			continue
		}
		if err != nil {
			t.Fatalf("TLS with ALPN %v: %v", offer, err)
		}
		if got := conn.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("ALPN %v negotiated %q, want http/1.1", offer, got)
		}
		conn.Close()
	}

	_, metrics, err := get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `guardchain_admissions_total{outcome="injected",reason=""} 1`) {
		t.Errorf("metrics lack the admission count:\n%s", metrics)
	}

	// Rotation: a new leaf written into the directory is served without a restart.
	leaf2, _ := certs.NewServing(ca, []string{"localhost"}, now, 2*time.Hour)
	writePair(t, certDir, leaf2)
	want, _, _ := leaf2.Parsed()
	testwait.Until(t, "serving the rotated certificate", 20*time.Second, func() error {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return err
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(want.SerialNumber) != 0 {
			return &httpErr{0, "still serving serial " + got.String()}
		}
		return nil
	})

	// Stopping: /readyz fails at once, admissions go on for ShutdownDelay.
	cancel()
	testwait.Until(t, "readyz to fail while draining", 5*time.Second, func() error {
		if code, _, _ := get("/readyz"); code != http.StatusServiceUnavailable {
			return &httpErr{code, "still ready"}
		}
		return nil
	})
	resp, err = client.Post(url, "application/json", bytes.NewReader(reviewBody(t, nil)))
	if err != nil {
		t.Fatalf("admission while draining: %v", err)
	}
	var drained admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&drained)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("admission while draining: HTTP %d, decoding the answer: %v", resp.StatusCode, err)
	}
	// The same answer as before the stop: the pod is injected, not refused or
	// let through unguarded.
	if r := drained.Response; r == nil || !r.Allowed || len(r.Patch) == 0 || r.UID != ar.Response.UID {
		t.Fatalf("answer while draining: %+v, want an allowed patch for request %s", r, ar.Response.UID)
	}
	if !bytes.Equal(drained.Response.Patch, ar.Response.Patch) {
		t.Errorf("patch while draining differs from the one before:\n%s\n%s", drained.Response.Patch, ar.Response.Patch)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start returned %v after shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop")
	}
}

type httpErr struct {
	code int
	body string
}

func (e *httpErr) Error() string { return strconv.Itoa(e.code) + " " + e.body }
