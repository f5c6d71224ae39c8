"""Private folders on a tmpfs that hold secret files for the short time a container needs them.

Why a tmpfs: a value written there never reaches a disk. Why not Docker's own `--tmpfs` plus `put_archive`: the copy
lands on disk under the container's tmpfs mount point before the mount is seen (see ARCHITECTURE.md).

Each job gets one folder, `<base>/launch-<uid>-<job>-<random>`, made by mkdtemp (mode 0700). Each file in it is
created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0400 (or the template's), and chowned to the uid:gid the container
runs as, then bind-mounted read-only, one file per mount. A bind mount of a single file pins its inode, so the host
path can be unlinked as soon as the container has started and the container keeps its view; only a job with a
restart policy keeps its folder until the job ends (a restart re-resolves the bind source). Folders left by a
launcher that was killed are swept by `sweep()` the next time `launch` talks to the engine.

No Docker here: plain os calls, so it is tested without an engine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from launcher.errors import LaunchError

PREFIX = "launch-"
NEW_PREFIX = ".launch-new-"  # a folder being made; never swept while young (see SecretDir.create)


def _mount_fstype(path: str) -> str | None:
    """The filesystem type of the mount that holds `path` (longest mount point prefix in /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                mount_point = left.split()[4].replace("\\040", " ")
                if (real == mount_point or real.startswith(mount_point.rstrip("/") + "/")) and len(mount_point) >= len(
                    best
                ):
                    best, fstype = mount_point, right.split()[0]
    except OSError:
        return None
    return fstype


def is_tmpfs(path: str) -> bool:
    return _mount_fstype(path) == "tmpfs"


def base_dir() -> str:
    """$XDG_RUNTIME_DIR when it is a tmpfs we own, else /dev/shm when it is a tmpfs; anything else is refused."""
    candidates = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        candidates.append(xdg)
    candidates.append("/dev/shm")
    for candidate in candidates:
        if os.path.isdir(candidate) and is_tmpfs(candidate):
            return candidate
    raise LaunchError(
        "no tmpfs for secret files: neither $XDG_RUNTIME_DIR nor /dev/shm is a tmpfs; "
        "secret files are never written to disk"
    )


def _job_prefix(job: str) -> str:
    return f"{PREFIX}{os.getuid()}-{job}-"


@dataclass
class SecretDir:
    """One job's private folder. `path` is on a tmpfs, mode 0700, owned by the launcher's user.

    It is born locked: made under a name `leftovers()` ignores, flock'ed, then renamed into place, so a concurrent
    `sweep()` never sees it unlocked. The lock lasts until `release()` (or this process ends).
    """

    path: str
    job: str
    lock_fd: int | None = None

    @classmethod
    def create(cls, job: str) -> SecretDir:
        base = base_dir()
        temp = tempfile.mkdtemp(prefix=NEW_PREFIX, dir=base)
        fd = lock(temp)
        path = os.path.join(base, _job_prefix(job) + os.path.basename(temp)[len(NEW_PREFIX) :])
        os.rename(temp, path)
        return cls(path, job, fd)

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def write(self, name: str, value: bytes, mode: int = 0o400, uid: int | None = None, gid: int | None = None) -> str:
        """Write one file (never following or replacing anything) and return its host path."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("secret file names are plain names")
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(value)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return path

    def chown_all(self, uid: int, gid: int) -> None:
        """Give every file to the container's user (known only once the container exists, for a named user)."""
        for entry in os.scandir(self.path):
            if entry.is_file(follow_symlinks=False):
                os.chown(entry.path, uid, gid, follow_symlinks=False)

    def unlink_files(self) -> None:
        """Remove the host copies; the container keeps the inodes it has mounted."""
        for entry in os.scandir(self.path):
            os.unlink(entry.path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()


def _bases() -> set[str]:
    return {b for b in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm") if b and os.path.isdir(b)}


def unlocked(path: str) -> bool:
    """True when no live launcher holds the folder's lock."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _folders(prefix: str):
    """Directory entries under the tmpfs bases whose names start with `prefix`."""
    for base in _bases():
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                yield entry


def leftovers() -> list[tuple[str, str]]:
    """(job id, folder) for every folder of this user under the tmpfs bases."""
    prefix = f"{PREFIX}{os.getuid()}-"
    return [(entry.name[len(prefix) :].rsplit("-", 1)[0], entry.path) for entry in _folders(prefix)]


def sweep(live_jobs: set[str]) -> list[str]:
    """Remove the folders of jobs that are not in `live_jobs` and whose launcher is gone; return them.

    A launcher holds an flock on its folder for as long as it lives (`lock()`), so a folder being set up by a
    concurrent `launch run`, whose container does not exist yet, is never swept.
    """
    removed = []
    for job, path in leftovers():
        if job in live_jobs or not unlocked(path):
            continue  # its job runs, or its launcher is alive
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    removed += _sweep_unborn()
    return removed


def _sweep_unborn(age: float = 60.0) -> list[str]:
    """Folders a launcher was killed while making (between mkdtemp and rename): empty, and older than `age`."""
    import time

    removed = []
    for entry in _folders(NEW_PREFIX):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid == os.getuid() and time.time() - st.st_mtime > age:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def lock(path: str) -> int:
    """Take the flock that keeps `sweep()` away from a folder; closing the returned fd releases it."""
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
