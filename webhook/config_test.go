package webhook

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"empty keeps defaults", "", ""},
		{"full", "initImage: reg/x@sha256:abc\nimagePullPolicy: Always\nownership: uid:1000\nvolume: {medium: Memory, sizeLimit: 8Mi}\ncontainers: [agent, gateway]\nnodeOptions: append\nconflict: skip\nproxy: {host: proxy.local, port: 8080}\nrequiredGuards: [safety-net]\ncacheRedirects: none\nallowedOverrides: [require]\nnamespaceOptOutLabel: guardchain.dev/inject\n", ""},
		{"unknown field", "initimage: x\n", `parsing config: unknown field "initimage"`},
		{"bad pull policy", "imagePullPolicy: Sometimes\n", `config imagePullPolicy: "Sometimes": want Always, IfNotPresent or Never`},
		{"bad ownership", "ownership: nobody\n", `config ownership: ownership "nobody": want root, uid:N or uid:N:G`},
		{"bad medium", "volume: {medium: HugePages}\n", `config volume.medium: "HugePages": want "" or Memory`},
		{"zero size", "volume: {sizeLimit: 0}\n", "config volume.sizeLimit: must be positive"},
		{"no containers", "containers: []\n", "config containers: names no container"},
		{"bad container", "containers: [Agent_1]\n", `config containers: "Agent_1": a lowercase RFC 1123 label`},
		{"bad node options", "nodeOptions: prepend\n", `config nodeOptions: "prepend": want off or append`},
		{"bad conflict", "conflict: ignore\n", `config conflict: "ignore": want deny or skip`},
		{"bad host", "proxy: {host: 'a b', port: 1}\n", `config proxy.host: proxy host "a b" is neither`},
		{"bad port", "proxy: {host: a, port: 0}\n", "config proxy.port: proxy port 0 is outside 1-65535"},
		{"bad guard", "requiredGuards: [ciao]\n", `config requiredGuards: unknown guard "ciao"`},
		{"retired guard", "requiredGuards: [safety-net, slack-token-rewriter]\n", `config requiredGuards: guard "slack-token-rewriter" is retired: OpenShell resolves`},
		{"bad redirect", "cacheRedirects: HOME\n", `config gitSSLCAInfo/cacheRedirects: unknown cache redirect "HOME"`},
		{"bad override", "allowedOverrides: [image]\n", `config allowedOverrides: unknown override "image"`},
		{"bad label", "namespaceOptOutLabel: 'a b'\n", `config namespaceOptOutLabel: "a b"`},
		{"request over limit", "resources: {requests: {memory: 1Gi}, limits: {memory: 1Mi}}\n", "config resources: request memory 1Gi exceeds limit 1Mi"},
		{"bad image", "initImage: ''\n", `config initImage: "" is not an image reference`},
		{"bad writer", "writer: nobody\n", `config writer: "nobody": want auto, root or owner`},
		{"bad source", "source: registry\n", `config source: "registry": want embedded, image or auto`},
		{"relative preloads dir", "preloadsDir: usr/lib\n", `config preloadsDir: "usr/lib": want a clean absolute path`},
		{"root preloads dir", "preloadsDir: /\n", `config preloadsDir: "/": want a clean absolute path`},
		{"sources and writers", "writer: owner\nsource: image\npreloadsDir: /opt/preloads\nallowedOverrides: [source, writer]\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line starting %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(Config{}, cfg); diff != "" {
				t.Errorf("a failed parse returned a config:\n%s", diff)
			}
		})
	}
	cfg, _ := ParseConfig(nil)
	if diff := cmp.Diff(Default(), cfg); diff != "" {
		t.Errorf("empty config differs from Default (-default +parsed):\n%s", diff)
	}
}

// The defaults suit stock NemoClaw images (GUARDS.md): the sandbox user owns
// the chain, the image's preloads are staged where it has them, and /tmp is
// not capped: it holds the tool caches (npm, pip, XDG) that the writable layer
// it replaces held without a limit, and a capped emptyDir gets the pod evicted.
func TestDefaultSuitsStockNemoClawImages(t *testing.T) {
	d := Default()
	if d.Ownership != OwnershipAuto || d.Writer != WriterAuto || d.Source != SourceAuto || d.PreloadsDir != "/usr/local/lib/nemoclaw/preloads" {
		t.Errorf("defaults ownership %s, writer %s, source %s, preloadsDir %s", d.Ownership, d.Writer, d.Source, d.PreloadsDir)
	}
	if d.Volume.SizeLimit != nil {
		t.Errorf("the default /tmp is capped at %s; a sandbox that installs packages gets evicted", d.Volume.SizeLimit)
	}
	if d.CacheRedirects != "all" {
		t.Errorf("cacheRedirects %q", d.CacheRedirects)
	}
}
