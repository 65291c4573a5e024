package guards

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// nodeRun is the outcome of one real node process.
type nodeRun struct {
	stdout, stderr string
	code           int
}

// stageChain writes the embedded chain with default options into a fresh
// directory, the way initguards would, and returns it.
func stageChain(t *testing.T, o func(*Options)) (string, Chain) {
	t.Helper()
	c := Default()
	dir := t.TempDir()
	opts := c.DefaultOptions()
	opts.Dir = dir
	if o != nil {
		o(&opts)
	}
	files, err := c.Files(opts)
	if err != nil {
		t.Fatalf("rendering chain: %v", err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir, c
}

func guardPath(t *testing.T, dir, id string) string {
	t.Helper()
	g, ok := Default().Lookup(id)
	if !ok {
		t.Fatalf("no guard %q", id)
	}
	return filepath.Join(dir, g.Name)
}

func nodeBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the guards are tested with the real node binary, which is not on PATH: %v", err)
	}
	return p
}

// runNode runs cmd (argv[0] may be a fake name for argv0 tests) with env added
// to a minimal environment.
func runNode(t *testing.T, argv0 string, env []string, args ...string) nodeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBinary(t), args...)
	if argv0 != "" {
		cmd.Args[0] = argv0
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := nodeRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running node %v: %v", args, err)
	}
	return r
}

func script(name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", "node", name))
	if err != nil {
		panic(err)
	}
	return p
}

func TestSafetyNet(t *testing.T) {
	dir, _ := stageChain(t, nil)
	net := guardPath(t, dir, "safety-net")
	sandbox := "OPENSHELL_SANDBOX=sb-1"
	tests := []struct {
		name      string
		argv0     string
		env       []string
		args      []string
		wantCode  int
		wantAlive bool
		stderrHas []string
		stderrNot []string
	}{
		{"gateway survives unknown rejection", "", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "gateway", "reject-unknown"}, 0, true,
			[]string{"[sandbox-safety-net] loaded (argv[2]=gateway)", "UNKNOWN PATTERN unhandledRejection: boom from a library - gateway continues", "safety-net.js"}, nil},
		{"gateway survives unknown exception", "", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "gateway", "throw-unknown"}, 0, true,
			[]string{"UNKNOWN PATTERN uncaughtException: kaboom - gateway continues"}, nil},
		{"benign ciao error is one short line", "", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "gateway", "throw-ciao"}, 0, true,
			[]string{"[sandbox-safety-net] ignored uncaughtException (ciao probing cancelled): CIAO PROBING CANCELLED"}, []string{"UNKNOWN PATTERN"}},
		{"a rejection from inside ciao is benign", "", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "gateway", "reject-ciao-stack"}, 0, true,
			[]string{"[sandbox-safety-net] ignored unhandledRejection (ciao/mDNS): socket closed"}, []string{"UNKNOWN PATTERN"}},
		{"argv0 openclaw-gateway is a gateway", "/usr/local/bin/openclaw-gateway", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "reject-unknown"}, 0, true,
			[]string{"loaded (argv0=openclaw-gateway)", "gateway continues"}, nil},
		{"other processes keep Node's behaviour", "", []string{sandbox}, []string{"--require", net, script("safety-net.js"), "worker", "reject-unknown"}, 1, false,
			[]string{"boom from a library"}, []string{"sandbox-safety-net"}},
		{"outside a sandbox it is inactive", "", nil, []string{"--require", net, script("safety-net.js"), "gateway", "reject-unknown"}, 1, false,
			[]string{"boom from a library"}, []string{"sandbox-safety-net"}},
		{"empty OPENSHELL_SANDBOX is outside", "", []string{"OPENSHELL_SANDBOX="}, []string{"--require", net, script("safety-net.js"), "gateway", "reject-unknown"}, 1, false,
			nil, []string{"sandbox-safety-net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runNode(t, tt.argv0, tt.env, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\nstderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			if alive := strings.Contains(r.stdout, "alive"); alive != tt.wantAlive {
				t.Errorf("alive=%v, want %v; stdout %q", alive, tt.wantAlive, r.stdout)
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			for _, s := range tt.stderrNot {
				if strings.Contains(r.stderr, s) {
					t.Errorf("stderr has %q:\n%s", s, r.stderr)
				}
			}
		})
	}
}

