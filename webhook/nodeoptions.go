package webhook

import (
	"fmt"
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
	// Parsed as Node parses it: a --require inside a quoted string is no
	// option, however it looks split on spaces.
	tokens, err := nodeOptionsTokens(value)
	if err != nil {
		in.note(ReasonNodeOptionsFrom, "container %s has a NODE_OPTIONS that Node cannot parse (%v); left as is, so only proxy-env.sh names the guards", c.Name, err)
		return false
	}
	required := map[string]bool{}
	for _, id := range set.opts.Required {
		required[id] = true
	}
	dropped := false
	for _, g := range chain.Guards {
		if g.Retired != "" {
			before := len(tokens)
			tokens = dropRequire(tokens, path.Join(TmpPath, g.Name))
			dropped = dropped || len(tokens) != before
		}
	}
	var add []string
	for _, g := range chain.Guards {
		if !required[g.ID] || (g.OnlyIfEnv != "" && literalEnv(c, g.OnlyIfEnv) != g.OnlyIfValue) {
			continue
		}
		file := path.Join(TmpPath, g.Name)
		if !hasRequire(tokens, file) {
			add = append(add, "--require", file)
		}
	}
	if !dropped && len(add) == 0 {
		return false
	}
	// The value as written, unless a token had to go: then re-quoted.
	joined := value
	if dropped {
		quoted := make([]string, len(tokens))
		for i, t := range tokens {
			quoted[i] = quoteNodeToken(t)
		}
		joined = strings.Join(quoted, " ")
	}
	joined = strings.TrimSpace(strings.Join(append([]string{joined}, add...), " "))
	if idx >= 0 {
		c.Env[idx].Value = joined
		return true
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "NODE_OPTIONS", Value: joined})
	return true
}

// nodeOptionsTokens splits NODE_OPTIONS as Node does (ParseNodeOptionsEnvVar,
// src/node_options.cc): on spaces outside double quotes; a quote opens or
// closes a string and is dropped; in a string a backslash takes the next
// character as it is.
func nodeOptionsTokens(s string) ([]string, error) {
	var out []string
	inString, start := false, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inString:
			if i+1 == len(s) {
				return nil, fmt.Errorf("invalid escape")
			}
			i++
			c = s[i]
		case c == ' ' && !inString:
			start = true
			continue
		case c == '"':
			inString = !inString
			continue
		}
		if start {
			out = append(out, string(c))
			start = false
		} else {
			out[len(out)-1] += string(c)
		}
	}
	if inString {
		return nil, fmt.Errorf("unterminated string")
	}
	return out, nil
}

// quoteNodeToken writes t so that nodeOptionsTokens reads it back.
func quoteNodeToken(t string) string {
	if t != "" && !strings.ContainsAny(t, " \"\\") {
		return t
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(t) + `"`
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
