package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/internal/testwait"
)

// While stopping, a replica answers every admission and tells the client to
// close the connection after it, so the API server's next call opens a
// connection to a replica that is staying.
func TestServerClosesConnectionsWhileDraining(t *testing.T) {
	now := time.Now()
	ca, err := certs.NewCA("test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.NewServing(ca, []string{"localhost"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePair(t, dir, leaf)
	port := freePort(t)
	srv, err := NewServer(ServerOptions{Config: Default(), Log: logr.Discard(), Host: "127.0.0.1", Port: port,
		CertDir: dir, ProbeAddr: "127.0.0.1:0", Registry: prometheus.NewRegistry(), ShutdownDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done }) //nolint:errcheck // stopped: how does not matter

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	// HTTP/1.1 with keep-alive, as the API server calls webhooks.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}}}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + MutatePath
	body := reviewBody(t, nil)
	// post admits one review and says whether it went over a reused
	// connection and whether the answer asked to close it.
	post := func() (reused, closed bool, err error) {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}), http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return false, false, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return reused, false, err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return reused, false, err
		}
		if resp.StatusCode != http.StatusOK {
			return reused, resp.Close, &httpErr{resp.StatusCode, "admission"}
		}
		return reused, resp.Close, nil
	}
	testwait.Until(t, "the TLS endpoint", 20*time.Second, func() error { _, _, err := post(); return err })
	if reused, closed, err := post(); err != nil || !reused || closed {
		t.Fatalf("serving: reused=%v closed=%v err=%v, want a kept-alive connection", reused, closed, err)
	}

	cancel()
	testwait.Until(t, "readyz to fail", 5*time.Second, func() error {
		resp, err := http.Get("http://" + srv.ProbeAddr() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return &httpErr{resp.StatusCode, "still ready"}
		}
		return nil
	})
	reused, closed, err := post()
	if err != nil || !reused || !closed {
		t.Fatalf("first admission while draining: reused=%v closed=%v err=%v, want an answer that closes the kept-alive connection", reused, closed, err)
	}
	reused, closed, err = post()
	if err != nil || reused || !closed {
		t.Errorf("next admission while draining: reused=%v closed=%v err=%v, want an answer on a new connection, closed after it", reused, closed, err)
	}
}
