package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attackOptions shape one load run against one server.
type attackOptions struct {
	URL         string // https on a loopback address
	CA          []byte // PEM that verifies the server
	ServerName  string
	Body        []byte // the AdmissionReview posted every time
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// MaxRequests bounds each phase by count as Duration bounds it by time.
	MaxRequests uint64
	// Want is a string every answer's body must contain.
	Want string
	// BeforeMeasure, when set, runs between the warm-up and the measured phase.
	BeforeMeasure func() error
}

// attackResult is the measured phase of one run.
type attackResult struct {
	Requests, Succeeded uint64
	Elapsed             time.Duration
	P50, P99            time.Duration
	Errors              []string // the first few distinct ones
}

// loopbackURL checks that u is https to a loopback IP: load never leaves the
// machine.
func loopbackURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	ip := net.ParseIP(p.Hostname())
	if p.Scheme != "https" || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: want https to a loopback IP", u)
	}
	return nil
}

// attack warms the connections up, then measures: o.Concurrency workers
// each post the review as soon as their last answer came, over HTTP/1.1
// keep-alive connections as the API server calls webhooks.
func attack(ctx context.Context, o attackOptions) (attackResult, error) {
	if err := loopbackURL(o.URL); err != nil {
		return attackResult{}, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(o.CA) {
		return attackResult{}, fmt.Errorf("no CA certificate to verify %s", o.URL)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: o.ServerName, NextProtos: []string{"http/1.1"}},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
		MaxIdleConnsPerHost: o.Concurrency,
		MaxConnsPerHost:     o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
	}}
	defer client.CloseIdleConnections()
	target := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: o.URL, Body: o.Body,
		Header: http.Header{"Content-Type": []string{"application/json"}}})
	run := func(d time.Duration, name string) (attackResult, error) {
		// A new attacker per phase over one client: the warm connections carry over.
		atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(o.Concurrency)),
			vegeta.MaxWorkers(uint64(o.Concurrency)), vegeta.MaxBody(64<<10))
		var m vegeta.Metrics
		var r attackResult
		seen := map[string]bool{}
		start := time.Now()
		for res := range atk.Attack(target, boundedPacer{o.MaxRequests}, d, name) {
			if ctx.Err() != nil {
				atk.Stop()
			}
			m.Add(res)
			msg := res.Error
			if msg == "" && res.Code != http.StatusOK {
				msg = fmt.Sprintf("HTTP %d", res.Code)
			}
			if msg == "" && !bytes.Contains(res.Body, []byte(o.Want)) {
				msg = fmt.Sprintf("answer lacks %s: %.200s", o.Want, res.Body)
			}
			if msg == "" {
				r.Succeeded++
			} else if !seen[msg] && len(r.Errors) < 5 {
				seen[msg] = true
				r.Errors = append(r.Errors, msg)
			}
		}
		r.Elapsed = time.Since(start)
		m.Close()
		r.Requests, r.P50, r.P99 = m.Requests, m.Latencies.P50, m.Latencies.P99
		return r, ctx.Err()
	}
	if o.Warmup > 0 {
		if _, err := run(o.Warmup, "warmup"); err != nil {
			return attackResult{}, err
		}
	}
	if o.BeforeMeasure != nil {
		if err := o.BeforeMeasure(); err != nil {
			return attackResult{}, err
		}
	}
	return run(o.Duration, "measure")
}

// boundedPacer sends as fast as the workers allow, up to max hits.
type boundedPacer struct{ max uint64 }

func (p boundedPacer) Pace(_ time.Duration, hits uint64) (time.Duration, bool) {
	return 0, hits >= p.max
}

func (p boundedPacer) Rate(time.Duration) float64 { return 0 }
