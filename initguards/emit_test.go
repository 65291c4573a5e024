package initguards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
)

func TestEmitWritesVerifiableChainAndIsIdempotent(t *testing.T) {
	dir := openDirFor(t, 0o755)
	files := chainFiles(t, dir, nil)
	pol := selfPolicy()
	first := mustEmit(t, dir, files, pol)
	if len(first.Written) != len(files) || len(first.Unchanged) != 0 {
		t.Errorf("first emit wrote %v, left %v", first.Written, first.Unchanged)
	}
	if first.Written[len(first.Written)-1] != guards.ProxyEnvName {
		t.Errorf("proxy-env.sh must be written last, order was %v", first.Written)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode() & (os.ModePerm | os.ModeSticky); got != os.ModePerm|os.ModeSticky {
		t.Errorf("directory mode %v, want drwxrwxrwt", st.Mode())
	}
	for _, f := range files {
		st, err := os.Lstat(filepath.Join(dir, f.Name))
		if err != nil || st.Mode() != 0o444 {
			t.Errorf("%s: mode %v err %v, want -r--r--r--", f.Name, st.Mode(), err)
		}
	}
	again := mustEmit(t, dir, files, pol)
	if len(again.Written) != 0 || len(again.Unchanged) != len(files) {
		t.Errorf("re-emit wrote %v", again.Written)
	}
	if l := leftovers(t, dir); l != nil {
		t.Errorf("temp files left: %v", l)
	}
}

// tamper is one way a chain on disk can be wrong.
type tamper struct {
	name   string
	file   string
	do     func(t *testing.T, path string)
	reason string // what Verify says about the file
}

func tampers(outside string) []tamper {
	return []tamper{
		{"flipped byte", "nemoclaw-ciao-network-guard.js", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[100] ^= 0x20
			replace(t, p, b, 0o444)
		}, "content differs from the chain"},
		{"wrong mode", "nemoclaw-sandbox-safety-net.js", func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o666); err != nil {
				t.Fatal(err)
			}
		}, "mode 0666, want 0444"},
		{"missing", "nemoclaw-http-proxy-fix.js", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"symlink planted", "nemoclaw-nemotron-inference-fix.js", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink, not a regular file"},
		{"fifo", "nemoclaw-slack-channel-guard.js", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"truncated proxy-env", guards.ProxyEnvName, func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			replace(t, p, b[:len(b)/2], 0o444)
		}, "content differs from the chain"},
	}
}

