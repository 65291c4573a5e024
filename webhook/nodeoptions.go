package webhook

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// NODE_OPTIONS on target containers (config nodeOptions: append).

// ensureNodeOptions appends the required --require tokens to a literal
// NODE_OPTIONS, and drops the tokens of retired guards, which an earlier
// release may have appended (their files stay, inert, for values it cannot
// reach). A value from a source (valueFrom, envFrom) is never silently
// overridden: it is left alone with a warning.
func (in *injection) ensureNodeOptions(c *corev1.Container, set podSettings) bool {
	idx := -1
	for i, e := range c.Env {
		if e.Name == "NODE_OPTIONS" {
			idx = i
		}
	}
	if idx >= 0 && c.Env[idx].ValueFrom != nil {
		in.note(ReasonNodeOptionsFrom, "container %s takes NODE_OPTIONS from valueFrom; left as is, so only proxy-env.sh names the guards", c.Name)
		return false
	}
	if idx < 0 && len(c.EnvFrom) > 0 {
		in.note(ReasonNodeOptionsFrom, "container %s has envFrom, which may set NODE_OPTIONS; not overridden, so only proxy-env.sh names the guards", c.Name)
		return false
	}
	value := ""
	if idx >= 0 {
		value = c.Env[idx].Value
	}
	tokens := strings.Fields(value)
	required := map[string]bool{}
	for _, id := range set.opts.Required {
		required[id] = true
	}
	for _, g := range chain.Guards {
		if g.Retired != "" {
			tokens = dropRequire(tokens, path.Join(TmpPath, g.Name))
		}
	}
	for _, g := range chain.Guards {
		if !required[g.ID] || (g.OnlyIfEnv != "" && literalEnv(c, g.OnlyIfEnv) != g.OnlyIfValue) {
			continue
		}
		file := path.Join(TmpPath, g.Name)
		if !hasRequire(tokens, file) {
			tokens = append(tokens, "--require", file)
		}
	}
	joined := strings.Join(tokens, " ")
	if idx >= 0 {
		if strings.Join(strings.Fields(value), " ") == joined {
			return false
		}
		c.Env[idx].Value = joined
		return true
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "NODE_OPTIONS", Value: joined})
	return true
}

func literalEnv(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value
		}
	}
	return ""
}

// hasRequire matches exact tokens in any of Node's forms, never substrings.
func hasRequire(tokens []string, file string) bool {
	for i, t := range tokens {
		if t == "--require="+file || ((t == "--require" || t == "-r") && i+1 < len(tokens) && tokens[i+1] == file) {
			return true
		}
	}
	return false
}

// dropRequire removes every --require of file, in any of Node's forms; other
// tokens keep their order.
func dropRequire(tokens []string, file string) []string {
	out := tokens[:0:0]
	for i := 0; i < len(tokens); i++ {
		t := tokens[i]
		if t == "--require="+file {
			continue
		}
		if (t == "--require" || t == "-r") && i+1 < len(tokens) && tokens[i+1] == file {
			i++
			continue
		}
		out = append(out, t)
	}
	return out
}
