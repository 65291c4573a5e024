package guards

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"
)

// CacheRedirect points one tool's cache or state file into the chain
// directory, because the sandbox's home is read-only or shared.
type CacheRedirect struct {
	Var  string
	Path string // relative to the chain directory
}

// cacheRedirects is the GUARDS.md list, in the order it is rendered.
var cacheRedirects = []CacheRedirect{
	{"npm_config_cache", ".npm"},
	{"XDG_CACHE_HOME", ".cache"},
	{"XDG_CONFIG_HOME", ".config"},
	{"XDG_DATA_HOME", ".local/share"},
	{"XDG_STATE_HOME", ".local/state"},
	{"XDG_RUNTIME_DIR", ".runtime"},
	{"NODE_REPL_HISTORY", ".node_repl_history"},
	{"HISTFILE", ".sh_history"},
	{"GIT_CONFIG_GLOBAL", ".gitconfig"},
	{"GNUPGHOME", ".gnupg"},
	{"PYTHONUSERBASE", ".local"},
	{"PYTHON_HISTORY", ".python_history"},
	{"npm_config_prefix", ".npm-global"},
}

// CacheRedirectVars lists every redirect variable, in rendered order.
func CacheRedirectVars() []string {
	vars := make([]string, len(cacheRedirects))
	for i, r := range cacheRedirects {
		vars[i] = r.Var
	}
	return vars
}

// Options are the inputs of proxy-env.sh. Every field is validated by Render.
type Options struct {
	// Dir is the chain directory as the gateway sees it (the emptyDir at /tmp).
	Dir       string
	ProxyHost string
	ProxyPort int
	// Required lists guard IDs that NODE_OPTIONS names, in any order; they are
	// rendered in chain order.
	Required []string
	// GitSSLCAInfo, when set, is exported as GIT_SSL_CAINFO.
	GitSSLCAInfo string
	// CacheRedirects lists the redirect variables to export (see CacheRedirectVars).
	CacheRedirects []string
}

// Defaults for Options, from GUARDS.md.
const (
	DefaultDir       = "/tmp"
	DefaultProxyHost = "10.200.0.1"
	DefaultProxyPort = 3128
)

// DefaultOptions returns the options for the chain with GUARDS.md's defaults.
func (c Chain) DefaultOptions() Options {
	return Options{
		Dir:            DefaultDir,
		ProxyHost:      DefaultProxyHost,
		ProxyPort:      DefaultProxyPort,
		Required:       c.DefaultRequired(),
		CacheRedirects: CacheRedirectVars(),
	}
}

var (
	hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// Chain paths go into NODE_OPTIONS, which Node splits on spaces, so they
	// are kept to a conservative character set.
	safePath = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
)

// ValidateHost accepts an IP address or a DNS host name (RFC 1123).
func ValidateHost(h string) error {
	if h == "" {
		return errors.New("proxy host is empty")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("proxy host %.40q... is longer than 253 characters", h)
	}
	for _, l := range strings.Split(strings.ToLower(h), ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("proxy host %q is neither an IP address nor a DNS name", h)
		}
	}
	return nil
}

// ValidatePort accepts 1-65535.
func ValidatePort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("proxy port %d is outside 1-65535", p)
	}
	return nil
}

// ValidateDir accepts a clean absolute path of safe characters.
func ValidateDir(d string) error {
	if !safePath.MatchString(d) || path.Clean(d) != d {
		return fmt.Errorf("chain directory %q must be a clean absolute path of letters, digits, '.', '_', '-' and '/'", d)
	}
	return nil
}

// Validate checks every option against the chain and names the bad one.
func (c Chain) Validate(o Options) error {
	if err := ValidateDir(o.Dir); err != nil {
		return err
	}
	if err := ValidateHost(o.ProxyHost); err != nil {
		return err
	}
	if err := ValidatePort(o.ProxyPort); err != nil {
		return err
	}
	if err := c.ValidateRequired(o.Required); err != nil {
		return fmt.Errorf("required guards: %w", err)
	}
	for _, g := range c.Guards {
		if err := ValidateStagedName(g.Name); err != nil {
			return err
		}
	}
	if o.GitSSLCAInfo != "" {
		if !path.IsAbs(o.GitSSLCAInfo) || strings.ContainsAny(o.GitSSLCAInfo, "\x00\n\r") {
			return fmt.Errorf("GIT_SSL_CAINFO %q must be an absolute path on one line", o.GitSSLCAInfo)
		}
	}
	known := map[string]bool{}
	for _, r := range cacheRedirects {
		known[r.Var] = true
	}
	for _, v := range o.CacheRedirects {
		if !known[v] {
			return fmt.Errorf("unknown cache redirect %q (known: %s)", v, strings.Join(CacheRedirectVars(), ", "))
		}
	}
	return nil
}