func replace(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesEveryProblemAndEmitRepairs(t *testing.T) {
	for _, tt := range tampers("") {
		t.Run(tt.name, func(t *testing.T) {
			dir := openDirFor(t, 0o755)
			outside := filepath.Join(filepath.Dir(dir), "victim")
			if err := os.WriteFile(outside, []byte("victim bytes"), 0o644); err != nil {
				t.Fatal(err)
			}
			files := chainFiles(t, dir, nil)
			pol := selfPolicy()
			mustEmit(t, dir, files, pol)
			if tt.name == "symlink planted" {
				tt = tampers(outside)[3]
			}
			tt.do(t, filepath.Join(dir, tt.file))

			err := Verify(dir, files, pol)
			var ve *VerifyError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 {
				t.Fatalf("Verify = %v, want exactly one problem", err)
			}
			p := ve.Problems[0]
			if p.Path != filepath.Join(dir, tt.file) || !strings.HasPrefix(p.Reason, tt.reason) {
				t.Errorf("problem %q, want %s: %s...", p, filepath.Join(dir, tt.file), tt.reason)
			}

			res := mustEmit(t, dir, files, pol)
			if diff := cmp.Diff([]string{tt.file}, res.Written); diff != "" {
				t.Errorf("repair wrote (-want +got):\n%s", diff)
			}
			if b, _ := os.ReadFile(outside); string(b) != "victim bytes" {
				t.Errorf("a symlink's target was written through: %q", b)
			}
		})
	}
}

func TestVerifyReportsEachProblemOnItsOwnLine(t *testing.T) {
	dir := openDirFor(t, 0o755)
	files := chainFiles(t, dir, nil)
	pol := selfPolicy()
	mustEmit(t, dir, files, pol)
	for _, tt := range tampers(filepath.Join(dir, "nowhere")) {
		tt.do(t, filepath.Join(dir, tt.file))
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	pol.StickyRequired = true
	err := Verify(dir, files, pol)
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 7 {
		t.Fatalf("want 7 lines (directory + 6 files), got %d:\n%v", len(lines), err)
	}
	if !strings.Contains(lines[0], "has no sticky bit") {
		t.Errorf("first line %q, want the directory's sticky bit", lines[0])
	}
}

func TestEmitRefusesDirectoryAtTarget(t *testing.T) {
	dir := openDirFor(t, 0o755)
	files := chainFiles(t, dir, nil)
	if err := os.Mkdir(filepath.Join(dir, "nemoclaw-nemotron-inference-fix.js"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Emit(context.Background(), dir, files, selfPolicy())
	want := filepath.Join(dir, "nemoclaw-nemotron-inference-fix.js") + ": is a directory; refusing to replace it"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if _, err := os.Lstat(filepath.Join(dir, guards.ProxyEnvName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("proxy-env.sh exists after a failed emit (%v)", err)
	}
	if l := leftovers(t, dir); l != nil {
		t.Errorf("temp files left: %v", l)
	}
}

func TestEmitRefusesSymlinkedDirectory(t *testing.T) {
	real := openDirFor(t, 0o755)
	link := filepath.Join(filepath.Dir(real), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err := Emit(context.Background(), link, chainFiles(t, link, nil), selfPolicy())
	if err == nil || !strings.Contains(err.Error(), "chain directory is a symlink") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmitStopsOnCancelledContext(t *testing.T) {
	dir := openDirFor(t, 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Emit(ctx, dir, chainFiles(t, dir, nil), selfPolicy()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if l, _ := os.ReadDir(dir); len(l) != 0 {
		t.Errorf("cancelled emit left %d entries", len(l))
	}
}

// Ten emitters at once, five for each of two chains that differ in
// proxy-env.sh (proxy port and required guards), with a reader that checks at
// every moment that a present proxy-env.sh is one of the two, whole, beside a
// complete set of guards; at the end one of the two chains is in place.
func TestConcurrentEmittersNeverExposePartialChain(t *testing.T) {
	dir := openDirFor(t, 0o755)
	pol := selfPolicy()
	chains := []struct {
		args  []string
		files []guards.File
	}{
		{[]string{"--proxy-port", "3128"}, chainFiles(t, dir, nil)},
		{[]string{"--proxy-port", "8080", "--require", "safety-net"}, chainFiles(t, dir, func(o *guards.Options) {
			o.ProxyPort = 8080
			o.Required = []string{"safety-net"}
		})},
	}
	last := len(chains[0].files) - 1
	envA, envB := chains[0].files[last].Data, chains[1].files[last].Data
	if bytes.Equal(envA, envB) {
		t.Fatal("the two chains render the same proxy-env.sh; the test would race identical chains")
	}
	stop := make(chan struct{})
	var readerErr error
	seen := map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			env, err := os.ReadFile(filepath.Join(dir, guards.ProxyEnvName))
			if err != nil {
				continue
			}
			var files []guards.File
			switch {
			case bytes.Equal(env, envA):
				files, seen["A"] = chains[0].files, seen["A"]+1
			case bytes.Equal(env, envB):
				files, seen["B"] = chains[1].files, seen["B"]+1
			default:
				readerErr = fmt.Errorf("proxy-env.sh is neither chain's (%d bytes):\n%s", len(env), env)
				return
			}
			for _, f := range files[:last] {
				b, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil || !bytes.Equal(b, f.Data) {
					readerErr = fmt.Errorf("%s incomplete (%w) while proxy-env.sh was present", f.Name, err)
					return
				}
			}
		}
	}()
	errs := make(chan error, 10)
	var emitters sync.WaitGroup
	for i := 0; i < 10; i++ {
		emitters.Add(1)
		go func() {
			defer emitters.Done()
			argv := append([]string{initguardsBin, "emit", "--dir", dir, "--ownership", pol.String()}, chains[i%2].args...)
			out, code := runAs(t, os.Geteuid(), nil, argv...)
			if code != 0 {
				errs <- errors.New(out)
			}
		}()
	}
	emitters.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("an emitter failed: %v", err)
	}
	if readerErr != nil {
		t.Error(readerErr)
	}
	t.Logf("the reader saw chain A %d times, chain B %d times", seen["A"], seen["B"])
	errA, errB := Verify(dir, chains[0].files, pol), Verify(dir, chains[1].files, pol)
	if errA != nil && errB != nil {
		t.Errorf("after concurrent emits neither chain is in place:\nA: %v\nB: %v", errA, errB)
	}
	if l := leftovers(t, dir); l != nil {
		t.Errorf("temp files left: %v", l)
	}
}
