// Command initguards is the guardchain init container: it writes the guard
// chain into the pod's /tmp (emit), checks one (verify), shows what it would
// write (print), or installs itself where a second init container, running in
// the sandbox image, can run it (copy-self). Every flag falls back to a GUARDCHAIN_* environment variable,
// which is how the webhook passes configuration. Exit codes: 0 the whole chain
// is in place, 1 it is not, 2 bad usage or input.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
	"github.com/guardchain/guardchain/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: initguards emit|verify|print [env|chain]|version [flags]
       initguards copy-self --to PATH
flags (each falls back to the environment variable shown):`

// usageError is bad input: exit code 2.
type usageError struct{ error }

// config is everything the subcommands take.
type config struct {
	dir       string
	ownership initguards.Policy
	opts      guards.Options
	// source and preloadsDir pick the chain (initguards.LoadChain).
	source, preloadsDir string
	// terminationLog, when set, receives what emit staged (the pod's
	// termination message, readable without exec), or why it failed.
	terminationLog string
	// ownershipFrom says why this owner (the webhook's resolution); echoed
	// in the report.
	ownershipFrom string
}

func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "initguards: missing command (emit, verify, print, copy-self, version)")
		return 2
	}
	cmd, args := args[0], args[1:]
	chain := guards.Default()
	var err error
	switch cmd {
	case "emit", "verify", "print":
		var cfg config
		var rest, what []string
		// print takes what to print before or after its flags.
		if cmd == "print" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			what, args = args[:1], args[1:]
		}
		cfg, rest, err = parse(cmd, args, env, chain, stderr)
		parsed := err == nil
		rest = append(what, rest...)
		var fallback string
		if err == nil {
			chain, fallback, err = initguards.LoadChain(cfg.source, cfg.preloadsDir, cfg.opts.Required)
		}
		if err == nil && fallback != "" {
			fmt.Fprintf(stderr, "initguards: %s\n", fallback)
		}
		if err == nil {
			err = dispatch(ctx, cmd, rest, cfg, chain, fallback, stdout, stderr)
		}
		if err != nil && cmd == "emit" {
			// With restartPolicy Never a failed emit ends the sandbox: say
			// why where kubectl and the audit read it, even when the bad
			// input was another variable.
			r := initguards.Report{Ownership: cfg.ownership.String(), OwnershipFrom: cfg.ownershipFrom}
			if !parsed {
				s, _ := initguards.SettingsFromEnv(env)
				cfg.terminationLog, r.Ownership, r.OwnershipFrom = s.TerminationLog, s.Ownership, s.OwnershipFrom
			}
			if cfg.terminationLog != "" {
				writeFailure(cfg.terminationLog, r, err, stderr)
			}
		}
	case "copy-self":
		err = copySelf(args, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "initguards %s chain sha256:%s\n", version.Version, chain.SHA256())
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		newFlags("emit", env, chain, &config{}, stdout)
	default:
		err = usageError{fmt.Errorf("unknown command %q (emit, verify, print, copy-self, version)", cmd)}
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ve *initguards.VerifyError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintf(stderr, "initguards: %s: %s\n", cmd, p)
		}
		return 1
	}
	fmt.Fprintf(stderr, "initguards: %s: %s\n", cmd, oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func dispatch(ctx context.Context, cmd string, rest []string, cfg config, chain guards.Chain, fallback string, stdout, stderr io.Writer) error {
	if cmd == "print" {
		what := "env"
		if len(rest) > 0 {
			what = rest[0]
		}
		if len(rest) > 1 {
			return usageError{fmt.Errorf("unexpected arguments %q", rest[1:])}
		}
		return printChain(what, cfg, chain, stdout)
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	files, err := chain.Files(cfg.opts)
	if err != nil {
		return usageError{err}
	}
	if cmd == "verify" {
		if err := initguards.Verify(cfg.dir, files, cfg.ownership); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "initguards: chain sha256:%s verified in %s (%d files, ownership %s)\n", chain.SHA256(), cfg.dir, len(files), cfg.ownership)
		return nil
	}
	res, err := initguards.Emit(ctx, cfg.dir, files, cfg.ownership)
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "initguards: warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "initguards: chain sha256:%s (%s) in %s: %d written, %d unchanged (ownership %s)\n",
		chain.SHA256(), chain.Source, cfg.dir, len(res.Written), len(res.Unchanged), cfg.ownership)
	if cfg.terminationLog != "" {
		// Best effort: the chain is in place whether or not this is read.
		if err := writeReport(cfg.terminationLog, chain, files, cfg, fallback); err != nil {
			fmt.Fprintf(stderr, "initguards: warning: %s: %v\n", cfg.terminationLog, err)
		}
	}
	return nil
}

// maxReport is the kubelet's limit on a termination message.
const maxReport = 4096

func writeReport(path string, chain guards.Chain, files []guards.File, cfg config, fallback string) error {
	r := initguards.Report{SHA256: chain.SHA256(), Source: chain.Source, Ownership: cfg.ownership.String(), OwnershipFrom: cfg.ownershipFrom,
		Count: len(files), Fallback: fallback}
	for _, f := range files {
		r.Files = append(r.Files, f.Name)
	}
	return writeJSON(path, r)
}

// writeFailure reports a failed emit in the termination log. Best effort:
// the exit code and the one-line error on stderr say the same.
func writeFailure(path string, r initguards.Report, err error, stderr io.Writer) {
	r.Reason, r.Error = failReason(err), oneLine(err)
	if werr := writeJSON(path, r); werr != nil {
		fmt.Fprintf(stderr, "initguards: warning: %s: %v\n", path, werr)
	}
}

func failReason(err error) string {
	var ue usageError
	switch {
	case errors.Is(err, initguards.ErrUntrusted):
		return initguards.FailUntrustedPreloads
	case errors.Is(err, initguards.ErrMissingGuard):
		return initguards.FailMissingGuard
	case errors.Is(err, initguards.ErrNoPreloads):
		return initguards.FailNoPreloads
	case errors.As(err, &ue):
		return initguards.FailBadInput
	}
	return initguards.FailWrite
}

func writeJSON(path string, r initguards.Report) error {
	b, err := json.Marshal(r)
	if err == nil && len(b) >= maxReport {
		r.Files = nil
		if len(r.Error) > 1024 {
			r.Error = r.Error[:1024]
		}
		b, err = json.Marshal(r)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// copySelf is `copy-self --to PATH`.
func copySelf(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("initguards copy-self", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "where to install this binary (absolute path)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if *to == "" || guards.ValidateDir(*to) != nil || *to == "/" {
		return usageError{fmt.Errorf("--to %q: want a clean absolute path", *to)}
	}
	return initguards.CopySelf(*to)
}

func printChain(what string, cfg config, chain guards.Chain, stdout io.Writer) error {
	switch what {
	case "env":
		b, err := chain.RenderProxyEnv(cfg.opts)
		if err != nil {
			return usageError{err}
		}
		_, err = stdout.Write(b)
		return err
	case "chain":
		files, err := chain.Files(cfg.opts)
		if err != nil {
			return usageError{err}
		}
		required := map[string]bool{}
		for _, id := range cfg.opts.Required {
			required[id] = true
		}
		for i, f := range files {
			mark := ""
			// Files are the guards in chain order, then proxy-env.sh.
			if i < len(chain.Guards) && required[chain.Guards[i].ID] {
				mark = " (required)"
			}
			if i < len(chain.Guards) && chain.Guards[i].Retired != "" {
				mark = " (retired)"
			}
			fmt.Fprintf(stdout, "%s %6d %s%s\n", sha(f.Data), len(f.Data), f.Name, mark)
		}
		fmt.Fprintf(stdout, "chain sha256:%s\n", chain.SHA256())
		return nil
	}
	return usageError{fmt.Errorf("print %q: want env or chain", what)}
}

// envFlag is a flag whose default comes from an environment variable.
type envFlag struct {
	name, env, help, def string
	set                  func(string) error
}

func newFlags(cmd string, env func(string) (string, bool), chain guards.Chain, cfg *config, out io.Writer) (*flag.FlagSet, []envFlag) {
	fs := flag.NewFlagSet("initguards "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	defs := chain.DefaultOptions()
	flags := []envFlag{
		{"dir", initguards.EnvDir, "chain directory (the emptyDir at /tmp)", guards.DefaultDir, func(s string) error {
			cfg.dir, cfg.opts.Dir = s, s
			return guards.ValidateDir(s)
		}},
		{"ownership", initguards.EnvOwnership, "root, uid:N or uid:N:G", initguards.DefaultOwnership, func(s string) (err error) {
			cfg.ownership, err = initguards.ParseOwnership(s)
			return err
		}},
		{"proxy-host", initguards.EnvProxyHost, "sandbox proxy host name or IP", guards.DefaultProxyHost, func(s string) error {
			cfg.opts.ProxyHost = s
			return guards.ValidateHost(s)
		}},
		{"proxy-port", initguards.EnvProxyPort, "sandbox proxy port", strconv.Itoa(guards.DefaultProxyPort), func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%q is not a port number", s)
			}
			cfg.opts.ProxyPort = n
			return guards.ValidatePort(n)
		}},
		{"require", initguards.EnvRequire, "guards named in NODE_OPTIONS, comma-separated, or none (known: " + strings.Join(chain.Requirable(), ", ") + ")",
			strings.Join(defs.Required, ","), func(s string) error {
				cfg.opts.Required = list(s)
				return chain.ValidateRequired(cfg.opts.Required)
			}},
		{"git-ssl-cainfo", initguards.EnvGitSSLCAInfo, "GIT_SSL_CAINFO to export (empty: none)", "", func(s string) error {
			cfg.opts.GitSSLCAInfo = s
			return nil
		}},
		{"source", initguards.EnvSource, "where the guards come from: embedded, image (the preloads packaged in --preloads-dir) or auto (image when that directory exists)",
			initguards.SourceEmbedded, func(s string) error {
				cfg.source = s
				switch s {
				case initguards.SourceEmbedded, initguards.SourceImage, initguards.SourceAuto:
					return nil
				}
				return fmt.Errorf("%q: want embedded, image or auto", s)
			}},
		{"preloads-dir", initguards.EnvPreloadsDir, "the image's packaged preloads, each X.js staged as nemoclaw-X.js", guards.PackagedDir, func(s string) error {
			cfg.preloadsDir = s
			return guards.ValidateDir(s)
		}},
		{"ownership-from", initguards.EnvOwnershipFrom, "where the ownership came from, repeated in the termination log", "", func(s string) error {
			cfg.ownershipFrom = s
			return nil
		}},
		{"termination-log", initguards.EnvTerminationLog, "file that receives what emit staged as one JSON line (empty: none)", "", func(s string) error {
			cfg.terminationLog = s
			return nil
		}},
		{"cache-redirects", initguards.EnvCacheRedirects, "tool-cache variables redirected into the directory: all, none or a comma-separated list", "all", func(s string) error {
			if s == "all" {
				cfg.opts.CacheRedirects = guards.CacheRedirectVars()
			} else {
				cfg.opts.CacheRedirects = list(s)
			}
			return nil
		}},
	}
	for _, f := range flags {
		fs.Func(f.name, fmt.Sprintf("%s (env %s, default %q)", f.help, f.env, f.def), f.set)
	}
	return fs, flags
}

// parse takes each value from its flag, else from the environment, else the
// default, and validates it where it is set. A flag given replaces its
// variable entirely: the variable is then not read, so a bad one cannot fail
// a command whose flag says otherwise.
func parse(cmd string, args []string, env func(string) (string, bool), chain guards.Chain, stderr io.Writer) (config, []string, error) {
	var cfg config
	// Errors are reported by run as one line; the flag list only on -h.
	fs, flags := newFlags(cmd, env, chain, &cfg, io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return cfg, nil, err
		}
		return cfg, nil, usageError{err}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	vars, set := initguards.SettingsFromEnv(env)
	// Each flag sets only its own fields, so the order of the layers across
	// flags does not matter.
	for _, f := range flags {
		if given[f.name] {
			continue
		}
		if set[f.env] {
			if err := f.set(vars.Value(f.env)); err != nil {
				return cfg, nil, usageError{fmt.Errorf("%s: %w", f.env, err)}
			}
			continue
		}
		if err := f.set(f.def); err != nil {
			return cfg, nil, fmt.Errorf("default --%s: %w", f.name, err)
		}
	}
	if err := chain.Validate(cfg.opts); err != nil {
		return cfg, nil, usageError{err}
	}
	return cfg, fs.Args(), nil
}

func list(s string) []string {
	if s == "" || s == "none" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
