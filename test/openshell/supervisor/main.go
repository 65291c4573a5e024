// Command openshell-sandbox stands in for OpenShell's sandbox supervisor in
// the e2e suite: it starts a sandbox's main process the way the supervisor
// does, as far as guardchain can tell, so the suite can run pods exactly as
// OpenShell's Kubernetes driver renders them (test/e2e/agentsandbox_test.go)
// without OpenShell. It enforces no policy and sets up no network.
//
//	openshell-sandbox [--mode=MODE] [--workdir DIR] [flags the driver passes]
//	openshell-sandbox copy-self DEST
//
// Modes (--mode, comma-separated components as the driver writes them):
//
//	network,process  (default; the combined topology) the container runs as
//	                 root: read the sandbox identity from OPENSHELL_SANDBOX_UID
//	                 and OPENSHELL_SANDBOX_GID (decimal numbers, anything else
//	                 is refused), drop to it (groups, gid, uid), then start the
//	                 main process
//	process          (the sidecar topology's agent container, already running
//	                 as the sandbox identity) start the main process as it is
//	network          (the sidecar topology's network container) wait for
//	                 SIGTERM or SIGINT, then exit 0
//	network-init     (the sidecar topology's init container) exit 0
//
// Starting the main process: change to --workdir when it is a directory, give
// the child OPENSHELL_SANDBOX=1 and NODE_USE_ENV_PROXY=1 (as the supervisor
// does), and exec OPENSHELL_MAIN_PROCESS_SPEC's command. That variable has the
// format the driver writes: JSON {"version":1,"command":[ARGV...],"tty":BOOL},
// or "base64url:" and the same JSON base64url-encoded without padding. Unlike
// the real supervisor, which stays PID 1 and runs the main process as its
// child, the stand-in execs it, and it refuses a missing spec where the real
// one would start a login shell.
//
// copy-self DEST copies this binary to DEST (mode 0755), for the driver's
// fallback that installs the supervisor from an init container into an
// emptyDir instead of mounting its image as a volume.
//
// Errors are one line on stderr, exit code 1 (2 for bad usage).
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	envUID         = "OPENSHELL_SANDBOX_UID"
	envGID         = "OPENSHELL_SANDBOX_GID"
	envMainProcess = "OPENSHELL_MAIN_PROCESS_SPEC"
	base64Prefix   = "base64url:"
	specVersion    = 1
)

// childEnvSet is what the supervisor sets in the main process's environment.
var childEnvSet = []string{"OPENSHELL_SANDBOX=1", "NODE_USE_ENV_PROXY=1"}

// mode is the set of components --mode names.
type mode struct{ network, process, networkInit bool }

func parseMode(s string) (mode, error) {
	var m mode
	for _, c := range strings.Split(s, ",") {
		switch strings.TrimSpace(c) {
		case "network":
			m.network = true
		case "process":
			m.process = true
		case "network-init":
			m.networkInit = true
		default:
			return mode{}, fmt.Errorf("unknown --mode component %q (network, process, network-init)", c)
		}
	}
	if m.networkInit && (m.network || m.process) {
		return mode{}, errors.New("--mode=network-init cannot be combined with other components")
	}
	return m, nil
}

// identity is the sandbox user the combined supervisor drops to.
type identity struct{ uid, gid int }

