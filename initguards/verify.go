package initguards

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/guardchain/guardchain/guards"
)

// Problem is one thing wrong with a chain on disk.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// VerifyError lists every problem Verify found, one per line.
type VerifyError struct {
	Problems []Problem
}

func (e *VerifyError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Verify checks dir against files and policy and returns a *VerifyError that
// names every problem: missing, not a regular file, symlink, wrong bytes,
// wrong mode or owner, and a directory without the sticky bit where the policy
// requires it. It changes nothing.
func Verify(dir string, files []guards.File, pol Policy) error {
	d, err := openDir(dir)
	if err != nil {
		return &VerifyError{Problems: []Problem{{Path: dir, Reason: strings.TrimPrefix(err.Error(), dir+": ")}}}
	}
	defer unix.Close(d.fd)
	var probs []Problem
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		probs = append(probs, Problem{dir, "stat: " + err.Error()})
	} else if pol.StickyRequired && st.Mode&unix.S_ISVTX == 0 {
		probs = append(probs, Problem{dir, fmt.Sprintf("directory mode %04o has no sticky bit; any user could replace the guards", st.Mode&0o7777)})
	}
	for _, f := range files {
		if reason := d.check(f, pol); reason != "" {
			probs = append(probs, Problem{d.path(f.Name), reason})
		}
	}
	if len(probs) > 0 {
		return &VerifyError{Problems: probs}
	}
	return nil
}

func (d *chainDir) check(f guards.File, pol Policy) string {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, f.Name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return "missing"
	case err != nil:
		return "stat: " + err.Error()
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return "is a symlink, not a regular file"
	case unix.S_IFDIR:
		return "is a directory, not a regular file"
	default:
		return "is not a regular file"
	}
	var reasons []string
	if st.Mode&0o7777 != fileMode {
		reasons = append(reasons, fmt.Sprintf("mode %04o, want 0444", st.Mode&0o7777))
	}
	if int(st.Uid) != pol.UID {
		reasons = append(reasons, fmt.Sprintf("owned by uid %d, want %d", st.Uid, pol.UID))
	}
	if pol.GID >= 0 && int(st.Gid) != pol.GID {
		reasons = append(reasons, fmt.Sprintf("group %d, want %d", st.Gid, pol.GID))
	}
	got, err := d.read(f.Name, len(f.Data))
	switch {
	case err != nil:
		reasons = append(reasons, "reading: "+err.Error())
	case !bytes.Equal(got, f.Data):
		reasons = append(reasons, fmt.Sprintf("content differs from the chain (sha256 %x, want %x)", sha256.Sum256(got), sha256.Sum256(f.Data)))
	}
	return strings.Join(reasons, "; ")
}
