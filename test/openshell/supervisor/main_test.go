package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardchain/guardchain/internal/testbin"
)

var bin string

func TestMain(m *testing.M) { testbin.Main(m, "../supervisor", &bin) }

func TestParseModeTakesTheDriversComponents(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mode
		err  bool
	}{
		{in: "network,process", want: mode{network: true, process: true}},
		{in: "process", want: mode{process: true}},
		{in: "network", want: mode{network: true}},
		{in: "network-init", want: mode{networkInit: true}},
		{in: "network-init,process", err: true},
		{in: "proces", err: true}, //nolint:misspell // a misspelt name, refused
		{in: "", err: true},
	} {
		got, err := parseMode(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseMode(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseIdentityTakesOnlyDecimalIDs(t *testing.T) {
	ok := []string{envUID + "=1000680000", envGID + "=1000680000"}
	if got, err := parseIdentity(ok); err != nil || got != (identity{uid: 1000680000, gid: 1000680000}) {
		t.Errorf("parseIdentity(%q) = %+v, %v", ok, got, err)
	}
	for _, bad := range []string{"", "sandbox", "-1", "+1000", "01000", "1000 ", "4294967295", "4294967296", "$(id -u)"} {
		if got, err := parseIdentity([]string{envUID + "=" + bad, envGID + "=1000"}); err == nil {
			t.Errorf("uid %q taken as %+v", bad, got)
		}
	}
	if _, err := parseIdentity([]string{envUID + "=1000"}); err == nil || !strings.Contains(err.Error(), envGID+" is not set") {
		t.Errorf("no gid: %v", err)
	}
}

func TestParseProcessSpecReadsTheDriversFormat(t *testing.T) {
	const js = `{"version":1,"command":["/usr/local/bin/nemoclaw-start","node","gateway.js"],"tty":false}`
	want := []string{"/usr/local/bin/nemoclaw-start", "node", "gateway.js"}
	for _, v := range []string{js, base64Prefix + base64.RawURLEncoding.EncodeToString([]byte(js))} {
		got, err := parseProcessSpec([]string{envMainProcess + "=" + v})
		if err != nil || !slices.Equal(got.Command, want) {
			t.Errorf("parseProcessSpec(%q) = %+v, %v", v, got, err)
		}
	}
	for _, bad := range []string{`{"version":2,"command":["sh"]}`, `{"version":1,"command":[]}`, `{"version":1,"command":[""]}`,
		`["sh"]`, base64Prefix + "!!"} {
		if got, err := parseProcessSpec([]string{envMainProcess + "=" + bad}); err == nil {
			t.Errorf("spec %q taken as %+v", bad, got)
		}
	}
	if _, err := parseProcessSpec(nil); err == nil {
		t.Error("a missing spec was taken")
	}
}

func TestChildEnvSetsTheSupervisorsVariables(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "NODE_USE_ENV_PROXY=0", "OPENSHELL_SANDBOX=my-sandbox"})
	want := []string{"PATH=/bin", "OPENSHELL_SANDBOX=1", "NODE_USE_ENV_PROXY=1"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
}

// supervise runs the built binary with args and env (plus PATH).
func supervise(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Dir = "/"
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func spec(argv ...string) string {
	b, err := json.Marshal(processSpec{Version: 1, Command: argv})
	if err != nil {
		panic(err)
	}
	return envMainProcess + "=" + string(b)
}

func TestProcessModeExecsTheMainProcessInTheWorkdirWithTheSupervisorsEnv(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := supervise(t, []string{spec("sh", "-c", `echo "$OPENSHELL_SANDBOX $NODE_USE_ENV_PROXY $(pwd) $(id -u)"`)},
		"--mode=process", "--workdir", dir)
	if want := "1 1 " + dir + " " + strconv.Itoa(os.Getuid()) + "\n"; code != 0 || out != want {
		t.Errorf("exit %d, output %q, want %q\n%s", code, out, want, errOut)
	}
	// A workdir that does not exist is skipped, as the supervisor does.
	out, errOut, code = supervise(t, []string{spec("pwd")}, "--mode=process", "--workdir", filepath.Join(dir, "missing"))
	if code != 0 || out != "/\n" {
		t.Errorf("missing workdir: exit %d, output %q\n%s", code, out, errOut)
	}
}

func TestCombinedModeDropsToTheSandboxIdentityAsRoot(t *testing.T) {
	testbin.RequireRoot(t, "drops from root to the sandbox user")
	out, errOut, code := supervise(t, []string{envUID + "=1000", envGID + "=1001", spec("sh", "-c", "id -u; id -g; id -G")},
		"--workdir", "/sandbox-missing")
	if code != 0 || out != "1000\n1001\n1001\n" {
		t.Errorf("exit %d, output %q, want uid 1000, gid 1001, groups 1001\n%s", code, out, errOut)
	}
}

func TestCombinedModeRefusesAnIdentityThatIsNotANumber(t *testing.T) {
	_, errOut, code := supervise(t, []string{envUID + "=sandbox", envGID + "=1000", spec("true")})
	if want := "openshell-sandbox: OPENSHELL_SANDBOX_UID=\"sandbox\" is not a user or group id\n"; code != 1 || errOut != want {
		t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

func TestBadUsageExitsTwo(t *testing.T) {
	for _, args := range [][]string{{"--mode=bogus"}, {"--no-such-flag"}, {"copy-self"}, {"--mode=process", "extra"}} {
		if _, errOut, code := supervise(t, nil, args...); code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, code, errOut)
		}
	}
}

func TestNetworkInitExitsZero(t *testing.T) {
	if _, errOut, code := supervise(t, nil, "--mode=network-init", "--proxy-uid", "0", "--proxy-gid", "1000",
		"--sidecar-state-dir", "/run/openshell-sidecar", "--sidecar-tls-dir", "/etc/openshell-tls/proxy"); code != 0 {
		t.Errorf("exit %d\n%s", code, errOut)
	}
}

func TestNetworkModeRunsUntilSIGTERM(t *testing.T) {
	cmd := exec.Command(bin, "--mode=network")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, "waiting for SIGTERM") {
		t.Fatalf("first line %q, %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("exited before SIGTERM: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("still running 10 s after SIGTERM")
	}
}

func TestCopySelfInstallsAnExecutableCopy(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "opt/openshell/bin/openshell-sandbox")
	if _, errOut, code := supervise(t, nil, "copy-self", dest); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || fi.Mode().Perm() != 0o755 {
		t.Errorf("copy: %d bytes mode %v, want the binary's %d bytes, 0755", len(got), fi.Mode().Perm(), len(want))
	}
	entries, err := os.ReadDir(filepath.Dir(dest))
	if err != nil || len(entries) != 1 {
		t.Errorf("left in the directory: %v, %v", entries, err)
	}
}
