package initguards

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
)

// fill takes every free byte of a tmpfs.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			return
		}
	}
}

func TestRootEmitOnFullTmpfsLeavesNoProxyEnv(t *testing.T) {
	dir := tmpfs(t, "64k")
	fill(t, dir)
	files := chainFiles(t, dir, nil)
	_, err := Emit(context.Background(), dir, files, RootPolicy)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line with ENOSPC", err)
	}
	if !strings.HasPrefix(err.Error(), dir+"/nemoclaw-") {
		t.Errorf("error %q does not start with the path", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, guards.ProxyEnvName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("proxy-env.sh present after ENOSPC (%v)", err)
	}
	if l := leftovers(t, dir); l != nil {
		t.Errorf("temp files left: %v", l)
	}
}

func TestRootEmitOnFullTmpfsKeepsPreviousChain(t *testing.T) {
	dir := tmpfs(t, "128k")
	old := chainFiles(t, dir, nil)
	mustEmit(t, dir, old, RootPolicy)
	fill(t, dir)
	changed := chainFiles(t, dir, func(o *guards.Options) { o.ProxyPort = 8080 })
	if _, err := Emit(context.Background(), dir, changed, RootPolicy); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if err := Verify(dir, old, RootPolicy); err != nil {
		t.Errorf("previous chain not intact after a failed emit:\n%v", err)
	}
}

func TestRootEmitOnFullTmpfsWithDamagedChainRemovesProxyEnv(t *testing.T) {
	dir := tmpfs(t, "128k")
	files := chainFiles(t, dir, nil)
	mustEmit(t, dir, files, RootPolicy)
	p := filepath.Join(dir, "nemoclaw-ciao-network-guard.js")
	b, _ := os.ReadFile(p)
	b[0] ^= 1
	replace(t, p, b, 0o444)
	fill(t, dir)
	if _, err := Emit(context.Background(), dir, files, RootPolicy); err == nil {
		t.Fatal("emit on a full tmpfs succeeded")
	}
	assertCompleteOrAbsent(t, dir, files, RootPolicy)
	if _, err := os.Lstat(filepath.Join(dir, guards.ProxyEnvName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("proxy-env.sh kept beside a damaged guard (%v)", err)
	}
}

func TestRootEmitOnReadOnlyMount(t *testing.T) {
	t.Run("uid policy", func(t *testing.T) {
		dir := tmpfs(t, "1m")
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			t.Fatalf("remounting read-only: %v", err)
		}
		// The warning that /tmp stays 0777, then the error; no word about a
		// proxy-env.sh that was never there.
		out, code := runAs(t, 0, nil, initguardsBin, "emit", "--dir", dir, "--ownership", "uid:998:998")
		if code != 1 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "creating temp file: read-only file system\n") {
			t.Fatalf("exit %d output %q, want exit 1, the warning and one line naming EROFS", code, out)
		}
	})
	dir := tmpfs(t, "1m")
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	out, code := runAs(t, 0, nil, initguardsBin, "emit", "--dir", dir, "--ownership", "root")
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "read-only file system") {
		t.Fatalf("exit %d output %q, want exit 1 and one line naming EROFS", code, out)
	}
	if _, err := os.Lstat(filepath.Join(dir, guards.ProxyEnvName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("proxy-env.sh present on a read-only mount")
	}
}

// In the root policy a non-root process can read and source the chain but
// cannot change, delete or replace any of it.
func TestRootPolicyNonRootCannotTamper(t *testing.T) {
	requireRoot(t)
	dir := openDirFor(t, 0o777)
	files := chainFiles(t, dir, nil)
	mustEmit(t, dir, files, RootPolicy)
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		attacks := map[string]string{
			"write":   "echo x >> " + guards.ShellQuote(p),
			"delete":  "rm -f " + guards.ShellQuote(p),
			"replace": "echo evil > " + guards.ShellQuote(dir+"/evil") + " && mv -f " + guards.ShellQuote(dir+"/evil") + " " + guards.ShellQuote(p),
			"symlink": "ln -sf /etc/passwd " + guards.ShellQuote(p),
			"chmod":   "chmod 0666 " + guards.ShellQuote(p),
		}
		for name, script := range attacks {
			if out, code := runAs(t, nobody, nil, "/bin/sh", "-c", script); code == 0 {
				t.Errorf("%s of %s as uid %d succeeded: %s", name, f.Name, nobody, out)
			}
		}
	}
	if out, code := runAs(t, nobody, nil, "/bin/sh", "-c", ". "+guards.ShellQuote(filepath.Join(dir, guards.ProxyEnvName))+" && echo \"$NODE_OPTIONS\""); code != 0 || !strings.Contains(out, "nemoclaw-sandbox-safety-net.js") {
		t.Errorf("uid %d cannot source proxy-env.sh: exit %d %s", nobody, code, out)
	}
	if err := Verify(dir, files, RootPolicy); err != nil {
		t.Errorf("chain changed by a non-root user:\n%v", err)
	}
}

