package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/guardchain/guardchain/certs"
	"github.com/guardchain/guardchain/webhook"
)

const day = 24 * time.Hour

// logBuffer collects a manager's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, args)
	}, funcr.Options{Verbosity: 1})
}

func (b *logBuffer) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// selfManaged is one test's self-managed setup, as the chart deploys it:
// the chart's RBAC and the policies confining its ServiceAccount, for a
// release in its own namespace, a webhook configuration with the chart's
// name and no CA bundle yet, with one webhook per replica (each at its own
// port, so an admission succeeds only when every replica's certificate is
// trusted), and a namespace of sandboxes.
type selfManaged struct {
	cfg        webhook.Config
	ns         string
	secretNS   string
	id         chartIdentity
	mwcName    string
	secretName string
	port       int   // the first replica's
	ports      []int // every replica's
	leafValid  time.Duration
	caValid    time.Duration
	retire     time.Duration // the managers' RetireAfter; 0: the default
}

func newSelfManaged(t *testing.T) *selfManaged { return newSelfManagedReplicas(t, 1) }

func newSelfManagedReplicas(t *testing.T, replicas int) *selfManaged {
	t.Helper()
	s := &selfManaged{cfg: testConfig(t, ""), ns: namespace(t, "openshell", nil), secretNS: namespace(t, "guardchain-system", nil),
		leafValid: 90 * day, caValid: 400 * day}
	s.id = asChartServiceAccount(t, "guardchain-"+rand.String(5), s.secretNS)
	s.mwcName, s.secretName = s.id.webhookConfig, s.id.secretName
	mwc := webhook.MutatingWebhookConfiguration(s.cfg, webhook.RegistrationOptions{
		Name: s.mwcName, Namespaces: []string{s.ns}, ReleaseNamespace: s.secretNS})
	one := mwc.Webhooks[0]
	mwc.Webhooks = nil
	for i := range replicas {
		port := freePort(t)
		s.ports = append(s.ports, port)
		w := *one.DeepCopy()
		if replicas > 1 {
			w.Name = fmt.Sprintf("r%d.%s", i, one.Name)
		}
		w.ClientConfig = clientConfig(port, webhook.MutatePath)
		w.ClientConfig.CABundle = nil
		mwc.Webhooks = append(mwc.Webhooks, w)
	}
	s.port = s.ports[0]
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	// The certificate code runs confined to the caBundle, as in the chart.
	waitWebhookConfigPolicy(t, s.id)
	return s
}

// manager is one replica's certificate manager, with the chart's RBAC.
func (s *selfManaged) manager(t *testing.T, dir string, now func() time.Time, log *logBuffer) *certs.Manager {
	t.Helper()
	return s.managerWith(t, s.id.client, dir, now, log)
}

