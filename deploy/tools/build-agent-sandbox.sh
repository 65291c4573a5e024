#!/usr/bin/env bash
# Builds agent-sandbox's controller (the one that makes OpenShell's sandbox
# pods from its Sandbox objects) from the pinned wrapper module
# deploy/tools/agent-sandbox, and copies the CRDs of that same module version
# beside it, into a cache directory keyed by that module, this script and the
# Go version. Its own key, apart from build.sh's: changing one never rebuilds
# the other's binaries. Skips what is already there. Prints the bin directory
# on stdout; progress goes to stderr.
#
#   usage: deploy/tools/build-agent-sandbox.sh
#   gives: BIN/agent-sandbox-controller, BIN/agent-sandbox-crds/*.yaml
#   env:   GUARDCHAIN_TOOLS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod=agent-sandbox
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=readonly
key=$( { go env GOVERSION; cat "$0"; cat "$here/$mod"/go.{mod,sum}; } | sha256sum | cut -c1-16)
cache=${GUARDCHAIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools}
bin="$cache/$mod-$key/bin"
log() { printf 'tools: %s\n' "$*" >&2; }
mkdir -p "$bin"

# One build at a time per cache directory: a second caller waits, then finds it.
exec 9>"$cache/$mod-$key/.lock"
flock 9

if [ ! -x "$bin/agent-sandbox-controller" ] || [ ! -d "$bin/agent-sandbox-crds" ]; then
  v=$(awk '($1 == "require" && $2 == "sigs.k8s.io/agent-sandbox") { print $3 }' "$here/$mod/go.mod")
  tmp=$(mktemp -d "$cache/$mod-$key/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  log "building agent-sandbox-controller $v in $mod (a cold build takes a few minutes)"
  # Without the stamp --version says "unknown".
  (cd "$here/$mod" && go build -trimpath -o "$tmp/agent-sandbox-controller" \
    -ldflags "-s -w -X sigs.k8s.io/agent-sandbox/internal/version.gitVersion=$v" \
    sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller)
  # The CRDs from the module go.sum checked, so they match the controller.
  dir=$(cd "$here/$mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/agent-sandbox)
  mkdir "$tmp/agent-sandbox-crds"
  cp "$dir"/k8s/crds/*.yaml "$tmp/agent-sandbox-crds/"
  chmod 0644 "$tmp"/agent-sandbox-crds/*.yaml
  rm -rf "$bin/agent-sandbox-crds"
  mv "$tmp/agent-sandbox-crds" "$bin/"
  mv -f "$tmp/agent-sandbox-controller" "$bin/"
  log "built agent-sandbox-controller $v in $((SECONDS - start)) s"
fi
echo "$bin"
