"""The engine-backed tests again, run by normal OS users: one in the `docker` group (Docker's post-install set-up),
and one with a rootless Docker engine of its own (Debian's dockerd-rootless.sh, rootlesskit, slirp4netns).

Most of our users are not root: this runs the delivery, run, sealed-env and job tests (env and file secrets,
owner and mode, masking, --rm, --detach, Ctrl-C, exit codes, cut bundles, restarts) as such users, with
`launch` installed from this checkout into a venv made from /usr/bin/python3 (pyenv's Python lives under /root,
mode 0700). Needs root to create the users; as any other user the whole suite is already running unprivileged.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
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


ROOTLESS = "/usr/share/docker.io/contrib/dockerd-rootless.sh"
IMAGES = [
    "launch-test/busybox",
    "launch-test/entrypoint",
    "launch-test/noshell",
    "launch-test/cutstdin",
    "launch-test/flipstdin",
]


def _new_user(*groups: str) -> pwd.struct_passwd:
    name = f"lu{uuid.uuid4().hex[:10]}"
    extra = ["-G", ",".join(groups)] if groups else []
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", *extra, name], check=True)
    return pwd.getpwnam(name)


def _drop_user(user: pwd.struct_passwd) -> None:
    subprocess.run(["pkill", "-KILL", "-u", user.pw_name], check=False)
    subprocess.run(["userdel", "--remove", user.pw_name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def docker_user(docker_api):
    try:
        grp.getgrnam("docker")
    except KeyError:
        pytest.fail("no `docker` group: the engine's socket belongs to it (Debian's docker.io makes it)")
    user = _new_user("docker")
    try:
        yield user
    finally:
        _drop_user(user)


@pytest.fixture(scope="module")
def rootless_user(docker_api):
    """A user with a rootless engine of its own, started with Debian's script, the test images loaded into it."""
    missing = [
        p
        for p in (ROOTLESS, "/usr/bin/rootlesskit", "/usr/bin/newuidmap", "/usr/bin/slirp4netns")
        if not os.path.exists(p)
    ]
    if missing:
        pytest.fail(
            f"rootless Docker needs {', '.join(missing)} (scripts/setup.sh installs rootlesskit uidmap slirp4netns)"
        )
    user = _new_user()
    runtime = Path(f"/run/user/{user.pw_uid}")
    runtime.mkdir(parents=True, exist_ok=True)
    os.chown(runtime, user.pw_uid, user.pw_gid)
    runtime.chmod(0o700)
    env = {"HOME": user.pw_dir, "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    log = open(Path(user.pw_dir) / "dockerd.log", "wb")
    engine = subprocess.Popen(
        [ROOTLESS], env=env, user=user.pw_uid, group=user.pw_gid, stdout=log, stderr=log, start_new_session=True
    )
    host = f"unix://{runtime}/docker.sock"
    try:
        for _ in range(120):
            ping = subprocess.run(
                ["docker", "info"], env={**env, "DOCKER_HOST": host}, user=user.pw_uid, capture_output=True
            )
            if ping.returncode == 0:
                break
            assert engine.poll() is None, (Path(user.pw_dir) / "dockerd.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("the rootless engine did not start: " + (Path(user.pw_dir) / "dockerd.log").read_text()[-3000:])
        saved = subprocess.run(
            ["docker", "save", *IMAGES],
            capture_output=True,
            check=True,
            env={**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"},
        )
        subprocess.run(
            ["docker", "load"],
            input=saved.stdout,
            env={**env, "DOCKER_HOST": host},
            user=user.pw_uid,
            check=True,
            capture_output=True,
        )
        yield user, {"DOCKER_HOST": host, "XDG_RUNTIME_DIR": str(runtime)}
    finally:
        os.killpg(engine.pid, signal.SIGTERM)
        try:
            engine.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(engine.pid, signal.SIGKILL)
        log.close()
        _drop_user(user)


@pytest.fixture(scope="module")
def checkout():
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
    subprocess.run(["chmod", "-R", "a+rwX", str(source)], check=True)  # each user's pytest writes its caches
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _suites_as(user: pwd.struct_passwd, checkout: Path, groups: list[int], extra_env: dict[str, str]) -> None:
    env = {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "PATH": f"{checkout / 'venv/bin'}:/usr/local/bin:/usr/bin:/bin",
        "LAUNCH_REQUIRE_DOCKER": "1",
        "LANG": "C.UTF-8",
        **extra_env,
    }
    result = subprocess.run(
        [str(checkout / "venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES],
        cwd=checkout / "src",
        env=env,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=groups,
        capture_output=True,
        timeout=1500,
    )
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out[-6000:] + result.stderr.decode(errors="replace")[-2000:]
    assert " passed" in out and " failed" not in out


def test_the_engine_tests_pass_as_a_docker_group_user(docker_user, checkout):
    extra = {"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {}
    _suites_as(docker_user, checkout, [grp.getgrnam("docker").gr_gid], extra)


def test_the_engine_tests_pass_against_a_rootless_engine(rootless_user, checkout):
    user, extra = rootless_user
    _suites_as(user, checkout, [], extra)
