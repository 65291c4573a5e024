package initguards

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guardchain/guardchain/guards"
)

// packaged makes a preload directory as an image would ship it: root-owned,
// 0755, files 0644, then lets mod break it.
func packaged(t *testing.T, files map[string]string, mod func(dir string)) string {
	t.Helper()
	dir := filepath.Join(openDirFor(t, 0o755), "preloads")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if mod != nil {
		mod(dir)
	}
	return dir
}

func TestRootReadPreloadsTrustsOnlyWhatNemoClawTrusts(t *testing.T) {
	requireRoot(t)
	good := map[string]string{"sandbox-safety-net.js": "a", "ciao-network-guard.js": "b", "README": "not a preload", ".x.js.swp": "editor"}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		mod     func(dir string)
		wantErr string
	}{
		{name: "stock image layout"},
		{name: "a symlinked preload", mod: func(d string) {
			must(os.Remove(filepath.Join(d, "ciao-network-guard.js")))
			must(os.Symlink("/etc/passwd", filepath.Join(d, "ciao-network-guard.js")))
		}, wantErr: "ciao-network-guard.js: is a symlink; not trusted"},
		{name: "group-writable", mod: func(d string) { must(os.Chmod(filepath.Join(d, "sandbox-safety-net.js"), 0o664)) },
			wantErr: "sandbox-safety-net.js: mode 0664 is group- or other-writable; not trusted"},
		{name: "other-writable directory", mod: func(d string) { must(os.Chmod(d, 0o777)) },
			wantErr: "preloads: mode 0777 is group- or other-writable; not trusted"},
		{name: "owned by the sandbox user", mod: func(d string) { must(os.Chown(filepath.Join(d, "sandbox-safety-net.js"), 998, 998)) },
			wantErr: "sandbox-safety-net.js: owned by uid 998, not 0; not trusted"},
		{name: "a directory named like a preload", mod: func(d string) { must(os.Mkdir(filepath.Join(d, "x.js"), 0o755)) },
			wantErr: "x.js: is not a regular file; not trusted"},
		{name: "a FIFO named like a preload", mod: func(d string) { must(exec.Command("mkfifo", filepath.Join(d, "f.js")).Run()) },
			wantErr: "f.js: is not a regular file; not trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := packaged(t, good, tt.mod)
			ps, err := ReadPreloads(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err %v, want one line with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []guards.Preload{{Name: "ciao-network-guard.js", Bytes: []byte("b")}, {Name: "sandbox-safety-net.js", Bytes: []byte("a")}}
			if diff := cmp.Diff(want, ps); diff != "" {
				t.Errorf("preloads (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRootLoadChainSources(t *testing.T) {
	requireRoot(t)
	dir := packaged(t, map[string]string{"sandbox-safety-net.js": "image bytes"}, nil)
	empty := packaged(t, map[string]string{"README": "no preloads"}, nil)
	missing := filepath.Join(dir, "absent")
	safetyNet := []string{"safety-net"}
	core := guards.Default().DefaultRequired()
	for _, tt := range []struct {
		source, dir  string
		required     []string
		wantSource   string
		wantFallback string
		wantErr      error
		wantErrText  string
	}{
		{SourceEmbedded, dir, core, guards.SourceEmbedded, "", nil, ""},
		{SourceImage, dir, safetyNet, dir, "", nil, ""},
		{SourceAuto, dir, safetyNet, dir, "", nil, ""},
		// auto falls back, whole, where the image cannot serve the chain.
		{SourceAuto, missing, core, guards.SourceEmbedded, "has no preloads in " + missing, nil, ""},
		{SourceAuto, empty, core, guards.SourceEmbedded, "has no preloads in " + empty, nil, ""},
		{SourceAuto, dir, core, guards.SourceEmbedded, `lack required guard "http-proxy-fix"`, nil, ""},
		// image never falls back.
		{SourceImage, missing, core, "", "", ErrNoPreloads, "no packaged preload directory"},
		{SourceImage, dir, core, "", "", ErrMissingGuard, `"http-proxy-fix" is not among the preloads in ` + dir},
		{SourceEmbedded, dir, []string{"telegram-diagnostics"}, "", "", ErrMissingGuard, `"telegram-diagnostics" is not among the embedded guards`},
		{"imgae", dir, nil, "", "", nil, `source "imgae": want embedded, image or auto`},
	} {
		c, fallback, err := LoadChain(tt.source, tt.dir, tt.required)
		if tt.wantErrText != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrText) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("%s %s: err %v, want %q (%v)", tt.source, tt.dir, err, tt.wantErrText, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tt.source, tt.dir, err)
			continue
		}
		if c.Source != tt.wantSource {
			t.Errorf("%s %s: chain from %q, want %q", tt.source, tt.dir, c.Source, tt.wantSource)
		}
		if (tt.wantFallback == "") != (fallback == "") || !strings.Contains(fallback, tt.wantFallback) {
			t.Errorf("%s %s: fallback %q, want one saying %q", tt.source, tt.dir, fallback, tt.wantFallback)
		}
		if tt.wantSource == dir && string(c.Guards[0].Bytes) != "image bytes" {
			t.Errorf("%s: staged %q, not the image's bytes", tt.source, c.Guards[0].Bytes)
		}
	}
	// An auto source whose directory exists but is not trusted fails: it never
	// falls back quietly to other bytes than the image ships.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{SourceAuto, SourceImage} {
		if _, _, err := LoadChain(source, dir, safetyNet); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not trusted") {
			t.Errorf("%s over an untrusted directory: %v", source, err)
		}
	}
}

func TestCopySelfInstallsARunnableBinary(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "initguards")
	out, code := runAs(t, os.Geteuid(), nil, initguardsBin, "copy-self", "--to", dst)
	if code != 0 {
		t.Fatalf("copy-self: exit %d: %s", code, out)
	}
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o555 {
		t.Errorf("mode %v, want 0555", st.Mode().Perm())
	}
	got, err := exec.Command(dst, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "chain sha256:"+guards.Default().SHA256()) {
		t.Errorf("the copy does not run: %v %s", err, got)
	}
	// Again over the first copy (an init container restarted): still whole.
	if out, code := runAs(t, os.Geteuid(), nil, initguardsBin, "copy-self", "--to", dst); code != 0 {
		t.Fatalf("copy-self again: exit %d: %s", code, out)
	}
	if l, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*")); len(l) != 0 {
		t.Errorf("temp files left: %v", l)
	}
	if _, err := exec.Command(dst, "version").CombinedOutput(); err != nil {
		t.Errorf("second copy does not run: %v", err)
	}
	if err := CopySelf(filepath.Join(t.TempDir(), "no", "such")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("copy into a missing directory: %v", err)
	}
}
