package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/guardchain/guardchain/podreview"
)

// sandboxReview is the review kube-apiserver sends for the example sandbox
// pod (test/integration checks that it still is).
const sandboxReview = "../deploy/examples/openshell-sandbox-review.json"

type answer struct {
	code   int
	header http.Header
	body   string
}

func serveWith(h http.Handler, contentType string, body io.Reader) answer {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, MutatePath, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.ServeHTTP(rec, req)
	header := rec.Result().Header
	// Content-Length only frames the body (net/http sets it itself for a
	// short one): when present it must be the body's, and is then left out.
	if n := header.Get("Content-Length"); n != "" {
		if n != strconv.Itoa(rec.Body.Len()) {
			return answer{-1, header, "Content-Length " + n + " for a body of " + strconv.Itoa(rec.Body.Len()) + " bytes"}
		}
		header.Del("Content-Length")
	}
	return answer{rec.Code, header, rec.Body.String()}
}

// sameAnswer checks that Handler.ServeHTTP answers body exactly as
// controller-runtime's admission.Webhook around the same Handler does.
func sameAnswer(t *testing.T, h *Handler, contentType string, body []byte) {
	t.Helper()
	want := serveWith(&admission.Webhook{Handler: h}, contentType, bytes.NewReader(body))
	got := serveWith(h, contentType, bytes.NewReader(body))
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(answer{})); diff != "" {
		t.Errorf("ServeHTTP answers differently from admission.Webhook (-webhook +ServeHTTP):\n%s", diff)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every golden pod, as a review: decoded in one pass and answered as
// admission.Webhook answers it.
func TestServeHTTPAnswersGoldenReviewsAsAdmissionWebhook(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.name, func(t *testing.T) {
			h := &Handler{Config: testConfig(t, g), Log: logr.Discard()}
			body := reviewOf(t, podJSON(t, readPod(t, g.in)))
			if _, _, ok := podreview.Decode(body); !ok {
				t.Fatalf("a review as the API server sends it took the fallback: %s", body)
			}
			sameAnswer(t, h, "application/json", body)
		})
	}
	t.Run("captured sandbox review", func(t *testing.T) {
		body := readFile(t, sandboxReview)
		req, pod, ok := podreview.Decode(body)
		if !ok {
			t.Fatal("the API server's own review took the fallback")
		}
		if pod == nil || pod.Name != "my-assistant" || req.UserInfo.Username == "" || req.Options.Raw == nil {
			t.Errorf("decoded request lacks what was sent: %+v", *req)
		}
		sameAnswer(t, &Handler{Config: Default(), Log: logr.Discard()}, "application/json", body)
	})
}

func reviewOf(t *testing.T, pod []byte) []byte {
	return reviewBody(t, func(r *admissionv1.AdmissionRequest) { r.Object.Raw = pod })
}

