package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestRun(t *testing.T) {
	uid := "uid:" + strconv.Itoa(os.Geteuid())
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string // substring
		wantStderr string // exact, with %DIR% for the directory
	}{
		{"no command", nil, nil, 2, "", "initguards: missing command (emit, verify, print, copy-self, version)\n"},
		{"unknown command", []string{"emitt"}, nil, 2, "", "initguards: emitt: unknown command \"emitt\" (emit, verify, print, copy-self, version)\n"},
		{"emit", []string{"emit", "--dir", "%DIR%", "--ownership", uid}, nil, 0, "7 written, 0 unchanged", ""},
		{"emit from env", []string{"emit"}, map[string]string{"GUARDCHAIN_DIR": "%DIR%", "GUARDCHAIN_OWNERSHIP": uid}, 0, "7 written", ""},
		// A flag replaces its variable: the variable, even a bad one, is not read.
		{"flag beats env", []string{"print", "--proxy-port", "8080"}, map[string]string{"GUARDCHAIN_PROXY_PORT": "9090"}, 0, "export HTTPS_PROXY='http://10.200.0.1:8080'", ""},
		{"flag beats bad env", []string{"emit", "--proxy-port", "8080", "--dir", "%DIR%", "--ownership", uid}, map[string]string{"GUARDCHAIN_PROXY_PORT": "nope"}, 0, "7 written", ""},
		{"env beats default", []string{"print"}, map[string]string{"GUARDCHAIN_PROXY_PORT": "9090"}, 0, "export HTTPS_PROXY='http://10.200.0.1:9090'", ""},
		{"bad env without its flag", []string{"emit", "--dir", "%DIR%", "--ownership", uid}, map[string]string{"GUARDCHAIN_PROXY_PORT": "nope"}, 2, "",
			"initguards: emit: GUARDCHAIN_PROXY_PORT: \"nope\" is not a port number\n"},
		{"verify missing chain", []string{"verify", "--dir", "%DIR%", "--ownership", uid, "--require", "none"}, nil, 1, "", "%VERIFY%"},
		{"bad port", []string{"emit", "--dir", "%DIR%", "--proxy-port", "70000"}, nil, 2, "",
			"initguards: emit: invalid value \"70000\" for flag -proxy-port: proxy port 70000 is outside 1-65535\n"},
		{"bad host", []string{"print", "--proxy-host", "$(id)"}, nil, 2, "",
			"initguards: print: invalid value \"$(id)\" for flag -proxy-host: proxy host \"$(id)\" is neither an IP address nor a DNS name\n"},
		{"bad guard", []string{"print", "--require", "safety-net,ciao"}, nil, 2, "",
			"initguards: print: invalid value \"safety-net,ciao\" for flag -require: unknown guard \"ciao\" (known: safety-net, http-proxy-fix, nemotron-inference-fix, ciao-network-guard, slack-channel-guard)\n"},
		{"retired guard", []string{"print", "--require", "safety-net,slack-token-rewriter"}, nil, 2, "",
			"initguards: print: invalid value \"safety-net,slack-token-rewriter\" for flag -require: guard \"slack-token-rewriter\" is retired: " + retired("slack-token-rewriter") + "\n"},
		{"bad ownership", []string{"emit", "--ownership", "uid:-1"}, nil, 2, "",
			"initguards: emit: invalid value \"uid:-1\" for flag -ownership: ownership \"uid:-1\": uid \"-1\" is not a number from 0 to 4294967294\n"},
		{"bad redirect", []string{"print", "--cache-redirects", "HOME"}, nil, 2, "",
			"initguards: print: unknown cache redirect \"HOME\" (known: " + strings.Join(guards.CacheRedirectVars(), ", ") + ")\n"},
		{"relative dir", []string{"emit", "--dir", "tmp"}, nil, 2, "",
			"initguards: emit: invalid value \"tmp\" for flag -dir: chain directory \"tmp\" must be a clean absolute path of letters, digits, '.', '_', '-' and '/'\n"},
		{"stray argument", []string{"emit", "--dir", "%DIR%", "now"}, nil, 2, "", "initguards: emit: unexpected arguments [\"now\"]\n"},
		{"print env", []string{"print", "--proxy-port", "8080"}, nil, 0, "export HTTPS_PROXY='http://10.200.0.1:8080'", ""},
		{"print chain", []string{"print", "chain", "--require", "none"}, nil, 0, "chain sha256:" + guards.Default().SHA256(), ""},
		{"print chain marks the retired", []string{"print", "chain"}, nil, 0, " nemoclaw-slack-token-rewriter.js (retired)\n", ""},
		{"print what", []string{"print", "files"}, nil, 2, "", "initguards: print: print \"files\": want env or chain\n"},
		{"version", []string{"version"}, nil, 0, "chain sha256:" + guards.Default().SHA256(), ""},
		{"auto without preloads is embedded", []string{"emit", "--dir", "%DIR%", "--ownership", uid, "--source", "auto", "--preloads-dir", "%DIR%/none"}, nil, 0,
			"chain sha256:" + guards.Default().SHA256() + " (embedded)", "initguards: the image has no preloads in %DIR%/none; staged the embedded chain\n"},
		{"image without preloads", []string{"emit", "--dir", "%DIR%", "--ownership", uid, "--source", "image", "--preloads-dir", "%DIR%/none"}, nil, 1, "",
			"initguards: emit: %DIR%/none: no packaged preload directory\n"},
		{"bad source", []string{"print", "--source", "imgae"}, nil, 2, "",
			"initguards: print: invalid value \"imgae\" for flag -source: \"imgae\": want embedded, image or auto\n"},
		{"copy-self relative", []string{"copy-self", "--to", "bin/x"}, nil, 2, "", "initguards: copy-self: --to \"bin/x\": want a clean absolute path\n"},
		{"copy-self missing dir", []string{"copy-self", "--to", "%DIR%/no/x"}, nil, 1, "",
			"initguards: copy-self: %DIR%/no: opening chain directory: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sub := func(s string) string { return strings.ReplaceAll(s, "%DIR%", dir) }
			var args []string
			for _, a := range tt.args {
				args = append(args, sub(a))
			}
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = sub(v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, envOf(env), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			want := sub(tt.wantStderr)
			if tt.wantStderr == "%VERIFY%" {
				var b strings.Builder
				for _, f := range []string{"nemoclaw-sandbox-safety-net.js", "nemoclaw-http-proxy-fix.js", "nemoclaw-nemotron-inference-fix.js",
					"nemoclaw-ciao-network-guard.js", "nemoclaw-slack-token-rewriter.js", "nemoclaw-slack-channel-guard.js", guards.ProxyEnvName} {
					b.WriteString("initguards: verify: " + filepath.Join(dir, f) + ": missing\n")
				}
				want = b.String()
			}
			if stderr.String() != want {
				t.Errorf("stderr\n got %q\nwant %q", stderr.String(), want)
			}
		})
	}
}

// retired is why the embedded chain no longer offers the guard id.
func retired(id string) string {
	g, _ := guards.Default().Lookup(id)
	return g.Retired
}

// Each variable the webhook renders has its flag, and no flag reads another.
func TestEveryRenderedVariableHasItsFlag(t *testing.T) {
	_, flags := newFlags("emit", func(string) (string, bool) { return "", false }, guards.Default(), &config{}, io.Discard)
	var got []string
	for _, f := range flags {
		got = append(got, f.env)
	}
	want := initguards.EnvNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("flags read %v, the webhook renders %v", got, want)
	}
}
