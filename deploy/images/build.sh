#!/usr/bin/env bash
# Builds guardchain's images as OCI archives without a Docker engine (umoci),
# with the entrypoint, user and labels of Dockerfile.webhook and
# Dockerfile.init, plus what the local test cluster needs: node images for
# sandbox-shaped pods, a stand-in for OpenShell's supervisor image and a pause
# image. containerd imports the archives.
#
#   usage: deploy/images/build.sh OUT_DIR [TAG]      (TAG default: e2e)
#   gives: OUT_DIR/{guardchain-webhook,initguards,node-sandbox,nemoclaw-sandbox,openshell-supervisor,pause}.oci.tar
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
tag=${2:-e2e}
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
for tool in umoci busybox; do
  command -v $tool >/dev/null || { echo "images: $tool is missing (apt-get install umoci busybox-static)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "images: $*" >&2; }

export CGO_ENABLED=0
ld="-s -w -X github.com/guardchain/guardchain/internal/version.Version=$version"
(cd "$root" && go build -trimpath -ldflags "$ld" -o "$work/bin/" ./cmd/guardchain-webhook ./cmd/initguards ./deploy/images/pause)
(cd "$root" && go build -trimpath -ldflags "-s -w" -o "$work/bin/openshell-sandbox" ./test/openshell/supervisor)

# rootfs DIR: the minimum a static binary needs (passwd for the user name, /tmp).
rootfs() {
  mkdir -p "$1"/etc "$1"/tmp
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$1/etc/group"
  chmod 1777 "$1/tmp"
}

# image NAME ROOTFS USER ENTRYPOINT...: pack ROOTFS as NAME:TAG.
image() {
  local name=$1 src=$2 user=$3; shift 3
  local oci="$work/oci-$name" bundle="$work/bundle-$name"
  umoci init --layout "$oci"
  umoci new --image "$oci:$tag"
  umoci unpack --rootless --image "$oci:$tag" "$bundle" >/dev/null
  cp -a "$src/." "$bundle/rootfs/"
  umoci repack --image "$oci:$tag" "$bundle"
  local args=(--image "$oci:$tag" --os linux --architecture amd64 --config.user "$user"
    --config.label "org.opencontainers.image.title=$name"
    --config.label "org.opencontainers.image.version=$version"
    --config.label "org.opencontainers.image.source=https://github.com/guardchain/guardchain"
    --config.label "org.opencontainers.image.licenses=Apache-2.0")
  for e in "$@"; do args+=(--config.entrypoint "$e"); done
  umoci config "${args[@]}"
  umoci gc --layout "$oci"
  (cd "$oci" && tar -cf "$out/$name.oci.tar" .)
  log "built $out/$name.oci.tar"
}

rootfs "$work/rootfs-webhook"; cp "$work/bin/guardchain-webhook" "$work/rootfs-webhook/guardchain-webhook"
image guardchain-webhook "$work/rootfs-webhook" 65532 /guardchain-webhook

rootfs "$work/rootfs-init"; cp "$work/bin/initguards" "$work/rootfs-init/initguards"
image initguards "$work/rootfs-init" 65532 /initguards

rootfs "$work/rootfs-pause"; cp "$work/bin/pause" "$work/rootfs-pause/pause"
image pause "$work/rootfs-pause" 65532 /pause

# openshell-supervisor: the supervisor stand-in alone at /openshell-sandbox,
# where OpenShell's image has it; sandbox pods mount the image as a volume at
# /opt/openshell/bin (test/openshell/supervisor).
mkdir -p "$work/rootfs-supervisor"; cp "$work/bin/openshell-sandbox" "$work/rootfs-supervisor/openshell-sandbox"
image openshell-supervisor "$work/rootfs-supervisor" 0 /openshell-sandbox

# node-sandbox: the host's node with the shared libraries it links, busybox
# for sh and coreutils, and initguards for checks inside a sandbox pod.
# withBinary ROOTFS PATH: a host binary and the shared libraries it links.
withBinary() {
  local bin; bin=$(readlink -f "$2")
  mkdir -p "$1$(dirname "$2")"; cp "$bin" "$1$2"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do mkdir -p "$1$(dirname "$lib")"; cp -L "$lib" "$1$lib"; done
}
# nodeRootfs DIR: node, busybox for sh and coreutils.
nodeRootfs() {
  rootfs "$1"; mkdir -p "$1/bin" "$1/usr/bin"
  withBinary "$1" /usr/bin/node
  cp "$(command -v busybox)" "$1/bin/busybox"
  for a in $("$1/bin/busybox" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
}
r="$work/rootfs-node"; nodeRootfs "$r"
cp "$work/bin/initguards" "$r/usr/bin/initguards"
printf 'sandbox:x:1000:1000:sandbox:/tmp:/bin/sh\n' >> "$r/etc/passwd"; printf 'sandbox:x:1000:\n' >> "$r/etc/group"
image node-sandbox "$r" 0 /bin/sh

# nemoclaw-sandbox: shaped like a stock NemoClaw image (test/nemoclaw):
# USER sandbox (998:998), packaged preloads root-owned 0644 under
# /usr/local/lib/nemoclaw/preloads, and an entrypoint that re-stages them over
# /tmp and exits on failure, then starts the gateway.
r="$work/rootfs-nemoclaw"; nodeRootfs "$r"
withBinary "$r" /bin/bash
printf 'sandbox:x:998:998:sandbox:/sandbox:/bin/sh\n' >> "$r/etc/passwd"; printf 'sandbox:x:998:\n' >> "$r/etc/group"
install -d -m 0755 "$r/usr/local/lib/nemoclaw/preloads" "$r/usr/local/bin"
install -m 0644 "$root"/test/nemoclaw/preloads/*.js "$r/usr/local/lib/nemoclaw/preloads/"
install -m 0644 "$root/test/nemoclaw/gateway.js" "$r/usr/local/lib/nemoclaw/gateway.js"
install -m 0755 "$root/test/nemoclaw/entrypoint.sh" "$r/usr/local/bin/nemoclaw-start"
image nemoclaw-sandbox "$r" 998:998 /usr/local/bin/nemoclaw-start node /usr/local/lib/nemoclaw/gateway.js gateway
