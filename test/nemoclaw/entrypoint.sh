#!/bin/bash
# A stand-in for NemoClaw's sandbox entrypoint (nemoclaw-start), written from
# the facts in guardchain's docs: what it does to /tmp, step for step, so the
# tests can show that a chain written by guardchain never makes it fail.
#
# It runs as whatever user starts it (the stock images' sandbox user, 998, or
# root), re-stages every core preload from the image over /tmp with
# mktemp + chown (root only) + chmod 444 + mv -f, writes proxy-env.sh the same
# way, creates its log files, checks their permissions, and exits 1 on any
# failure, before the gateway starts. With arguments it then execs them (the
# gateway) with the NODE_OPTIONS it built.
#
#   NEMOCLAW_TMP       the directory to stage into (default /tmp)
#   NEMOCLAW_PRELOADS  the packaged preloads (default /usr/local/lib/nemoclaw/preloads)
set -u
tmpdir=${NEMOCLAW_TMP:-/tmp}
src=${NEMOCLAW_PRELOADS:-/usr/local/lib/nemoclaw/preloads}
say() { echo "[nemoclaw-start] $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# stage TARGET MODE < CONTENT: replace TARGET atomically, as the entrypoint does.
stage() {
  local target=$1 mode=$2 tmp
  tmp=$(mktemp "$(dirname "$target")/.$(basename "$target").tmp.XXXXXX") || return 1
  if ! cat >"$tmp"; then rm -f "$tmp"; return 1; fi
  if is_root && ! chown root:root "$tmp"; then rm -f "$tmp"; return 1; fi
  if ! chmod "$mode" "$tmp"; then rm -f "$tmp"; return 1; fi
  if ! mv -f "$tmp" "$target"; then rm -f "$tmp"; return 1; fi
}

# has_require FILE: NODE_OPTIONS has the exact token --require FILE or --require=FILE.
has_require() {
  local -a t
  local i
  read -r -a t <<<"$NODE_OPTIONS"
  for ((i = 0; i < ${#t[@]}; i++)); do
    [ "${t[i]}" = "--require=$1" ] && return 0
    [ "${t[i]}" = "--require" ] && [ "${t[i + 1]:-}" = "$1" ] && return 0
  done
  return 1
}

# Ambient NODE_OPTIONS is dropped: the entrypoint builds its own.
export NODE_OPTIONS="--dns-result-order=ipv4first"
core=(sandbox-safety-net)
[ "${NODE_USE_ENV_PROXY:-}" = "1" ] && core+=(http-proxy-fix)
core+=(nemotron-inference-fix ciao-network-guard)
staged=()
for name in "${core[@]}"; do
  target="$tmpdir/nemoclaw-$name.js"
  if ! stage "$target" 444 <"$src/$name.js"; then
    say "staging $src/$name.js as $target failed"
    exit 1
  fi
  staged+=("$target")
  has_require "$target" || NODE_OPTIONS="$NODE_OPTIONS --require $target"
done

proxy=${NEMOCLAW_PROXY_URL:-http://10.200.0.1:3128}
{
  printf 'export HTTP_PROXY=%s\nexport HTTPS_PROXY=%s\n' "$proxy" "$proxy"
  printf 'export http_proxy=%s\nexport https_proxy=%s\n' "$proxy" "$proxy"
  printf 'export NODE_OPTIONS="%s"\n' "$NODE_OPTIONS"
} | stage "$tmpdir/nemoclaw-proxy-env.sh" 444 || { say "writing $tmpdir/nemoclaw-proxy-env.sh failed"; exit 1; }
for log in gateway.log auto-pair.log; do
  stage "$tmpdir/$log" 600 </dev/null || { say "creating $tmpdir/$log failed"; exit 1; }
done

# The permission check: sourced files 444 (and root-owned when root), logs regular files.
failed=0
for f in "$tmpdir/nemoclaw-proxy-env.sh" "${staged[@]}"; do
  [ -f "$f" ] || continue
  perms=$(stat -c %a "$f") owner=$(stat -c %U "$f")
  if is_root && { [ "$owner" != root ] || [ "$perms" != 444 ]; }; then
    say "[SECURITY] $f has unsafe permissions: owner=$owner mode=$perms (expected root:444)"
    failed=1
  elif ! is_root && [ "$perms" != 444 ]; then
    say "[SECURITY] $f has unsafe permissions: mode=$perms (expected 444)"
    failed=1
  fi
done
for log in gateway.log auto-pair.log; do
  f="$tmpdir/$log"
  if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then
    say "[SECURITY] $f is not a regular file"
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

say "staged ${#staged[@]} preloads as uid $(id -u); NODE_OPTIONS=$NODE_OPTIONS"
[ $# -gt 0 ] || exit 0
exec "$@"
