package guards

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// PackagedDir is where NemoClaw sandbox images package their preloads; the
// entrypoint stages each PackagedDir/X.js as /tmp/nemoclaw-X.js.
const PackagedDir = "/usr/local/lib/nemoclaw/preloads"

// StagedPrefix turns a packaged preload's name into its staged name.
const StagedPrefix = "nemoclaw-"

// Limits on a packaged preload set: far above NemoClaw's (a handful of files
// of a few KiB), low enough that reading them stays within the init
// container's memory limit and their names within the 4 KiB termination
// message.
const (
	MaxPreloads     = 32
	MaxPreloadBytes = 256 << 10
)

// Staged names go unquoted into NODE_OPTIONS and proxy-env.sh (where
// NemoClaw's restore script greps for the literal "--require PATH").
var (
	preloadName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,59}\.js$`)
	stagedName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ValidateStagedName accepts a file name safe to name unquoted in NODE_OPTIONS.
func ValidateStagedName(name string) error {
	if !stagedName.MatchString(name) {
		return fmt.Errorf("guard file name %q must be letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

// Preload is one packaged preload file: its name in PackagedDir and its bytes.
type Preload struct {
	Name  string
	Bytes []byte
}

// FromPreloads is the chain an image packages: each X.js staged as
// nemoclaw-X.js. Guards this release knows keep their ID, their condition
// and NemoClaw's core order; the others (channel preloads) follow by name,
// with ID X. It does no I/O: initguards reads the files.
func FromPreloads(source string, ps []Preload) (Chain, error) {
	if len(ps) == 0 {
		return Chain{}, fmt.Errorf("%s: no preloads (*.js) to stage", source)
	}
	if len(ps) > MaxPreloads {
		return Chain{}, fmt.Errorf("%s: %d preloads, more than %d", source, len(ps), MaxPreloads)
	}
	known := map[string]Guard{}
	for _, g := range manifest {
		known[g.Name] = g
	}
	var core, extra []Guard
	ids := map[string]string{}
	for _, p := range ps {
		if !preloadName.MatchString(p.Name) {
			return Chain{}, fmt.Errorf("%s/%s: a preload name must be lower-case letters, digits, '.', '_' and '-', ending in .js", source, p.Name)
		}
		if len(p.Bytes) > MaxPreloadBytes {
			return Chain{}, fmt.Errorf("%s/%s: %d bytes, more than %d", source, p.Name, len(p.Bytes), MaxPreloadBytes)
		}
		g, ok := known[StagedPrefix+p.Name]
		if !ok {
			g = Guard{ID: strings.TrimSuffix(p.Name, ".js"), Name: StagedPrefix + p.Name}
		}
		if other, taken := ids[g.ID]; taken {
			return Chain{}, fmt.Errorf("%s: %s and %s both give guard id %q", source, other, p.Name, g.ID)
		}
		ids[g.ID] = p.Name
		g.Bytes = p.Bytes
		if ok {
			core = append(core, g)
		} else {
			extra = append(extra, g)
		}
	}
	order := func(g Guard) int {
		return slices.IndexFunc(manifest, func(m Guard) bool { return m.Name == g.Name })
	}
	slices.SortFunc(core, func(a, b Guard) int { return order(a) - order(b) })
	slices.SortFunc(extra, func(a, b Guard) int { return strings.Compare(a.Name, b.Name) })
	return Chain{Guards: append(core, extra...), Source: source}, nil
}
