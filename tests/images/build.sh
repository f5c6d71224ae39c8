#!/usr/bin/env bash
# Builds the small local images the tests and examples use. No registry is needed: each image is FROM scratch
# plus Debian's static busybox (package busybox-static), copied from the host.
#
#   launch-test/busybox     busybox with /bin/sh, a non-root user `app` (1000:1000); the examples' image too
#   launch-test/entrypoint  ENTRYPOINT + CMD + WORKDIR + USER, to check that the sealed-env shim runs them unchanged
#   launch-test/noshell     no /bin/sh at all (busybox renamed), to check the clear error for shell-less images
#   launch-test/cutstdin    a /bin/sh that cuts its stdin short, and
#   launch-test/flipstdin   one that changes a byte of it: the shim must refuse a bundle that is not whole
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
busybox="${BUSYBOX:-/bin/busybox}"
banner="$("$busybox" --help 2>&1 || true)"
if [[ "$banner" != BusyBox* ]]; then
    echo "build.sh: $busybox is not busybox; install Debian's busybox-static" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "build.sh: $busybox is dynamically linked; install Debian's busybox-static" >&2
    exit 1
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cp "$here"/*.Dockerfile "$here"/passwd "$here"/group "$ctx/"
for name in busybox entrypoint noshell cutstdin flipstdin; do
    if ! out="$(docker build -q -f "$ctx/$name.Dockerfile" -t "launch-test/$name:latest" "$ctx" 2>&1)"; then
        echo "$out" >&2
        exit 1
    fi
    echo "built launch-test/$name" >&2
done
