package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guardchain/guardchain/internal/baseline"
)

func TestOnlyLoopbackIsTargeted(t *testing.T) {
	for _, u := range []string{"https://10.244.0.1:443/", "https://example.com/", "http://127.0.0.1:9443/", "https://localhost:9443/", "https://0.0.0.0:1/"} {
		if err := loopbackURL(u); err == nil {
			t.Errorf("%s accepted as a target", u)
		}
		if _, err := attack(context.Background(), attackOptions{URL: u}); err == nil {
			t.Errorf("attack on %s started", u)
		}
	}
	for _, u := range []string{"https://127.0.0.1:9443/mutate-pods", "https://[::1]:9443/", "https://127.0.0.2:1/"} {
		if err := loopbackURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
}

// A short attack on the baseline over TLS: every answer checked, the phase
// bounded by count.
func TestAttackIsBoundedAndChecksAnswers(t *testing.T) {
	dir := t.TempDir()
	ca, err := writeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(baseline.Handler{})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	body, err := os.ReadFile("../../deploy/examples/openshell-sandbox-review.json")
	if err != nil {
		t.Fatal(err)
	}
	o := attackOptions{URL: srv.URL + "/mutate-pods", CA: ca, ServerName: "localhost", Body: body, Concurrency: 4,
		Warmup: 100 * time.Millisecond, Duration: 5 * time.Second, MaxRequests: 300, Want: `"allowed":true`}
	measured := false
	o.BeforeMeasure = func() error { measured = true; return nil }
	start := time.Now()
	r, err := attack(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !measured || r.Succeeded == 0 || len(r.Errors) > 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("measured=%v %+v", measured, r)
	}
	if r.Requests > 300 || time.Since(start) > 4*time.Second {
		t.Errorf("%d requests in %v: the count bound did not end the phase", r.Requests, time.Since(start))
	}

	o.Want, o.BeforeMeasure, o.Duration, o.Warmup = `"patch":"`, nil, 200*time.Millisecond, 0
	if r, err := attack(context.Background(), o); err != nil || len(r.Errors) == 0 || r.Succeeded != 0 {
		t.Errorf("answers without a patch counted as good: %+v %v", r, err)
	}
}

func TestProcessStats(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the process has used 100 ms more CPU, within 10 s of wall
	// time (other processes may share the cores).
	var after time.Duration
	for end := time.Now().Add(10 * time.Second); after-before < 100*time.Millisecond; {
		if time.Now().After(end) {
			t.Fatalf("10 s of spinning counted as %v of CPU", after-before)
		}
		for spin := time.Now().Add(10 * time.Millisecond); time.Now().Before(spin); {
		}
		if after, err = cpuTime(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	rss, err := peakRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("peak RSS %d: %v", rss, err)
	}
}

// The whole of make bench-load, briefly: both servers built and run as
// processes, loaded and reported.
func TestRunReportsBothServers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both servers")
	}
	bin := t.TempDir()
	for pkg, out := range map[string]string{"../../cmd/guardchain-webhook": "guardchain-webhook", "./baseline": "load-baseline"} {
		if b, err := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, b)
		}
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-webhook", filepath.Join(bin, "guardchain-webhook"), "-baseline", filepath.Join(bin, "load-baseline"),
		"-review", "../../deploy/examples/openshell-sandbox-review.json", "-review", "../../webhook/testdata/reviews/openshell-sandbox-vault.json", "-concurrency", "4", "-warmup", "200ms", "-duration", "500ms", "-rounds", "1"}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"| captured | baseline | ", "| captured | guardchain | ", "| openshell-sandbox-vault | baseline | ",
		"| openshell-sandbox-vault | guardchain | ", "guardchain / baseline", "MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// A ratio row per review, whichever server was faster.
	for _, review := range []string{"captured", "openshell-sandbox-vault"} {
		if !regexp.MustCompile(`\| ` + review + ` \| [0-9]+\.[0-9]{2}x \| `).MatchString(out.String()) {
			t.Errorf("report lacks the ratios of %s:\n%s", review, out.String())
		}
	}
	// Every quantity was measured: no ratio of or to a zero.
	for _, bad := range []string{"NaN", "Inf", "| 0 |", "| 0.000 |"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("report holds %q:\n%s", bad, out.String())
		}
	}
}

// Without -review, every review of the set, each named: the captured one
// and the corpus's.
func TestDefaultReviewsAreTheSet(t *testing.T) {
	t.Chdir("../..")
	o := options{reviewDir: "webhook/testdata/reviews"}
	got, err := o.readReviews()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		if len(r.body) == 0 {
			t.Errorf("review %s is empty", r.name)
		}
		names = append(names, r.name)
	}
	for _, want := range []string{"captured", "openshell-sandbox", "openshell-sandbox-vault", "openshell-combined", "openshell-sidecar"} {
		if !slices.Contains(names, want) {
			t.Errorf("the set %v lacks %s", names, want)
		}
	}
	if names[0] != "captured" {
		t.Errorf("the set starts with %s, want captured", names[0])
	}
}

// Out-of-bounds flags are refused before anything starts, naming the flag.
func TestRunRefusesUnboundedFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-concurrency", "0"}, "-concurrency 0: want 1 to 1024"},
		{[]string{"-concurrency", "100000"}, "-concurrency 100000: want 1 to 1024"},
		{[]string{"-rounds", "0"}, "-rounds 0: want 1 to 20"},
		{[]string{"-rounds", "1000"}, "-rounds 1000: want 1 to 20"},
		{[]string{"-duration", "0s"}, "-duration 0s: want more than 0 and up to 5m0s"},
		{[]string{"-duration", "1h"}, "-duration 1h0m0s: want more than 0 and up to 5m0s"},
		{[]string{"-warmup", "-1s"}, "-warmup -1s: want 0 to 1m0s"},
		{[]string{"-max-requests", "0"}, "-max-requests 0: want 1 to 10000000"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			// A review that does not exist: a run that got past the check fails otherwise.
			err := run(context.Background(), append([]string{"-review", filepath.Join(t.TempDir(), "none.json")}, tc.args...), &out)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// A server that exits before it serves is reported, with its output, after
// it was started three times; it does not hang the run.
func TestRunReportsAServerThatExits(t *testing.T) {
	exits := filepath.Join(t.TempDir(), "exits")
	if err := os.WriteFile(exits, []byte("#!/bin/sh\necho cannot bind >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-webhook", exits, "-baseline", exits,
		"-review", "../../deploy/examples/openshell-sandbox-review.json", "-concurrency", "1", "-warmup", "0s", "-duration", "100ms", "-rounds", "1"}, &out)
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("error %v, want the server's exit and output", err)
	}
	if n := strings.Count(out.String(), "exited before serving, starting it again"); n != 2 {
		t.Errorf("started again %d times, want 2:\n%s", n, out.String())
	}
}
