package guards

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromPreloads(t *testing.T) {
	js := func(names ...string) []Preload {
		var ps []Preload
		for _, n := range names {
			ps = append(ps, Preload{Name: n, Bytes: []byte("// " + n + "\n")})
		}
		return ps
	}
	tests := []struct {
		name    string
		in      []Preload
		wantIDs []string
		wantErr string
	}{
		{name: "core order whatever the directory order, channel preloads after by name",
			in:      js("slack-channel-guard.js", "ciao-network-guard.js", "telegram-diagnostics.js", "nemotron-inference-fix.js", "http-proxy-fix.js", "sandbox-safety-net.js"),
			wantIDs: []string{"safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard", "slack-channel-guard", "telegram-diagnostics"}},
		{name: "a subset", in: js("sandbox-safety-net.js"), wantIDs: []string{"safety-net"}},
		{name: "none", in: nil, wantErr: "no preloads"},
		{name: "upper case", in: js("Evil.js"), wantErr: "Evil.js: a preload name must be"},
		{name: "space", in: js("a b.js"), wantErr: "a preload name must be"},
		{name: "path", in: js("../x.js"), wantErr: "a preload name must be"},
		{name: "not js", in: js("readme.txt"), wantErr: "ending in .js"},
		{name: "id taken", in: js("sandbox-safety-net.js", "safety-net.js"), wantErr: `both give guard id "safety-net"`},
		{name: "too big", in: []Preload{{Name: "big.js", Bytes: make([]byte, MaxPreloadBytes+1)}}, wantErr: "more than 262144"},
		{name: "too many", in: js(func() []string {
			var n []string
			for i := 0; i <= MaxPreloads; i++ {
				n = append(n, strings.Repeat("a", i+1)+".js")
			}
			return n
		}()...), wantErr: "more than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromPreloads("/img/preloads", tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "/img/preloads") || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q should be one line naming the directory", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantIDs, c.IDs()); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			for _, g := range c.Guards {
				if !strings.HasPrefix(g.Name, StagedPrefix) || string(g.Bytes) != "// "+strings.TrimPrefix(g.Name, StagedPrefix)+"\n" {
					t.Errorf("guard %s staged as %s with %q", g.ID, g.Name, g.Bytes)
				}
			}
			if c.Source != "/img/preloads" {
				t.Errorf("source %q", c.Source)
			}
			if fix, ok := c.Lookup("http-proxy-fix"); ok && fix.OnlyIfEnv != "NODE_USE_ENV_PROXY" {
				t.Error("the image's http-proxy-fix lost its NODE_USE_ENV_PROXY=1 condition")
			}
		})
	}
}

// The image's chain renders a proxy-env.sh like the embedded one, and its
// sha256 follows the image's bytes.
func TestFromPreloadsRendersAndHashesTheImageBytes(t *testing.T) {
	ps := []Preload{{"sandbox-safety-net.js", []byte("a")}, {"ciao-network-guard.js", []byte("b")}}
	c, err := FromPreloads(PackagedDir, ps)
	if err != nil {
		t.Fatal(err)
	}
	o := c.DefaultOptions()
	files, err := c.Files(o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"nemoclaw-sandbox-safety-net.js", "nemoclaw-ciao-network-guard.js", ProxyEnvName}, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	ps[1].Bytes = []byte("c")
	c2, _ := FromPreloads(PackagedDir, ps)
	if c.SHA256() == c2.SHA256() || c.SHA256() == Default().SHA256() {
		t.Error("the image chain's sha256 does not follow its bytes")
	}
	// A required guard the image does not package is an error, never a
	// NODE_OPTIONS naming a missing file.
	o.Required = []string{"safety-net", "nemotron-inference-fix"}
	if _, err := c.Files(o); err == nil || !strings.Contains(err.Error(), `unknown guard "nemotron-inference-fix"`) {
		t.Errorf("requiring a guard the image lacks: %v", err)
	}
}

// NemoClaw's restore script accepts a proxy-env.sh only when
// grep -F -- "--require PATH" finds each required guard: run that grep.
func TestProxyEnvCarriesLiteralRequireText(t *testing.T) {
	c := Default()
	o := c.DefaultOptions()
	o.Required = c.Requirable()
	b, err := c.RenderProxyEnv(o)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), ProxyEnvName)
	if err := os.WriteFile(file, b, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, id := range o.Required {
		g, _ := c.Lookup(id)
		want := "--require " + filepath.Join(o.Dir, g.Name)
		if out, err := exec.Command("grep", "-F", "--", want, file).CombinedOutput(); err != nil {
			t.Errorf("grep -F -- %q: %v %s", want, err, out)
		}
	}
}
