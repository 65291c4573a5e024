// Command guardchain-webhook serves guardchain's mutating admission webhook
// (serve), injects manifests offline for GitOps (inject -f), or prints its
// version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/guardchain/guardchain/audit"
	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/version"
	"github.com/guardchain/guardchain/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = "usage: guardchain-webhook serve|inject|audit|version [flags] (-h after a command lists its flags)"

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "audit":
		return audit.Main(ctx, args[1:], stdout, stderr)
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "inject":
		err = inject(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "guardchain-webhook %s chain sha256:%s\n", version.Version, guards.DefaultSHA256())
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "guardchain-webhook: %s\n", oneLine(err))
		return 2
	}
	fmt.Fprintf(stderr, "guardchain-webhook: %s: %s\n", args[0], oneLine(err))
	return 1
}

type usageError struct{ error }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func loadConfig(path string) (webhook.Config, error) {
	if path == "" {
		return webhook.Default(), nil
	}
	return webhook.LoadConfig(path)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "webhook config file (YAML); defaults when empty")
	certDir := fs.String("cert-dir", "/etc/guardchain/tls", "directory with tls.crt and tls.key (reloaded on change)")
	host := fs.String("host", "", "address to serve admissions on (empty: every address)")
	port := fs.Int("port", 9443, "TLS port for admissions")
	probeAddr := fs.String("probe-addr", ":8081", "address for /healthz, /readyz and /metrics")
	certMode := fs.String("cert-mode", "files", "files (cert-manager or any tool writes --cert-dir) or selfManaged")
	certSecret := fs.String("cert-secret", "guardchain-selfmanaged", "selfManaged: the Secret the webhook creates and keeps its CA and serving certificate in")
	legacySecret := fs.String("legacy-cert-secret", "", "selfManaged: the Secret an earlier release kept its CA in; when --cert-secret does not exist yet, that CA is taken over")
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "selfManaged: namespace of the Secret and Service (env POD_NAMESPACE)")
	service := fs.String("service", "guardchain", "selfManaged: the webhook Service, for the certificate's DNS names")
	webhookConfig := fs.String("webhook-config", "guardchain", "selfManaged: the MutatingWebhookConfiguration whose caBundle is kept")
	shutdownDelay := fs.Duration("shutdown-delay", 5*time.Second, "keep serving this long after SIGTERM, with /readyz failing, so endpoints move away first")
	logFormat := fs.String("log-format", "json", "json or text")
	logLevel := fs.Int("v", 0, "log verbosity (1 logs every admission)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	log, err := newLogger(*logFormat, *logLevel, stderr)
	if err != nil {
		return usageError{err}
	}
	ctrl.SetLogger(log)
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	opts := webhook.ServerOptions{Config: cfg, Log: log, Host: *host, Port: *port, CertDir: *certDir, ProbeAddr: *probeAddr,
		Registry: ctrlmetrics.Registry, ShutdownDelay: *shutdownDelay}
	var mgr *certs.Manager
	switch *certMode {
	case "files":
	case "selfManaged":
		if *namespace == "" {
			return usageError{errors.New("--cert-mode selfManaged needs --namespace (or POD_NAMESPACE)")}
		}
		restCfg, err := ctrlconfig.GetConfig()
		if err != nil {
			return fmt.Errorf("selfManaged certificates need API access: %w", err)
		}
		client, err := kubernetes.NewForConfig(restCfg)
		if err != nil {
			return err
		}
		mgr, err = certs.NewManager(certs.Options{
			Client: client, Namespace: *namespace, SecretName: *certSecret, LegacySecretName: *legacySecret, WebhookConfigName: *webhookConfig,
			DNSNames: certs.ServiceDNSNames(*service, *namespace), CertDir: *certDir,
			Log: log.WithName("certs"), Registry: ctrlmetrics.Registry,
		})
		if err != nil {
			return usageError{err}
		}
		// The TLS endpoint reads its files on start: the first certificate
		// must exist by then; probes are already served meanwhile.
		opts.Prepare = func(ctx context.Context) error { return waitFirstCert(ctx, mgr, log) }
		opts.Ready = mgr.Ready
	default:
		return usageError{fmt.Errorf("--cert-mode %q: want files or selfManaged", *certMode)}
	}
	srv, err := webhook.NewServer(opts)
	if err != nil {
		return err
	}
	if mgr != nil {
		go func() { _ = mgr.Start(ctx, time.Minute) }()
	}
	return srv.Start(ctx)
}

// waitFirstCert reconciles until a certificate is written, retrying with
// backoff: at install time the webhook configuration may not exist yet.
func waitFirstCert(ctx context.Context, mgr *certs.Manager, log logr.Logger) error {
	delay := time.Second
	for {
		_, err := mgr.Reconcile(ctx)
		if err == nil {
			return nil
		}
		log.Error(err, "creating the first certificate; retrying", "in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func newLogger(format string, level int, w io.Writer) (logr.Logger, error) {
	opts := []zap.Opts{zap.WriteTo(w), zap.Level(zapcore.Level(-level))}
	switch format {
	case "json":
		opts = append(opts, zap.UseDevMode(false))
	case "text":
		opts = append(opts, zap.UseDevMode(true))
	default:
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or text", format)
	}
	return zap.New(opts...), nil
}

func inject(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "manifest file to inject, or - for standard input (required)")
	configPath := fs.String("config", "", "webhook config file (YAML); defaults when empty")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *file == "" || fs.NArg() > 0 {
		return usageError{errors.New("inject: want -f FILE or -f -")}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	notes, err := webhook.InjectManifests(in, stdout, cfg)
	for _, n := range notes {
		fmt.Fprintf(stderr, "guardchain-webhook: inject: document %d (%s): %s\n", n.Document, n.Object, n.Warning)
	}
	return err
}