// Bodies the one-pass decoder must not read itself, and the answers they
// get all the same.
func TestServeHTTPFallsBackWhereAdmissionWebhookReadsDifferently(t *testing.T) {
	sandbox := string(readFile(t, sandboxReview))
	replace := func(old, new string) []byte {
		if !strings.Contains(sandbox, old) {
			t.Fatalf("the sandbox review lacks %q", old)
		}
		return []byte(strings.Replace(sandbox, old, new, 1))
	}
	tests := []struct {
		name     string
		body     []byte
		fastPath bool
	}{
		{"v1beta1", replace(`"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":"admission.k8s.io/v1beta1"`), false},
		{"no kind", replace(`"kind":"AdmissionReview",`, ``), false},
		{"no apiVersion", replace(`"apiVersion":"admission.k8s.io/v1",`, ``), false},
		{"bad apiVersion", replace(`"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":"a/b/c"`), false},
		{"key in another case", replace(`"request":`, `"Request":`), false},
		{"kind key in another case beside it", replace(`"kind":"AdmissionReview",`, `"kind":"AdmissionReview","KIND":"Other",`), false},
		{"pod key in another case", replace(`"spec":{"volumes"`, `"Spec":{"volumes"`), false},
		{"unknown review field", replace(`"request":`, `"extra":1,"request":`), false},
		{"unknown pod field", replace(`"spec":{"volumes"`, `"spec":{"futureField":{"x":1},"volumes"`), false},
		{"duplicate request", []byte(strings.TrimSuffix(strings.TrimSpace(sandbox), "}") + `,"request":null}`), false},
		{"duplicate object", replace(`"object":{`, `"object":{},"object":{`), false},
		{"object null", replace(`"oldObject":null`, `"oldObject":null,"object":null`), false},
		{"only object null", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":null}}`), true},
		{"request null", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`), true},
		{"object a string", replace(`"object":{`, `"object":"x","x":{`), false},
		{"trailing bytes", append(readFile(t, sandboxReview), '}'), false},
		{"yaml", []byte("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {uid: '1'}\n"), false},
		{"null", []byte(`null`), false},
		{"empty object", []byte(`{}`), false},
		{"a response in the review", replace(`"request":`, `"response":{"uid":"x","allowed":true},"request":`), true},
		{"sandbox", []byte(sandbox), true},
	}
	h := &Handler{Config: Default(), Log: logr.Discard()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, ok := podreview.Decode(tt.body); ok != tt.fastPath {
				t.Errorf("decoded in one pass: %v, want %v", ok, tt.fastPath)
			}
			sameAnswer(t, h, "application/json", tt.body)
		})
	}
	t.Run("counted", func(t *testing.T) {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		h := &Handler{Config: Default(), Log: logr.Discard(), Metrics: m}
		serveWith(h, "application/json", strings.NewReader(sandbox))
		serveWith(h, "application/json", bytes.NewReader(tests[0].body))
		serveWith(h, "text/plain", strings.NewReader(sandbox))
		if n := testutil.ToFloat64(m.GenericReviews); n != 2 {
			t.Errorf("guardchain_admission_reviews_generic_decode_total = %v after one review read in one pass and two not, want 2", n)
		}
	})
	t.Run("content type", func(t *testing.T) { sameAnswer(t, h, "text/plain", []byte(sandbox)) })
	t.Run("no content type", func(t *testing.T) { sameAnswer(t, h, "", []byte(sandbox)) })
	t.Run("empty body", func(t *testing.T) { sameAnswer(t, h, "application/json", nil) })
	t.Run("over 7 MiB", func(t *testing.T) {
		big := replace(`"name":"my-assistant",`, `"name":"my-assistant","generateName":"`+strings.Repeat("x", podreview.MaxBytes)+`",`)
		sameAnswer(t, h, "application/json", big)
	})
}

// The committed fuzz inputs of FuzzHandler get the same answers both ways.
func TestServeHTTPAnswersFuzzCorpusAsAdmissionWebhook(t *testing.T) {
	paths, err := filepath.Glob("testdata/fuzz/FuzzHandler/*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no FuzzHandler corpus: %v", err)
	}
	h := &Handler{Config: Default(), Log: logr.Discard()}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			sameAnswer(t, h, "application/json", corpusBytes(t, p))
		})
	}
}

// corpusBytes reads a go test fuzz v1 file holding one []byte.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	lines := strings.SplitN(string(readFile(t, path)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	s := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(s, "[]byte(") || !strings.HasSuffix(s, ")") {
		t.Fatalf("%s: not one []byte: %s", path, s)
	}
	v, err := strconv.Unquote(s[len("[]byte(") : len(s)-1])
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(v)
}

// FuzzServeHTTP: any body gets from ServeHTTP exactly the answer
// admission.Webhook gives it.
func FuzzServeHTTP(f *testing.F) {
	t := &testing.T{}
	f.Add(reviewBody(t, nil))
	b, err := os.ReadFile(sandboxReview)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"resource":{"resource":"pods","version":"v1"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"agent","volumeMounts":[{"name":"x","mountPath":"/tmp/"}]}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"},"resource":{"resource":"pods"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"resource":{"resource":"pods","version":"v1"},"operation":"CREATE","object":{"metadata":{"annotations":{"guardchain.dev/containers":"agent","guardchain.dev/proxy-port":"x"}},"spec":{"containers":[{"name":"agent"}]}}}}`))
	h := &Handler{Config: Default(), Log: logr.Discard()}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAnswer(t, h, "application/json", body)
	})
}
