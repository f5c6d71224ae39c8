#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, for the Kubernetes tier of the tests (tests/kubecluster.py):
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, no kubelet (the tests play the node).
#
#     bash scripts/kube-control-plane.sh start DIR   # prints DIR/admin.kubeconfig on stdout
#     bash scripts/kube-control-plane.sh stop DIR    # stops what `start DIR` started, waits until they exited
#
# `start` makes what is missing in DIR (kept on a second start: same CA, keys and tokens): a CA and a serving
# certificate for 127.0.0.1/localhost, a service-account key pair, a token file (admin in system:masters; alice;
# bob; the controller-manager and the scheduler as system:kube-controller-manager and system:kube-scheduler), an
# EncryptionConfiguration that encrypts Secrets in etcd with aescbc (encryption.yaml), and kubeconfigs
# admin.kubeconfig (namespace default), alice.kubeconfig (namespace alice), bob.kubeconfig (namespace bob). Then it
# starts each component that is not running yet (etcd data in DIR/etcd, every port a free one on 127.0.0.1, logs
# in DIR/NAME.log, pids in DIR/NAME.pid, ports in DIR/ports.env), waits until /readyz answers ok and the `default`
# ServiceAccount exists, creates the namespaces alice and bob and applies docs/kubernetes-role.yaml in each (the
# Role launch-user, bound to alice in `alice` and to bob in `bob`).
# The apiserver has RBAC (and Node) authorization, token authentication only (no anonymous requests), Secrets
# encrypted at rest, the TTLAfterFinished feature gate (alpha in 1.20) on, no insecure port. The service range
# 10.96.0.0/16 exists only on paper: nothing here serves or reaches those addresses. The apiserver reaches a
# kubelet (pods/log) at its node's Hostname address first (a kubelet's InternalIP is the host's own address, never
# to be used here), then its InternalIP; tests/kubecluster.py's FakeNode says localhost and 127.0.0.1.
# Takes about 10 s to start on 2 cores in a new DIR (most of it the apiserver's first start and the first
# ServiceAccount), about 6 s again in the same DIR, about 1 s when it runs already; `stop` about 1 s. The binaries come from $KUBE_BIN when set, else from scripts/kube-build.sh (its cache folder;
# a 15-20 minute build the first time on a machine); etcd from Debian's etcd-server package (/usr/bin/etcd,
# installed by kube-build.sh). With KUBE_PLANE_WATCH_PID set, a watchdog stops
# the plane when that process exits (tests/kubecluster.py passes its own pid: a killed test run leaves nothing).
set -euo pipefail
say() { echo "kube-control-plane: $*" >&2; }
die() { say "$*"; exit 1; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

usage() { die "usage: $0 start|stop DIR"; }
[ $# -eq 2 ] || usage
cmd="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd)"

# The pid in DIR/NAME.pid when that process is alive, is not a zombie, and is still NAME.
pid_of() {
    local name="$1" pid state
    [ -f "$DIR/$name.pid" ] || return 1
    pid="$(cat "$DIR/$name.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ "$state" != Z ] && [ "$state" != X ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name" || return 1
    echo "$pid"
}

stop_one() {
    local name="$1" pid i
    pid="$(pid_of "$name")" || { rm -f "$DIR/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        pid_of "$name" >/dev/null || break
        sleep 0.1
    done
    if pid_of "$name" >/dev/null; then
        say "$name ($pid) still running after 10 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            pid_of "$name" >/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$DIR/$name.pid"
}

stop_all() {
    local i
    # The watchdog first (it would stop the plane a second time), then in the reverse order of starting.
    stop_one watchdog
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        stop_one "${COMPONENTS[$i]}"
    done
}

if [ "$cmd" = stop ]; then
    stop_all
    say "stopped ($DIR)"
    exit 0
fi
[ "$cmd" = start ] || usage

for tool in openssl curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

# --- binaries -----------------------------------------------------------------------------------------------------
have_bins() { [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ] && [ -x "$1/kube-scheduler" ]; }
if [ -z "${KUBE_BIN:-}" ]; then
    # The cached folder in about a second; a build (and etcd-server) the first time on a machine.
    KUBE_BIN="$(bash "$REPO/scripts/kube-build.sh")" || die "scripts/kube-build.sh failed"
fi
have_bins "$KUBE_BIN" || die "no kube-apiserver, kube-controller-manager, kube-scheduler in $KUBE_BIN"
ETCD="$(command -v etcd)" || die "no etcd on PATH (apt-get install etcd-server)"

# --- files (made once) --------------------------------------------------------------------------------------------
umask 077
cd "$DIR"
if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
    say "making a CA and a serving certificate for 127.0.0.1"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=launch-test-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
    rm -f apiserver.crt
fi
if [ ! -s apiserver.crt ] || [ ! -s apiserver.key ]; then
    openssl req -new -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" \
        2>/dev/null
    cat >apiserver.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EXT
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile apiserver.ext \
        -out apiserver.crt 2>/dev/null
    rm -f apiserver.csr apiserver.ext ca.srl
fi
if [ ! -s sa.key ] || [ ! -s sa.pub ]; then
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi
if [ ! -s tokens.csv ]; then
    {
        echo "$(openssl rand -hex 24),admin,admin,\"system:masters\""
        echo "$(openssl rand -hex 24),alice,alice"
        echo "$(openssl rand -hex 24),bob,bob"
        echo "$(openssl rand -hex 24),system:kube-controller-manager,system:kube-controller-manager"
        echo "$(openssl rand -hex 24),system:kube-scheduler,system:kube-scheduler"
        # A real kubelet named localhost (scripts/kube-node.sh, KUBE_NODE_TOKEN): the Node authorizer's identity.
        echo "$(openssl rand -hex 24),system:node:localhost,system:node:localhost,\"system:nodes\""
    } >tokens.csv
fi
token_of() { awk -F, -v u="$1" '$2 == u { print $1 }' tokens.csv; }
if [ ! -s encryption.yaml ]; then
    cat >encryption.yaml <<ENC
# Secrets are written to etcd encrypted with AES-CBC (the first provider); anything older stored in plain text
# still reads back (identity, the last provider).
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: $(openssl rand -base64 32)
      - identity: {}
ENC
fi

# --- ports: the ones of the last start when they are still free, else new free ones --------------------------------
free_ports() {
    python3 - "$@" <<'PY'
import socket, sys
wanted = [int(p) for p in sys.argv[1:]]
socks, ports = [], []
for port in wanted or [0, 0, 0]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(1)
    socks.append(s)
    ports.append(s.getsockname()[1])
print(*ports)
PY
}
if pid_of etcd >/dev/null || pid_of kube-apiserver >/dev/null; then
    # shellcheck disable=SC1091
    . ./ports.env  # running already: keep its ports
else
    ports=""
    if [ -s ports.env ]; then
        # shellcheck disable=SC1091
        . ./ports.env
        ports="$(free_ports "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" 2>/dev/null)" || ports=""
    fi
    [ -n "$ports" ] || ports="$(free_ports)"
    read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT <<<"$ports"
    printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" \
        >ports.env
fi
SERVER="https://127.0.0.1:$APISERVER_PORT"

# --- kubeconfigs (written every start: the port may have changed) -------------------------------------------------
ca_data="$(base64 -w0 <ca.crt)"
kubeconfig() { # FILE USER NAMESPACE
    cat >"$1.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: launch-test
    cluster:
      server: $SERVER
      certificate-authority-data: $ca_data
users:
  - name: $2
    user:
      token: $(token_of "$2")
contexts:
  - name: $2@launch-test
    context:
      cluster: launch-test
      user: $2
      namespace: $3
current-context: $2@launch-test
KC
    mv "$1.tmp" "$1"
}
kubeconfig admin.kubeconfig admin default
kubeconfig alice.kubeconfig alice alice
kubeconfig bob.kubeconfig bob bob
kubeconfig controller-manager.kubeconfig system:kube-controller-manager kube-system
kubeconfig scheduler.kubeconfig system:kube-scheduler kube-system
umask 022

# --- processes ----------------------------------------------------------------------------------------------------
launch() { # NAME ARGS...: started in the background unless running already
    local name="$1"
    shift
    if pid_of "$name" >/dev/null; then
        say "$name is running already ($(cat "$name.pid"))"
        return 0
    fi
    "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
}
alive_or_die() {
    pid_of "$1" >/dev/null || { tail -n 25 "$DIR/$1.log" >&2; die "$1 exited, see $DIR/$1.log"; }
}
wait_until() { # SECONDS WHAT COMPONENT COMMAND...
    local seconds="$1" what="$2" component="$3" i
    shift 3
    for i in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        alive_or_die "$component"
        sleep 0.2
    done
    tail -n 25 "$DIR/$component.log" >&2
    die "timed out after ${seconds} s waiting for $what"
}

started=$(date +%s)
ETCD_URL="http://127.0.0.1:$ETCD_PORT"
ETCD_PEER="http://127.0.0.1:$ETCD_PEER_PORT"
launch etcd "$ETCD" --name launch-test --data-dir "$DIR/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
    --initial-cluster "launch-test=$ETCD_PEER" --initial-cluster-state new --initial-cluster-token launch-test
wait_until 30 "etcd" etcd sh -c "curl -fsS '$ETCD_URL/health' | grep -q '\"health\":\"true\"'"

ADMIN_TOKEN="$(token_of admin)"
api() { # METHOD PATH [curl args...]: the HTTP status on stdout, the body in $DIR/.api-body
    local method="$1" path="$2"
    shift 2
    curl -sS -o "$DIR/.api-body" -w '%{http_code}' --cacert "$DIR/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -X "$method" "$SERVER$path" "$@"
}

launch kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" --insecure-port=0 \
    --etcd-servers="$ETCD_URL" \
    --tls-cert-file="$DIR/apiserver.crt" --tls-private-key-file="$DIR/apiserver.key" --client-ca-file="$DIR/ca.crt" \
    --token-auth-file="$DIR/tokens.csv" --anonymous-auth=false \
    --authorization-mode=Node,RBAC \
    --encryption-provider-config="$DIR/encryption.yaml" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$DIR/sa.pub" --service-account-signing-key-file="$DIR/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=Hostname,InternalIP \
    --allow-privileged=true \
    --feature-gates=TTLAfterFinished=true \
    --profiling=false
wait_until 90 "the apiserver's /readyz" kube-apiserver \
    sh -c "[ \"\$(curl -sS --cacert '$DIR/ca.crt' -H 'Authorization: Bearer $ADMIN_TOKEN' '$SERVER/readyz')\" = ok ]"

launch kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port=0 \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$DIR/sa.key" --root-ca-file="$DIR/ca.crt" \
    --cluster-signing-cert-file="$DIR/ca.crt" --cluster-signing-key-file="$DIR/ca.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --feature-gates=TTLAfterFinished=true \
    --profiling=false
launch kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port=0 \
    --leader-elect=false \
    --profiling=false

sa_exists() { [ "$(api GET "/api/v1/namespaces/$1/serviceaccounts/default")" = 200 ]; }
wait_until 60 "the default ServiceAccount in default" kube-controller-manager sa_exists default
alive_or_die kube-scheduler

# --- the test users' namespaces and rights ------------------------------------------------------------------------
create() { # PATH FILE CONTENT-TYPE: POST, and PUT over it when it exists already
    local path="$1" file="$2" type="$3" name status
    status="$(api POST "$path" -H "Content-Type: $type" --data-binary "@$file")"
    if [ "$status" = 409 ]; then
        name="$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' "$file")"
        status="$(api PUT "$path/$name" -H "Content-Type: $type" --data-binary "@$file")"
    fi
    case "$status" in
        2??) ;;
        *) die "POST $path: HTTP $status: $(cat "$DIR/.api-body")" ;;
    esac
}
for user in alice bob; do
    ns="$user"
    printf '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"%s"}}' "$ns" >"$DIR/.ns.json"
    status="$(api POST /api/v1/namespaces -H 'Content-Type: application/json' --data-binary "@$DIR/.ns.json")"
    case "$status" in
        201 | 409) ;;
        *) die "creating namespace $ns: HTTP $status: $(cat "$DIR/.api-body")" ;;
    esac
    # docs/kubernetes-role.yaml with NAMESPACE and USER filled in, one request per document.
    sed -e "s/\bNAMESPACE\b/$ns/g" -e "s/\bUSER\b/$user/g" "$REPO/docs/kubernetes-role.yaml" |
        awk -v out="$DIR/.rbac-$user" 'BEGIN { n = 0; f = out "-0.yaml" } /^---/ { n++; f = out "-" n ".yaml"; next }
            { print > f }'
    for doc in "$DIR/.rbac-$user"-*.yaml; do
        kind="$(awk '/^kind:/ { print $2; exit }' "$doc")"
        case "$kind" in
            Role) create "/apis/rbac.authorization.k8s.io/v1/namespaces/$ns/roles" "$doc" application/yaml ;;
            RoleBinding) create "/apis/rbac.authorization.k8s.io/v1/namespaces/$ns/rolebindings" "$doc" application/yaml ;;
            "") ;;
            *) die "docs/kubernetes-role.yaml: unexpected kind $kind" ;;
        esac
    done
    rm -f "$DIR/.rbac-$user"-*.yaml
done
for ns in alice bob; do
    wait_until 30 "the default ServiceAccount in $ns" kube-controller-manager sa_exists "$ns"
done
rm -f "$DIR/.ns.json" "$DIR/.api-body"
alive_or_die kube-controller-manager
alive_or_die kube-scheduler

if [ -n "${KUBE_PLANE_WATCH_PID:-}" ] && ! pid_of watchdog >/dev/null; then
    # Stops the plane when the process that asked for it is gone (a test run killed before its teardown).
    (
        exec -a "watchdog kube-control-plane $DIR" bash -c '
            while kill -0 "$1" 2>/dev/null; do sleep 2; done
            rm -f "$2/watchdog.pid"
            exec bash "$3" stop "$2"' _ "$KUBE_PLANE_WATCH_PID" "$DIR" "$REPO/scripts/kube-control-plane.sh"
    ) </dev/null >>"$DIR/watchdog.log" 2>&1 &
    echo $! >"$DIR/watchdog.pid"
fi

say "ready in $(($(date +%s) - started)) s: $SERVER (binaries $KUBE_BIN)"
echo "$DIR/admin.kubeconfig"