// Every guard, loaded twice under two paths (Node dedupes one path), must act
// once: the load marker makes the second copy a no-op.
func TestGuardsLoadTwiceHarmlessly(t *testing.T) {
	dir, c := stageChain(t, nil)
	for _, g := range c.Guards {
		t.Run(g.ID, func(t *testing.T) {
			first := filepath.Join(dir, g.Name)
			second := filepath.Join(t.TempDir(), "copy-"+g.Name)
			if err := os.WriteFile(second, g.Bytes, 0o444); err != nil {
				t.Fatal(err)
			}
			r := runNode(t, "", []string{"OPENSHELL_SANDBOX=sb"}, "--require", first, "--require", second, script("safety-net.js"), "gateway", "none")
			if r.code != 0 || !strings.Contains(r.stdout, "alive") {
				t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			for _, line := range []string{"[sandbox-safety-net] loaded", "[guard] ciao-network-guard loaded", "[guard] slack-token-rewriter is retired"} {
				if n := strings.Count(r.stderr, line); n > 1 {
					t.Errorf("%q printed %d times:\n%s", line, n, r.stderr)
				}
			}
		})
	}
}

func TestCiaoGuardRateLimitsAndReturnsEmpty(t *testing.T) {
	dir, _ := stageChain(t, nil)
	r := runNode(t, "", nil, "--require", script("fail-network-interfaces.js"), "--require", guardPath(t, dir, "ciao-network-guard"), script("ciao.js"), "rate-limit")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got, want := strings.TrimSpace(r.stdout), `[{},{},{},{},{}]`; got != want {
		t.Errorf("results %s, want %s", got, want)
	}
	var logs []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "[guard] os.networkInterfaces() failed") {
			logs = append(logs, l)
		}
	}
	const msg = "[guard] os.networkInterfaces() failed: A system error occurred: uv_interface_addresses returned Unknown system error 97 (Unknown system error 97) - returning empty (mDNS disabled)"
	want := []string{msg, msg + " (3 repeats suppressed)"}
	if diff := cmp.Diff(want, logs); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stderr, "[guard] ciao-network-guard loaded (process)") {
		t.Errorf("no load line: %s", r.stderr)
	}
}

func TestCiaoGuardGatewayFallback(t *testing.T) {
	dir, _ := stageChain(t, nil)
	ciao := guardPath(t, dir, "ciao-network-guard")
	tests := []struct {
		mode      string
		args      []string
		wantCode  int
		wantAlive bool
		stderrHas string
	}{
		{"throw-uv", []string{"gateway"}, 0, true, "[guard] swallowed uncaughtException"},
		{"throw-other", []string{"gateway"}, 1, false, "unrelated failure"},
		{"throw-uv", []string{"worker"}, 1, false, "uv_interface_addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.args[0], func(t *testing.T) {
			args := append([]string{"--require", ciao, script("ciao.js")}, tt.args...)
			r := runNode(t, "", nil, append(args, tt.mode)...)
			if r.code != tt.wantCode || strings.Contains(r.stdout, "alive") != tt.wantAlive {
				t.Fatalf("exit %d stdout %q, want exit %d alive=%v\nstderr: %s", r.code, r.stdout, tt.wantCode, tt.wantAlive, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderrHas) {
				t.Errorf("stderr lacks %q: %s", tt.stderrHas, r.stderr)
			}
		})
	}
}

// recorded is one request as a test server saw it.
type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	ContentLen   int64
}

type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{r.Method, r.RequestURI, r.Header.Clone(), b, r.ContentLength})
	rc.mu.Unlock()
	fmt.Fprintf(w, "ok %s", r.URL.Path)
}

