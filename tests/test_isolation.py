"""Each OS user has their own store: another user can neither read its files nor list its secrets.

Needs root (it creates two throwaway users) and `/usr/bin/python3` with the venv module (Debian: python3-venv),
because pyenv's Python lives under /root (0700) where the test users cannot run it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.errors import ExitCode

REPO = Path(__file__).resolve().parents[1]
VALUE = b"user-a-secret-value-0123456789"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: needs root"),
]


@pytest.fixture(scope="session")
def venv_bin() -> Iterator[Path]:
    """`launch` installed from this checkout into a venv every user can run, built once per session."""
    base = Path(tempfile.mkdtemp(prefix="launch-isolation-"))
    base.chmod(0o755)
    source = base / "src"  # a copy, so that building the wheel writes nothing into the checkout
    shutil.copytree(REPO / "launcher", source / "launcher", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    try:
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(base / "venv")], check=True, capture_output=True)
        subprocess.run([str(base / "venv/bin/pip"), "install", "--quiet", str(source)], check=True, capture_output=True)
        yield base / "venv" / "bin"
    finally:
        shutil.rmtree(base)


@pytest.fixture
def users() -> Iterator[tuple[str, str]]:
    """Two new OS users with home folders, removed afterwards."""
    names = [f"lt{uuid.uuid4().hex[:10]}{suffix}" for suffix in "ab"]
    try:
        for name in names:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
        yield names[0], names[1]
    finally:
        for name in names:
            subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def as_user(user: str, venv_bin: Path, *argv: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess:
    """Run `argv` as `user` with a clean environment: their own HOME, so their own default store."""
    clean_env = {"HOME": pwd.getpwnam(user).pw_dir, "PATH": f"{venv_bin}:/usr/bin:/bin", "LANG": "C.UTF-8", **env}
    command = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in clean_env.items()), *argv]
    return subprocess.run(command, check=False, input=stdin, capture_output=True, timeout=120)


def test_another_user_cannot_read_or_list_a_users_store(venv_bin, users):
    alice, bob = users
    added = as_user(alice, venv_bin, "launch", "secret", "add", "token", "-", stdin=VALUE)
    assert added.returncode == 0, added.stderr
    listed = as_user(alice, venv_bin, "launch", "secret", "ls")
    assert listed.stdout.splitlines()[1].split()[0] == b"token"

    store = Path(pwd.getpwnam(alice).pw_dir) / ".local/share/launch"
    alice_uid = pwd.getpwnam(alice).pw_uid
    assert (store.stat().st_mode & 0o777, store.stat().st_uid) == (0o700, alice_uid)
    for path in store.iterdir():
        assert (path.stat().st_mode & 0o777, path.stat().st_uid) == (0o600, alice_uid), path

    for path in (store / "key", store / "store.db"):
        denied = as_user(bob, venv_bin, "cat", str(path))
        assert denied.returncode != 0 and b"Permission denied" in denied.stderr
        assert VALUE not in denied.stdout

    own = as_user(bob, venv_bin, "launch", "secret", "ls")
    assert (own.returncode, own.stdout) == (0, b"")
    pointed = as_user(bob, venv_bin, "launch", "secret", "ls", LAUNCH_HOME=str(store))
    assert pointed.returncode == ExitCode.STORE
    assert b"token" not in pointed.stdout and VALUE not in pointed.stdout + pointed.stderr

    assert as_user(bob, venv_bin, "launch", "secret", "add", "token", "-", stdin=b"bob's").returncode == 0
    assert as_user(alice, venv_bin, "launch", "secret", "add", "token", "-", stdin=b"x").returncode == ExitCode.CONFLICT
