package initguards

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
)

// fileMode is the only mode a chain file may have.
const fileMode = 0o444

// dirMode is world-writable with the sticky bit, as /tmp always is.
const dirMode = 0o1777

// Result says what Emit did.
type Result struct {
	Written   []string
	Unchanged []string
	// Warnings are conditions that do not break the policy, one line each.
	Warnings []string
}

// Emit writes files into dir under policy: every file through a temp file in
// the same directory (O_EXCL|O_NOFOLLOW), fsync, chown, chmod 0444 and rename,
// so a reader sees either the old or the new file, never a part. Nothing is
// renamed until every file is staged, and the last file (proxy-env.sh) goes in
// last, so a failure leaves either the previous complete chain or no
// proxy-env.sh. A file that is already right is left alone.
func Emit(ctx context.Context, dir string, files []guards.File, pol Policy) (Result, error) {
	var res Result
	if len(files) == 0 {
		return res, errors.New("emit: the chain has no files")
	}
	d, err := openDir(dir)
	if err != nil {
		return res, err
	}
	defer unix.Close(d.fd)

	if err := d.ensureSticky(pol, &res); err != nil {
		return res, err
	}

	staged := make([]string, len(files)) // temp name per file; "" when unchanged
	cleanup := func() {
		for _, tmp := range staged {
			if tmp != "" {
				_ = unix.Unlinkat(d.fd, tmp, 0)
			}
		}
	}
	guardsDamaged := false
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			cleanup()
			return res, fmt.Errorf("emit: %w", err)
		}
		ok, err := d.isCurrent(f, pol)
		if err != nil {
			cleanup()
			return res, d.failed(err, guardsDamaged, files)
		}
		if ok {
			res.Unchanged = append(res.Unchanged, f.Name)
			continue
		}
		if i < len(files)-1 {
			guardsDamaged = true
		}
		if staged[i], err = d.stage(f, pol); err != nil {
			cleanup()
			return res, d.failed(err, guardsDamaged, files)
		}
	}

	for i, f := range files {
		if staged[i] == "" {
			continue
		}
		if err := unix.Renameat(d.fd, staged[i], d.fd, f.Name); err != nil {
			cleanup()
			// Some guards may already be new: the chain is mixed, so its
			// completeness marker must go.
			return res, d.failed(fmt.Errorf("%s: replacing: %w", d.path(f.Name), err), true, files)
		}
		staged[i] = ""
		res.Written = append(res.Written, f.Name)
	}
	if err := unix.Fsync(d.fd); err != nil {
		return res, fmt.Errorf("%s: syncing directory: %w", dir, err)
	}
	return res, nil
}

// chainDir is an open chain directory; every file operation is relative to
// its descriptor, so a directory swapped under us cannot redirect a write.
type chainDir struct {
	fd   int
	name string
}

func openDir(dir string) (*chainDir, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("%s: chain directory must be an absolute path", dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		isLink := unix.Lstat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
		switch {
		case isLink || errors.Is(err, unix.ELOOP):
			return nil, fmt.Errorf("%s: chain directory is a symlink; refusing to follow it", dir)
		case errors.Is(err, unix.ENOTDIR):
			return nil, fmt.Errorf("%s: chain directory is not a directory", dir)
		}
		return nil, fmt.Errorf("%s: opening chain directory: %w", dir, err)
	}
	return &chainDir{fd: fd, name: dir}, nil
}

func (d *chainDir) path(name string) string { return filepath.Join(d.name, name) }

func (d *chainDir) ensureSticky(pol Policy, res *Result) error {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return fmt.Errorf("%s: stat: %w", d.name, err)
	}
	if st.Mode&0o7777 == dirMode {
		return nil
	}
	err := unix.Fchmod(d.fd, dirMode)
	if err == nil {
		return nil
	}
	if pol.StickyRequired {
		return fmt.Errorf("%s: making the directory sticky (1777): %w", d.name, err)
	}
	// A non-root writer cannot chmod the kubelet's root-owned emptyDir; in the
	// uid policy the files are the writer's own, so this only weakens sharing.
	res.Warnings = append(res.Warnings, fmt.Sprintf("%s: directory mode %04o left as is (cannot make it 1777: %v)", d.name, st.Mode&0o7777, err))
	return nil
}

// isCurrent reports whether name already holds f's bytes with the policy's
// owner and mode. A directory at the target is an error; anything else that
// is not right (symlink, FIFO, other bytes) is to be replaced.
func (d *chainDir) isCurrent(f guards.File, pol Policy) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, f.Name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: stat: %w", d.path(f.Name), err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, fmt.Errorf("%s: is a directory; refusing to replace it", d.path(f.Name))
	case st.Mode&unix.S_IFMT != unix.S_IFREG,
		st.Mode&0o7777 != fileMode,
		int(st.Uid) != pol.UID,
		pol.GID >= 0 && int(st.Gid) != pol.GID,
		st.Size != int64(len(f.Data)):
		return false, nil
	}
	got, err := d.read(f.Name, len(f.Data))
	if err != nil {
		return false, nil //nolint:nilerr // unreadable: rewrite it
	}
	return bytes.Equal(got, f.Data), nil
}

func (d *chainDir) read(name string, size int) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.path(name))
	defer f.Close()
	// One byte more than expected tells a longer file from a right one.
	return io.ReadAll(io.LimitReader(f, int64(size)+1))
}

// stage writes f to a new temp file, ready to be renamed into place.
func (d *chainDir) stage(f guards.File, pol Policy) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("making a temp name: %w", err)
	}
	tmp := "." + f.Name + ".guardchain-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("%s: creating temp file: %w", d.path(f.Name), err)
	}
	file := os.NewFile(uintptr(fd), d.path(tmp))
	err = writeSync(file, f.Data, pol)
	if cerr := file.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return "", fmt.Errorf("%s: %w", d.path(f.Name), err)
	}
	return tmp, nil
}

func writeSync(f *os.File, data []byte, pol Policy) error {
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing: %w", unwrapPath(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing: %w", unwrapPath(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	gid := -1
	if pol.GID >= 0 && int(st.Gid) != pol.GID {
		gid = pol.GID
	}
	if int(st.Uid) != pol.UID || gid >= 0 {
		if err := unix.Fchown(int(f.Fd()), pol.UID, gid); err != nil {
			return fmt.Errorf("chown to %d:%d: %w", pol.UID, gid, err)
		}
	}
	if err := unix.Fchmod(int(f.Fd()), fileMode); err != nil {
		return fmt.Errorf("chmod 0444: %w", err)
	}
	return nil
}

// unwrapPath drops *PathError's temp-file name, which says nothing to a user.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// failed removes the completeness marker when the guards on disk may no
// longer form the previous chain, and passes err on.
func (d *chainDir) failed(err error, guardsDamaged bool, files []guards.File) error {
	if guardsDamaged {
		marker := files[len(files)-1].Name
		var st unix.Stat_t
		if unix.Fstatat(d.fd, marker, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return err // no marker to remove (a read-only mount says EROFS even for none)
		}
		if rmErr := unix.Unlinkat(d.fd, marker, 0); rmErr != nil && !errors.Is(rmErr, unix.ENOENT) {
			return fmt.Errorf("%w (and removing %s failed: %v)", err, d.path(marker), rmErr) //nolint:errorlint // the removal's error is context, not a cause
		}
	}
	return err
}
