package initguards

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// What the webhook renders is what initguards reads back, for every shape
// of settings; the environment carries nothing else.
func TestSettingsRoundTripThroughTheEnvironment(t *testing.T) {
	for _, s := range []Settings{
		{Dir: "/tmp", Ownership: "uid:1000:1000", OwnershipFrom: "env OPENSHELL_SANDBOX_UID of container agent", Source: SourceAuto,
			PreloadsDir: "/usr/local/lib/nemoclaw/preloads", ProxyHost: "10.200.0.1", ProxyPort: "3128", Require: "safety-net,http-proxy-fix",
			CacheRedirects: "all", GitSSLCAInfo: "/etc/ssl/ca.pem", TerminationLog: "/dev/termination-log"},
		{Dir: "/tmp", Ownership: "root", Source: SourceEmbedded, ProxyHost: "proxy", ProxyPort: "8080", Require: "none", CacheRedirects: "none"},
		{},
	} {
		env := map[string]string{}
		for _, e := range s.Env() {
			if _, dup := env[e.Name]; dup {
				t.Errorf("%s written twice", e.Name)
			}
			if !strings.HasPrefix(e.Name, EnvPrefix) || !slices.Contains(EnvNames(), e.Name) {
				t.Errorf("%s is not one of EnvNames", e.Name)
			}
			env[e.Name] = e.Value
		}
		got, set := SettingsFromEnv(func(n string) (string, bool) { v, ok := env[n]; return v, ok })
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("read back differently (-rendered +read):\n%s", diff)
		}
		if len(set) != len(env) {
			t.Errorf("found %d variables of %d", len(set), len(env))
		}
		if _, ok := env[EnvPreloadsDir]; ok != (s.PreloadsDir != "") {
			t.Errorf("PRELOADS_DIR written %v for %q", ok, s.PreloadsDir)
		}
		if _, ok := env[EnvGitSSLCAInfo]; !ok {
			t.Error("GIT_SSL_CAINFO left out: an image's ENV would choose it")
		}
	}
}

// Every variable named here is one initguards reads: no name in the
// command's source but through these constants.
func TestEnvNamesAreTheOnlyNamesInitguardsReads(t *testing.T) {
	src, err := os.ReadFile("../cmd/initguards/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), `"`+EnvPrefix) {
		t.Error("cmd/initguards names a GUARDCHAIN_ variable as a literal; use the initguards.Env* constants")
	}
	if len(EnvNames()) != 11 {
		t.Errorf("EnvNames has %d names", len(EnvNames()))
	}
}