func (rc *recorder) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// proxyFixRun runs testdata/node/proxy-fix.js under the http proxy fix with
// env added, against a TLS target and a plain server standing for the proxy,
// and returns the answers and what each server saw.
func proxyFixRun(t *testing.T, env ...string) (answers map[string]map[string]any, atTarget []recorded, atProxy []string) {
	t.Helper()
	dir, _ := stageChain(t, nil)
	target := &recorder{}
	tls := httptest.NewTLSServer(target)
	defer tls.Close()
	proxy := &recorder{}
	plain := httptest.NewServer(proxy)
	defer plain.Close()

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tls.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append([]string{"HTTPS_PROXY=http://127.0.0.1:" + port(t, plain), "NODE_EXTRA_CA_CERTS=" + ca}, env...)
	r := runNode(t, "", env, "--require", guardPath(t, dir, "http-proxy-fix"), script("proxy-fix.js"), port(t, plain), port(t, tls))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &answers); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	for _, p := range proxy.all() {
		atProxy = append(atProxy, p.Path)
	}
	return answers, target.all(), atProxy
}

func TestHTTPProxyFixReissuesForwardModeHTTPS(t *testing.T) {
	out, reqs, proxied := proxyFixRun(t, "NODE_USE_ENV_PROXY=1")
	if got := out["forwardHttps"]; got["status"] != float64(200) || got["body"] != "ok /hello" {
		t.Errorf("forward https answer %v, want 200 from the target", got)
	}
	if len(reqs) != 1 {
		t.Fatalf("target saw %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.Method != http.MethodPost || got.Path != "/hello?x=1" || string(got.Body) != "payload" || got.Header.Get("X-Keep") != "yes" {
		t.Errorf("target saw %s %s body %q headers %v", got.Method, got.Path, got.Body, got.Header)
	}
	// Proxy credentials, and a header the caller's Connection names as
	// hop-by-hop, are for the proxy only.
	for _, h := range []string{"Proxy-Authorization", "Authorization", "X-Hop"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("proxy-only header %s=%q reached the target", h, v)
		}
	}
	if diff := cmp.Diff([]string{"http://example.invalid/plain", "/direct"}, proxied); diff != "" {
		t.Errorf("requests that must pass through to the proxy (-want +got):\n%s", diff)
	}
}

// Without NODE_USE_ENV_PROXY=1, Node would send a reissued request straight to
// the target, past the proxy: the guard leaves every request as it is.
func TestHTTPProxyFixIsInertWithoutEnvProxy(t *testing.T) {
	for name, env := range map[string][]string{"unset": nil, "0": {"NODE_USE_ENV_PROXY=0"}} {
		t.Run(name, func(t *testing.T) {
			_, reqs, proxied := proxyFixRun(t, env...)
			if len(reqs) != 0 {
				t.Errorf("target saw %d requests, want none: the proxy is the only way out", len(reqs))
			}
			if len(proxied) == 0 || !strings.HasPrefix(proxied[0], "https://127.0.0.1:") {
				t.Errorf("the forward-mode https request did not reach the proxy as sent: %v", proxied)
			}
		})
	}
}

// toolLessSystem is the system message the nemotron fix adds for Nemotron-3
// Ultra when the request has neither a system message nor a tool that can
// write files or run commands.
const toolLessSystem = "You cannot write files or run commands yourself. When asked to do either, " +
	"answer with every command and the full code the user needs to do it by hand, step by step, " +
	"leaving nothing out."

