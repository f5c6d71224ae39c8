#!/usr/bin/env bash
# Builds a Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler) and a kubelet from
# Debian's `kubernetes` source package, for the Kubernetes tier of the tests (tests/kubecluster.py). No registry
# serves these binaries here. The binaries are cached by version outside the repository, in
# ${LAUNCH_KUBE_CACHE:-/var/cache/launch-kube}/VERSION/, so a machine that has them does not build again.
# 6 to 15 minutes cold on 2 cores (357 s alone, 1063 s beside another build, measured) (`make` writes a generated OpenAPI file that a plain `go build` lacks).
# Prints the cache folder on stdout. Run as root, or with sudo available.
set -euo pipefail
say() { echo "kube-build: $*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CACHE="${LAUNCH_KUBE_CACHE:-/var/cache/launch-kube}"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
# Changes whenever the recipe below changes what the binaries are: a cache folder built by another recipe is built
# again. 2: the vendored reflect2 replaced by Debian's 1.0.2.
RECIPE=2

# One build at a time per machine: a second caller waits for the first, then finds the cache filled.
if command -v flock >/dev/null && $SUDO mkdir -p "$CACHE" && { exec 9>>"$CACHE/.build.lock"; } 2>/dev/null; then
    flock -n 9 || { say "another kube-build is running: waiting for it"; flock 9; }
fi

# shellcheck source=scripts/packages.sh
. "$(dirname "$0")/packages.sh"
mapfile -t need < <(missing_packages golang-go jq rsync etcd-server dpkg-dev golang-github-modern-go-reflect2-dev)
apt_install "${need[@]}"

# The version Debian's source package carries, without asking for the (large) source when it is cached already.
src_list=/etc/apt/sources.list.d/launch-kube-src.sources
if [ ! -f "$src_list" ]; then
    say "adding a deb-src entry for bookworm main"
    $SUDO tee "$src_list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq
fi
version="$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2; exit}' | sed 's/^[0-9]*://; s/[-+].*//')"
[ -n "$version" ] || { say "apt-cache showsrc kubernetes gave no version"; exit 1; }
out="$CACHE/$version"
have=1
for b in "${BINARIES[@]}"; do [ -x "$out/$b" ] || have=0; done
[ "$(cat "$out/RECIPE" 2>/dev/null)" = "$RECIPE" ] || have=0
if [ "$have" -eq 1 ]; then
    say "cached: $out"
    echo "$out"
    exit 0
fi

work="$(mktemp -d /var/tmp/launch-kube-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
say "fetching the kubernetes $version source into $work"
(cd "$work" && apt-get source -qq --download-only kubernetes >/dev/null 2>&1 || apt-get source -qq kubernetes >/dev/null)
(cd "$work" && compgen -G 'kubernetes-*/' >/dev/null || dpkg-source -x --no-check kubernetes_*.dsc >/dev/null)
srcdir="$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)"
[ -n "$srcdir" ] || { say "no source folder in $work"; exit 1; }
# The source vendors reflect2 1.0.1, which panics under Go 1.18 and later (the only Go bookworm has) as soon as
# json-iterator decodes a map: every JSON request with labels (a Namespace, a Pod) made the apiserver panic.
# 1.0.2 is the same API with that fixed; Debian ships it as source.
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2/go_above_118.go" ] || { say "no reflect2 1.0.2 in $reflect2"; exit 1; }
rm -rf "$srcdir/vendor/github.com/modern-go/reflect2"
mkdir -p "$srcdir/vendor/github.com/modern-go/reflect2"
find "$reflect2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "$srcdir/vendor/github.com/modern-go/reflect2/" \;
say "building ${BINARIES[*]} (6 to 15 minutes cold)"
start=$(date +%s)
(cd "$srcdir" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet" >"$work/build.log" 2>&1) || {
    tail -n 30 "$work/build.log" >&2
    say "make failed"
    exit 1
}
$SUDO mkdir -p "$out"
for b in "${BINARIES[@]}"; do
    $SUDO install -m 0755 "$srcdir/_output/bin/$b" "$out/$b"
done
echo "$RECIPE" | $SUDO tee "$out/RECIPE" >/dev/null
say "built in $(( $(date +%s) - start )) s: $out"
echo "$out"
