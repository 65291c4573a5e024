// Command load measures guardchain's webhook under load over TLS, beside a
// baseline server, in one run (make bench-load). Each server is a process of
// its own on 127.0.0.1; vegeta's attacker posts one AdmissionReview from a
// fixed number of workers over HTTP/1.1 keep-alive connections, first for a
// warm-up, then for the measured phase. By default it does so for each
// review of a set (the API server's captured review of the sandbox pod and
// the reviews built from the golden corpus, webhook/testdata/reviews), the
// baseline measured beside guardchain for each. It reports, per review,
// admissions/s, p50 and p99, the server's peak RSS and CPU seconds per
// 1,000 admissions, and guardchain's ratios to the baseline. Every phase is
// bounded in time and in count; only loopback addresses are targeted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/guardchain/guardchain/certs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	webhook, baseline   string
	reviews             []string // files; none: the default set
	reviewDir           string   // the corpus reviews of the default set
	concurrency, rounds int
	warmup, duration    time.Duration
	maxRequests         uint64
}

// Bounds on every run: the load stays on loopback, and so must its size.
const (
	maxConcurrency = 1024
	maxRounds      = 20
	maxDuration    = 5 * time.Minute
	maxWarmup      = time.Minute
	maxRequests    = 10_000_000
)

// check names the first flag out of its bounds.
func (o options) check() error {
	switch {
	case o.concurrency < 1 || o.concurrency > maxConcurrency:
		return fmt.Errorf("-concurrency %d: want 1 to %d", o.concurrency, maxConcurrency)
	case o.rounds < 1 || o.rounds > maxRounds:
		return fmt.Errorf("-rounds %d: want 1 to %d", o.rounds, maxRounds)
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("-duration %s: want more than 0 and up to %s", o.duration, maxDuration)
	case o.warmup < 0 || o.warmup > maxWarmup:
		return fmt.Errorf("-warmup %s: want 0 to %s", o.warmup, maxWarmup)
	case o.maxRequests < 1 || o.maxRequests > maxRequests:
		return fmt.Errorf("-max-requests %d: want 1 to %d", o.maxRequests, maxRequests)
	}
	return nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.webhook, "webhook", "bin/guardchain-webhook", "guardchain-webhook binary")
	fs.StringVar(&o.baseline, "baseline", "bin/load-baseline", "baseline server binary (test/load/baseline)")
	fs.Func("review", "AdmissionReview to post (repeat for more); default: "+capturedReview+" and each of -review-dir",
		func(v string) error { o.reviews = append(o.reviews, v); return nil })
	fs.StringVar(&o.reviewDir, "review-dir", "webhook/testdata/reviews", "the corpus reviews of the default set (*.json)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "workers, each with its own keep-alive connection")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before measuring")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured load")
	fs.IntVar(&o.rounds, "rounds", 5, "runs of each server, alternating; medians are reported")
	fs.Uint64Var(&o.maxRequests, "max-requests", 1_000_000, "bound on requests per phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	reviews, err := o.readReviews()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "guardchain-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := writeCerts(dir)
	if err != nil {
		return err
	}
	servers := []server{
		{name: "baseline", want: `"allowed":true`, args: func(port int) []string {
			return []string{o.baseline, "-addr", "127.0.0.1:" + strconv.Itoa(port), "-cert-dir", dir}
		}},
		{name: "guardchain", want: `"patch":"`, args: func(port int) []string {
			return []string{o.webhook, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--cert-mode", "files",
				"--cert-dir", dir, "--probe-addr", "127.0.0.1:0", "--shutdown-delay", "0s"}
		}},
	}
	fmt.Fprintf(out, "load: %d workers, %s warm-up, %s measured, %d rounds; %d reviews\n",
		o.concurrency, o.warmup, o.duration, o.rounds, len(reviews))
	for _, r := range reviews {
		fmt.Fprintf(out, "load: review %s: %s (%d bytes)\n", r.name, r.path, len(r.body))
	}
	// results[review][server] are the rounds' measurements.
	results := make([]map[string][]measurement, len(reviews))
	for i := range results {
		results[i] = map[string][]measurement{}
	}
	for round := range o.rounds {
		for ri, r := range reviews {
			for i := range servers {
				// Alternate which server goes first, so neither always follows the other.
				s := servers[(i+round+ri)%len(servers)]
				m, err := s.measure(ctx, o, ca, r.body, dir)
				// A port found free can be taken before the server binds it:
				// a server that exits before serving is started again, twice
				// at most, on another port.
				for try := 1; try < 3 && errors.Is(err, errExited); try++ {
					fmt.Fprintf(out, "load: %s exited before serving, starting it again: %v\n", s.name, firstLine(err))
					m, err = s.measure(ctx, o, ca, r.body, dir)
				}
				if err != nil {
					return fmt.Errorf("%s, review %s, round %d: %w", s.name, r.name, round+1, err)
				}
				fmt.Fprintf(out, "load: round %d %-28s %-10s %s\n", round+1, r.name, s.name, m)
				results[ri][s.name] = append(results[ri][s.name], m)
			}
		}
	}
	rows := make([]row, len(reviews))
	for i, r := range reviews {
		rows[i] = row{review: r.name, baseline: median(results[i]["baseline"]), guardchain: median(results[i]["guardchain"])}
	}
	report(out, rows, o.rounds)
	return nil
}