// The nemotron fix under the real node binary, one process per case: what the
// server receives for each model, path, route and transport. want "" means the
// body must arrive byte for byte as sent; otherwise it is the JSON the server
// must receive (compared as JSON).
func TestNemotronFix(t *testing.T) {
	dir, _ := stageChain(t, nil)
	fix := guardPath(t, dir, "nemotron-inference-fix")
	const (
		nano     = `{"model":"nvidia/NVIDIA-Nemotron-Nano-9B-v2","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false}}`
		nanoWant = `{"model":"nvidia/NVIDIA-Nemotron-Nano-9B-v2","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false,"force_nonempty_content":true}}`
		llama    = `{"model":"meta/llama-3.1-8b",  "messages":[]}`
		super3   = `{"model":"nvidia/nemotron-3-super-120b-a12b","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled"}}`
		// The managed route strips the top-level thinking field; the kwarg is
		// the Nemotron rule's.
		super3Stripped = `{"model":"nvidia/nemotron-3-super-120b-a12b","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"force_nonempty_content":true}}`
		super3Kept     = `{"model":"nvidia/nemotron-3-super-120b-a12b","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled"},"chat_template_kwargs":{"force_nonempty_content":true}}`
		ultra          = "nvidia/nemotron-3-ultra-550b-a55b"
	)
	type nemotronCase struct {
		name      string
		transport string // request, get, fetch, fetch-request
		host      string
		path      string
		chunks    int
		length    bool
		headers   map[string]string
		env       []string
		body      string
		want      string
	}
	managedEnv := []string{"NEMOCLAW_UPSTREAM_PROVIDER=nvidia-prod"}
	provider := func(p string) map[string]string { return map[string]string{"X-NemoClaw-Upstream-Provider": p} }
	tests := []nemotronCase{
		{name: "nemotron, written in pieces, kwargs kept", transport: "request", path: "/v1/chat/completions", chunks: 3, length: true, body: nano, want: nanoWant},
		{name: "nemotron, chunked with a query", transport: "request", path: "/v1/chat/completions?stream=false", body: nano, want: nanoWant},
		{name: "nemotron through fetch", transport: "fetch", path: "/fetch/v1/chat/completions", length: true, body: nano, want: nanoWant},
		{name: "nemotron through fetch of a Request", transport: "fetch-request", path: "/request/v1/chat/completions", body: nano, want: nanoWant},
		{name: "other model untouched", transport: "request", path: "/v1/chat/completions", chunks: 2, length: true, body: llama},
		{name: "other model through fetch untouched", transport: "fetch", path: "/fetch/v1/chat/completions", body: llama},
		{name: "not JSON untouched", transport: "request", path: "/v1/chat/completions", length: true, body: "not json {"},
		{name: "other path untouched", transport: "request", path: "/v1/completions", length: true, body: nano},
		{name: "deepseek v4 pro: thinking off", transport: "fetch", path: "/v1/chat/completions", body: `{"model":"deepseek-ai/deepseek-v4-pro","messages":[]}`,
			want: `{"model":"deepseek-ai/deepseek-v4-pro","messages":[],"chat_template_kwargs":{"thinking":false}}`},
		{name: "deepseek v4 pro in other case", transport: "request", path: "/v1/chat/completions", length: true, body: `{"model":"deepseek-ai/DeepSeek-V4-Pro","messages":[]}`,
			want: `{"model":"deepseek-ai/DeepSeek-V4-Pro","messages":[],"chat_template_kwargs":{"thinking":false}}`},
		{name: "kimi k2.6: thinking off, over the caller's", transport: "request", path: "/v1/chat/completions", length: true,
			body: `{"model":"moonshotai/kimi-k2.6","messages":[],"chat_template_kwargs":{"thinking":true,"x":1}}`,
			want: `{"model":"moonshotai/kimi-k2.6","messages":[],"chat_template_kwargs":{"thinking":false,"x":1}}`},
		{name: "other deepseek and kimi models untouched", transport: "request", path: "/v1/chat/completions", length: true, body: `{"model":"deepseek-ai/deepseek-v4-pro-preview","messages":[]}`},
		{name: "kimi k2.5 untouched", transport: "fetch", path: "/v1/chat/completions", body: `{"model":"moonshotai/kimi-k2.5","messages":[]}`},
		{name: "nemotron-3 on the managed route: thinking stripped", transport: "request", host: "inference.local", path: "/v1/chat/completions", length: true,
			env: managedEnv, body: super3, want: super3Stripped},
		{name: "nemotron-3 on the managed route through fetch, provider from the header", transport: "fetch", host: "inference.local", path: "/v1/chat/completions",
			headers: provider("nvidia-prod"), body: super3, want: super3Stripped},
		{name: "nemotron-3 to the managed route through a proxy in forward mode", transport: "request", path: "http://inference.local/v1/chat/completions", length: true,
			env: managedEnv, body: super3, want: super3Stripped},
		{name: "the header's provider wins over the environment", transport: "request", host: "inference.local", path: "/v1/chat/completions", length: true,
			headers: provider("openai"), env: managedEnv, body: super3, want: super3Kept},
		{name: "nemotron-3 elsewhere keeps thinking", transport: "fetch", path: "/v1/chat/completions", env: managedEnv, body: super3, want: super3Kept},
		{name: "nemotron-3 ultra without system message or tools", transport: "request", path: "/v1/chat/completions", length: true,
			body: `{"model":"` + ultra + `","messages":[{"role":"user","content":"make a dir"}],"tools":[{"type":"function","function":{"name":"web_search"}}]}`,
			want: `{"model":"` + ultra + `","messages":[{"role":"system","content":"` + toolLessSystem + `"},{"role":"user","content":"make a dir"}],"tools":[{"type":"function","function":{"name":"web_search"}}],"chat_template_kwargs":{"force_nonempty_content":true}}`},
		{name: "nemotron-3 ultra with a system message anywhere", transport: "fetch", path: "/v1/chat/completions",
			body: `{"model":"` + ultra + `","messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]}`,
			want: `{"model":"` + ultra + `","messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}],"chat_template_kwargs":{"force_nonempty_content":true}}`},
		{name: "nemotron-3 ultra with a tool that runs commands", transport: "request", path: "/v1/chat/completions", length: true,
			body: `{"model":"` + ultra + `","messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"Bash"}}]}`,
			want: `{"model":"` + ultra + `","messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"Bash"}}],"chat_template_kwargs":{"force_nonempty_content":true}}`},
		{name: "provider header removed from any request", transport: "get", path: "/models", headers: provider("nvidia-prod")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			c, err := json.Marshal(map[string]any{"transport": tt.transport, "host": tt.host, "path": tt.path,
				"chunks": tt.chunks, "length": tt.length, "headers": tt.headers, "body": tt.body})
			if err != nil {
				t.Fatal(err)
			}
			r := runNode(t, "", tt.env, "--require", fix, script("nemotron.js"), port(t, srv), string(c))
			if r.code != 0 || !strings.Contains(r.stdout, "done") {
				t.Fatalf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
			}
			reqs := rec.all()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Path != tt.path {
				t.Errorf("path %q, want %q", got.Path, tt.path)
			}
			if v := got.Header.Get("X-NemoClaw-Upstream-Provider"); v != "" {
				t.Errorf("the sandbox-internal provider header reached the server: %q", v)
			}
			if got.ContentLen >= 0 && got.ContentLen != int64(len(got.Body)) {
				t.Errorf("Content-Length %d but body is %d bytes", got.ContentLen, len(got.Body))
			}
			if tt.want == "" {
				if string(got.Body) != tt.body {
					t.Errorf("body %q, want it byte for byte %q", got.Body, tt.body)
				}
				return
			}
			var gotDoc, wantDoc any
			if err := json.Unmarshal(got.Body, &gotDoc); err != nil {
				t.Fatalf("body %q: %v", got.Body, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &wantDoc); err != nil {
				t.Fatalf("want %q: %v", tt.want, err)
			}
			if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// The retired slack-token-rewriter stays as an inert file: a NODE_OPTIONS from
// an earlier release that still names it (here the pod's env, kept by
// proxy-env.sh) must neither stop Node nor change a request, and says once
// that it should go.
func TestRetiredSlackTokenRewriterIsInert(t *testing.T) {
	dir, _ := stageChain(t, nil)
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	stale := guardPath(t, dir, "slack-token-rewriter")
	env := []string{"NODE_OPTIONS=--require " + stale, "PATH=" + os.Getenv("PATH")}
	sh := ". " + ShellQuote(filepath.Join(dir, ProxyEnvName)) + " && exec node " + ShellQuote(script("slack-token.js")) + " " + port(t, srv)
	cmd := exec.Command("/bin/sh", "-c", sh)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "done") {
		t.Fatalf("%v: stdout %q stderr %s", err, out, stderr.String())
	}
	if got, want := strings.Count(stderr.String(), "[guard] slack-token-rewriter is retired and does nothing; remove "+stale+" from NODE_OPTIONS"), 1; got != want {
		t.Errorf("retirement notice printed %d times, want %d:\n%s", got, want, stderr.String())
	}
	type seen struct{ Auth, Body string }
	var got []seen
	for _, q := range rec.all() {
		if q.ContentLen >= 0 && q.ContentLen != int64(len(q.Body)) {
			t.Errorf("%s: Content-Length %d, body %d bytes", q.Path, q.ContentLen, len(q.Body))
		}
		got = append(got, seen{q.Header.Get("Authorization"), string(q.Body)})
	}
	// OpenShell resolves these placeholders at egress: they leave as written.
	want := []seen{
		{"Bearer xoxb-OPENSHELL-RESOLVE-ENV-SLACK_BOT_TOKEN", "token=xapp-OPENSHELL-RESOLVE-ENV-SLACK_APP_TOKEN&channel=C1"},
		{"Bearer xoxb-OPENSHELL-RESOLVE-ENV-OTHER_TOKEN", "plain body"},
		{"", "xoxb-123-real-token and OPENSHELL-RESOLVE-ENV-NOPREFIX"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what reached the server (-want +got):\n%s", diff)
	}
}

func TestSlackChannelGuard(t *testing.T) {
	dir, _ := stageChain(t, nil)
	guard := guardPath(t, dir, "slack-channel-guard")
	tests := []struct {
		mode      string
		wantCode  int
		wantAlive bool
		stderrHas string
	}{
		{"reject-slack", 0, true, "[channels] [slack] provider failed to start: An API error occurred: invalid_auth"},
		{"throw-slack", 0, true, "[channels] [slack] provider failed to start: socket mode failed"},
		{"reject-slackbot", 0, true, "[channels] [slack] provider failed to start: bolt app failed"},
		{"reject-token-type", 0, true, "[channels] [slack] provider failed to start: An API error occurred: not_allowed_token_type"},
		{"reject-other", 1, false, "database unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			r := runNode(t, "", nil, "--require", guard, "--require", guard, script("slack-channel.js"), tt.mode)
			if r.code != tt.wantCode || strings.Contains(r.stdout, "alive") != tt.wantAlive {
				t.Fatalf("exit %d stdout %q, want %d alive=%v; stderr %s", r.code, r.stdout, tt.wantCode, tt.wantAlive, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderrHas) {
				t.Errorf("stderr lacks %q: %s", tt.stderrHas, r.stderr)
			}
			if n := strings.Count(r.stderr, "[channels] [slack]"); n > 1 {
				t.Errorf("logged %d times", n)
			}
		})
	}
}

// The whole chain as a gateway starts it: source proxy-env.sh, then node. Every
// required guard must be loaded exactly once, in chain order, before the first
// line of the program, with the caller's NODE_OPTIONS kept.
func TestWholeChainLoadsInOrderBeforeProgram(t *testing.T) {
	dir, c := stageChain(t, func(o *Options) { o.Required = append(o.Required, "slack-channel-guard") })
	env := []string{"NODE_OPTIONS=--max-old-space-size=256", "NODE_USE_ENV_PROXY=1", "OPENSHELL_SANDBOX=sb-1", "PATH=" + os.Getenv("PATH")}
	sh := ". " + ShellQuote(filepath.Join(dir, ProxyEnvName)) + " && . " + ShellQuote(filepath.Join(dir, ProxyEnvName)) +
		" && exec node " + ShellQuote(script("probe.js")) + " gateway"
	cmd := exec.Command("/bin/sh", "-c", sh)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got struct {
		Loaded      []string `json:"loaded"`
		NodeOptions string   `json:"nodeOptions"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	var want []string
	for _, id := range []string{"safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard", "slack-channel-guard"} {
		g, _ := c.Lookup(id)
		want = append(want, filepath.Join(dir, g.Name))
	}
	if diff := cmp.Diff(want, got.Loaded); diff != "" {
		t.Errorf("preloads before the program's first line (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got.NodeOptions, "--max-old-space-size=256 --require ") {
		t.Errorf("existing NODE_OPTIONS not kept first: %q", got.NodeOptions)
	}
}
