"""Secrets delivered through the engine's API: a framed, checksummed bundle written to the container's stdin.

Pure (no engine, no I/O), so it is tested on its own and through a real `/bin/sh`.

How a value reaches a job, on every engine (root or a docker-group user, rootless, Docker Desktop, a remote
`DOCKER_HOST`), with no file of ours on any disk:

1. The container is created with tmpfs mounts that the *engine* makes inside it (HostConfig `Tmpfs`, mode 1777 as
   Kubernetes' secret volumes, `noexec,nosuid,nodev`): `/.launch`, and the folder of every secret file.
2. Its entrypoint is the shim, `/bin/sh -c SHIM launch-shim ARGV...`, where ARGV is the job's own entrypoint and
   command. The shim is fixed text: no value is in the container's config, `docker inspect` or any argument list.
3. The launcher attaches to the container's stdin (with StdinOnce) before starting it, and writes the bundle:
   a header line `launch-bundle 1 LINES SHA256 END` and LINES lines of shell code. The shim reads exactly those lines
   (the shell's `read` never reads past a newline on a pipe, so what follows is the job's own stdin), writes them to
   `/.launch/bundle` (mode 0600, on the tmpfs), checks the line count, the end marker and, where the image has
   `sha256sum` (every coreutils and busybox image), the checksum; then sources it, deletes it, and `exec`s ARGV.
   The bundle's code only exports the env secrets and writes each secret file with `printf` (a shell builtin:
   no value in any argument list), mode 0400 or the template's, owned by the job's user (the shim runs as it).
4. Anything short of a whole bundle (stdin closed early, a line missing, a checksum that differs, a file that cannot
   be written) ends the shim with exit 126 and one `launch shim: ...` line on stderr: the job's command never runs.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from launcher.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

STAGE = "/.launch"  # the engine's tmpfs for the bundle while the shim checks it
SHIM_TAG = "launch-shim"  # the shim's $0: how `top` tells the shim from the job it becomes
FAILED = 126  # the shim's exit code when the secrets did not arrive whole (as a shell's "cannot execute")
MESSAGE_PREFIX = b"launch shim: "
TMPFS_OPTIONS = "mode=1777,noexec,nosuid,nodev"
# Folders a tmpfs must never cover (the engine's own mounts, or the whole root).
_RESERVED = ("/", "/proc", "/sys", "/dev", STAGE)

# The shim: fixed code, run by the image's /bin/sh as the container's entrypoint, visible in `docker inspect`.
SHIM = r""": launch-shim 1
umask 077
_say() { printf 'launch shim: %s\n' "$*" >&2; }
_no() { rm -f /.launch/bundle; _say "$* (the job's command was not run)"; exit 126; }
_f() { { printf "$3" > "$1"; } 2> /dev/null && chmod "$2" "$1" || _no "cannot write the secret file $1"; }
_hd() { [ "$1" = launch-bundle ] && [ "$2" = 1 ] && _n=$3 && _sum=$4 && _end=$5; }
_gone() { [ "$1" = launch-bundle ] && [ "$3" = none ]; }
_ok() { [ "$1" = "$_sum" ]; }
IFS= read -r _h || _no "no secrets arrived: stdin closed before the launcher sent them"
! _gone $_h || _no "its secrets are gone (the launch warden that kept them has ended: a reboot?); run the job again"
_hd $_h || _no "what arrived on stdin is not a launch bundle"
_i=0 _l=
while [ "$_i" -lt "$_n" ] && IFS= read -r _l; do printf '%s\n' "$_l"; _i=$((_i + 1)); done > /.launch/bundle ||
  _no "cannot write to /.launch"
[ "$_i" = "$_n" ] && [ "$_l" = ": launch-end $_end" ] || _no "the secrets arrived incomplete ($_i of $_n lines)"
if command -v sha256sum > /dev/null 2>&1; then
  _ok $(sha256sum < /.launch/bundle) || _no "the secrets arrived corrupted"
fi
. /.launch/bundle
rm -f /.launch/bundle || _no "cannot remove /.launch/bundle"
unset _h _i _l _n _sum _end
exec "$@"
"""


def shim_entrypoint(argv: Iterable[str]) -> list[str]:
    """The container's entrypoint: the shim, then the job's own argv (its $1...)."""
    return ["/bin/sh", "-c", SHIM, SHIM_TAG, *argv]


def is_shim(args: str) -> bool:
    """Whether a process's command line (as `ps`/`top` shows it) is the shim, still waiting or loading."""
    return args.startswith("/bin/sh -c : launch-shim") or ": launch-shim 1" in args[:64]


