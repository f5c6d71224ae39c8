#!/usr/bin/env bash
# Sets up a fresh Debian machine for `launch`: the Docker engine (started when none runs), the static busybox the
# local test/example images are built from (no registry is needed), the package itself, and those images.
# Idempotent: what is there already is left as it is. Run as root, or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# shellcheck source=scripts/packages.sh
. scripts/packages.sh

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# a rootless engine for the tests that run as a normal user without the docker group (tests/test_unprivileged.py)
mapfile -t -O "${#need[@]}" need < <(missing_packages rootlesskit uidmap slirp4netns)
# the console's browser tests (tests/test_console_browser.py): headless Chromium driven through chromium-driver
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# a registry on 127.0.0.1 to pull from (tests/test_pull.py: progress of a real pull; no outside registry is reached)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# a real Kubernetes node for tests/test_kubernetes_node.py (scripts/kube-node.sh): a private containerd, CNI, runc
mapfile -t -O "${#need[@]}" need < <(missing_packages "${NODE_PACKAGES[@]}")
apt_install "${need[@]}"

if ! docker info >/dev/null 2>&1; then
    say "starting the Docker engine"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        $SUDO systemctl start docker
    else
        $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { say "the Docker engine did not start; see /var/log/dockerd.log"; exit 1; }
fi

PYTHON="${PYTHON:-python3}"
say "installing launch with $PYTHON"
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -e '^WARNING: Running pip as' -e 'ignored: it is neither' >&2 || true
"$PYTHON" -c 'import launcher' || { say "pip install failed"; exit 1; }

say "building the local images"
bash tests/images/build.sh

# The Kubernetes tier (tests/test_kubernetes*.py): a control plane and a kubelet built from Debian's source
# package, cached by version in /var/cache/launch-kube (6 to 15 minutes cold on 2 cores, measured; nothing when cached).
say "the Kubernetes binaries (built once, then cached)"
bash scripts/kube-build.sh >/dev/null
say "ready"
