package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// MutatePath is where the webhook configuration sends pod admissions.
const MutatePath = "/mutate-pods"

// ServerOptions wire the webhook server. Zero values take the defaults below.
type ServerOptions struct {
	Config Config
	Log    logr.Logger
	// Host and Port of the TLS admission endpoint (default :9443).
	Host string
	Port int
	// CertDir holds tls.crt and tls.key; rotated files are served without a
	// restart (controller-runtime's certwatcher).
	CertDir string
	// ProbeAddr serves /healthz, /readyz and /metrics over plain HTTP
	// (default :8081); "0" turns it off.
	ProbeAddr string
	// Registry collects guardchain's and controller-runtime's metrics.
	Registry interface {
		prometheus.Registerer
		prometheus.Gatherer
	}
	// Ready, when set, must also pass for /readyz (for example: a valid
	// certificate is being served).
	Ready func(*http.Request) error
	// ShutdownDelay keeps admissions served this long after the stop signal,
	// with /readyz failing, so endpoints move off this replica before it
	// stops answering: with failurePolicy Fail a vanished replica would
	// refuse pods until the API server notices.
	ShutdownDelay time.Duration
	// Prepare, when set, runs after the probes are served and before the
	// TLS endpoint starts (which needs its certificate files): /healthz
	// answers while, say, the first certificate is being made.
	Prepare func(context.Context) error
}

// Server is the running webhook.
type Server struct {
	opts     ServerOptions
	webhook  ctrlwebhook.Server
	probe    *http.Server
	probeLn  net.Listener
	draining atomic.Bool
}

// NewServer builds the server; Start runs it.
func NewServer(opts ServerOptions) (*Server, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Port == 0 {
		opts.Port = 9443
	}
	if opts.ProbeAddr == "" {
		opts.ProbeAddr = ":8081"
	}
	if opts.Registry == nil {
		return nil, errors.New("server: no metrics registry")
	}
	metrics, err := NewMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	wh := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host:    opts.Host,
		Port:    opts.Port,
		CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			// HTTP/1.1 only: the API server calls webhooks over HTTP/1.1, and
			// HTTP/2 would only offer other clients stream floods (rapid
			// reset) and connections the drain's Connection: close cannot end.
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	s := &Server{opts: opts, webhook: wh}
	// Handler decodes each review once; controller-runtime's server still
	// brings TLS, certificate reloads and its request metrics.
	wh.Register(MutatePath, s.closeWhileDraining(&Handler{Config: opts.Config, Log: opts.Log.WithName("admission"), Metrics: metrics}))
	if opts.ProbeAddr != "0" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", s.readyz)
		s.probe = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", opts.ProbeAddr)
		if err != nil {
			return nil, fmt.Errorf("listening for probes on %s: %w", opts.ProbeAddr, err)
		}
		s.probeLn = ln
	}
	return s, nil
}

// ProbeAddr is where probes and metrics are served (after NewServer).
func (s *Server) ProbeAddr() string {
	if s.probeLn == nil {
		return ""
	}
	return s.probeLn.Addr().String()
}

// readyz: the TLS endpoint answers, and the caller's own check passes.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		return
	}
	err := s.webhook.StartedChecker()(r)
	if err == nil && s.opts.Ready != nil {
		err = s.opts.Ready(r)
	}
	if err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// closeWhileDraining answers with "Connection: close" once stopping has
// begun. The API server keeps HTTP/1.1 connections open and never retries a
// failed call: a connection it picks up just as this replica closes it is a
// refused pod. Told to close each connection after its answer, it opens the
// next one to a replica still in the endpoints, and by the end of the
// shutdown delay none but idle ones are left here.
func (s *Server) closeWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Start serves until ctx ends, then shuts down gracefully: in-flight
// admissions finish before it returns.
func (s *Server) Start(ctx context.Context) error {
	errc := make(chan error, 2)
	if s.probe != nil {
		go func() {
			if err := s.probe.Serve(s.probeLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("probe server: %w", err)
			}
		}()
	}
	if s.opts.Prepare != nil {
		if err := s.opts.Prepare(ctx); err != nil {
			s.shutdownProbes()
			return err
		}
	}
	// The TLS endpoint outlives ctx by ShutdownDelay (see ServerOptions).
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	go func() { errc <- s.webhook.Start(serveCtx) }()
	s.opts.Log.Info("serving", "port", s.opts.Port, "path", MutatePath, "probes", s.ProbeAddr(), "certDir", s.opts.CertDir)

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.draining.Store(true)
		if s.opts.ShutdownDelay > 0 {
			s.opts.Log.Info("stopping: still serving while endpoints move away", "for", s.opts.ShutdownDelay.String())
			time.Sleep(s.opts.ShutdownDelay)
		}
		stopServing()
		err = <-errc // in-flight admissions finish first
	}
	s.shutdownProbes()
	return err
}

func (s *Server) shutdownProbes() {
	if s.probe != nil {
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.probe.Shutdown(shutdown)
	}
}
