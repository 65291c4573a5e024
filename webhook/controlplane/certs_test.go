package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
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
// the chart's RBAC for a release in its own namespace, a webhook
// configuration with the chart's name and no CA bundle yet, with one webhook
// per replica (each at its own port, so an admission succeeds only when
// every replica's certificate is trusted), and a namespace of sandboxes.
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
	return s
}

// manager is one replica's certificate manager, with the chart's RBAC.
func (s *selfManaged) manager(t *testing.T, dir string, now func() time.Time, log *logBuffer) *certs.Manager {
	t.Helper()
	if log == nil {
		log = &logBuffer{}
	}
	m, err := certs.NewManager(certs.Options{Client: s.id.client, Namespace: s.secretNS, SecretName: s.secretName,
		WebhookConfigName: s.mwcName, DNSNames: []string{"localhost"}, CertDir: dir, Now: now, Log: log.logger(),
		LeafValidity: s.leafValid, CAValidity: s.caValid, Propagation: 2 * time.Second, Registry: prometheus.NewRegistry()})
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

func serialOf(t *testing.T, pemBytes []byte) string {
	t.Helper()
	cs, err := certs.ParseCerts(pemBytes)
	if err != nil || len(cs) == 0 {
		t.Fatalf("parsing certificate: %v", err)
	}
	return cs[0].SerialNumber.String()
}

func TestControlPlaneSelfManagedBootstrapAndRestartWithoutChurn(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	m := s.manager(t, dir, nil, nil)
	if err := m.Ready(nil); err == nil {
		t.Error("ready before any certificate")
	}
	s.reconcile(t, m)
	if err := m.Ready(nil); err != nil {
		t.Errorf("not ready after bootstrap: %v", err)
	}
	s.serveFrom(t, dir)
	s.waitInjecting(t)

	sec := s.secret(t)
	for _, k := range []string{certs.KeyTLSCert, certs.KeyTLSKey, certs.KeyCABundle, certs.KeySignerCrt, certs.KeySignerKey} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("secret lacks %s", k)
		}
	}
	if !bytes.Equal(s.bundle(t), sec.Data[certs.KeyCABundle]) {
		t.Error("webhook caBundle differs from the secret's ca.crt")
	}
	mwc, _ := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})

	// A restart (a new manager, a new empty cert dir) reuses everything.
	dir2 := t.TempDir()
	s.reconcile(t, s.manager(t, dir2, nil, nil))
	if got := s.secret(t); got.ResourceVersion != sec.ResourceVersion {
		t.Errorf("restart rewrote the secret (resourceVersion %s -> %s)", sec.ResourceVersion, got.ResourceVersion)
	}
	mwc2, _ := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), s.mwcName, metav1.GetOptions{})
	if mwc2.ResourceVersion != mwc.ResourceVersion {
		t.Errorf("restart rewrote the webhook configuration (resourceVersion %s -> %s)", mwc.ResourceVersion, mwc2.ResourceVersion)
	}
	got, _ := os.ReadFile(filepath.Join(dir2, "tls.crt"))
	if !bytes.Equal(got, sec.Data[certs.KeyTLSCert]) {
		t.Error("the restarted replica does not serve the secret's certificate")
	}
}

