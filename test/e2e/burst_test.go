//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/webhook"
)

// outcome is what became of one pod create.
type outcome int

const (
	injected    outcome = iota // admitted, the chain first among its init containers
	unguarded                  // admitted without the chain: never acceptable
	refused                    // the API server answered with an error (failurePolicy Fail)
	unreachable                // no answer from the API server at all
)

type result struct {
	start   time.Time
	took    time.Duration
	outcome outcome
	err     string
}

// burst creates sandbox pods with server-side dry-run (admission runs,
// nothing is stored) from a fixed number of workers until stopped, and
// records each answer. Bounded: it stops by itself after limit or max
// creates.
type burst struct {
	cancel  context.CancelFunc
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	rs      []result
}

// burstPod is OpenShell's k3s sandbox pod (no image volume, no PVC of its own to wait for), under a generated name.
func burstPod(t *testing.T) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile("../../webhook/testdata/openshell-sandbox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p.Name, p.GenerateName, p.Namespace = "", "drill-", sandboxNS
	p.Annotations = sandboxMarks()
	return &p
}

func startBurst(t *testing.T, cfg *rest.Config, workers int, limit time.Duration, max int) *burst {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0             // no client-side rate limit: the API server sets the pace
	cfg.WarningHandler = rest.NoWarnings{} // the sandbox's hostPath and capabilities warn on every create
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod := burstPod(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	b := &burst{cancel: cancel}
	var n int
	for range workers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for !b.stopped.Load() && ctx.Err() == nil {
				b.mu.Lock()
				n++
				last := n > max
				b.mu.Unlock()
				if last {
					return
				}
				r := create(ctx, cs, pod)
				if ctx.Err() != nil && r.outcome == unreachable {
					return // the bound ran out mid-call: not an answer
				}
				b.mu.Lock()
				b.rs = append(b.rs, r)
				b.mu.Unlock()
				if r.outcome == unreachable {
					// The API server is down: do not spin on a closed port.
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return b
}

func create(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) result {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r := result{start: time.Now()}
	got, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	r.took = time.Since(r.start)
	var status apierrors.APIStatus
	switch {
	case err == nil && webhook.WritesChainFirst(&got.Spec) && got.Annotations[webhook.AnnotationStatus] == webhook.StatusInjected:
		r.outcome = injected
	case err == nil:
		r.outcome = unguarded
		r.err = fmt.Sprintf("admitted without the chain: status %q, init containers %v",
			got.Annotations[webhook.AnnotationStatus], names(got.Spec.InitContainers))
	case errors.As(err, &status):
		r.outcome, r.err = refused, err.Error()
	default:
		r.outcome, r.err = unreachable, err.Error()
	}
	return r
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// stop lets each worker finish its create, then returns every answer, in
// start order.
func (b *burst) stop() []result {
	b.stopped.Store(true)
	b.wg.Wait()
	b.cancel()
	slices.SortFunc(b.rs, func(x, y result) int { return x.start.Compare(y.start) })
	return b.rs
}

// summary is one drill's counts and latencies.
type summary struct {
	name                                     string
	creates, injected, refused, unguarded    int
	unreachable                              int
	window                                   time.Duration // first refused create's start to last one's answer
	p50, p99                                 time.Duration // of admitted creates
	seconds                                  float64
	firstRefusal, firstUnguarded, firstError string
}

func summarize(name string, rs []result) summary {
	s := summary{name: name, creates: len(rs)}
	var took []time.Duration
	var first, last time.Time
	for _, r := range rs {
		switch r.outcome {
		case injected:
			s.injected++
		case unguarded:
			s.unguarded++
			if s.firstUnguarded == "" {
				s.firstUnguarded = r.err
			}
		case refused:
			s.refused++
			if first.IsZero() {
				first, s.firstRefusal = r.start, r.err
			}
			last = r.start.Add(r.took)
		case unreachable:
			s.unreachable++
			if s.firstError == "" {
				s.firstError = r.err
			}
		}
		if r.outcome == injected || r.outcome == unguarded {
			took = append(took, r.took)
		}
	}
	if !first.IsZero() {
		s.window = last.Sub(first)
	}
	if len(rs) > 0 {
		s.seconds = rs[len(rs)-1].start.Sub(rs[0].start).Seconds()
	}
	slices.Sort(took)
	if n := len(took); n > 0 {
		s.p50, s.p99 = took[n/2], took[min(n-1, n*99/100)]
	}
	return s
}

func (s summary) String() string {
	return fmt.Sprintf("| %s | %.0f s | %d | %d | %d | %d | %d | %.2f s | %.1f ms | %.1f ms |", s.name, s.seconds, s.creates, s.injected,
		s.refused, s.unguarded, s.unreachable, s.window.Seconds(), ms(s.p50), ms(s.p99))
}

const summaryHeader = "| drill | length | creates | injected | refused | unguarded | API server unreachable | refusal window | p50 | p99 |"

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
