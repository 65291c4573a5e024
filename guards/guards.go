// Package guards is the guard chain as data: the Node preload scripts, their
// order and conditions, the rendered proxy-env.sh, and the chain's sha256.
// It does no I/O beyond its embedded files.
package guards

import (
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
)

//go:embed js/*.js
var files embed.FS

// ProxyEnvName is the file that entrypoints source; it is written last, so its
// presence means the whole chain is in place.
const ProxyEnvName = "nemoclaw-proxy-env.sh"

// Guard is one preload script of the chain.
type Guard struct {
	// ID is the short name used in configuration ("safety-net").
	ID string
	// Name is the staged file name in the chain directory.
	Name string
	// DefaultRequired says whether NODE_OPTIONS names it unless configured otherwise.
	DefaultRequired bool
	// OnlyIfEnv, when set, is an environment variable that must equal OnlyIfValue
	// at source time for the guard to be added to NODE_OPTIONS.
	OnlyIfEnv, OnlyIfValue string
	// Retired, when set, says why the guard may no longer be required. Its
	// file is still written, and does nothing, because a NODE_OPTIONS that an
	// earlier release wrote (a pod's env, an offline-injected manifest) may
	// still name it, and a --require of a missing file stops every Node process.
	Retired string
	// Bytes is the script itself.
	Bytes []byte
}

// Chain is the ordered set of guards. The order is the load order.
type Chain struct {
	Guards []Guard
	// Source says where the guards come from: SourceEmbedded, or the
	// directory of an image's packaged preloads.
	Source string
}

// SourceEmbedded names the chain built into this release.
const SourceEmbedded = "embedded"

// manifest is the load order of GUARDS.md; the safety net must be first.
var manifest = []Guard{
	{ID: "safety-net", Name: "nemoclaw-sandbox-safety-net.js", DefaultRequired: true},
	{ID: "http-proxy-fix", Name: "nemoclaw-http-proxy-fix.js", DefaultRequired: true, OnlyIfEnv: "NODE_USE_ENV_PROXY", OnlyIfValue: "1"},
	{ID: "nemotron-inference-fix", Name: "nemoclaw-nemotron-inference-fix.js", DefaultRequired: true},
	{ID: "ciao-network-guard", Name: "nemoclaw-ciao-network-guard.js", DefaultRequired: true},
	{ID: "slack-token-rewriter", Name: "nemoclaw-slack-token-rewriter.js",
		Retired: "OpenShell resolves the xoxb-/xapp-OPENSHELL-RESOLVE-ENV- placeholders itself, and NemoClaw fails a sandbox whose NODE_OPTIONS names it; remove it from the required guards"},
	{ID: "slack-channel-guard", Name: "nemoclaw-slack-channel-guard.js"},
}

// Default returns the embedded chain. The Guards slice is the caller's own;
// the Bytes are shared and read-only.
func Default() Chain {
	return Chain{Guards: slices.Clone(embedded().Guards), Source: SourceEmbedded}
}

// DefaultSHA256 is Default().SHA256(), computed once: it is on the admission path.
var DefaultSHA256 = sync.OnceValue(func() string { return embedded().SHA256() })

var embedded = sync.OnceValue(func() Chain {
	c := Chain{Guards: make([]Guard, len(manifest)), Source: SourceEmbedded}
	for i, g := range manifest {
		b, err := files.ReadFile("js/" + g.Name)
		if err != nil {
			// The manifest and the embedded files are built together; a
			// mismatch is a build defect that tests catch, not a runtime input.
			panic(fmt.Sprintf("guards: embedded file %s missing: %v", g.Name, err))
		}
		g.Bytes = b
		c.Guards[i] = g
	}
	return c
})

// IDs lists the guard IDs in chain order.
func (c Chain) IDs() []string {
	ids := make([]string, len(c.Guards))
	for i, g := range c.Guards {
		ids[i] = g.ID
	}
	return ids
}

// Requirable lists the IDs that may be required, in chain order: all but
// the retired ones.
func (c Chain) Requirable() []string {
	var ids []string
	for _, g := range c.Guards {
		if g.Retired == "" {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// DefaultRequired lists the IDs required unless configured otherwise.
func (c Chain) DefaultRequired() []string {
	var ids []string
	for _, g := range c.Guards {
		if g.DefaultRequired {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// Lookup finds a guard by ID.
func (c Chain) Lookup(id string) (Guard, bool) {
	for _, g := range c.Guards {
		if g.ID == id {
			return g, true
		}
	}
	return Guard{}, false
}

// ValidateRequired checks that every ID names a guard of the chain that is
// not retired and that none repeats, so a typo never silently drops a guard.
func (c Chain) ValidateRequired(ids []string) error {
	seen := map[string]bool{}
	for _, id := range ids {
		g, ok := c.Lookup(id)
		if !ok {
			return fmt.Errorf("unknown guard %q (known: %s)", id, strings.Join(c.Requirable(), ", "))
		}
		if g.Retired != "" {
			return fmt.Errorf("guard %q is retired: %s", id, g.Retired)
		}
		if seen[id] {
			return fmt.Errorf("guard %q listed twice", id)
		}
		seen[id] = true
	}
	return nil
}

// SHA256 identifies the chain: the hash over each guard's name and bytes, in
// order, with lengths so no two different chains can collide by concatenation.
func (c Chain) SHA256() string {
	h := sha256.New()
	var n [8]byte
	for _, g := range c.Guards {
		for _, part := range [][]byte{[]byte(g.Name), g.Bytes} {
			binary.BigEndian.PutUint64(n[:], uint64(len(part)))
			h.Write(n[:])
			h.Write(part)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
