"""The engine-backed tests again, run by a normal OS user in the `docker` group (Docker's post-install set-up).

Most of our users are not root: this runs the delivery, run, sealed-env and job tests (env and file secrets,
owner and mode, masking, --rm, --detach, Ctrl-C, exit codes, cut bundles, restarts) as such a user, with
`launch` installed from this checkout into a venv made from /usr/bin/python3 (pyenv's Python lives under /root,
mode 0700). Needs root to create the user; as any other user the whole suite is already running unprivileged.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITES = ["tests/test_delivery.py", "tests/test_run_docker.py", "tests/test_sealed_env.py", "tests/test_jobs_docker.py"]

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates an OS user: needs root (and runs unprivileged already)"),
]


@pytest.fixture(scope="module")
def docker_user(docker_api):
    try:
        grp.getgrnam("docker")
    except KeyError:
        pytest.fail("no `docker` group: the engine's socket belongs to it (Debian's docker.io makes it)")
    name = f"lu{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "-G", "docker", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def checkout(docker_user):
    """A copy of the checkout the user can read, with `launch` and pytest installed in a venv of its own."""
    base = Path(tempfile.mkdtemp(prefix="launch-user-"))
    base.chmod(0o755)
    source = base / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".git", ".venv")
    for part in ("launcher", "tests"):
        shutil.copytree(REPO / part, source / part, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(base / "venv")], check=True, capture_output=True)
    pip = subprocess.run(
        [str(base / "venv/bin/pip"), "install", "--quiet", "--disable-pip-version-check", f"{source}[test]"],
        capture_output=True,
    )
    assert pip.returncode == 0, pip.stderr.decode()[-2000:]
    subprocess.run(["chown", "-R", f"{docker_user.pw_uid}:{docker_user.pw_gid}", str(source)], check=True)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_engine_tests_pass_as_a_docker_group_user(docker_user, checkout):
    env = {
        "HOME": docker_user.pw_dir,
        "USER": docker_user.pw_name,
        "PATH": f"{checkout / 'venv/bin'}:/usr/local/bin:/usr/bin:/bin",
        "LAUNCH_REQUIRE_DOCKER": "1",
        "LANG": "C.UTF-8",
    }
    for name in ("DOCKER_HOST",):
        if name in os.environ:
            env[name] = os.environ[name]
    result = subprocess.run(
        [str(checkout / "venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES],
        cwd=checkout / "src",
        env=env,
        user=docker_user.pw_uid,
        group=docker_user.pw_gid,
        extra_groups=[grp.getgrnam("docker").gr_gid],
        capture_output=True,
        timeout=1500,
    )
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out[-6000:] + result.stderr.decode(errors="replace")[-2000:]
    assert " passed" in out and " failed" not in out
