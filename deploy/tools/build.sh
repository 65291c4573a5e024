#!/usr/bin/env bash
# Builds the binaries the tests and the local cluster run, from the pinned
# wrapper modules beside this script (go.sum checks every module), into a cache
# directory keyed by those modules, this script and the Go version. Skips what
# is already there. Prints the bin directory on stdout; progress goes to stderr.
#
#   usage: deploy/tools/build.sh [component ...]
#   components: kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm
#   default:    kube-apiserver etcd kubectl
#   env: GUARDCHAIN_TOOLS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=v1.34.4
HELM_VERSION=v3.22.0

export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=readonly
key=$( { go env GOVERSION; cat "$0" "$here"/kube/go.{mod,sum} "$here"/etcd/go.{mod,sum} "$here"/helm/go.{mod,sum}; } | sha256sum | cut -c1-16)
cache=${GUARDCHAIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools}
bin="$cache/$key/bin"
mkdir -p "$bin"
log() { printf 'tools: %s\n' "$*" >&2; }

[ $# -gt 0 ] || set -- kube-apiserver etcd kubectl

# One build at a time per cache: a second caller waits, then finds the binaries.
exec 9>"$cache/$key/.lock"
flock 9

kube=() want_etcd=0 want_helm=0
for c in "$@"; do
  if [ -x "$bin/$c" ]; then continue; fi
  case $c in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl) kube+=("k8s.io/kubernetes/cmd/$c") ;;
    etcd) want_etcd=1 ;;
    helm) want_helm=1 ;;
    *) log "unknown component '$c' (kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm)"; exit 2 ;;
  esac
done

# build DIR NAME... -- go build args: builds into a temp dir, then moves each
# binary into place, so an interrupted build never leaves a half binary.
build() {
  local dir=$1 what=$2; shift 2
  local tmp; tmp=$(mktemp -d "$cache/$key/build.XXXXXX")
  local start=$SECONDS
  log "building $what in $dir (cold builds take minutes; see deploy/tools/README.md)"
  (cd "$here/$dir" && go build -trimpath -o "$tmp/" "$@")
  for f in "$tmp"/*; do mv -f "$f" "$bin/"; done
  rmdir "$tmp"
  log "built $what in $((SECONDS - start)) s"
}

if [ ${#kube[@]} -gt 0 ]; then
  maj=${KUBE_VERSION#v}; maj=${maj%%.*}; min=${KUBE_VERSION#v*.}; min=${min%%.*}
  # Without the version stamps every binary reports v0.0.0-master, which breaks
  # helm's kubeVersion checks and kubectl's skew checks.
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  build kube "${kube[*]##*/}" -ldflags "$ld" "${kube[@]}"
fi
if [ $want_etcd = 1 ]; then
  build etcd etcd -ldflags "-s -w" go.etcd.io/etcd/server/v3
  mv -f "$bin/server" "$bin/etcd" # go names a /v3 main after its parent: server
fi
if [ $want_helm = 1 ]; then
  hm=helm.sh/helm/v3
  cmin=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go); cmin=${cmin#v0.}; cmin=${cmin%%.*}
  # helm v3 reports KubeVersion 1.20 to charts unless told the client-go minor.
  ld="-s -w -X $hm/internal/version.version=$HELM_VERSION -X $hm/internal/version.gitTreeState=clean"
  for p in $hm/pkg/lint/rules $hm/pkg/chartutil; do ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$cmin"; done
  build helm helm -ldflags "$ld" "$hm/cmd/helm"
fi
echo "$bin"
