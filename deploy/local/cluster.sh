#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker or a
# registry: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kubelet, containerd 2 (all from deploy/tools/build.sh), Debian's runc and CNI
# bridge. containerd and the kubelet run in a private mount namespace with a
# private /run and /var/lib and stand-ins for the sysctl files the kubelet
# writes, so the host's mounts and sysctls are never touched. Pods reach the
# host and each other over the bridge lcbr0 (10.244.0.0/24); there is no
# kube-proxy, so the API server routes to webhook Services by endpoint.
#
#   deploy/local/cluster.sh up IMAGE_DIR   start, import IMAGE_DIR/*.oci.tar, wait for a Ready node
#   deploy/local/cluster.sh down           stop everything by PID, remove cgroups and the bridge
#   deploy/local/cluster.sh restart-apiserver   stop the API server and start it again (fault drills)
#   deploy/local/cluster.sh restart-kubelet     stop the kubelet (TERM) and start it again (poststart study)
#   deploy/local/cluster.sh kill-container ID    SIGKILL a container's process (fault drills)
#   deploy/local/cluster.sh node-ns        (internal) the mount-namespace side
# env: GUARDCHAIN_LOCAL_STATE (default /tmp/guardchain-local), TOOLS (bin dir; default: build.sh's),
#      GUARDCHAIN_APISERVER_FLAGS (more kube-apiserver flags, space-separated, e.g.
#      --feature-gates=WebhookRoundTripLoadBalancing=false; read by up and restart-apiserver)
# Needs root, and: runc containernetworking-plugins openssl (apt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
S=${GUARDCHAIN_LOCAL_STATE:-/tmp/guardchain-local}
NODE=guardchain-node
NODE_IP=10.244.0.1
BRIDGE=lcbr0
log() { printf '[local %5.1fs] %s\n' "$(( $(date +%s%N) / 1000000 - T0 ))e-3" "$*" >&2; }
T0=$(( $(date +%s%N) / 1000000 ))

tools() { echo "${TOOLS:-$("$here/../tools/build.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd containerd)}"; }

write_configs() {
  mkdir -p "$S"/{logs,pids,pki,cni/conf,cni/ipam,containerd/etc,kubelet/root,kubelet/pod-logs,kubelet/volume-plugins,kcm-flex,etcd-data}
  # containerd 2's CRI config (version 3; 2.4 migrates it in memory).
  cat > "$S/containerd/etc/config.toml" <<TOML
version = 3
root = "$S/containerd/root"
state = "$S/containerd/state"
oom_score = 0
[grpc]
  address = "$S/containerd/containerd.sock"
[ttrpc]
  address = "$S/containerd/containerd.sock.ttrpc"
[debug]
  address = "$S/containerd/debug.sock"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/guardchain/pause:e2e"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  # This machine lacks CAP_SYS_RESOURCE: negative oom_score_adj is refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$S/containerd/runc-root"
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$S/cni/conf"
[plugins."io.containerd.internal.v1.opt"]
  path = "$S/containerd/opt"
TOML
  cat > "$S/cni/conf/10-local.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "local", "plugins": [{"type": "bridge", "bridge": "$BRIDGE",
  "isGateway": false, "isDefaultGateway": false, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam",
    "ranges": [[{"subnet": "10.244.0.0/24", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP"}]],
    "routes": [{"dst": "10.244.0.0/16"}]}}]}
JSON
  cat > "$S/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$S/containerd/containerd.sock
imageServiceEndpoint: unix://$S/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /guardchain-local
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $S/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $S/pki/kubelet-serving.crt
tlsPrivateKeyFile: $S/pki/kubelet-serving.key
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
podLogsDir: $S/kubelet/pod-logs
volumePluginDir: $S/kubelet/volume-plugins
makeIPTablesUtilChains: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
syncFrequency: 10s
fileCheckFrequency: 10s
# emptyDir usage measured every 5 s (default 1m): a pod past its local-storage
# limit is evicted within the e2e suite's wait, not a minute later.
volumeStatsAggPeriod: 5s
YAML
}