def quote(text: str) -> str:
    """Shell single quotes: every character literal, newlines included."""
    return "'" + text.replace("'", "'\\''") + "'"


_SAFE = frozenset(range(0x20, 0x7F)) - {ord("\\"), ord("%"), ord("'")}
_ESCAPES = [chr(b) if b in _SAFE else f"\\{b:03o}" for b in range(256)]


def printf_format(data: bytes) -> str:
    """`data` as a printf format that prints exactly those bytes: printable ASCII as itself, every other byte
    (NUL, newline, UTF-8, `\\`, `%`, `'`) as a 3-digit octal escape. One line, safe inside single quotes; a leading
    `-` is escaped too, so printf never takes it for an option."""
    text = "".join(map(_ESCAPES.__getitem__, data))
    return "\\055" + text[1:] if text.startswith("-") else text


@dataclass(frozen=True)
class Bundle:
    """What the launcher writes to the shim's stdin. `repr` shows sizes only: it holds every value."""

    data: bytes
    lines: int

    def __repr__(self) -> str:
        return f"Bundle(lines={self.lines}, bytes={len(self.data)})"


GONE = b"launch-bundle 1 none\n"  # told to a restarted shim when no one holds its secrets any more


def build(plan: Plan) -> Bundle:
    """The bundle of a plan's env secrets and secret files (its plain variables stay Docker env)."""
    body = [f"export {name}={quote(value)}" for name, value in plan.secret_env]
    body += [f"_f {quote(f.target)} {f.mode:04o} '{printf_format(value)}'" for f, value in plan.files]
    end = os.urandom(8).hex()
    text = ("\n".join(body) + "\n" if body else "") + f": launch-end {end}\n"
    payload = text.encode("utf-8")
    lines = payload.count(b"\n")
    header = f"launch-bundle 1 {lines} {hashlib.sha256(payload).hexdigest()} {end}\n".encode()
    return Bundle(header + payload, lines)


def file_folders(plan_or_spec) -> list[str]:
    """The folders the engine mounts a tmpfs on, one per folder that holds secret files, checked."""
    spec = getattr(plan_or_spec, "spec", plan_or_spec)
    folders: list[str] = []
    bind_targets = {b.target.rstrip("/") or "/" for b in spec.binds}
    for secret_file in spec.secret_files:
        folder = posixpath.dirname(posixpath.normpath(secret_file.target))
        where = f" ({secret_file.origin})" if secret_file.origin else ""
        if folder in _RESERVED or folder.startswith((f"{STAGE}/", "/proc/", "/sys/", "/dev/")):
            raise UsageError(
                f"secret file {secret_file.target!r}{where}: its folder {folder!r} cannot hold secret files "
                "(each gets a tmpfs of its own); use a folder such as /run/secrets"
            )
        if folder in bind_targets:
            raise UsageError(
                f"secret file {secret_file.target!r}{where}: its folder {folder!r} is also a volume mount; "
                "put the secret in a folder of its own, such as /run/secrets"
            )
        if folder not in folders:
            folders.append(folder)
    return folders


def tmpfs_mounts(plan: Plan) -> dict[str, str]:
    """HostConfig `Tmpfs`: the stage and every secret folder, sized to what they hold."""
    sizes: dict[str, int] = {STAGE: 0}
    for secret_file, value in plan.files:
        folder = posixpath.dirname(posixpath.normpath(secret_file.target))
        sizes[folder] = sizes.get(folder, 0) + len(value)
    sizes[STAGE] = sum(sizes.values()) * 4 + sum(len(v) for _n, v in plan.secret_env) * 2
    folders = [STAGE, *file_folders(plan)]
    return {folder: f"{TMPFS_OPTIONS},size={_size(sizes.get(folder, 0))}" for folder in folders}


def _size(used: int) -> int:
    """A tmpfs size: what it holds plus room for block rounding, at least 1 MiB."""
    return max(1 << 20, used + (used >> 2) + (64 << 10))
