#!/usr/bin/env bash
# Builds the binaries the tests and the local cluster run, from the pinned
# wrapper modules beside this script (go.sum checks every module), into a cache
# directory keyed by those modules, this script and the Go version. Skips what
# is already there. Prints the bin directory on stdout; progress goes to stderr.
#
#   usage: deploy/tools/build.sh [--floor] [component ...]
#   components: kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm containerd
#   default:    kube-apiserver etcd kubectl
#   --floor:    the oldest Kubernetes release guardchain supports (kube-floor,
#               etcd-floor) instead of the newest (kube, etcd), in its own bin
#               directory: kube-apiserver kube-controller-manager etcd helm only
#               (helm is the same build)
#   env: GUARDCHAIN_TOOLS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
HELM_VERSION=v3.22.0

export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=readonly
modules=(kube etcd kube-floor etcd-floor helm containerd)
key=$( { go env GOVERSION; cat "$0"; for m in "${modules[@]}"; do cat "$here/$m"/go.{mod,sum}; done; } | sha256sum | cut -c1-16)
cache=${GUARDCHAIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guardchain-tools}
log() { printf 'tools: %s\n' "$*" >&2; }

floor=0
if [ "${1:-}" = --floor ]; then floor=1; shift; fi
[ $# -gt 0 ] || set -- kube-apiserver etcd kubectl
newest="$cache/$key/bin"
if [ $floor = 1 ]; then bin="$cache/$key/floor/bin" kube_mod=kube-floor etcd_mod=etcd-floor; else bin=$newest kube_mod=kube etcd_mod=etcd; fi
mkdir -p "$bin" "$newest"

# One build at a time per cache: a second caller waits, then finds the binaries.
exec 9>"$cache/$key/.lock"
flock 9

kube=() want_etcd=0 want_helm=0 want_containerd=0
for c in "$@"; do
  if [ -x "$bin/$c" ]; then continue; fi
  case $floor:$c in
    0:kube-apiserver|0:kube-controller-manager|0:kube-scheduler|0:kubelet|0:kubectl|1:kube-apiserver|1:kube-controller-manager) kube+=("k8s.io/kubernetes/cmd/$c") ;;
    *:etcd) want_etcd=1 ;;
    *:helm) want_helm=1 ;;
    0:containerd) want_containerd=1 ;;
    1:*) log "--floor builds kube-apiserver, kube-controller-manager, etcd and helm, not '$c'"; exit 2 ;;
    *) log "unknown component '$c' (kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm containerd)"; exit 2 ;;
  esac
done

# The version a wrapper pins: its require line for module $2.
pinned() { awk -v m="$2" '($1 == "require" && $2 == m) { print $3 }' "$here/$1/go.mod"; }

# build DIR OUT NAME... -- go build args: builds into a temp dir, then moves each
# binary into OUT, so an interrupted build never leaves a half binary.
build() {
  local dir=$1 out=$2 what=$3; shift 3
  local tmp; tmp=$(mktemp -d "$cache/$key/build.XXXXXX")
  local start=$SECONDS
  log "building $what in $dir (cold builds take minutes; see deploy/tools/README.md)"
  (cd "$here/$dir" && go build -trimpath -o "$tmp/" "$@")
  for f in "$tmp"/*; do mv -f "$f" "$out/"; done
  rmdir "$tmp"
  log "built $what in $((SECONDS - start)) s"
}

if [ ${#kube[@]} -gt 0 ]; then
  v=$(pinned "$kube_mod" k8s.io/kubernetes)
  maj=${v#v}; maj=${maj%%.*}; min=${v#v*.}; min=${min%%.*}
  # Without the version stamps every binary reports v0.0.0-master, which breaks
  # helm's kubeVersion checks and kubectl's skew checks.
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  build "$kube_mod" "$bin" "${kube[*]##*/} $v" -ldflags "$ld" "${kube[@]}"
fi
if [ $want_etcd = 1 ]; then
  build "$etcd_mod" "$bin" "etcd $(pinned "$etcd_mod" go.etcd.io/etcd/server/v3)" -ldflags "-s -w" go.etcd.io/etcd/server/v3
  mv -f "$bin/server" "$bin/etcd" # go names a /v3 main after its parent: server
fi
if [ $want_helm = 1 ]; then
  if [ ! -x "$newest/helm" ]; then
    hm=helm.sh/helm/v3
    cmin=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go); cmin=${cmin#v0.}; cmin=${cmin%%.*}
    # helm v3 reports KubeVersion 1.20 to charts unless told the client-go minor.
    ld="-s -w -X $hm/internal/version.version=$HELM_VERSION -X $hm/internal/version.gitTreeState=clean"
    for p in $hm/pkg/lint/rules $hm/pkg/chartutil; do ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$cmin"; done
    build helm "$newest" helm -ldflags "$ld" "$hm/cmd/helm"
  fi
  [ "$bin" = "$newest" ] || ln -sfn "$newest/helm" "$bin/helm"
fi
if [ $want_containerd = 1 ]; then
  v=$(pinned containerd github.com/containerd/containerd/v2)
  cp=github.com/containerd/containerd/v2
  # The daemon finds its shim on PATH: the local cluster puts this directory first.
  build containerd "$bin" "containerd $v" -tags no_btrfs,no_devmapper,no_zfs \
    -ldflags "-s -w -X $cp/version.Version=$v -X $cp/version.Package=$cp" \
    $cp/cmd/containerd $cp/cmd/containerd-shim-runc-v2 $cp/cmd/ctr
fi
echo "$bin"
