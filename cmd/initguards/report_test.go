package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
)

// With restartPolicy Never a failed guardchain-init ends the sandbox for
// good, so the termination log says what was staged, why an auto source
// fell back, and, on failure, why: where kubectl and the audit read it.
func TestRootEmitTerminationLogSaysWhatAndWhy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: the packaged preloads must be owned by uid 0 to be trusted (run as root, as CI does)")
	}
	uid := "uid:" + strconv.Itoa(os.Geteuid())
	// preloads makes a packaged directory in dir with the given files and mode.
	preloads := func(dir string, mode os.FileMode, names ...string) string {
		p := filepath.Join(dir, "preloads")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(p, n+".js"), []byte("// "+n+"\n"), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(p, n+".js"), mode); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	core := []string{"sandbox-safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard"}
	tests := []struct {
		name     string
		setup    func(dir string) (args []string, env map[string]string)
		wantCode int
		want     initguards.Report // compared on the fields set here
	}{
		{"image chain staged", func(dir string) ([]string, map[string]string) {
			return []string{"emit", "--source", "auto", "--preloads-dir", preloads(dir, 0o644, core...)}, nil
		}, 0, initguards.Report{Source: "%PRELOADS%", Count: 5}},
		{"auto falls back when the image lacks a required guard", func(dir string) ([]string, map[string]string) {
			return []string{"emit", "--source", "auto", "--preloads-dir", preloads(dir, 0o644, "sandbox-safety-net")}, nil
		}, 0, initguards.Report{Source: guards.SourceEmbedded, Fallback: `lack required guard "http-proxy-fix"`}},
		{"untrusted preloads fail", func(dir string) ([]string, map[string]string) {
			return []string{"emit", "--source", "auto", "--preloads-dir", preloads(dir, 0o666, core...)}, nil
		}, 1, initguards.Report{Reason: initguards.FailUntrustedPreloads, Error: "group- or other-writable; not trusted"}},
		{"image source without a required guard fails", func(dir string) ([]string, map[string]string) {
			return []string{"emit", "--source", "image", "--preloads-dir", preloads(dir, 0o644, "sandbox-safety-net")}, nil
		}, 1, initguards.Report{Reason: initguards.FailMissingGuard, Error: `"http-proxy-fix" is not among the preloads`}},
		{"image source without preloads fails", func(dir string) ([]string, map[string]string) {
			return []string{"emit", "--source", "image", "--preloads-dir", filepath.Join(dir, "none")}, nil
		}, 1, initguards.Report{Reason: initguards.FailNoPreloads, Error: "no packaged preload directory"}},
		{"bad input before the log variable is read", func(dir string) ([]string, map[string]string) {
			return []string{"emit"}, map[string]string{"GUARDCHAIN_PROXY_PORT": "nope"}
		}, 2, initguards.Report{Reason: initguards.FailBadInput, Error: `GUARDCHAIN_PROXY_PORT: "nope" is not a port number`}},
		{"a read-only chain directory fails", func(dir string) ([]string, map[string]string) {
			if err := os.Chmod(filepath.Join(dir, "tmp"), 0o555); err != nil {
				t.Fatal(err)
			}
			// As root, only a read-only mount stops a write: use a file
			// where the directory should be.
			if err := os.Remove(filepath.Join(dir, "tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"emit", "--source", "embedded"}, nil
		}, 1, initguards.Report{Reason: initguards.FailWrite, Error: "not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o777); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(dir, "termination-log")
			args, extra := tt.setup(dir)
			env := map[string]string{"GUARDCHAIN_DIR": filepath.Join(dir, "tmp"), "GUARDCHAIN_OWNERSHIP": uid,
				"GUARDCHAIN_OWNERSHIP_FROM": "env OPENSHELL_SANDBOX_UID of container agent", "GUARDCHAIN_TERMINATION_LOG": log}
			for k, v := range extra {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, envOf(env), &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr.String())
			}
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatalf("no termination log: %v", err)
			}
			if bytes.Count(b, []byte("\n")) != 1 {
				t.Errorf("termination log is not one line: %q", b)
			}
			var got initguards.Report
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("termination log %q: %v", b, err)
			}
			if got.Ownership != uid || got.OwnershipFrom != env["GUARDCHAIN_OWNERSHIP_FROM"] {
				t.Errorf("ownership %q from %q, want %q from the webhook's words", got.Ownership, got.OwnershipFrom, uid)
			}
			want := tt.want
			want.Source = strings.ReplaceAll(want.Source, "%PRELOADS%", filepath.Join(dir, "preloads"))
			if want.Source != "" && got.Source != want.Source {
				t.Errorf("source %q, want %q", got.Source, want.Source)
			}
			if want.Count != 0 && got.Count != want.Count {
				t.Errorf("count %d, want %d", got.Count, want.Count)
			}
			if (want.Fallback == "") != (got.Fallback == "") || !strings.Contains(got.Fallback, want.Fallback) {
				t.Errorf("fallback %q, want one saying %q", got.Fallback, want.Fallback)
			}
			if got.Reason != want.Reason || !strings.Contains(got.Error, want.Error) {
				t.Errorf("reason %q error %q, want %q and an error saying %q", got.Reason, got.Error, want.Reason, want.Error)
			}
			if tt.wantCode == 0 && (got.SHA256 == "" || got.Error != "") {
				t.Errorf("a staged chain reports its sha256 and no error: %+v", got)
			}
			if tt.wantCode != 0 && got.SHA256 != "" {
				t.Errorf("a failed emit reports no chain: %+v", got)
			}
		})
	}
}
