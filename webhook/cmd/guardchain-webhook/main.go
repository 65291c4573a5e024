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

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

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

const usage = "usage: guardchain-webhook serve|inject|version [flags] (-h after a command lists its flags)"

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
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
	port := fs.Int("port", 9443, "TLS port for admissions")
	probeAddr := fs.String("probe-addr", ":8081", "address for /healthz, /readyz and /metrics")
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
	srv, err := webhook.NewServer(webhook.ServerOptions{
		Config: cfg, Log: log, Port: *port, CertDir: *certDir, ProbeAddr: *probeAddr, Registry: ctrlmetrics.Registry,
	})
	if err != nil {
		return err
	}
	return srv.Start(ctx)
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
