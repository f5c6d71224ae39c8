#!/usr/bin/env bash
# A real Kubernetes node on this machine: a private containerd (CRI plugin, runc, bridge CNI) and a kubelet
# registered with an existing control plane (scripts/kube-control-plane.sh / tests/kubecluster.py). Pods run as
# real runc containers on the host, from images imported locally (no registry is reachable here).
#
#   kube-node.sh start DIR ADMIN_KUBECONFIG   prints the node name on stdout once the Node is Ready
#   kube-node.sh stop DIR                     kills kubelet and containerd, removes every pod container, mount,
#                                             network namespace, bridge and log it made; safe to run twice
#
# What start does, in order:
#   - installs what is missing (apt: containerd runc containernetworking-plugins iptables gcc libc6-dev; pip:
#     kubernetes) and the kubelet (scripts/kube-build.sh, cached in /var/cache/launch-kube/VERSION, or $KUBE_BIN);
#   - builds the pause image launch-test/pause:3.2 (FROM scratch + a static C pause, with `docker build`) unless
#     docker has it, and imports it and launch-test/busybox:latest (plus $KUBE_NODE_IMAGES) into its containerd;
#   - starts containerd with its own root (DIR/containerd), state and socket (/run/launch-kube-node/...), so the
#     docker engine's containerd is left alone. One node per machine (the socket path is fixed);
#   - starts the kubelet (root dir DIR/kubelet) and waits until the Node reports Ready.
# Logs: DIR/containerd.log, DIR/kubelet.log; pidfiles DIR/containerd.pid, DIR/kubelet.pid.
# Timings (2 cores, binaries cached, measured): start ~5-6 s when the Node is new (about 1 s more when the pause
# image has to be built), ~3 s when a Node of that name exists already; a pod with a secret env var and a secret
# volume runs to Succeeded 1.1-2.3 s after its creation; stop ~3.5 s with pods running.
# Quirk of this sandbox: lowering a process's oom_score_adj is refused (CAP_SYS_RESOURCE is not in the bounding
# set), so containerd runs with restrict_oom_score_adj (without it every sandbox failed in runc, "can't get final
# child's PID from pipe: EOF"), and kubelet logs "write /proc/self/oom_score_adj: permission denied", harmlessly.
#
# Node name and reachability. The node is called "localhost" (override: KUBE_NODE_NAME). kubelet listens on
# 127.0.0.1 only, and the apiserver reaches it (logs, exec, attach) through the node's Hostname address, which is
# its name: "localhost" resolves to 127.0.0.1. kubelet refuses a loopback --node-ip ("nodeIP can't be loopback
# address"), so the node's InternalIP is the host's default-route address; the apiserver must therefore keep its
# default --kubelet-preferred-address-types (Hostname first) or say Hostname explicitly, never InternalIP first.
#
# The node's credential (the kubeconfig that kubelet uses), one of:
#   1. KUBE_NODE_TOKEN set: a bearer token that the apiserver's --token-auth-file maps to the node identity, a line
#        TOKEN,system:node:localhost,system:node:localhost,system:nodes
#      (with --authorization-mode=Node,RBAC this is all the node needs: the Node authorizer grants it its own Node,
#      Lease, the pods bound to it and the secrets/configmaps those pods use; NodeRestriction admission is fine).
#   2. otherwise: with ADMIN_KUBECONFIG it makes ServiceAccount kube-system/launch-node-NAME, binds it to the
#      built-in ClusterRole system:node (ClusterRoleBinding launch-node-NAME), and uses that account's token;
#      this needs the controller-manager's token controller (--service-account-private-key-file).
# kubelet's own API (port from 10250 up, on 127.0.0.1 only) takes anonymous requests with AlwaysAllow, so the
# apiserver needs no --kubelet-client-certificate; anything on this machine can use it, which is fine for tests.
#
# Host changes, all undone by stop: kubelet sets vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1
# (saved to DIR/sysctl.saved first, restored by stop); bridge lkn0 (no address, no route, no iptables rules) for
# pods that are not hostNetwork, IPs from 10.254.77.0/24 that nothing on the host routes to; pod logs under
# /var/log/pods and /var/log/containers (fixed paths in kubelet); /var/lib/kubelet/device-plugins (fixed too);
# cgroups /sys/fs/cgroup/*/k8s.io/. kubelet makes no iptables chains (makeIPTablesUtilChains: false).
# Needs root, writable cgroups (tested on cgroup v1, cgroupfs driver, as docker here), a docker engine holding the images, and the kube-apiserver at the address
# in ADMIN_KUBECONFIG. Env: KUBE_NODE_NAME, KUBE_NODE_TOKEN, KUBE_NODE_IMAGES (space-separated
# docker images to import), KUBE_BIN (folder with kubelet), KUBE_NODE_READY_TIMEOUT (seconds, default 120), PYTHON.
set -euo pipefail

