// Package initguards writes a rendered guard chain into a directory and checks
// one that is there. It knows nothing of Kubernetes: the init container's main
// (cmd/initguards) calls it with files from package guards.
package initguards

import (
	"fmt"
	"strconv"
	"strings"
)

// Policy says who owns the chain's files and how strict the directory must be.
type Policy struct {
	// UID owns every file.
	UID int
	// GID owns every file; -1 leaves the writer's group.
	GID int
	// StickyRequired makes a directory without the sticky bit an error: in the
	// root policy it is what keeps other users from replacing the guards.
	StickyRequired bool
}

// RootPolicy: root:root 0444 files in a 1777 directory, which the sandbox
// user cannot replace. Right only where NemoClaw's entrypoint runs as root:
// as the sandbox user its `mv -f` over a root-owned guard fails.
var RootPolicy = Policy{UID: 0, GID: 0, StickyRequired: true}

// DefaultOwnership is the stock NemoClaw images' sandbox user (998:998): its
// entrypoint replaces every guard with its own copy, which it can do over
// files it owns in a sticky /tmp, and so can an entrypoint that runs as root.
const DefaultOwnership = "uid:998:998"

// ParseOwnership parses "root", "uid:N" or "uid:N:G".
func ParseOwnership(s string) (Policy, error) {
	if s == "root" {
		return RootPolicy, nil
	}
	rest, ok := strings.CutPrefix(s, "uid:")
	if !ok {
		return Policy{}, fmt.Errorf("ownership %q: want root, uid:N or uid:N:G", s)
	}
	uidS, gidS, hasGID := strings.Cut(rest, ":")
	uid, err := parseID(uidS)
	if err != nil {
		return Policy{}, fmt.Errorf("ownership %q: uid %w", s, err)
	}
	p := Policy{UID: uid, GID: -1}
	if hasGID {
		if p.GID, err = parseID(gidS); err != nil {
			return Policy{}, fmt.Errorf("ownership %q: gid %w", s, err)
		}
	}
	return p, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a number from 0 to 4294967294", s)
	}
	return int(n), nil
}

// String is the inverse of ParseOwnership.
func (p Policy) String() string {
	switch {
	case p == RootPolicy:
		return "root"
	case p.GID >= 0:
		return fmt.Sprintf("uid:%d:%d", p.UID, p.GID)
	default:
		return fmt.Sprintf("uid:%d", p.UID)
	}
}