// ShellQuote quotes s for POSIX sh so that it is always one literal word.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ProxyURL is the http:// URL of the proxy, with IPv6 hosts bracketed.
func ProxyURL(host string, port int) string {
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(port)))
}

// RenderProxyEnv renders nemoclaw-proxy-env.sh. The output depends only on the
// chain and the options, so the same inputs always give the same bytes.
func (c Chain) RenderProxyEnv(o Options) ([]byte, error) {
	if err := c.Validate(o); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by guardchain initguards; do not edit. Guard chain sha256: %s\n", c.SHA256())
	b.WriteString("# Sourced by sandbox entrypoints. Sourcing it again leaves the environment unchanged.\n")

	proxy := ShellQuote(ProxyURL(o.ProxyHost, o.ProxyPort))
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		fmt.Fprintf(&b, "export %s=%s\n", v, proxy)
	}
	noProxy := ShellQuote("localhost,127.0.0.1,::1," + o.ProxyHost)
	fmt.Fprintf(&b, "export NO_PROXY=%s\nexport no_proxy=%s\n", noProxy, noProxy)
	if o.GitSSLCAInfo != "" {
		fmt.Fprintf(&b, "export GIT_SSL_CAINFO=%s\n", ShellQuote(o.GitSSLCAInfo))
	}

	// The required guards are appended as one suffix, unless NODE_OPTIONS
	// already ends with it (this file was sourced before). An existing value
	// is never read for tokens: Node parses it with quotes ("--title=\"
	// --require X\"" names no file), and the same --require given twice is
	// loaded once, so appending is always safe. A suffix inside an
	// unterminated quote makes Node refuse to start: it fails closed. Each
	// line carries the literal "--require PATH" text, which NemoClaw's
	// restore script greps for; the paths need no quoting (Validate keeps
	// them to safe characters).
	b.WriteString("__guardchain_s=\n")
	required := map[string]bool{}
	for _, id := range o.Required {
		required[id] = true
	}
	for _, g := range c.Guards {
		if !required[g.ID] {
			continue
		}
		add := "__guardchain_s=\"${__guardchain_s:+$__guardchain_s }--require " + path.Join(o.Dir, g.Name) + "\""
		if g.OnlyIfEnv != "" {
			fmt.Fprintf(&b, "if [ \"${%s-}\" = %s ]; then %s; fi\n", g.OnlyIfEnv, ShellQuote(g.OnlyIfValue), add)
		} else {
			b.WriteString(add + "\n")
		}
	}
	b.WriteString(`if [ -n "$__guardchain_s" ]; then
  case "${NODE_OPTIONS-}" in
    "$__guardchain_s" | *" $__guardchain_s") ;;
    *) NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }$__guardchain_s" ;;
  esac
fi
unset __guardchain_s
if [ -n "${NODE_OPTIONS-}" ]; then export NODE_OPTIONS; fi
`)

	enabled := map[string]bool{}
	for _, v := range o.CacheRedirects {
		enabled[v] = true
	}
	for _, r := range cacheRedirects {
		if enabled[r.Var] {
			fmt.Fprintf(&b, "export %s=%s\n", r.Var, ShellQuote(path.Join(o.Dir, r.Path)))
		}
	}
	return b.Bytes(), nil
}

// File is one file of a rendered chain.
type File struct {
	Name string
	Data []byte
}

// Files is the whole chain as written to disk: every guard (required or not,
// so a stale NODE_OPTIONS never names a missing file) and proxy-env.sh last.
func (c Chain) Files(o Options) ([]File, error) {
	env, err := c.RenderProxyEnv(o)
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(c.Guards)+1)
	for _, g := range c.Guards {
		out = append(out, File{Name: g.Name, Data: g.Bytes})
	}
	return append(out, File{Name: ProxyEnvName, Data: env}), nil
}