// managerWith is a replica's certificate manager that reaches the API server
// through client.
func (s *selfManaged) managerWith(t *testing.T, client kubernetes.Interface, dir string, now func() time.Time, log *logBuffer) *certs.Manager {
	t.Helper()
	if log == nil {
		log = &logBuffer{}
	}
	m, err := certs.NewManager(certs.Options{Client: client, Namespace: s.secretNS, SecretName: s.secretName,
		LegacySecretName: s.id.legacySecret, WebhookConfigName: s.mwcName, DNSNames: []string{"localhost"}, CertDir: dir, Now: now, Log: log.logger(),
		LeafValidity: s.leafValid, CAValidity: s.caValid, Propagation: 2 * time.Second, RetireAfter: s.retire,
		Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (s *selfManaged) reconcile(t *testing.T, m *certs.Manager) {
	t.Helper()
	if _, err := m.Reconcile(context.Background()); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
}

// serveFrom starts guardchain serving the files in dir, as the first replica.
func (s *selfManaged) serveFrom(t *testing.T, dir string) *running {
	t.Helper()
	return s.serveReplica(t, 0, dir)
}

// serveReplica starts replica i serving the files in dir.
func (s *selfManaged) serveReplica(t *testing.T, i int, dir string) *running {
	t.Helper()
	srv, err := webhook.NewServer(webhook.ServerOptions{Config: s.cfg, Log: logr.Discard(), Host: "127.0.0.1", Port: s.ports[i],
		CertDir: dir, ProbeAddr: "0", Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Start(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return &running{port: s.ports[i], stop: stop}
}

func (s *selfManaged) waitInjecting(t *testing.T) {
	t.Helper()
	waitFor(t, "admissions through the self-managed certificate", func() error {
		p, err := dryRunCreate(s.ns, agentPod("probe"))
		if err == nil && !injected(p) {
			err = fmt.Errorf("not injected")
		}
		return err
	})
}

func (s *selfManaged) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	sec, err := clientset.CoreV1().Secrets(s.secretNS).Get(context.Background(), s.secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// putSecret gives the Secret data, as an operator or a backup restore would.
func (s *selfManaged) putSecret(t *testing.T, data map[string][]byte) {
	t.Helper()
	secrets := clientset.CoreV1().Secrets(s.secretNS)
	sec, err := secrets.Get(context.Background(), s.secretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.secretName, Namespace: s.secretNS}, Data: data}, metav1.CreateOptions{})
	case err == nil:
		sec.Data = data
		_, err = secrets.Update(context.Background(), sec, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("writing the Secret: %v", err)
	}
}

func (s *selfManaged) bundle(t *testing.T) []byte {
	t.Helper()
	mwc, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mwc.Webhooks[0].ClientConfig.CABundle
}

// servedSerial is the serial of the certificate the server presents.
func servedSerial(t *testing.T, port int) string {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{InsecureSkipVerify: true}) // only reading the serial
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// createLoop creates sandbox pods (dry run) until stop, counting failures.
func createLoop(t *testing.T, ns string, stop <-chan struct{}) (ok, failed *atomic.Int64, errs *sync.Map, done chan struct{}) {
	ok, failed, errs, done = &atomic.Int64{}, &atomic.Int64{}, &sync.Map{}, make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, err := dryRunCreate(ns, agentPod("loop"))
			if err != nil || !injected(p) {
				failed.Add(1)
				errs.Store(fmt.Sprint(err), true)
				continue
			}
			ok.Add(1)
		}
	}()
	return
}

func reportLoop(t *testing.T, ok, failed *atomic.Int64, errs *sync.Map) {
	t.Helper()
	t.Logf("%d admissions succeeded, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		errs.Range(func(k, _ any) bool { t.Errorf("admission failed: %v", k); return true })
	}
	if ok.Load() < 20 {
		t.Errorf("only %d admissions in the loop", ok.Load())
	}
}

func leafCert(t *testing.T, port int) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{InsecureSkipVerify: true}) // only reading the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// replica is one webhook replica: a certificate manager reconciling in its
// own loop, as in the webhook's main, and a server on the replica's port.
type replica struct {
	port     int
	dir      string
	log      *logBuffer
	m        *certs.Manager
	stopLoop func()
}

// startReplicas bootstraps the Secret with the first replica, then runs
// every replica's manager loop (every interval) and server, and waits until
// admissions go through all of them.
func (s *selfManaged) startReplicas(t *testing.T, interval time.Duration) []*replica {
	t.Helper()
	reps := make([]*replica, len(s.ports))
	for i := range reps {
		r := &replica{port: s.ports[i], dir: t.TempDir(), log: &logBuffer{}}
		r.m = s.manager(t, r.dir, nil, r.log)
		s.reconcile(t, r.m)
		r.stopLoop = runLoop(t, r.m, interval)
		s.serveReplica(t, i, r.dir)
		reps[i] = r
	}
	s.waitInjecting(t)
	return reps
}

// runLoop runs m's reconcile loop until stopped or the test ends.
func runLoop(t *testing.T, m *certs.Manager, interval time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Start(ctx, interval) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

func (s *selfManaged) signer(t *testing.T) *x509.Certificate {
	t.Helper()
	cs, err := certs.ParseCerts(s.secret(t).Data[certs.KeySignerCrt])
	if err != nil || len(cs) == 0 {
		t.Fatalf("the Secret holds no CA: %v", err)
	}
	return cs[0]
}

// everyReplicaServes fails unless every replica presents a leaf signed by ca.
func everyReplicaServes(t *testing.T, reps []*replica, ca *x509.Certificate) error {
	t.Helper()
	for i, r := range reps {
		if err := leafCert(t, r.port).CheckSignatureFrom(ca); err != nil {
			return fmt.Errorf("replica %d serves a leaf not signed by %s: %w", i, ca.SerialNumber.Text(16), err)
		}
	}
	return nil
}

func bundleHas(bundle []byte, ca *x509.Certificate) bool {
	cs, _ := certs.ParseCerts(bundle)
	for _, c := range cs {
		if bytes.Equal(c.Raw, ca.Raw) {
			return true
		}
	}
	return false
}

func (r *replica) dumpLog(t *testing.T, name string) {
	t.Helper()
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	for _, l := range r.log.lines {
		t.Logf("%s: %s", name, l)
	}
}

// servedLeaf is the leaf a replica presents, or an error; safe off the
// test's goroutine.
func servedLeaf(port int) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{InsecureSkipVerify: true}) // only reading the certificate
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// watchTrust samples, until stop, the live caBundle and then every
// replica's leaf, and reports each time a replica served a leaf the
// caBundle did not trust.
func watchTrust(s *selfManaged, reps []*replica, stop <-chan struct{}) (violations func() []string) {
	var mu sync.Mutex
	var found []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mwc, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})
			if err != nil {
				continue
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle)
			for i, r := range reps {
				leaf, err := servedLeaf(r.port)
				if err != nil {
					continue
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
					mu.Lock()
					found = append(found, fmt.Sprintf("replica %d served %s, not trusted by the caBundle: %v", i, leaf.SerialNumber.Text(16), err))
					mu.Unlock()
				}
			}
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return found
	}
}
