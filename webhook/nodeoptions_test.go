package webhook

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// NODE_OPTIONS is read as the real node binary reads it: for each value, the
// files hasRequire finds among nodeOptionsTokens are the files node loads.
func TestNodeOptionsTokensAreWhatNodeReads(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.js"), filepath.Join(dir, "b.js")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, value := range []string{
		"",
		"--require " + a,
		"--require=" + a + " -r " + b,
		`--title=" --require ` + a + ` "`,
		`--title=" --require ` + a + ` " --require ` + b,
		`--title="x \" --require ` + a + `"`,
		`--require "` + a + `"`,
		`"--require" ` + b,
		`--title=x  --require ` + a,
		"--max-old-space-size=64  --require " + b,
	} {
		tokens, err := nodeOptionsTokens(value)
		if err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		var want []string
		for _, f := range []string{a, b} {
			if hasRequire(tokens, f) {
				want = append(want, f)
			}
		}
		cmd := exec.Command("node", "-e", "console.log(JSON.stringify(Object.keys(require.cache)))")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NODE_OPTIONS=" + value}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node with NODE_OPTIONS %q: %v\n%s", value, err, out)
		}
		var loaded []string
		if err := json.Unmarshal(out, &loaded); err != nil {
			t.Fatalf("%q: %v: %s", value, err, out)
		}
		got := slices.DeleteFunc(loaded, func(f string) bool { return f != a && f != b })
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("NODE_OPTIONS %q: node loaded %v, the webhook reads %v", value, got, want)
		}
	}
	// What node refuses, the webhook does not edit.
	for _, bad := range []string{`--title="open`, `--title="x\`} {
		if _, err := nodeOptionsTokens(bad); err == nil {
			t.Errorf("%q parsed; node refuses it", bad)
		}
		cmd := exec.Command("node", "-e", "")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NODE_OPTIONS=" + bad}
		if cmd.Run() == nil {
			t.Errorf("node accepted NODE_OPTIONS %q", bad)
		}
	}
	// A token re-quoted reads back as itself.
	for _, tok := range []string{"plain", "with space", `q"uote`, `back\slash`, `--title=a b "c"`} {
		got, err := nodeOptionsTokens(quoteNodeToken(tok))
		if err != nil || len(got) != 1 || got[0] != tok {
			t.Errorf("quoteNodeToken(%q) reads back as %q (%v)", tok, got, err)
		}
	}
}
