package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/internal/testwait"
	"github.com/guardchain/guardchain/webhook"
)

// servingPKI is one CA and a localhost serving cert shared by every server.
var servingPKI = sync.OnceValues(func() (certs.KeyPair, certs.KeyPair) {
	now := time.Now()
	ca, err := certs.NewCA("guardchain test CA", now, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	leaf, err := certs.NewServing(ca, []string{"localhost"}, now, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	return ca, leaf
})

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// running is a webhook server in this process.
type running struct {
	port    int
	stop    func()
	metrics *prometheus.Registry
}

func certDir(t testing.TB) string {
	t.Helper()
	_, leaf := servingPKI()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), leaf.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// starter is anything served until its context ends.
type starter interface{ Start(context.Context) error }

// serve runs srv on port until the test ends or stop is called, and waits
// for its TLS endpoint.
func serve(t testing.TB, srv starter, port int) *running {
	t.Helper()
	ca, _ := servingPKI()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Start(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	waitFor(t, "webhook TLS", func() error {
		c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err == nil {
			c.Close()
		}
		return err
	})
	return &running{port: port, stop: stop}
}

// startWebhook serves guardchain with cfg over TLS on a fresh port.
func startWebhook(t testing.TB, cfg webhook.Config) *running {
	t.Helper()
	port := freePort(t)
	reg := prometheus.NewRegistry()
	srv, err := webhook.NewServer(webhook.ServerOptions{Config: cfg, Log: logr.Discard(), Host: "127.0.0.1", Port: port,
		CertDir: certDir(t), ProbeAddr: "0", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, srv, port)
	r.metrics = reg
	return r
}

func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	testwait.Until(t, what, 30*time.Second, f)
}

// clientConfig points the API server at a local server's path.
func clientConfig(port int, path string) admissionregistrationv1.WebhookClientConfig {
	ca, _ := servingPKI()
	return admissionregistrationv1.WebhookClientConfig{
		URL:      ptr.To(fmt.Sprintf("https://localhost:%d%s", port, path)),
		CABundle: ca.CertPEM,
	}
}

// register installs the registration the chart installs, aimed at srv, and
// waits until the API server applies it (a dry-run probe pod comes back
// injected).
func register(t testing.TB, cfg webhook.Config, srv *running, o webhook.RegistrationOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	if o.Name == "" {
		o.Name = "guardchain-" + rand.String(6)
	}
	o.ClientConfig = clientConfig(srv.port, webhook.MutatePath)
	mwc := webhook.MutatingWebhookConfiguration(cfg, o)
	ctx := context.Background()
	created, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("registering webhook: %v", err)
	}
	t.Cleanup(func() {
		_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
		waitRegistrationGone(t, o.Namespaces[0], cfg)
	})
	waitFor(t, "the API server to call the webhook", func() error {
		p, err := dryRunCreate(o.Namespaces[0], probePod(cfg))
		if err != nil {
			return err
		}
		if p.Annotations[webhook.AnnotationStatus] != webhook.StatusInjected {
			return fmt.Errorf("probe pod not injected yet")
		}
		return nil
	})
	return created
}

// waitRegistrationGone waits until the API server stops calling a removed
// webhook, so the next test starts clean.
func waitRegistrationGone(t testing.TB, ns string, cfg webhook.Config) {
	t.Helper()
	waitFor(t, "the registration to be dropped", func() error {
		p, err := dryRunCreate(ns, probePod(cfg))
		if err != nil {
			return err
		}
		if _, ok := p.Annotations[webhook.AnnotationStatus]; ok {
			return fmt.Errorf("still injected")
		}
		return nil
	})
}

func probePod(cfg webhook.Config) *corev1.Pod {
	return sandbox(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: cfg.Containers[0], Image: "probe:1"}}},
	})
}

func dryRunCreate(ns string, p *corev1.Pod) (*corev1.Pod, error) {
	return clientset.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

// namespace creates a namespace with a unique name and labels.
func namespace(t testing.TB, prefix string, labels map[string]string) string {
	t.Helper()
	name := prefix + "-" + rand.String(5)
	_, err := clientset.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// warningCollector records the API server's warnings for one client.
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningCollector) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

func clientWithWarnings(t testing.TB) (*kubernetes.Clientset, *warningCollector) {
	t.Helper()
	wc := &warningCollector{}
	cfg := rest.CopyConfig(restConfig)
	cfg.WarningHandler = wc
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, wc
}

func hasPrefix(msgs []string, prefix string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}