// In the uid:N policy that uid writes the chain itself (the init container
// runs as it) and owns the files, so it can replace them, as NemoClaw's
// non-root entrypoint does with mv -f. Whether another non-root uid can too
// depends on the directory: the kubelet's emptyDir is root-owned 0777, which
// the writer cannot make sticky, so it warns and leaves the mode, and then any
// uid may replace the files; only a directory that is already sticky keeps
// them the owner's alone.
func TestRootUIDPolicyOwnerCanReplace(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name        string
		mode        os.FileMode
		wantWarning bool
		othersCan   bool
	}{
		{"kubelet's emptyDir", 0o777, true, true},
		{"sticky directory", os.ModeSticky | 0o777, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := openDirFor(t, tt.mode)
			pol := Policy{UID: nobody, GID: nobody}
			out, code := runAs(t, nobody, nil, initguardsBin, "emit", "--dir", dir, "--ownership", pol.String())
			if code != 0 {
				t.Fatalf("emit as uid %d: exit %d: %s", nobody, code, out)
			}
			warning := "initguards: warning: " + dir + ": directory mode 0777 left as is (cannot make it 1777: operation not permitted)\n"
			if got := strings.Contains(out, warning); got != tt.wantWarning {
				t.Errorf("output %q: warning present %v, want %v (%q)", out, got, tt.wantWarning, warning)
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode() & (os.ModePerm | os.ModeSticky); got != tt.mode {
				t.Errorf("directory mode %v after emit, want %v left as is", got, tt.mode)
			}
			files := chainFiles(t, dir, nil)
			if err := Verify(dir, files, pol); err != nil {
				t.Fatalf("verify:\n%v", err)
			}

			p := filepath.Join(dir, "nemoclaw-ciao-network-guard.js")
			script := "cp " + guards.ShellQuote(p) + " " + guards.ShellQuote(dir+"/new") + " && mv -f " + guards.ShellQuote(dir+"/new") + " " + guards.ShellQuote(p)
			if out, code := runAs(t, nobody, nil, "/bin/sh", "-c", script); code != 0 {
				t.Errorf("uid %d could not replace its own guard: %s", nobody, out)
			}
			out, code = runAs(t, nobody-1, nil, "/bin/sh", "-c", "rm -f "+guards.ShellQuote(p))
			if got := code == 0; got != tt.othersCan {
				t.Errorf("uid %d deleting uid %d's guard: succeeded=%v, want %v: %s", nobody-1, nobody, got, tt.othersCan, out)
			}
		})
	}
}

func TestRootNonRootEmitter(t *testing.T) {
	requireRoot(t)
	uid := strconv.Itoa(nobody)
	tests := []struct {
		name      string
		mode      os.FileMode
		ownership string
		wantCode  int
		wantOut   string
		complete  bool
	}{
		// The kubelet's emptyDir: root-owned 0777, which a non-root writer cannot chmod.
		{"uid policy in emptyDir", 0o777, "uid:" + uid, 0, "warning: " + "%DIR%: directory mode 0777 left as is", true},
		{"root policy needs root", 0o777, "root", 1, "making the directory sticky (1777): operation not permitted", false},
		{"root policy in sticky dir", os.ModeSticky | 0o777, "root", 1, "chown to 0:0: operation not permitted", false},
		{"read-only directory", 0o555, "uid:" + uid, 1, "creating temp file: permission denied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := openDirFor(t, tt.mode)
			out, code := runAs(t, nobody, nil, initguardsBin, "emit", "--dir", dir, "--ownership", tt.ownership)
			if code != tt.wantCode || !strings.Contains(out, strings.ReplaceAll(tt.wantOut, "%DIR%", dir)) {
				t.Fatalf("exit %d output %q, want exit %d and %q", code, out, tt.wantCode, tt.wantOut)
			}
			if tt.wantCode != 0 && strings.Count(out, "initguards: emit: ") != 1 {
				t.Errorf("want one error line, got %q", out)
			}
			pol, _ := ParseOwnership(tt.ownership)
			files := chainFiles(t, dir, nil)
			if tt.complete {
				if err := Verify(dir, files, pol); err != nil {
					t.Errorf("verify: %v", err)
				}
			} else if _, err := os.Lstat(filepath.Join(dir, guards.ProxyEnvName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("proxy-env.sh present after a failed emit")
			}
			if l := leftovers(t, dir); l != nil {
				t.Errorf("temp files left: %v", l)
			}
		})
	}
}
