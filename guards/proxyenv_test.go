package guards

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading golden file (regenerate with -update): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is stale (-want +got); regenerate with go test ./guards -update\n%s", name, diff)
	}
}

func TestRenderProxyEnvGolden(t *testing.T) {
	c := Default()
	tests := map[string]func(*Options){
		"proxy-env.default.sh": nil,
		"proxy-env.custom.sh": func(o *Options) {
			o.ProxyHost = "fd00::1"
			o.ProxyPort = 8080
			o.Required = []string{"slack-channel-guard", "safety-net", "ciao-network-guard"}
			o.GitSSLCAInfo = "/etc/ssl/it's/ca.pem"
			o.CacheRedirects = []string{"HISTFILE", "npm_config_cache"}
		},
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			o := c.DefaultOptions()
			if mod != nil {
				mod(&o)
			}
			got, err := c.RenderProxyEnv(o)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := c.RenderProxyEnv(o)
			if string(again) != string(got) {
				t.Error("rendering twice gave different bytes")
			}
			golden(t, name, got)
		})
	}
}

func TestRenderProxyEnvRejectsBadInput(t *testing.T) {
	c := Default()
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"empty host", func(o *Options) { o.ProxyHost = "" }, "proxy host is empty"},
		{"shell in host", func(o *Options) { o.ProxyHost = "a;reboot" }, `proxy host "a;reboot" is neither an IP address nor a DNS name`},
		{"space in host", func(o *Options) { o.ProxyHost = "a b" }, "neither an IP address"},
		{"label too long", func(o *Options) { o.ProxyHost = strings.Repeat("a", 64) + ".com" }, "neither an IP address"},
		{"port zero", func(o *Options) { o.ProxyPort = 0 }, "proxy port 0 is outside 1-65535"},
		{"port too big", func(o *Options) { o.ProxyPort = 65536 }, "proxy port 65536 is outside 1-65535"},
		{"relative dir", func(o *Options) { o.Dir = "tmp" }, `chain directory "tmp" must be a clean absolute path`},
		{"space in dir", func(o *Options) { o.Dir = "/my tmp" }, "chain directory"},
		{"unclean dir", func(o *Options) { o.Dir = "/tmp/../etc" }, "chain directory"},
		{"unknown guard", func(o *Options) { o.Required = []string{"nope"} }, `required guards: unknown guard "nope"`},
		{"relative cainfo", func(o *Options) { o.GitSSLCAInfo = "ca.pem" }, `GIT_SSL_CAINFO "ca.pem" must be an absolute path`},
		{"newline cainfo", func(o *Options) { o.GitSSLCAInfo = "/a\nb" }, "on one line"},
		{"unknown redirect", func(o *Options) { o.CacheRedirects = []string{"HOME"} }, `unknown cache redirect "HOME"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := c.DefaultOptions()
			tt.mod(&o)
			out, err := c.RenderProxyEnv(o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") || out != nil {
				t.Errorf("want one line and no output, got %q and %d bytes", err, len(out))
			}
		})
	}
}

// sourceAndPrint sources proxy-env.sh `times` times under /bin/sh and prints
// the named variables, one per line, as name=value.
func sourceAndPrint(t *testing.T, file string, times int, env []string, vars ...string) map[string]string {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < times; i++ {
		sb.WriteString(". " + ShellQuote(file) + " || exit 9\n")
	}
	for _, v := range vars {
		sb.WriteString(`printf '%s=%s\n' ` + v + ` "${` + v + `-<unset>}"` + "\n")
	}
	cmd := exec.Command("/bin/sh", "-eu", "-c", sb.String())
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing %s: %v\n%s", file, err, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	return got
}

// proxy-env.sh never reads the existing NODE_OPTIONS for tokens (Node parses
// it with quotes): it appends the required guards unless the value already
// ends with them, and Node loads a file required twice once.
func TestProxyEnvNodeOptionsAppendsUnlessAlreadyLast(t *testing.T) {
	dir, _ := stageChain(t, nil)
	file := filepath.Join(dir, ProxyEnvName)
	net := filepath.Join(dir, "nemoclaw-sandbox-safety-net.js")
	fix := filepath.Join(dir, "nemoclaw-http-proxy-fix.js")
	nem := filepath.Join(dir, "nemoclaw-nemotron-inference-fix.js")
	ciao := filepath.Join(dir, "nemoclaw-ciao-network-guard.js")
	all := "--require " + net + " --require " + nem + " --require " + ciao
	quoted := `--title=" --require ` + net + ` --require ` + nem + ` --require ` + ciao + ` "`
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"unset", nil, all},
		{"empty", []string{"NODE_OPTIONS="}, all},
		{"preserved", []string{"NODE_OPTIONS=--max-old-space-size=512"}, "--max-old-space-size=512 " + all},
		{"proxy env adds the proxy fix", []string{"NODE_USE_ENV_PROXY=1"}, "--require " + net + " --require " + fix + " --require " + nem + " --require " + ciao},
		{"proxy env other value", []string{"NODE_USE_ENV_PROXY=0"}, all},
		{"already last: unchanged", []string{"NODE_OPTIONS=--max-old-space-size=512 " + all}, "--max-old-space-size=512 " + all},
		{"one named earlier is named again", []string{"NODE_OPTIONS=--require=" + net}, "--require=" + net + " " + all},
		{"inside a quoted string is no option", []string{"NODE_OPTIONS=" + quoted}, quoted + " " + all},
		{"substring does not count", []string{"NODE_OPTIONS=--require " + net + ".bak"}, "--require " + net + ".bak " + all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			once := sourceAndPrint(t, file, 1, tt.env, "NODE_OPTIONS")
			if once["NODE_OPTIONS"] != tt.want {
				t.Errorf("NODE_OPTIONS\n got %q\nwant %q", once["NODE_OPTIONS"], tt.want)
			}
			twice := sourceAndPrint(t, file, 2, tt.env, "NODE_OPTIONS")
			if twice["NODE_OPTIONS"] != once["NODE_OPTIONS"] {
				t.Errorf("sourcing twice changed NODE_OPTIONS: %q vs %q", twice["NODE_OPTIONS"], once["NODE_OPTIONS"])
			}
		})
	}
}

// Under the real node binary: with NODE_OPTIONS that hides the guards in a
// quoted string, proxy-env.sh still makes Node load every required guard,
// each once.
func TestProxyEnvGuardsLoadUnderNodeWhateverNodeOptionsHides(t *testing.T) {
	dir, _ := stageChain(t, nil)
	file := filepath.Join(dir, ProxyEnvName)
	net := filepath.Join(dir, "nemoclaw-sandbox-safety-net.js")
	for _, existing := range []string{
		``,
		`--title=" --require ` + net + ` "`,
		`--require ` + net,
		`--require=` + net + ` --title="x y"`,
	} {
		script := ". " + ShellQuote(file) + "\nexec node -e 'console.log(JSON.stringify(Object.keys(require.cache)))'\n"
		cmd := exec.Command("/bin/sh", "-eu", "-c", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NODE_OPTIONS=" + existing}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("NODE_OPTIONS %q: %v\n%s", existing, err, out)
		}
		var loaded []string
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &loaded); err != nil {
			t.Fatalf("NODE_OPTIONS %q: %v\n%s", existing, err, out)
		}
		var guards []string
		for _, l := range loaded {
			if strings.HasPrefix(filepath.Base(l), "nemoclaw-") {
				guards = append(guards, filepath.Base(l))
			}
		}
		want := []string{"nemoclaw-sandbox-safety-net.js", "nemoclaw-nemotron-inference-fix.js", "nemoclaw-ciao-network-guard.js"}
		if strings.Join(guards, ",") != strings.Join(want, ",") {
			t.Errorf("NODE_OPTIONS %q: node loaded %v, want %v", existing, guards, want)
		}
	}
}

func TestProxyEnvSourcedTwiceGivesSameEnvironment(t *testing.T) {
	dir, _ := stageChain(t, func(o *Options) { o.GitSSLCAInfo = "/etc/ca.pem" })
	file := filepath.Join(dir, ProxyEnvName)
	run := func(times int) string {
		var sb strings.Builder
		for i := 0; i < times; i++ {
			sb.WriteString(". " + ShellQuote(file) + "\n")
		}
		sb.WriteString("env | LC_ALL=C sort\n")
		out, err := exec.Command("/bin/sh", "-c", sb.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	once, twice := run(1), run(2)
	if diff := cmp.Diff(once, twice); diff != "" {
		t.Errorf("environment after one and two sourcings differs:\n%s", diff)
	}
	for _, want := range []string{"HTTPS_PROXY=http://10.200.0.1:3128", "no_proxy=localhost,127.0.0.1,::1,10.200.0.1",
		"GIT_SSL_CAINFO=/etc/ca.pem", "XDG_CACHE_HOME=" + dir + "/.cache", "npm_config_prefix=" + dir + "/.npm-global"} {
		if !strings.Contains(once, want+"\n") {
			t.Errorf("environment lacks %s", want)
		}
	}
}

// A hostile configuration value must come out as a literal, never as code.
func TestProxyEnvValuesCannotInjectShell(t *testing.T) {
	dir, _ := stageChain(t, func(o *Options) { o.GitSSLCAInfo = `/x'; touch /tmp/pwned-$$; echo '$(id)` + "`id`" })
	got := sourceAndPrint(t, filepath.Join(dir, ProxyEnvName), 1, nil, "GIT_SSL_CAINFO")
	if want := `/x'; touch /tmp/pwned-$$; echo '$(id)` + "`id`"; got["GIT_SSL_CAINFO"] != want {
		t.Errorf("GIT_SSL_CAINFO = %q, want the literal %q", got["GIT_SSL_CAINFO"], want)
	}
}

var (
	exportLine = regexp.MustCompile(`^export [A-Za-z_][A-Za-z0-9_]*='([^']|'\\'')*'$`)
	quoted     = regexp.MustCompile(`'([^']|'\\'')*'`)
	fixedLines = map[string]bool{}
)

// templateLine is l with quoted text and the chain directory of a require
// call replaced by placeholders.
func templateLine(l, dir string) string {
	l = strings.ReplaceAll(l, "--require "+strings.TrimSuffix(dir, "/")+"/", "--require DIR/")
	return quoted.ReplaceAllString(l, "''")
}

// FuzzRenderProxyEnv: whatever the configuration, rendering either fails with
// one line or produces only lines of the fixed template and quoted exports.
func FuzzRenderProxyEnv(f *testing.F) {
	c := Default()
	def, err := c.RenderProxyEnv(c.DefaultOptions())
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(def), "\n") {
		if !strings.HasPrefix(l, "export ") {
			fixedLines[templateLine(l, "/tmp")] = true
		}
	}
	f.Add("10.200.0.1", 3128, "/etc/ca.pem", "/tmp")
	f.Add("proxy.internal", 8080, "", "/var/run/guards")
	f.Add("::1", 1, "/a'b", "/tmp")
	f.Add("a;b", 0, "x\ny", "tmp dir")
	f.Fuzz(func(t *testing.T, host string, port int, cainfo, dir string) {
		o := c.DefaultOptions()
		o.ProxyHost, o.ProxyPort, o.GitSSLCAInfo, o.Dir = host, port, cainfo, dir
		out, err := c.RenderProxyEnv(o)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if ValidateHost(host) != nil || ValidatePort(port) != nil || ValidateDir(dir) != nil {
			t.Fatalf("rendered with invalid input %q %d %q", host, port, dir)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if exportLine.MatchString(l) || strings.HasPrefix(l, "# Generated by guardchain") {
				continue
			}
			// Other lines may differ from the template only inside quotes
			// and in the (validated) chain directory of a require call.
			if !fixedLines[templateLine(l, dir)] {
				t.Fatalf("line outside the template: %q", l)
			}
		}
	})
}
