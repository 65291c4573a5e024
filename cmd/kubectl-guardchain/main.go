// Command kubectl-guardchain is guardchain's kubectl plugin: on PATH,
// `kubectl guardchain audit` lists the sandbox pods and whether each carries
// the guard chain (the same code as guardchain-webhook audit).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/guardchain/guardchain/audit"
	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/version"
)

const usage = "usage: kubectl guardchain audit|version [flags] (audit -h lists its flags)"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "audit":
		return audit.Main(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "kubectl-guardchain %s chain sha256:%s\n", version.Version, guards.DefaultSHA256())
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kubectl guardchain: unknown command %q\n%s\n", args[0], usage)
	return 2
}
