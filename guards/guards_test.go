package guards

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestManifestMatchesEmbeddedFiles(t *testing.T) {
	entries, err := fs.ReadDir(files, "js")
	if err != nil {
		t.Fatal(err)
	}
	var embedded []string
	for _, e := range entries {
		embedded = append(embedded, e.Name())
	}
	var named []string
	for _, g := range Default().Guards {
		named = append(named, g.Name)
		if len(g.Bytes) == 0 {
			t.Errorf("%s is empty", g.Name)
		}
	}
	if diff := cmp.Diff(embedded, slices.Sorted(slices.Values(named))); diff != "" {
		t.Errorf("embedded files vs manifest (-embedded +manifest):\n%s", diff)
	}
	if first := Default().Guards[0].ID; first != "safety-net" {
		t.Errorf("first guard is %s; the safety net must load first", first)
	}
	want := []string{"safety-net", "http-proxy-fix", "nemotron-inference-fix", "ciao-network-guard"}
	if diff := cmp.Diff(want, Default().DefaultRequired()); diff != "" {
		t.Errorf("default required (-want +got):\n%s", diff)
	}
	want = append(want, "slack-channel-guard")
	if diff := cmp.Diff(want, Default().Requirable()); diff != "" {
		t.Errorf("requirable (-want +got):\n%s", diff)
	}
	// A retired guard is never required by default, and its file is still
	// written (it is among the embedded files above).
	for _, g := range Default().Guards {
		if g.Retired != "" && (g.DefaultRequired || strings.Contains(g.Retired, "\n")) {
			t.Errorf("retired guard %s: required by default %v, reason %q (one line)", g.ID, g.DefaultRequired, g.Retired)
		}
	}
}

func TestSHA256ChangesWithAnyByteOrOrder(t *testing.T) {
	base := Default()
	sum := base.SHA256()
	if len(sum) != 64 || sum != Default().SHA256() {
		t.Fatalf("sha256 %q is not a stable hex digest", sum)
	}
	changed := Default()
	changed.Guards[3].Bytes = append([]byte(nil), changed.Guards[3].Bytes...)
	changed.Guards[3].Bytes[10] ^= 1
	swapped := Default()
	swapped.Guards[1], swapped.Guards[2] = swapped.Guards[2], swapped.Guards[1]
	// Moving a byte from one file's end to the next one's name must not collide.
	shifted := Chain{Guards: []Guard{{Name: "a", Bytes: []byte("bc")}, {Name: "d", Bytes: nil}}}
	shifted2 := Chain{Guards: []Guard{{Name: "a", Bytes: []byte("b")}, {Name: "cd", Bytes: nil}}}
	for name, c := range map[string]Chain{"byte": changed, "order": swapped} {
		if c.SHA256() == sum {
			t.Errorf("%s change kept the same sha256", name)
		}
	}
	if shifted.SHA256() == shifted2.SHA256() {
		t.Error("concatenation collision")
	}
}

func TestValidateRequired(t *testing.T) {
	c := Default()
	tests := []struct {
		ids     []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"slack-channel-guard", "safety-net"}, ""},
		{[]string{"safety-nett"}, `unknown guard "safety-nett" (known: safety-net, http-proxy-fix`},
		{[]string{"safety-net", "safety-net"}, `guard "safety-net" listed twice`},
		{[]string{"safety-net", "slack-token-rewriter"}, `guard "slack-token-rewriter" is retired: OpenShell resolves the xoxb-/xapp-OPENSHELL-RESOLVE-ENV- placeholders itself`},
	}
	for _, tt := range tests {
		err := c.ValidateRequired(tt.ids)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ValidateRequired(%v) = %v, want %q", tt.ids, err, tt.wantErr)
		}
	}
}