// parseIdentity reads OPENSHELL_SANDBOX_UID and OPENSHELL_SANDBOX_GID from
// env: each a decimal number as the driver writes it, nothing else.
func parseIdentity(env []string) (identity, error) {
	var ids [2]int
	for i, name := range []string{envUID, envGID} {
		v, ok := lookup(env, name)
		if !ok {
			return identity{}, fmt.Errorf("%s is not set", name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		// One spelling per number, and never -1 (which set*id reads as "keep").
		if err != nil || strconv.FormatUint(n, 10) != v || n == 1<<32-1 {
			return identity{}, fmt.Errorf("%s=%q is not a user or group id", name, v)
		}
		ids[i] = int(n)
	}
	return identity{uid: ids[0], gid: ids[1]}, nil
}

// processSpec is the driver's main process config.
type processSpec struct {
	Version int      `json:"version"`
	Command []string `json:"command"`
	TTY     bool     `json:"tty"`
}

func parseProcessSpec(env []string) (processSpec, error) {
	v, ok := lookup(env, envMainProcess)
	if !ok {
		return processSpec{}, fmt.Errorf("%s is not set", envMainProcess)
	}
	raw := []byte(v)
	if p, ok := strings.CutPrefix(v, base64Prefix); ok {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return processSpec{}, fmt.Errorf("%s: base64url: %w", envMainProcess, err)
		}
		raw = b
	}
	var s processSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return processSpec{}, fmt.Errorf("%s: %w", envMainProcess, err)
	}
	if s.Version != specVersion {
		return processSpec{}, fmt.Errorf("%s: version %d, want %d", envMainProcess, s.Version, specVersion)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return processSpec{}, fmt.Errorf("%s: the command is empty", envMainProcess)
	}
	return s, nil
}

// childEnv is env with childEnvSet set, each replacing an earlier value.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+len(childEnvSet))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, set := lookup(childEnvSet, name); !set {
			out = append(out, kv)
		}
	}
	return append(out, childEnvSet...)
}

func lookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// resolve finds argv0 on the child's PATH, as a shell would.
func resolve(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	path, _ := lookup(env, "PATH")
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", argv0, exec.ErrNotFound)
}

// dropTo makes this process (every thread) the sandbox identity, with the
// sandbox group as its only supplementary group.
func dropTo(id identity) error {
	if err := syscall.Setgroups([]int{id.gid}); err != nil {
		return fmt.Errorf("setgroups [%d]: %w", id.gid, err)
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return fmt.Errorf("setgid %d: %w", id.gid, err)
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("setuid %d: %w", id.uid, err)
	}
	return nil
}

// startMain replaces this process with the main process.
func startMain(workdir string, env []string, stderr io.Writer) error {
	spec, err := parseProcessSpec(env)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(workdir); workdir != "" && err == nil && fi.IsDir() {
		if err := os.Chdir(workdir); err != nil {
			return err
		}
	}
	env = childEnv(env)
	path, err := resolve(spec.Command[0], env)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "[openshell-sandbox] starting %q as uid %d gid %d\n", spec.Command, os.Getuid(), os.Getgid())
	return syscall.Exec(path, spec.Command, env)
}

// copySelf installs this binary at dest: a temporary file beside it, then a
// rename, so the agent never runs half a binary.
func copySelf(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	out, err := os.CreateTemp(filepath.Dir(dest), ".openshell-sandbox-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dest)
}

// usageError is bad usage: exit code 2.
type usageError struct{ error }

// run does what args ask; on success in the process modes it does not return.
func run(args, env []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "copy-self" {
		if len(args) != 2 {
			return usageError{errors.New("usage: openshell-sandbox copy-self DEST")}
		}
		return copySelf(args[1])
	}
	fs := flag.NewFlagSet("openshell-sandbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	modeFlag := fs.String("mode", "network,process", "network, process, network-init, or network,process")
	workdir := fs.String("workdir", "", "the main process's working directory, when it exists")
	// Passed by the driver to the real supervisor; the stand-in has no use for them.
	for _, name := range []string{"proxy-uid", "proxy-gid", "sidecar-state-dir", "sidecar-tls-dir"} {
		fs.String(name, "", "accepted and ignored")
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	m, err := parseMode(*modeFlag)
	if err != nil {
		return usageError{err}
	}
	switch {
	case m.networkInit:
		fmt.Fprintln(stderr, "[openshell-sandbox] network-init: nothing to set up")
		return nil
	case m.network && !m.process:
		fmt.Fprintln(stderr, "[openshell-sandbox] network: waiting for SIGTERM")
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		return nil
	case m.network && m.process:
		id, err := parseIdentity(env)
		if err != nil {
			return err
		}
		if err := dropTo(id); err != nil {
			return fmt.Errorf("dropping to the sandbox identity: %w", err)
		}
	}
	return startMain(*workdir, env, stderr)
}

func main() {
	if err := run(os.Args[1:], os.Environ(), os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "openshell-sandbox: %v\n", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