say() { echo "kube-node: $*" >&2; }
die() { say "$*"; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN=/run/launch-kube-node
SOCK="$RUN/containerd.sock"
BRIDGE=lkn0
POD_SUBNET=10.254.77.0/24
PAUSE_IMAGE=launch-test/pause:3.2
PYTHON="${PYTHON:-python3}"
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
         kernel.keys.root_maxbytes)
SUDO=""
[ "$(id -u)" -eq 0 ] || die "run as root (containerd and kubelet need it)"
# shellcheck source=scripts/packages.sh
. "$HERE/packages.sh"

usage() { die "usage: $0 start DIR ADMIN_KUBECONFIG | stop DIR"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Whether this node's containerd answers (ctr would wait 10 s for a socket that nothing serves).
serving() { [ -S "$SOCK" ] && ctr --address "$SOCK" --connect-timeout 1s version >/dev/null 2>&1; }

ensure_packages() {
    local need=()
    mapfile -t need < <(missing_packages "${NODE_PACKAGES[@]}")
    apt_install "${need[@]}"
    "$PYTHON" -c 'import kubernetes, yaml' 2>/dev/null || "$PYTHON" -m pip install -q kubernetes >&2
}

kubelet_bin() {
    if [ -n "${KUBE_BIN:-}" ]; then
        echo "$KUBE_BIN/kubelet"
    else
        echo "$(bash "$HERE/kube-build.sh")/kubelet"
    fi
}

free_port() {  # the first free 127.0.0.1 TCP port from $1 up
    "$PYTHON" - "$1" <<'PY'
import socket, sys
for port in range(int(sys.argv[1]), 65536):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

pause_image() {
    docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
    say "building $PAUSE_IMAGE"
    local tmp
    tmp="$(mktemp -d)"
    cat >"$tmp/pause.c" <<'C'
/* The pod sandbox's process: holds the pod's namespaces, reaps zombies, exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void down(int signo) { (void)signo; _exit(0); }
static void reap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction d = {.sa_handler = down}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &d, NULL);
    sigaction(SIGTERM, &d, NULL);
    sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
}
C
    gcc -Os -static -o "$tmp/pause" "$tmp/pause.c"
    strip "$tmp/pause"
    printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$tmp/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$PAUSE_IMAGE" "$tmp" >/dev/null 2>&1 || { rm -rf "$tmp"; die "docker build of $PAUSE_IMAGE failed"; }
    rm -rf "$tmp"
}

write_containerd_config() {
    local dir="$1"
    mkdir -p "$dir/cni" "$dir/containerd" "$RUN"
    cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$RUN/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "docker.io/$PAUSE_IMAGE"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_tls_streaming = false
    disable_tcp_service = true
    netns_mounts_under_state_dir = true
    # Lowering a process's oom_score_adj is refused here (no CAP_SYS_RESOURCE in the bounding set): runc failed
    # "can't get final child's PID from pipe: EOF" on the sandbox's -998. Keep it no lower than containerd's.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$RUN/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$dir/cni"
      max_conf_num = 1
EOF
    # A bridge with no address: pods that are not hostNetwork get a sandbox and an IP, and no route leads there.
    cat >"$dir/cni/10-launch-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "launch-node",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "dataDir": "$dir/cni-ipam"}}
  ]
}
EOF
}

start_containerd() {
    local dir="$1"
    containerd --config "$dir/containerd.toml" </dev/null >"$dir/containerd.log" 2>&1 &
    echo $! >"$dir/containerd.pid"
    for _ in $(seq 1 100); do
        serving && return 0
        alive "$dir/containerd.pid" || break
        sleep 0.1
    done
    tail -n 20 "$dir/containerd.log" >&2
    die "containerd did not come up"
}

import_images() {
    local images=("$PAUSE_IMAGE" launch-test/busybox:latest) img
    # shellcheck disable=SC2206
    [ -z "${KUBE_NODE_IMAGES:-}" ] || images+=(${KUBE_NODE_IMAGES})
    for img in "${images[@]}"; do
        docker image inspect "$img" >/dev/null 2>&1 || die "docker has no image $img"
    done
    docker save "${images[@]}" | ctr --address "$SOCK" -n k8s.io images import - >/dev/null
}

# The kubelet's kubeconfig: the admin kubeconfig's cluster (server, CA), the node's token.
write_kubeconfig() {
    local dir="$1" admin="$2" name="$3"
    KUBE_NODE_TOKEN="${KUBE_NODE_TOKEN:-}" "$PYTHON" - "$admin" "$name" "$dir/kubelet.kubeconfig" <<'PY'
import base64, os, sys, time, yaml
admin_path, name, out = sys.argv[1:4]
with open(admin_path) as f:
    cfg = yaml.safe_load(f)
ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
cluster = dict(next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"]))
ca = cluster.pop("certificate-authority", None)
if ca:
    ca = ca if os.path.isabs(ca) else os.path.join(os.path.dirname(os.path.abspath(admin_path)), ca)
    with open(ca, "rb") as f:
        cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
token = os.environ.get("KUBE_NODE_TOKEN", "")
if not token:
    import urllib3
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    urllib3.disable_warnings()
    api = config.new_client_from_config(config_file=admin_path)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    sa_name = f"launch-node-{name}"
    try:
        core.create_namespaced_service_account("kube-system", {"metadata": {"name": sa_name}})
    except ApiException as e:
        if e.status != 409:
            raise
    try:
        rbac.create_cluster_role_binding({
            "metadata": {"name": sa_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": "kube-system"}]})
    except ApiException as e:
        if e.status != 409:
            raise
    deadline = time.time() + 30
    while not token:
        sa = core.read_namespaced_service_account(sa_name, "kube-system")
        for ref in sa.secrets or []:
            secret = core.read_namespaced_secret(ref.name, "kube-system")
            if secret.type == "kubernetes.io/service-account-token" and (secret.data or {}).get("token"):
                token = base64.b64decode(secret.data["token"]).decode()
        if not token:
            if time.time() > deadline:
                sys.exit("kube-node: no token for ServiceAccount kube-system/%s after 30 s (is the controller-manager "
                         "running with --service-account-private-key-file?); or set KUBE_NODE_TOKEN" % sa_name)
            time.sleep(0.5)
kubeconfig = {
    "apiVersion": "v1", "kind": "Config", "current-context": "node",
    "clusters": [{"name": "cluster", "cluster": cluster}],
    "users": [{"name": "node", "user": {"token": token}}],
    "contexts": [{"name": "node", "context": {"cluster": "cluster", "user": "node"}}],
}
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    yaml.safe_dump(kubeconfig, f)
PY
}

write_kubelet_config() {
    local dir="$1" port="$2" healthz="$3"
    local resolv=/etc/resolv.conf
    [ -f "$resolv" ] || resolv=""
    cat >"$dir/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
kernelMemcgNotification: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
hairpinMode: none
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
serverTLSBootstrap: false
serializeImagePulls: false
resolvConf: "$resolv"
clusterDomain: cluster.local
clusterDNS: []
syncFrequency: 10s
nodeStatusUpdateFrequency: 2s
volumeStatsAggPeriod: 0s
maxPods: 110
EOF
}

start_kubelet() {
    local dir="$1" name="$2" bin="$3"
    mkdir -p "$dir/kubelet"
    "$bin" \
        --config="$dir/kubelet-config.yaml" \
        --kubeconfig="$dir/kubelet.kubeconfig" \
        --container-runtime=remote \
        --container-runtime-endpoint="unix://$SOCK" \
        --image-service-endpoint="unix://$SOCK" \
        --runtime-request-timeout=2m \
        --pod-infra-container-image="$PAUSE_IMAGE" \
        --hostname-override="$name" \
        --root-dir="$dir/kubelet" \
        --cert-dir="$dir/kubelet/pki" \
        --v=2 \
        </dev/null >"$dir/kubelet.log" 2>&1 &
    echo $! >"$dir/kubelet.pid"
}

wait_ready() {
    local dir="$1" admin="$2" name="$3" timeout="${KUBE_NODE_READY_TIMEOUT:-120}"
    "$PYTHON" - "$admin" "$name" "$timeout" "$dir/kubelet.pid" "$4" <<'PY'
import datetime, os, sys, time
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
urllib3.disable_warnings()
admin, name, timeout, pidfile = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
# A Node left by an earlier kubelet of that name may still say Ready: count only what this kubelet posted.
since = datetime.datetime.fromtimestamp(int(sys.argv[5]), datetime.timezone.utc)
core = client.CoreV1Api(config.new_client_from_config(config_file=admin))
deadline = time.time() + timeout
last = "not registered"
while time.time() < deadline:
    try:
        os.kill(int(open(pidfile).read()), 0)
    except (OSError, ValueError):
        sys.exit("kube-node: kubelet exited")
    try:
        node = core.read_node(name)
        for c in node.status.conditions or []:
            if c.type == "Ready" and c.last_heartbeat_time and c.last_heartbeat_time >= since:
                if c.status == "True":
                    sys.exit(0)
                last = f"{c.reason}: {c.message}"
    except ApiException as e:
        if e.status != 404:
            last = f"{e.status} {e.reason}"
    time.sleep(0.5)
sys.exit(f"kube-node: node {name} not Ready after {timeout:.0f} s ({last})")
PY
}

do_start() {
    local dir="$1" admin="$2" name="${KUBE_NODE_NAME:-localhost}" t0=$SECONDS
    [ -f "$admin" ] || die "no admin kubeconfig at $admin"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    admin="$(cd "$(dirname "$admin")" && pwd)/$(basename "$admin")"
    serving && die "a node's containerd already serves $SOCK (stop it first)"
    ensure_packages
    local kubelet
    kubelet="$(kubelet_bin)"
    [ -x "$kubelet" ] || die "no kubelet at $kubelet"
    pause_image
    echo "$name" >"$dir/node-name"
    local s
    : >"$dir/sysctl.saved"
    for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")" >>"$dir/sysctl.saved"; done
    [ -d /var/log/pods ] || touch "$dir/made-var-log-pods"
    ls /var/log/pods 2>/dev/null >"$dir/var-log-pods.before" || true
    [ -d /var/log/containers ] || touch "$dir/made-var-log-containers"
    [ -d /var/lib/kubelet ] || touch "$dir/made-var-lib-kubelet"
    write_containerd_config "$dir"
    start_containerd "$dir"
    import_images
    write_kubeconfig "$dir" "$admin" "$name" || { do_stop "$dir"; die "no node credential"; }
    write_kubelet_config "$dir" "$(free_port 10250)" "$(free_port 10248)"
    local since
    since="$(date +%s)"
    start_kubelet "$dir" "$name" "$kubelet"
    if ! wait_ready "$dir" "$admin" "$name" "$since"; then
        # kubelet's distinct errors, most frequent first, without the "node not found" that repeats until it registers
        grep -E '^[EF][0-9]{4}' "$dir/kubelet.log" | grep -v 'node "[^"]*" not found' | cut -d' ' -f4- | sort |
            uniq -c | sort -rn | head -n 10 | cut -c1-400 >&2 || true
        do_stop "$dir"
        die "the node did not become Ready (logs: $dir/kubelet.log, $dir/containerd.log)"
    fi
    say "node $name Ready after $((SECONDS - t0)) s"
    echo "$name"
}

stop_pid() {  # stop_pid PIDFILE SECONDS: SIGTERM, then SIGKILL after SECONDS
    local file="$1" secs="$2" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

# Processes started for this node's containerd (shims) that are still there, found by their command line.
node_shims() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "containerd-shim.* -address $SOCK" && echo "${p#/proc/}"
    done
    return 0
}

do_stop() {
    local dir="$1" id ids m
    [ -d "$dir" ] || return 0
    dir="$(cd "$dir" && pwd)"
    stop_pid "$dir/kubelet.pid" 10
    # Every pod container and sandbox, through containerd while it runs, then through runc for any left over.
    if serving; then
        # The CRI plugin deletes a task itself once it has exited: wait until none is listed.
        for _ in $(seq 1 100); do
            ids="$(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null)" || break
            [ -n "$ids" ] || break
            for id in $ids; do
                ctr --address "$SOCK" -n k8s.io tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
                ctr --address "$SOCK" -n k8s.io tasks rm -f "$id" >/dev/null 2>&1 || true
            done
            sleep 0.1
        done
        for id in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
            ctr --address "$SOCK" -n k8s.io containers rm "$id" >/dev/null 2>&1 || true
        done
    fi
    stop_pid "$dir/containerd.pid" 10
    if [ -d "$RUN/runc/k8s.io" ]; then
        for id in $(runc --root "$RUN/runc/k8s.io" list -q 2>/dev/null); do
            runc --root "$RUN/runc/k8s.io" kill -a "$id" KILL >/dev/null 2>&1 || true
            runc --root "$RUN/runc/k8s.io" delete -f "$id" >/dev/null 2>&1 || true
        done
    fi
    for id in $(node_shims); do kill -KILL "$id" 2>/dev/null || true; done
    # Mounts (rootfs overlays, secret tmpfs, netns, shm) under the node's folders, deepest first.
    awk -v a="$dir/" -v b="$RUN/" 'index($5, a) == 1 || index($5, b) == 1 {print $5}' /proc/self/mountinfo |
        sort -r | while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    ip link del "$BRIDGE" 2>/dev/null || true
    # Pod logs that kubelet keeps at fixed paths: every entry that was not there before start, then the folders.
    if [ -f "$dir/var-log-pods.before" ]; then
        for m in /var/log/pods/*; do
            [ -e "$m" ] || continue
            grep -qxF "$(basename "$m")" "$dir/var-log-pods.before" || rm -rf --one-file-system "$m"
        done
        rm -f "$dir/var-log-pods.before"
    fi
    if [ -d /var/log/containers ]; then find /var/log/containers -maxdepth 1 -xtype l -delete || true; fi
    if [ -f "$dir/made-var-log-pods" ]; then rmdir /var/log/pods 2>/dev/null || true; rm -f "$dir/made-var-log-pods"; fi
    if [ -f "$dir/made-var-log-containers" ]; then
        rmdir /var/log/containers 2>/dev/null || true
        rm -f "$dir/made-var-log-containers"
    fi
    if [ -f "$dir/made-var-lib-kubelet" ]; then  # kubelet's device-plugin socket folder is a fixed path too
        rm -rf --one-file-system /var/lib/kubelet/device-plugins
        rmdir /var/lib/kubelet 2>/dev/null || true
        rm -f "$dir/made-var-lib-kubelet"
    fi
    for m in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do
        [ -d "$m" ] || continue
        find "$m" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    if [ -f "$dir/sysctl.saved" ]; then
        while IFS= read -r m; do sysctl -q -w "$m" >/dev/null 2>&1 || true; done <"$dir/sysctl.saved"
        rm -f "$dir/sysctl.saved"
    fi
    rm -rf --one-file-system "$dir/containerd" "$dir/kubelet" "$dir/cni-ipam" "$RUN"
}

case "${1:-}" in
    start) [ $# -eq 3 ] || usage; do_start "$2" "$3" ;;
    stop) [ $# -eq 2 ] || usage; do_stop "$2" ;;
    *) usage ;;
esac