gen_pki() {
  [ -f "$S/pki/ca.crt" ] && return 0
  (
    cd "$S/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=guardchain-local-ca" 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    cert() { # name CN O SANs
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2${3:+/O=$3}" 2>/dev/null
      { echo "basicConstraints=CA:FALSE"; echo "keyUsage=digitalSignature,keyEncipherment"
        if [ -n "$4" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$4"; else echo "extendedKeyUsage=clientAuth"; fi
      } > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    cert apiserver kube-apiserver "" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1"
    cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
    cert admin admin system:masters ""
    cert controller-manager system:kube-controller-manager "" ""
    cert scheduler system:kube-scheduler "" ""
    cert kubelet "system:node:$NODE" system:nodes ""
    cert kubelet-serving "$NODE" "" "DNS:$NODE,IP:$NODE_IP"
    for c in admin controller-manager scheduler kubelet; do
      cat > "$S/$c.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {certificate-authority: $S/pki/ca.crt, server: "https://$NODE_IP:6443"}
users:
- name: $c
  user: {client-certificate: $S/pki/$c.crt, client-key: $S/pki/$c.key}
contexts:
- name: local
  context: {cluster: local, user: $c}
current-context: local
KC
    done
  )
}

start() { # name cmd...: in the background, PID recorded
  local name=$1; shift
  setsid nohup "$@" > "$S/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$S/pids/$name.pid"
}

wait_for() { # what seconds cmd...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out waiting for $what; last lines of the logs:"; tail -n 5 "$S"/logs/*.log >&2; return 1
}

node_ns() { # runs inside: unshare -m --propagation private
  mkdir -p "$S/fakesys" "$S/hostfs/var-lib"
  mount -t tmpfs -o mode=755,size=64m guardchain-run /run
  mount --bind "$S/hostfs/var-lib" /var/lib
  for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    n="$S/fakesys/${f//\//_}"; cat "/proc/sys/$f" > "$n"; mount --bind "$n" "/proc/sys/$f"
  done
  # The shim is found on PATH: this build's, not a distribution's containerd 1.x.
  PATH="$TOOLS:$PATH" "$TOOLS/containerd" --config "$S/containerd/etc/config.toml" > "$S/logs/containerd.log" 2>&1 &
  echo $! > "$S/pids/containerd.pid"
  wait
}

start_apiserver() { # bin: start kube-apiserver and wait until it is ready
  local bin=$1 P=$S/pki
  # Bound to the bridge address: pods (the webhook in selfManaged mode) reach it there.
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
    --bind-address=$NODE_IP --secure-port=6443 --advertise-address=$NODE_IP \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --authorization-mode=Node,RBAC \
    --kubelet-preferred-address-types=InternalIP --enable-aggregator-routing=true \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true --v=1 ${GUARDCHAIN_APISERVER_FLAGS:-}
  wait_for kube-apiserver 90 curl -fsS --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "https://$NODE_IP:6443/readyz"
}

# restart_apiserver stops the API server (TERM, as a node reboot or an
# upgrade would) and starts it again with the same flags; the log of the
# earlier run is kept beside the new one.
restart_apiserver() {
  [ -f "$S/pids/kube-apiserver.pid" ] || { echo "local: no API server running under $S" >&2; exit 1; }
  stop_pid kube-apiserver
  mv "$S/logs/kube-apiserver.log" "$S/logs/kube-apiserver.$(date +%s).log"
  log "API server stopped"
  start_apiserver "$(tools)"
  log "API server ready again"
}

start_kubelet() { # bin: start the kubelet in the node's mount namespace
  nsenter -t "$(cat "$S/pids/containerd.pid")" -m -- setsid nohup "$1/kubelet" --config="$S/kubelet/config.yaml" \
    --kubeconfig="$S/kubelet.kubeconfig" --root-dir="$S/kubelet/root" --hostname-override=$NODE --node-ip=$NODE_IP \
    --v=${GUARDCHAIN_KUBELET_V:-1} > "$S/logs/kubelet.log" 2>&1 < /dev/null &
  echo $! > "$S/pids/kubelet.pid"
}

# restart_kubelet stops the kubelet (TERM, as systemctl restart would) and
# starts it again with the same flags; pods keep running. The log of the
# earlier run is kept beside the new one.
restart_kubelet() {
  [ -f "$S/pids/kubelet.pid" ] || { echo "local: no kubelet running under $S" >&2; exit 1; }
  stop_pid kubelet
  mv "$S/logs/kubelet.log" "$S/logs/kubelet.$(date +%s).log"
  log "kubelet stopped"
  start_kubelet "$(tools)"
  wait_for "kubelet healthz" 60 curl -fsS http://127.0.0.1:10248/healthz
  log "kubelet healthy again"
}

# kill_container sends SIGKILL to a container's process (CONTAINER_ID as the
# pod status gives it, with or without containerd://).
kill_container() {
  local id=${1#containerd://}
  "$(tools)/ctr" -a "$S/containerd/containerd.sock" -n k8s.io task kill --signal SIGKILL "$id"
  log "sent SIGKILL to container ${id:0:12}"
}

up() {
  local images=$1 bin; bin=$(tools)
  [ "$(id -u)" = 0 ] || { echo "local: needs root" >&2; exit 1; }
  for c in containerd containerd-shim-runc-v2 ctr kubelet; do
    [ -x "$bin/$c" ] || { echo "local: $bin/$c is missing (deploy/tools/build.sh $c)" >&2; exit 1; }
  done
  for c in runc openssl unshare nsenter; do command -v $c >/dev/null || { echo "local: $c is missing" >&2; exit 1; }; done
  [ -x /usr/lib/cni/bridge ] || { echo "local: CNI plugins missing (apt-get install containernetworking-plugins)" >&2; exit 1; }
  # A run that died without tearing down leaves state (etcd data, PIDs): clear it.
  if [ -d "$S" ]; then log "clearing the state of an earlier run"; down; fi
  write_configs; gen_pki
  # cgroups under /guardchain-local only; v1 cpuset children need cpus and mems.
  for h in /sys/fs/cgroup/*/; do [ -f "$h/cgroup.procs" ] && mkdir -p "$h/guardchain-local"; done
  if [ -d /sys/fs/cgroup/cpuset/guardchain-local ]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/guardchain-local/cpuset.cpus
    cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/guardchain-local/cpuset.mems
  fi
  ip link show $BRIDGE >/dev/null 2>&1 || { ip link add $BRIDGE type bridge; ip addr add $NODE_IP/24 dev $BRIDGE; ip link set $BRIDGE up; }

  export TOOLS=$bin
  start node-ns unshare -m --propagation private "$0" node-ns
  wait_for containerd 20 test -S "$S/containerd/containerd.sock"
  log "containerd up"
  for tar in "$images"/*.oci.tar; do
    "$bin/ctr" -a "$S/containerd/containerd.sock" -n k8s.io images import --base-name "localhost/guardchain/$(basename "$tar" .oci.tar)" "$tar" >/dev/null
  done
  log "images imported: $(ls "$images" | tr '\n' ' ')"

  local P=$S/pki
  start etcd "$bin/etcd" --name local --data-dir "$S/etcd-data" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster local=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810 \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS http://127.0.0.1:23790/health
  start_apiserver "$bin"
  log "API server ready"
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$S/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$S/controller-manager.kubeconfig" --authorization-kubeconfig="$S/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
    --flex-volume-plugin-dir="$S/kcm-flex" --v=1
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$S/scheduler.kubeconfig" \
    --authentication-kubeconfig="$S/scheduler.kubeconfig" --authorization-kubeconfig="$S/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --v=1
  start_kubelet "$bin"
  export KUBECONFIG=$S/admin.kubeconfig
  wait_for "node Ready" 90 sh -c "[ \"\$('$bin/kubectl' get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
  wait_for "default ServiceAccount" 60 "$bin/kubectl" get serviceaccount default
  log "node Ready; KUBECONFIG=$S/admin.kubeconfig"
}

stop_pid() { # name: TERM, then KILL after 20 s
  local f="$S/pids/$1.pid" p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_pid kubelet
  # Pod processes live under our cgroups: kill them there, then containerd.
  for h in /sys/fs/cgroup/*/guardchain-local; do
    [ -d "$h" ] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  done
  stop_pid containerd; stop_pid node-ns
  # The runc shims outlive containerd (they are re-parented to init): they are
  # ours exactly when they name our containerd socket.
  local shims; shims=$(pgrep -f -- "-address $S/containerd/containerd.sock" || true)
  if [ -n "$shims" ]; then kill -9 $shims 2>/dev/null || true; fi
  for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid $n; done
  for h in /sys/fs/cgroup/*/guardchain-local; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  ip link del $BRIDGE 2>/dev/null || true
  local left; left=$(grep -c guardchain-local /proc/self/mountinfo || true)
  [ "$left" = 0 ] || log "WARNING: $left host mounts mention the cluster state"
  ls -d /sys/fs/cgroup/*/guardchain-local >/dev/null 2>&1 && log "WARNING: cgroup directories left"
  pgrep -f -- "$S/" >/dev/null && log "WARNING: processes still name $S: $(pgrep -f -- "$S/" | tr '\n' ' ')"
  rm -rf "$S"
  log "down"
}

case ${1:-} in
  up) up "${2:?usage: cluster.sh up IMAGE_DIR}" ;;
  down) down ;;
  restart-apiserver) restart_apiserver ;;
  restart-kubelet) restart_kubelet ;;
  kill-container) kill_container "${2:?usage: cluster.sh kill-container CONTAINER_ID}" ;;
  node-ns) node_ns ;;
  *) echo "usage: cluster.sh up IMAGE_DIR | down | restart-apiserver | restart-kubelet | kill-container CONTAINER_ID" >&2; exit 2 ;;
esac