// capturedReview is what kube-apiserver posts for the example sandbox pod.
const capturedReview = "deploy/examples/openshell-sandbox-review.json"

type review struct {
	name, path string
	body       []byte
}

// readReviews reads the reviews named by -review, or the default set: the
// captured review (named captured) and each of -review-dir, named by its
// file.
func (o options) readReviews() ([]review, error) {
	paths := o.reviews
	if len(paths) == 0 {
		corpus, err := filepath.Glob(filepath.Join(o.reviewDir, "*.json"))
		if err != nil {
			return nil, err
		}
		if len(corpus) == 0 {
			return nil, fmt.Errorf("-review-dir %s: no reviews (*.json)", o.reviewDir)
		}
		paths = append([]string{capturedReview}, corpus...)
	}
	var out []review
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		if filepath.Base(p) == filepath.Base(capturedReview) {
			name = "captured"
		}
		out = append(out, review{name: name, path: p, body: b})
	}
	return out, nil
}

// writeCerts makes a CA and a localhost serving certificate in dir.
func writeCerts(dir string) ([]byte, error) {
	now := time.Now()
	ca, err := certs.NewCA("guardchain load CA", now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, err := certs.NewServing(ca, []string{"localhost"}, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return ca.CertPEM, nil
}

type server struct {
	name, want string
	args       func(port int) []string
}

type measurement struct {
	rate       float64 // admissions/s
	p50, p99   time.Duration
	rss        int64         // peak, bytes
	cpuPerK    time.Duration // server CPU per 1,000 admissions
	clientPerK time.Duration // the load generator's, on the same cores
	admissions uint64
}

func (m measurement) String() string {
	return fmt.Sprintf("%8.0f admissions/s  p50 %6.2f ms  p99 %6.2f ms  peak RSS %5.1f MiB  CPU %.3f s/1,000 (load generator %.3f) (%d admissions)",
		m.rate, msf(m.p50), msf(m.p99), mib(m.rss), m.cpuPerK.Seconds(), m.clientPerK.Seconds(), m.admissions)
}

// measure starts the server, loads it and stops it.
func (s server) measure(ctx context.Context, o options, ca, body []byte, dir string) (measurement, error) {
	port, err := freePort()
	if err != nil {
		return measurement{}, err
	}
	argv := s.args(port)
	logf, err := os.Create(filepath.Join(dir, s.name+".log"))
	if err != nil {
		return measurement{}, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return measurement{}, fmt.Errorf("starting %s: %w", s.name, err)
	}
	// exited is closed when the server has exited (waitErr says how): a
	// closed channel can be waited on again, here and in waitServing.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	ao := attackOptions{URL: fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", port), CA: ca, ServerName: "localhost",
		Body: body, Concurrency: o.concurrency, Warmup: o.warmup, Duration: o.duration, MaxRequests: o.maxRequests, Want: s.want}
	if err := waitServing(ctx, ao, exited, func() error { return waitErr }); err != nil {
		log, _ := os.ReadFile(logf.Name())
		return measurement{}, fmt.Errorf("%w\n%s", err, log)
	}
	var cpu0, self0 time.Duration
	ao.BeforeMeasure = func() error {
		if self0, err = cpuTime(os.Getpid()); err != nil {
			return err
		}
		cpu0, err = cpuTime(cmd.Process.Pid)
		return err
	}
	r, err := attack(ctx, ao)
	if err != nil {
		return measurement{}, err
	}
	cpu1, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return measurement{}, err
	}
	self1, err := cpuTime(os.Getpid())
	if err != nil {
		return measurement{}, err
	}
	rss, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		return measurement{}, err
	}
	if len(r.Errors) > 0 || r.Succeeded == 0 {
		return measurement{}, fmt.Errorf("%d of %d requests failed: %q", r.Requests-r.Succeeded, r.Requests, r.Errors)
	}
	return measurement{rate: float64(r.Succeeded) / r.Elapsed.Seconds(), p50: r.P50, p99: r.P99, rss: rss,
		cpuPerK: (cpu1 - cpu0) * 1000 / time.Duration(r.Succeeded), clientPerK: (self1 - self0) * 1000 / time.Duration(r.Succeeded),
		admissions: r.Succeeded}, nil
}

