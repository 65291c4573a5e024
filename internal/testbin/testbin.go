// Package testbin is what tests that run real binaries share: a static build
// of a command that other uids can run, and the rule for tests that need root.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Main builds the command in pkg (a go build path, relative to the test's
// package) into a directory every uid can reach, sets *bin to it, runs the
// tests and exits with their code.
func Main(m *testing.M, pkg string, bin *string) {
	code := func() int {
		dir, err := os.MkdirTemp("", "guardchain-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Children running as another uid must be able to reach the binary.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		*bin = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", *bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// RequireRoot skips a test that needs root, except under CI, where every
// test must run: there a missing privilege is a failure.
func RequireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root (" + why + ")")
}
