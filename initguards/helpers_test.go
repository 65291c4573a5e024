package initguards

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/testbin"
)

// nobody is the non-root user the attack tests run as.
const nobody = 65534

var initguardsBin string

func TestMain(m *testing.M) { testbin.Main(m, "../cmd/initguards", &initguardsBin) }

func requireRoot(t *testing.T) {
	t.Helper()
	testbin.RequireRoot(t, "mounts tmpfs, runs children as another uid")
}

// openDirFor makes a directory every user can reach, with the given mode.
func openDirFor(t *testing.T, mode os.FileMode) string {
	t.Helper()
	base, err := os.MkdirTemp("", "guardchain-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "tmp")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tmpfs mounts a small tmpfs (like a sized emptyDir) and unmounts it after the test.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	requireRoot(t)
	dir := openDirFor(t, 0o777)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0777"); err != nil {
		t.Fatalf("mounting tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

func chainFiles(t *testing.T, dir string, mod func(*guards.Options)) []guards.File {
	t.Helper()
	c := guards.Default()
	o := c.DefaultOptions()
	o.Dir = dir
	if mod != nil {
		mod(&o)
	}
	f, err := c.Files(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustEmit(t *testing.T, dir string, files []guards.File, pol Policy) Result {
	t.Helper()
	res, err := Emit(context.Background(), dir, files, pol)
	if err != nil {
		t.Fatalf("emit: %v", err)
	}
	if err := Verify(dir, files, pol); err != nil {
		t.Fatalf("verify after emit:\n%v", err)
	}
	return res
}

// selfPolicy is the uid policy for the user running the test, so the tests
// that need no root still run everywhere.
func selfPolicy() Policy { return Policy{UID: os.Geteuid(), GID: -1} }

// runAs runs argv as uid:gid and returns its combined output and exit code.
func runAs(t *testing.T, uid int, env []string, argv ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Dir = "/"
	if uid != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running %v: %v", argv, err)
	}
	return out.String(), 0
}

// leftovers lists temp files an emitter left behind.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".guardchain-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// proxyEnvState tells whether proxy-env.sh is absent, or present with the
// whole chain in place.
func assertCompleteOrAbsent(t *testing.T, dir string, files []guards.File, pol Policy) {
	t.Helper()
	marker := filepath.Join(dir, guards.ProxyEnvName)
	if _, err := os.Lstat(marker); errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := Verify(dir, files, pol); err != nil {
		t.Errorf("proxy-env.sh is present but the chain is not complete:\n%v", err)
	}
}
