# shellcheck shell=bash
# Sourced by scripts/*.sh: Debian packages installed when missing, one way for every script. The sourcing script
# defines `say` (its own prefix on stderr) and SUDO ("" as root, else "sudo").

# Packages a real Kubernetes node needs (scripts/kube-node.sh): a private containerd, runc, CNI plugins, iptables,
# and a C compiler for the static pause binary. scripts/setup.sh installs them up front for the tests.
# shellcheck disable=SC2034 # used by the scripts that source this file
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables gcc libc6-dev)

# Each of the named packages that dpkg does not have installed, one per line.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || echo "$pkg"
    done
}

# apt-get install the packages given (nothing when none are).
apt_install() {
    [ "$#" -gt 0 ] || return 0
    say "installing $*"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