// A replica that starts after its Secret was deleted makes a new one with
// the chart's RBAC, instead of waiting forever for its first certificate.
func TestControlPlaneSelfManagedRestartRecreatesDeletedSecret(t *testing.T) {
	s := newSelfManaged(t)
	s.reconcile(t, s.manager(t, t.TempDir(), nil, nil))
	if err := clientset.CoreV1().Secrets(s.secretNS).Delete(context.Background(), s.secretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := s.manager(t, dir, nil, nil)
	if _, err := m.Reconcile(context.Background()); err != nil {
		t.Fatalf("a restarted replica cannot make its first certificate: %v", err)
	}
	if err := m.Ready(nil); err != nil {
		t.Errorf("not ready after the Secret was recreated: %v", err)
	}
	if len(s.secret(t).Data[certs.KeySignerKey]) == 0 {
		t.Error("the recreated Secret holds no CA")
	}
	s.serveFrom(t, dir)
	s.waitInjecting(t)
}

func TestControlPlaneSelfManagedReplicasRace(t *testing.T) {
	s := newSelfManaged(t)
	const replicas = 4
	dirs := make([]string, replicas)
	errs := make(chan error, replicas)
	var wg sync.WaitGroup
	for i := range dirs {
		dirs[i] = t.TempDir()
		m := s.manager(t, dirs[i], nil, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Reconcile(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a replica failed: %v", err)
		}
	}
	want := s.secret(t).Data[certs.KeyTLSCert]
	for i, d := range dirs {
		got, err := os.ReadFile(filepath.Join(d, "tls.crt"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("replica %d serves another certificate than the secret's (%v)", i, err)
		}
	}
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

func TestControlPlaneSelfManagedLeafRenewalUnderLoad(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	// Issued 61 days ago: past 2/3 of its 90 days, still valid.
	past := func() time.Time { return time.Now().Add(-61 * day) }
	s.reconcile(t, s.manager(t, dir, past, nil))
	srv := s.serveFrom(t, dir)
	s.waitInjecting(t)
	before := servedSerial(t, srv.port)

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	time.Sleep(500 * time.Millisecond)
	log := &logBuffer{}
	s.reconcile(t, s.manager(t, dir, nil, log))
	if !log.has("due for renewal") {
		t.Errorf("no log line saying why the certificate was renewed: %v", log.lines)
	}
	waitFor(t, "the renewed certificate to be served", func() error {
		if servedSerial(t, srv.port) == before {
			return fmt.Errorf("still serving %s", before)
		}
		return nil
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
}

func TestControlPlaneSelfManagedCARolloverUnderLoad(t *testing.T) {
	s := newSelfManaged(t)
	dir := t.TempDir()
	// CA issued 270 days ago (400-day life: under a third left now), leaf
	// renewed 10 days ago under the old CA, so it is valid now.
	s.reconcile(t, s.manager(t, dir, func() time.Time { return time.Now().Add(-270 * day) }, nil))
	s.reconcile(t, s.manager(t, dir, func() time.Time { return time.Now().Add(-10 * day) }, nil))
	srv := s.serveFrom(t, dir)
	s.waitInjecting(t)
	oldCA := s.secret(t).Data[certs.KeySignerCrt]
	oldLeaf := servedSerial(t, srv.port)

	stop := make(chan struct{})
	ok, failed, errs, done := createLoop(t, s.ns, stop)
	time.Sleep(500 * time.Millisecond)

	log := &logBuffer{}
	m := s.manager(t, dir, nil, log)
	s.reconcile(t, m)
	if !log.has("rolling over the CA") {
		t.Errorf("no log line for the CA rollover: %v", log.lines)
	}
	sec := s.secret(t)
	if bytes.Equal(sec.Data[certs.KeySignerCrt], oldCA) {
		t.Fatal("the CA was not rolled over")
	}
	bundle, _ := certs.ParseCerts(s.bundle(t))
	if len(bundle) != 2 {
		t.Fatalf("caBundle holds %d CAs during the rollover, want the new and the old", len(bundle))
	}
	if servedSerial(t, srv.port) != oldLeaf {
		t.Error("the leaf moved to the new CA before the API server trusted it")
	}
	// Reconcile as the periodic loop would until the leaf moves over.
	waitFor(t, "the leaf to move to the new CA", func() error {
		s.reconcile(t, m)
		if servedSerial(t, srv.port) == oldLeaf {
			return fmt.Errorf("still serving the old CA's leaf")
		}
		return nil
	})
	newCA, _ := certs.ParseCerts(s.secret(t).Data[certs.KeySignerCrt])
	served := leafCert(t, srv.port)
	if err := served.CheckSignatureFrom(newCA[0]); err != nil {
		t.Errorf("served leaf not signed by the new CA: %v", err)
	}
	time.Sleep(time.Second)
	close(stop)
	<-done
	reportLoop(t, ok, failed, errs)
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

func TestControlPlaneSelfManagedReplacesBadSecrets(t *testing.T) {
	now := time.Now()
	ca, _ := certs.NewCA("old", now.Add(-200*day), 400*day)
	expired, _ := certs.NewServing(ca, []string{"localhost"}, now.Add(-100*day), 90*day)
	wrongName, _ := certs.NewServing(ca, []string{"evil.example"}, now, 90*day)
	tests := []struct {
		name string
		data map[string][]byte
		log  string
	}{
		{"garbage", map[string][]byte{certs.KeySignerCrt: []byte("garbage"), certs.KeySignerKey: []byte("garbage"),
			certs.KeyTLSCert: []byte("x"), certs.KeyTLSKey: []byte("y"), certs.KeyCABundle: []byte("z")}, "replacing an unreadable CA"},
		{"expired leaf", map[string][]byte{certs.KeySignerCrt: ca.CertPEM, certs.KeySignerKey: ca.KeyPEM,
			certs.KeyTLSCert: expired.CertPEM, certs.KeyTLSKey: expired.KeyPEM, certs.KeyCABundle: ca.CertPEM}, `"reason"="expired `},
		{"wrong DNS name", map[string][]byte{certs.KeySignerCrt: ca.CertPEM, certs.KeySignerKey: ca.KeyPEM,
			certs.KeyTLSCert: wrongName.CertPEM, certs.KeyTLSKey: wrongName.KeyPEM, certs.KeyCABundle: ca.CertPEM}, "DNS names [evil.example], want [localhost]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSelfManaged(t)
			s.putSecret(t, tt.data)
			dir := t.TempDir()
			log := &logBuffer{}
			s.reconcile(t, s.manager(t, dir, nil, log))
			if !log.has(tt.log) {
				t.Errorf("no log line with %q: %v", tt.log, log.lines)
			}
			sec := s.secret(t)
			if err := certs.CheckServing(certs.KeyPair{CertPEM: sec.Data[certs.KeyTLSCert], KeyPEM: sec.Data[certs.KeyTLSKey]},
				sec.Data[certs.KeyCABundle], []string{"localhost"}, time.Now()); err != nil {
				t.Errorf("the replaced certificate does not serve localhost: %v", err)
			}
			s.serveFrom(t, dir)
			s.waitInjecting(t)
		})
	}
}
