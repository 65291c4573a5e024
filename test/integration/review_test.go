package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/internal/baseline"
	"github.com/guardchain/guardchain/webhook"
)

var update = flag.Bool("update", false, "rewrite the captured admission review")

// sandboxReview is what the benchmarks and the load run send: the review
// kube-apiserver posts for the example sandbox pod.
const sandboxReview = "../../deploy/examples/openshell-sandbox-review.json"

// The committed review is the one the real API server sends for
// webhook/testdata/openshell-sandbox.yaml, OpenShell's k3s pod (its request UID, namespace and
// service account volume suffix made fixed): the benchmarks measure what
// production sees. -update rewrites it.
func TestSandboxReviewIsWhatTheAPIServerSends(t *testing.T) {
	_, leaf := servingPKI()
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	port := freePort(t)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- body:
		default:
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		baseline.Handler{}.ServeHTTP(w, r)
	})}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	cfg := testConfig(t, "")
	ns := namespace(t, "openshell", nil)
	mwc := webhook.MutatingWebhookConfiguration(cfg, webhook.RegistrationOptions{Name: "capture-" + ns,
		ClientConfig: clientConfig(port, "/capture"), Namespaces: []string{ns}})
	ctx := context.Background()
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})

	b, err := os.ReadFile("../../webhook/testdata/openshell-sandbox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Namespace = ns
	sandbox(&pod)
	waitFor(t, "the API server to call the capturing webhook", func() error {
		if _, err := dryRunCreate(ns, &pod); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		default:
			return errNotYet
		}
	})
	// A real create, as production sends (dry-run reviews say so).
	if _, err := clientset.CoreV1().Pods(ns).Create(ctx, &pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = clientset.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	body := bytes.TrimSpace(<-got)
	oneDecodePass(t, cfg, body)
	body = normalizeReview(body, ns)
	if floorRun(t) {
		// The committed review is the newest release's; an older API server
		// sends another (v1.30: no credential-id in userInfo.extra, a null
		// creationTimestamp). What counts there is that guardchain reads it
		// in one pass, as it does the newest's.
		return
	}
	if *update {
		if err := os.WriteFile(sandboxReview, append(body, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(sandboxReview)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(bytes.TrimSpace(want)), string(body)); diff != "" {
		t.Errorf("%s is not what the API server sends (-committed +sent; go test ./test/integration -run SandboxReview -update):\n%s", sandboxReview, diff)
	}
}

var (
	errNotYet = &notYet{}
	// What differs between two sends of the same pod, and what it is fixed to.
	varying = []struct {
		re    *regexp.Regexp
		fixed string
	}{
		{regexp.MustCompile(`"request":\{"uid":"[0-9a-f-]{36}"`), `"request":{"uid":"0f6bd7a4-1c5e-4b1e-8f0e-1a2b3c4d5e6f"`},
		{regexp.MustCompile(`kube-api-access-[a-z0-9]{5}`), `kube-api-access-x7k2p`},
		{regexp.MustCompile(`"time":"[0-9TZ:-]{20}"`), `"time":"2026-11-30T00:00:00Z"`},
		{regexp.MustCompile(`X509SHA256=[0-9a-f]{64}`), `X509SHA256=` + strings.Repeat("0", 64)},
	}
)

type notYet struct{}

func (*notYet) Error() string { return "not called yet" }

// oneDecodePass serves the review the API server sent to guardchain's
// handler: it must be read in one pass (not left to controller-runtime's
// decoder) and answered allowed with a patch.
func oneDecodePass(t *testing.T, cfg webhook.Config, review []byte) {
	t.Helper()
	m, err := webhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &webhook.Handler{Config: cfg, Log: logr.Discard(), Metrics: m}
	req := httptest.NewRequest(http.MethodPost, webhook.MutatePath, bytes.NewReader(review))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var answer admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusOK || answer.Response == nil {
		t.Fatalf("guardchain's answer to the API server's review (HTTP %d, %v):\n%s", rec.Code, err, rec.Body.Bytes())
	}
	if !answer.Response.Allowed || len(answer.Response.Patch) == 0 {
		t.Errorf("guardchain answered the API server's review allowed=%v with %d bytes of patch, want allowed with a patch", answer.Response.Allowed, len(answer.Response.Patch))
	}
	if n := testutil.ToFloat64(m.GenericReviews); n != 0 {
		t.Errorf("the review kube-apiserver %s sends was left to controller-runtime's decoder (%v), not read in one pass", serverVersion, n)
	}
}

// normalizeReview fixes what differs between two sends of the same pod.
func normalizeReview(b []byte, ns string) []byte {
	for _, v := range varying {
		b = v.re.ReplaceAll(b, []byte(v.fixed))
	}
	return bytes.ReplaceAll(b, []byte(`"`+ns+`"`), []byte(`"openshell"`))
}
