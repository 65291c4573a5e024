// Package nemoclaw holds a stand-in for NemoClaw's sandbox entrypoint
// (entrypoint.sh), a sandbox image's packaged preloads (preloads/) and a
// gateway probe (gateway.js): the e2e sandbox image is built from them, and
// the test here runs them over a /tmp that guardchain's injected init
// containers prepared, with their env, user and capabilities.
package nemoclaw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/testbin"
	"github.com/guardchain/guardchain/webhook"
)

var initguardsBin string

func TestMain(m *testing.M) { testbin.Main(m, "../../cmd/initguards", &initguardsBin) }

func requireRoot(t *testing.T) {
	t.Helper()
	testbin.RequireRoot(t, "runs the init containers and the entrypoint as their users")
}

// sandbox is one pod's worth of directories: the emptyDirs and the image's
// packaged preloads, all under a root-owned 0755 base.
type sandbox struct {
	base, tmp, bin, preloads, termLog string
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	// Not t.TempDir: its name carries the subtest's, which initguards
	// rightly refuses as a chain path, and its parent is closed to uid 998.
	base, err := os.MkdirTemp("", "nemoclaw-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sandbox{base: base, tmp: filepath.Join(base, "tmp"), bin: filepath.Join(base, "bin"),
		preloads: filepath.Join(base, "image/usr/local/lib/nemoclaw/preloads"), termLog: filepath.Join(base, "termination-log")}
	// The kubelet makes each emptyDir root-owned 0777, not sticky.
	for _, d := range []string{s.tmp, s.bin} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet creates each container's termination message file 0666.
	if err := os.WriteFile(s.termLog, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.termLog, 0o666); err != nil {
		t.Fatal(err)
	}
	// The image ships its preloads root-owned 0644 in 0755 directories.
	if err := os.MkdirAll(s.preloads, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range imagePreloads(t) {
		b, err := os.ReadFile(filepath.Join("preloads", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.preloads, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"entrypoint.sh", "gateway.js"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func imagePreloads(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob("preloads/*.js")
	if err != nil || len(m) == 0 {
		t.Fatalf("no preloads in test/nemoclaw/preloads (%v)", err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// path maps a path inside the pod to the sandbox's directories.
func (s sandbox) path(p string) string {
	switch {
	case p == webhook.TmpPath || strings.HasPrefix(p, webhook.TmpPath+"/"):
		return s.tmp + strings.TrimPrefix(p, webhook.TmpPath)
	case strings.HasPrefix(p, webhook.BinPath+"/"):
		return s.bin + strings.TrimPrefix(p, webhook.BinPath)
	case p == guards.PackagedDir:
		return s.preloads
	case p == corev1.TerminationMessagePathDefault:
		return s.termLog
	}
	return p
}

// mountImageVolumes does what the kubelet does for guardchain-bin as an image
// volume of the init image: the image's files (initguards at its root,
// root-owned) appear read-only at /guardchain.
func (s sandbox) mountImageVolumes(t *testing.T, p *corev1.Pod) {
	t.Helper()
	for _, v := range p.Spec.Volumes {
		if v.Name != webhook.BinVolumeName || v.Image == nil {
			continue
		}
		b, err := os.ReadFile(initguardsBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.bin, "initguards"), b, 0o555); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(s.bin, 0o555); err != nil {
			t.Fatal(err)
		}
	}
}

// runInit runs one of guardchain's init containers as the kubelet would:
// its command (the init image's entrypoint when it has none), args and env,
// as its user, with only its capabilities and no privilege escalation.
func (s sandbox) runInit(t *testing.T, c corev1.Container) (string, error) {
	t.Helper()
	argv := []string{initguardsBin}
	if len(c.Command) > 0 {
		argv = []string{s.path(c.Command[0])}
	}
	for _, a := range c.Args {
		argv = append(argv, s.path(a))
	}
	env := []string{"PATH=/usr/bin:/bin"}
	for _, e := range c.Env {
		env = append(env, e.Name+"="+s.path(e.Value))
	}
	sc := c.SecurityContext
	caps := "-all"
	for _, cp := range sc.Capabilities.Add {
		caps += ",+" + strings.ToLower(string(cp))
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || *sc.AllowPrivilegeEscalation {
		t.Fatalf("%s: securityContext %+v is not what this harness models", c.Name, sc)
	}
	return run(t, env, append([]string{"setpriv", "--reuid", strconv.FormatInt(*sc.RunAsUser, 10), "--regid", strconv.FormatInt(*sc.RunAsGroup, 10),
		"--clear-groups", "--no-new-privs", "--bounding-set", caps, "--inh-caps", "-all", "--"}, argv...)...)
}

// runEntrypoint runs the stand-in entrypoint as uid (gid the same), then the
// gateway probe, as the stock image's USER would.
func (s sandbox) runEntrypoint(t *testing.T, uid int) (string, error) {
	t.Helper()
	env := []string{"PATH=/usr/bin:/bin", "NEMOCLAW_TMP=" + s.tmp, "NEMOCLAW_PRELOADS=" + s.preloads,
		"OPENSHELL_SANDBOX=standin", "NODE_USE_ENV_PROXY=1", "HOME=" + s.tmp}
	id := strconv.Itoa(uid)
	return run(t, env, "setpriv", "--reuid", id, "--regid", id, "--clear-groups", "--",
		"bash", filepath.Join(s.base, "entrypoint.sh"), "node", filepath.Join(s.base, "gateway.js"), "gateway", "--once")
}

func run(t *testing.T, env []string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// The sandbox pods the tests inject: OpenShell's today (its supervisor, root,
// drops to OPENSHELL_SANDBOX_UID before it starts the entrypoint) and the k3s
// gateway's (v0.0.36; the image's own user runs it).
const (
	todaysPod = "../../deploy/examples/openshell-sandbox-pod.yaml"
	k3sPod    = "../../webhook/testdata/openshell-sandbox.yaml"
)

func openShellPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestRootNemoClawEntrypointOverInjectedChain: with the defaults, NemoClaw's
// entrypoint (stand-in) re-stages every guard over what guardchain left, as
// the stock sandbox user 998 and as root, and its gateway loads the image's
// preloads; the root ownership policy with the uid-998 entrypoint fails, as
// GUARDS.md says it must (the control).
func TestRootNemoClawEntrypointOverInjectedChain(t *testing.T) {
	requireRoot(t)
	core := []string{"sandbox-safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard"}
	tests := []struct {
		name     string
		pod      string // todaysPod or k3sPod ("": k3sPod)
		mod      func(*corev1.Pod)
		cfg      func(*webhook.Config)
		uid      int
		wantMode os.FileMode // of /tmp after the init containers
		wantFail string      // the entrypoint's failure, "" for success
	}{
		{name: "defaults, OpenShell today (supervisor drops to 1000)", pod: todaysPod, uid: 1000, wantMode: 0o777 | os.ModeSticky},
		{name: "defaults, OpenShell on OpenShift (an SCC-range uid)", pod: todaysPod, mod: func(p *corev1.Pod) {
			for i, e := range p.Spec.Containers[0].Env {
				if e.Name == webhook.EnvSandboxUID || e.Name == webhook.EnvSandboxGID {
					p.Spec.Containers[0].Env[i].Value = "1000680000"
				}
			}
		}, uid: 1000680000, wantMode: 0o777 | os.ModeSticky},
		{name: "control: the stock user's chain with OpenShell's uid-1000 entrypoint", pod: todaysPod,
			cfg: func(c *webhook.Config) { c.Ownership = "uid:998:998" }, uid: 1000, wantMode: 0o777 | os.ModeSticky,
			wantFail: "nemoclaw-sandbox-safety-net.js failed"},
		{name: "defaults, stock image (entrypoint as 998)", uid: 998, wantMode: 0o777 | os.ModeSticky},
		{name: "defaults, root-runtime image (entrypoint as root)", uid: 0, wantMode: 0o777 | os.ModeSticky},
		{name: "ownership root, root-runtime image", cfg: func(c *webhook.Config) { c.Ownership = "root" }, uid: 0, wantMode: 0o777 | os.ModeSticky},
		{name: "writer owner (restricted namespaces), stock image", cfg: func(c *webhook.Config) { c.Writer = webhook.WriterOwner }, uid: 998, wantMode: 0o777},
		{name: "embedded source, stock image", cfg: func(c *webhook.Config) { c.Source = webhook.SourceEmbedded }, uid: 998, wantMode: 0o777 | os.ModeSticky},
		{name: "control: ownership root, stock image", cfg: func(c *webhook.Config) { c.Ownership = "root" }, uid: 998, wantMode: 0o777 | os.ModeSticky,
			wantFail: "nemoclaw-sandbox-safety-net.js failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := webhook.Default()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			path := tt.pod
			if path == "" {
				path = k3sPod
			}
			pod := openShellPod(t, path)
			if tt.mod != nil {
				tt.mod(pod)
			}
			res := webhook.Inject(pod, cfg)
			if res.Outcome != webhook.OutcomeInjected {
				t.Fatalf("outcome %s: %v", res.Outcome, res.Warnings())
			}
			s := newSandbox(t)
			s.mountImageVolumes(t, res.Pod)
			for _, c := range res.Pod.Spec.InitContainers {
				if c.Name != webhook.BinContainerName && c.Name != webhook.InitContainerName {
					break
				}
				if out, err := s.runInit(t, c); err != nil {
					t.Fatalf("init container %s: %v\n%s", c.Name, err, out)
				}
			}
			st, err := os.Stat(s.tmp)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode() & (os.ModePerm | os.ModeSticky); got != tt.wantMode {
				t.Errorf("/tmp mode %v after the init containers, want %v", got, tt.wantMode)
			}
			checkReport(t, s, cfg.Source)

			out, err := s.runEntrypoint(t, tt.uid)
			if tt.wantFail != "" {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, tt.wantFail) {
					t.Fatalf("entrypoint: %v, want exit 1 with %q:\n%s", err, tt.wantFail, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("entrypoint as uid %d: %v\n%s", tt.uid, err, out)
			}
			var got struct {
				Loaded []string `json:"loaded"`
				Image  []string `json:"image"`
			}
			line := out[strings.LastIndex(out, "\n{")+1:]
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("gateway output: %v\n%s", err, out)
			}
			var want []string
			for _, n := range core {
				want = append(want, filepath.Join(s.tmp, guards.StagedPrefix+n+".js"))
			}
			if diff := cmp.Diff(want, got.Loaded); diff != "" {
				t.Errorf("files the gateway loaded before its first line (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(core, got.Image); diff != "" {
				t.Errorf("image preloads that ran (-want +got):\n%s", diff)
			}
		})
	}
}

// checkReport reads the termination message initguards left and checks it
// against what is in /tmp: with an image source, the image's own bytes.
func checkReport(t *testing.T, s sandbox, source webhook.SourceMode) {
	t.Helper()
	b, err := os.ReadFile(s.termLog)
	if err != nil {
		t.Fatalf("termination message: %v", err)
	}
	var r struct {
		SHA256, Source, Ownership string
		Files                     []string
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("termination message %q: %v", b, err)
	}
	if len(b) > 4096 {
		t.Errorf("termination message is %d bytes; the kubelet keeps 4096", len(b))
	}
	wantSource := s.preloads
	if source == webhook.SourceEmbedded {
		wantSource = guards.SourceEmbedded
	}
	if r.Source != wantSource {
		t.Errorf("termination message source %q, want %q", r.Source, wantSource)
	}
	if source == webhook.SourceEmbedded {
		if r.SHA256 != guards.Default().SHA256() {
			t.Errorf("termination message sha256 %s, not the embedded chain's", r.SHA256)
		}
		return
	}
	var ps []guards.Preload
	for _, n := range imagePreloads(t) {
		b, _ := os.ReadFile(filepath.Join("preloads", n))
		ps = append(ps, guards.Preload{Name: n, Bytes: b})
		staged, err := os.ReadFile(filepath.Join(s.tmp, guards.StagedPrefix+n))
		if err != nil || !bytes.Equal(staged, b) {
			t.Errorf("%s staged as %q (%v), not the image's bytes", n, staged, err)
		}
	}
	c, err := guards.FromPreloads(s.preloads, ps)
	if err != nil {
		t.Fatal(err)
	}
	if r.SHA256 != c.SHA256() || len(r.Files) != len(ps)+1 {
		t.Errorf("termination message %+v, want sha256 %s and %d files", r, c.SHA256(), len(ps)+1)
	}
}
