package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/guardchain/guardchain/internal/baseline"
)

// BenchmarkReview serves each review of the set drawn from the golden
// corpus (testdata/reviews, see benchReviews) and the API server's own
// review of the sandbox pod (review=captured,
// deploy/examples/openshell-sandbox-review.json) over HTTP, in process, by
// each path:
//
//	path=baseline      decode the review and the pod with encoding/json, answer allowed
//	path=allow-all  controller-runtime's admission.Webhook answering allowed (no pod decoded)
//	path=webhook    guardchain behind admission.Webhook: the body parsed three times
//	path=serve      guardchain's ServeHTTP, which the server registers: parsed once
//
// make bench-handler prints each review's paths beside its baseline
// (benchstat -col /path). Besides wall time per op it reports cpu-ns/op,
// the process's CPU time (garbage collection included) per op: on a
// machine shared with other work, wall time also counts waiting for a core.
// processCPU is the user and system CPU time the process has used, in ns.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkReview(b *testing.B) {
	logf.SetLogger(logr.Discard())
	guardchain := &Handler{Config: Default(), Log: logr.Discard()}
	paths := []struct {
		name string
		h    http.Handler
	}{
		{"baseline", baseline.Handler{}},
		{"allow-all", &admission.Webhook{Handler: allowAll{}}},
		{"webhook", &admission.Webhook{Handler: guardchain}},
		{"serve", guardchain},
	}
	reviews := map[string]string{"captured": sandboxReview}
	names := []string{"captured"}
	for i, f := range reviewFiles() {
		reviews[benchReviews[i]] = f
		names = append(names, benchReviews[i])
	}
	for _, name := range names {
		body, err := os.ReadFile(reviews[name])
		if err != nil {
			b.Fatal(err)
		}
		b.Run("review="+name, func(b *testing.B) { benchPaths(b, body, paths) })
	}
}

func benchPaths(b *testing.B, body []byte, paths []struct {
	name string
	h    http.Handler
}) {
	for _, p := range paths {
		b.Run("path="+p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu0 := processCPU(b)
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, MutatePath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				p.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
					b.Fatalf("HTTP %d %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
