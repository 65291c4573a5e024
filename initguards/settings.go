package initguards

// The environment guardchain-init is configured by: the webhook renders it
// (Settings.Env), initguards reads it (SettingsFromEnv), and the backstop
// pins it (EnvNames). Each variable is named here only.
const (
	EnvDir            = "GUARDCHAIN_DIR"
	EnvOwnership      = "GUARDCHAIN_OWNERSHIP"
	EnvOwnershipFrom  = "GUARDCHAIN_OWNERSHIP_FROM"
	EnvSource         = "GUARDCHAIN_SOURCE"
	EnvPreloadsDir    = "GUARDCHAIN_PRELOADS_DIR"
	EnvProxyHost      = "GUARDCHAIN_PROXY_HOST"
	EnvProxyPort      = "GUARDCHAIN_PROXY_PORT"
	EnvRequire        = "GUARDCHAIN_REQUIRE"
	EnvCacheRedirects = "GUARDCHAIN_CACHE_REDIRECTS"
	EnvGitSSLCAInfo   = "GUARDCHAIN_GIT_SSL_CAINFO"
	EnvTerminationLog = "GUARDCHAIN_TERMINATION_LOG"
)

// EnvPrefix starts every variable's name.
const EnvPrefix = "GUARDCHAIN_"

// Settings are guardchain-init's settings as its environment carries them:
// each in its variable's text format (initguards validates them as it reads
// them, as it does its flags).
type Settings struct {
	Dir            string
	Ownership      string
	OwnershipFrom  string
	Source         string
	PreloadsDir    string // left out of Env when empty: the embedded source reads none
	ProxyHost      string
	ProxyPort      string
	Require        string
	CacheRedirects string
	GitSSLCAInfo   string // set even when empty: an image's own ENV must not choose it
	TerminationLog string
}

// EnvVar is one variable of the environment.
type EnvVar struct{ Name, Value string }

type setting struct {
	name  string
	value *string
}

// fields are s's variables in the order Env writes them.
func (s *Settings) fields() []setting {
	return []setting{
		{EnvDir, &s.Dir},
		{EnvOwnership, &s.Ownership},
		// Why this owner: the termination message repeats it.
		{EnvOwnershipFrom, &s.OwnershipFrom},
		{EnvSource, &s.Source},
		{EnvPreloadsDir, &s.PreloadsDir},
		{EnvProxyHost, &s.ProxyHost},
		{EnvProxyPort, &s.ProxyPort},
		{EnvRequire, &s.Require},
		{EnvCacheRedirects, &s.CacheRedirects},
		{EnvGitSSLCAInfo, &s.GitSSLCAInfo},
		{EnvTerminationLog, &s.TerminationLog},
	}
}

// EnvNames are every variable's name, in the order Env writes them.
func EnvNames() []string {
	var s Settings
	fs := s.fields()
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// Env is s as an environment, in a fixed order.
func (s Settings) Env() []EnvVar {
	fs := s.fields()
	out := make([]EnvVar, 0, len(fs))
	for _, f := range fs {
		if f.name == EnvPreloadsDir && *f.value == "" {
			continue
		}
		out = append(out, EnvVar{f.name, *f.value})
	}
	return out
}

// Value is the setting of variable name ("" for an unknown one).
func (s Settings) Value(name string) string {
	for _, f := range s.fields() {
		if f.name == name {
			return *f.value
		}
	}
	return ""
}

// SettingsFromEnv reads each variable lookup has; set says which it found.
func SettingsFromEnv(lookup func(string) (string, bool)) (s Settings, set map[string]bool) {
	set = map[string]bool{}
	for _, f := range s.fields() {
		if v, ok := lookup(f.name); ok {
			*f.value, set[f.name] = v, true
		}
	}
	return s, set
}
