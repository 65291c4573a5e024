package initguards

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
)

// ErrNoPreloads says the image packages no preload directory at all (auto
// mode then stages the embedded chain).
var ErrNoPreloads = errors.New("no packaged preload directory")

// ErrUntrusted marks a packaged preload (or its directory) that NemoClaw
// itself would not trust: a broken or tampered image, which no source falls
// back from.
var ErrUntrusted = errors.New("not trusted")

// ErrMissingGuard says a chain lacks a guard that NODE_OPTIONS will name:
// Node would stop at the missing file.
var ErrMissingGuard = errors.New("required guard missing")

// ReadPreloads reads an image's packaged preloads (every *.js in dir) and
// trusts them only as NemoClaw's restore script does: the directory and each
// file regular (no symlink), owned by uid 0 and not group- or
// other-writable. Anything untrusted fails the whole read: a partial set is
// never staged. Dotfiles and names not ending in .js are not preloads.
func ReadPreloads(dir string) ([]guards.Preload, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("%s: preload directory must be an absolute path", dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%s: %w", dir, ErrNoPreloads)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("%s: not a directory (or a symlink); %w", dir, ErrUntrusted)
	case err != nil:
		return nil, fmt.Errorf("%s: opening preload directory: %w", dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()
	if err := trusted(fd, dir, unix.S_IFDIR); err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: listing: %w", dir, err)
	}
	slices.Sort(names)
	var out []guards.Preload
	for _, n := range names {
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".js") {
			continue
		}
		if len(out) == guards.MaxPreloads {
			return nil, fmt.Errorf("%s: more than %d preloads", dir, guards.MaxPreloads)
		}
		b, err := readTrusted(fd, filepath.Join(dir, n), n)
		if err != nil {
			return nil, err
		}
		out = append(out, guards.Preload{Name: n, Bytes: b})
	}
	return out, nil
}

func readTrusted(dirfd int, path, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s: is a symlink; %w", path, ErrUntrusted)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: opening: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	// The checks are on the open file, so a swap after them changes nothing.
	if err := trusted(fd, path, unix.S_IFREG); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, guards.MaxPreloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", path, unwrapPath(err))
	}
	if len(b) > guards.MaxPreloadBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, guards.MaxPreloadBytes)
	}
	return b, nil
}

// trusted checks an open file or directory as NemoClaw trusts packaged sources.
func trusted(fd int, path string, kind uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: stat: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != kind:
		return fmt.Errorf("%s: is not a %s; %w", path, map[uint32]string{unix.S_IFDIR: "directory", unix.S_IFREG: "regular file"}[kind], ErrUntrusted)
	case st.Uid != 0:
		return fmt.Errorf("%s: owned by uid %d, not 0; %w", path, st.Uid, ErrUntrusted)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s: mode %04o is group- or other-writable; %w", path, st.Mode&0o7777, ErrUntrusted)
	}
	return nil
}

// LoadChain is the chain a source names, "embedded" (built in), "image" (the
// preloads packaged in dir) or "auto", holding every guard in required (the
// guards NODE_OPTIONS will name: Node stops at a missing one).
//
// A sandbox pod with restartPolicy Never does not retry a failed init
// container, so auto falls back where that is safe and says why in
// fallback: an image with no preloads in dir, or whose preloads lack a
// required guard, gets the whole embedded chain (never a mix). An untrusted
// preload fails under every source: it is a broken or tampered image, and a
// chain staged past it would hide that.
func LoadChain(source, dir string, required []string) (chain guards.Chain, fallback string, err error) {
	embedded := func(why string) (guards.Chain, string, error) {
		c := guards.Default()
		if id := missing(c, required); id != "" {
			return c, "", fmt.Errorf("%w: %q is not among the embedded guards (%s)", ErrMissingGuard, id, strings.Join(c.IDs(), ", "))
		}
		return c, why, nil
	}
	switch source {
	case SourceEmbedded:
		return embedded("")
	case SourceImage, SourceAuto:
		ps, err := ReadPreloads(dir)
		if err == nil && len(ps) == 0 {
			err = fmt.Errorf("%s: %w (no *.js in it)", dir, ErrNoPreloads)
		}
		if source == SourceAuto && errors.Is(err, ErrNoPreloads) {
			return embedded(fmt.Sprintf("the image has no preloads in %s; staged the embedded chain", dir))
		}
		if err != nil {
			return guards.Chain{}, "", err
		}
		c, err := guards.FromPreloads(dir, ps)
		if err != nil {
			return guards.Chain{}, "", err
		}
		if id := missing(c, required); id != "" {
			if source == SourceAuto {
				return embedded(fmt.Sprintf("the image's preloads in %s lack required guard %q; staged the embedded chain", dir, id))
			}
			return c, "", fmt.Errorf("%w: %q is not among the preloads in %s (it has: %s)", ErrMissingGuard, id, dir, strings.Join(c.IDs(), ", "))
		}
		return c, "", nil
	}
	return guards.Chain{}, "", fmt.Errorf("source %q: want embedded, image or auto", source)
}

// missing is the first required guard c lacks, or "".
func missing(c guards.Chain, required []string) string {
	for _, id := range required {
		if _, ok := c.Lookup(id); !ok {
			return id
		}
	}
	return ""
}

// The chain sources LoadChain takes.
const (
	SourceEmbedded = guards.SourceEmbedded
	SourceImage    = "image"
	SourceAuto     = "auto"
)

// CopySelf installs the running binary at dst (mode 0555) through a temp
// file and a rename, so a reader never runs a partial copy. It is how the
// init container hands initguards to a second one that runs in the sandbox
// image.
func CopySelf(dst string) error {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("opening own binary: %w", err)
	}
	defer src.Close()
	dir, name := filepath.Split(dst)
	d, err := openDir(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer unix.Close(d.fd)
	tmp := "." + name + ".guardchain-copy"
	_ = unix.Unlinkat(d.fd, tmp, 0) // a copy an interrupted run left
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o700)
	if err != nil {
		return fmt.Errorf("%s: creating temp file: %w", dst, err)
	}
	f := os.NewFile(uintptr(fd), d.path(tmp))
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o555)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return fmt.Errorf("%s: installing own binary: %w", dst, unwrapPath(err))
	}
	return nil
}