// waitServing waits up to 20 s until the server answers one review as it
// should.
// errExited: the server exited before it served.
var errExited = errors.New("the server exited")

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

func waitServing(ctx context.Context, o attackOptions, exited <-chan struct{}, how func() error) error {
	probe := o
	probe.Concurrency, probe.Warmup, probe.Duration, probe.MaxRequests = 1, 0, time.Second, 1
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := attack(ctx, probe)
		if err == nil && r.Succeeded == 1 {
			return nil
		}
		select {
		case <-exited:
			if err := how(); err != nil {
				return fmt.Errorf("%w: %w", errExited, err)
			}
			return fmt.Errorf("%w with status 0", errExited)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after 20 s: %v %q", err, r.Errors) //nolint:errorlint // err may be nil here
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// median takes each quantity's median over the rounds.
func median(ms []measurement) measurement {
	pick := func(f func(measurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	return measurement{
		rate:       pick(func(m measurement) float64 { return m.rate }),
		p50:        time.Duration(pick(func(m measurement) float64 { return float64(m.p50) })),
		p99:        time.Duration(pick(func(m measurement) float64 { return float64(m.p99) })),
		rss:        int64(pick(func(m measurement) float64 { return float64(m.rss) })),
		cpuPerK:    time.Duration(pick(func(m measurement) float64 { return float64(m.cpuPerK) })),
		clientPerK: time.Duration(pick(func(m measurement) float64 { return float64(m.clientPerK) })),
		admissions: uint64(pick(func(m measurement) float64 { return float64(m.admissions) })),
	}
}

// row is one review's medians, for each server.
type row struct {
	review               string
	baseline, guardchain measurement
}

func report(out io.Writer, rows []row, rounds int) {
	fmt.Fprintf(out, "\nmedians of %d rounds, each review's baseline measured beside it in the same run:\n\n", rounds)
	fmt.Fprintln(out, "| review | server | admissions/s | p50 | p99 | peak RSS | server CPU s per 1,000 admissions | load generator CPU s per 1,000 |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		for _, s := range []struct {
			name string
			m    measurement
		}{{"baseline", r.baseline}, {"guardchain", r.guardchain}} {
			fmt.Fprintf(out, "| %s | %s | %.0f | %.2f ms | %.2f ms | %.1f MiB | %.3f | %.3f |\n", r.review, s.name, s.m.rate, msf(s.m.p50), msf(s.m.p99),
				mib(s.m.rss), s.m.cpuPerK.Seconds(), s.m.clientPerK.Seconds())
		}
	}
	fmt.Fprint(out, "\nguardchain / baseline:\n\n")
	fmt.Fprintln(out, "| review | throughput | p50 | p99 | peak RSS | server CPU per admission | load generator CPU per admission |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	var worst row
	var minRate, maxP99, maxCPU, maxRSS float64
	for i, r := range rows {
		f, g := r.baseline, r.guardchain
		rate, p99, cpu := g.rate/f.rate, float64(g.p99)/float64(f.p99), float64(g.cpuPerK)/float64(f.cpuPerK)
		fmt.Fprintf(out, "| %s | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx |\n", r.review, rate,
			float64(g.p50)/float64(f.p50), p99, float64(g.rss)/float64(f.rss), cpu, float64(g.clientPerK)/float64(f.clientPerK))
		if i == 0 || rate < minRate {
			minRate = rate
		}
		if i == 0 || p99 > maxP99 {
			maxP99 = p99
		}
		if i == 0 || cpu > maxCPU {
			maxCPU, worst = cpu, r
		}
		maxRSS = max(maxRSS, mib(g.rss))
	}
	fmt.Fprintf(out, "\ngoals, over every review: throughput >= 0.8x the baseline's (lowest %.2fx), p99 <= 1.5x the baseline's (highest %.2fx), "+
		"server CPU per admission <= 1.2x the baseline's (highest %.2fx, %s), peak RSS <= 60 MiB (highest %.1f MiB)\n",
		minRate, maxP99, maxCPU, worst.review, maxRSS)
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mib(b int64) float64         { return float64(b) / (1 << 20) }
