package initguards

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/guardchain/guardchain/guards"
)

// Baselines: BenchmarkProcessTrue is the cost of starting any process, the
// baseline for BenchmarkProcessEmit*; compare with benchstat or by ratio.

func BenchmarkEmitFirst(b *testing.B) {
	base := b.TempDir()
	files := chainFilesB(b, base)
	pol := Policy{UID: os.Geteuid(), GID: -1}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(base, "emit-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Emit(context.Background(), dir, files, pol); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEmitIdempotent(b *testing.B) {
	dir := b.TempDir()
	files := chainFilesB(b, dir)
	pol := Policy{UID: os.Geteuid(), GID: -1}
	if _, err := Emit(context.Background(), dir, files, pol); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := Emit(context.Background(), dir, files, pol)
		if err != nil || len(res.Written) != 0 {
			b.Fatalf("re-emit wrote %v: %v", res.Written, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	files := chainFilesB(b, dir)
	pol := Policy{UID: os.Geteuid(), GID: -1}
	if _, err := Emit(context.Background(), dir, files, pol); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Verify(dir, files, pol); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessEmitFirst(b *testing.B) {
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(base, "emit-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if out, err := exec.Command(initguardsBin, "emit", "--dir", dir, "--ownership", "uid:"+strconv.Itoa(os.Geteuid())).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

func BenchmarkProcessEmitIdempotent(b *testing.B) {
	dir := b.TempDir()
	args := []string{"emit", "--dir", dir, "--ownership", "uid:" + strconv.Itoa(os.Geteuid())}
	if out, err := exec.Command(initguardsBin, args...).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	for b.Loop() {
		if out, err := exec.Command(initguardsBin, args...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

func chainFilesB(b *testing.B, dir string) []guards.File {
	b.Helper()
	c := guards.Default()
	o := c.DefaultOptions()
	o.Dir = filepath.Clean(dir)
	files, err := c.Files(o)
	if err != nil {
		b.Fatal(err)
	}
	return files
}
