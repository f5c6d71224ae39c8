"""The engine-backed tests again, run by normal OS users: one in the `docker` group (Docker's post-install set-up),
and one with a rootless Docker engine of its own (Debian's dockerd-rootless.sh, rootlesskit, slirp4netns).

Most of our users are not root: this runs the delivery, run, sealed-env, job, sweep and console-API tests (env
and file secrets, owner and mode, masking, --rm, --detach, Ctrl-C, exit codes, cut bundles, restarts, a sweep's
waiter, a console server's jobs and logs) as such users, with
`launch` installed from this checkout into a venv made from /usr/bin/python3 (pyenv's Python lives under /root,
mode 0700). Needs root to create the users; as any other user the whole suite is already running unprivileged.
"""

from __future__ import annotations

import grp
import hashlib
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
SUITES = [
    "tests/test_delivery.py",
    "tests/test_run_docker.py",
    "tests/test_sealed_env.py",
    "tests/test_jobs_docker.py",
    "tests/test_sweep.py",  # a sweep, and the waiter of --max-parallel that outlives the launcher
    "tests/test_api.py",  # the console: a server the user starts, the jobs it runs and their logs
]

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


class RootlessEngine:
    """A rootless Docker engine of one user's, started (and restarted) with Debian's script."""

    def __init__(self, user: pwd.struct_passwd):
        self.user = user
        runtime = Path(f"/run/user/{user.pw_uid}")
        runtime.mkdir(parents=True, exist_ok=True)
        os.chown(runtime, user.pw_uid, user.pw_gid)
        runtime.chmod(0o700)
        self.host = f"unix://{runtime}/docker.sock"
        self.env = {"HOME": user.pw_dir, "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.logfile = Path(user.pw_dir) / "dockerd.log"
        self.process: subprocess.Popen | None = None

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", *args],
            env={**self.env, "DOCKER_HOST": self.host},
            user=self.user.pw_uid,
            capture_output=True,
            **kwargs,
        )

    def start(self) -> None:
        with open(self.logfile, "ab") as log:
            self.process = subprocess.Popen(
                [ROOTLESS],
                env=self.env,
                user=self.user.pw_uid,
                group=self.user.pw_gid,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        for _ in range(120):
            if self.docker("info").returncode == 0:
                return
            assert self.process.poll() is None, self.logfile.read_text()[-3000:]
            time.sleep(0.5)
        pytest.fail("the rootless engine did not start: " + self.logfile.read_text()[-3000:])

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def rootless_user(docker_api):
    """A user with a rootless engine of its own, the test images loaded into it."""
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
    engine = RootlessEngine(user)
    try:
        engine.start()
        saved = subprocess.run(
            ["docker", "save", *IMAGES],
            capture_output=True,
            check=True,
            env={**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"},
        )
        loaded = engine.docker("load", input=saved.stdout)
        assert loaded.returncode == 0, loaded.stderr
        yield user, {"DOCKER_HOST": engine.host, "XDG_RUNTIME_DIR": engine.env["XDG_RUNTIME_DIR"]}, engine
    finally:
        engine.stop()
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
    user, extra, _engine = rootless_user
    _suites_as(user, checkout, [], extra)


def test_a_job_restarted_by_an_engine_restart_gets_its_secrets_again(rootless_user, checkout):
    """`restart: always`, then the engine itself restarts (its own private engine, so nothing else is disturbed):
    the engine starts the job again, the job's warden reconnects and gives the shim its secrets again."""
    user, extra, engine = rootless_user
    env = {"HOME": user.pw_dir, "PATH": f"{checkout / 'venv/bin'}:/usr/bin:/bin", "LANG": "C.UTF-8", **extra}
    env["LAUNCH_HOME"] = f"{user.pw_dir}/launch-restart"

    def launch(*args: str, input: bytes = b"") -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(checkout / "venv/bin/launch"), *args],
            env=env,
            user=user.pw_uid,
            group=user.pw_gid,
            input=input,
            capture_output=True,
            timeout=120,
        )

    assert launch("secret", "add", "tok", "-", input=b"engine-restart-canary\n").returncode == 0
    template = Path(user.pw_dir) / "always.yaml"
    template.write_text("image: launch-test/busybox:latest\nnetwork: none\nrestart: always\n")
    os.chown(template, user.pw_uid, user.pw_gid)
    started = launch(
        "run",
        "-d",
        str(template),
        "-e",
        "T=secret:tok",
        "--",
        "sh",
        "-c",
        'printf %s "$T" | sha256sum | cut -c1-64; sleep 600',
    )
    assert started.returncode == 0, started.stderr
    job = started.stdout.decode().strip()
    digest = hashlib.sha256(b"engine-restart-canary").hexdigest()

    def logged() -> int:
        return launch("logs", job).stdout.decode().split().count(digest)

    _until(lambda: logged() == 1, "the first run")
    engine.stop()
    engine.start()
    _until(lambda: logged() == 2, "the run after the engine restart", timeout=120)
    assert b"engine-restart-canary" not in launch("logs", job, "--no-mask").stderr
    assert launch("rm", "--force", job).returncode == 0


def _until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.kubernetes
def test_a_normal_user_without_docker_runs_and_lists_kubernetes_jobs(kube_cluster, fake_node, checkout):
    """A cluster user only: no docker group, no engine of their own. `launch run --backend kubernetes` and
    `launch ps` work with their kubeconfig alone (the unreachable local engine is left out, not an error)."""
    user = _new_user()
    try:
        home = Path(user.pw_dir)
        config = home / ".kube" / "config"
        config.parent.mkdir(mode=0o700)
        shutil.copy(kube_cluster.kubeconfig("alice"), config)
        for path in (config.parent, config):
            os.chown(path, user.pw_uid, user.pw_gid)
        config.chmod(0o600)
        env = {"HOME": user.pw_dir, "PATH": f"{checkout / 'venv/bin'}:/usr/bin:/bin", "LANG": "C.UTF-8"}

        def launch(*args: str) -> subprocess.Popen:
            return subprocess.Popen(
                [str(checkout / "venv/bin/launch"), *args],
                env=env,
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )

        def done(*args: str, input: bytes = b"") -> tuple[int, bytes, bytes]:
            proc = launch(*args)
            out, err = proc.communicate(input, timeout=120)
            return proc.returncode, out, err

        assert done("secret", "add", "tok", "-", input=b"cluster-user-canary")[0] == 0
        proc = launch(
            "run", "-d", "--backend", "kubernetes", "--image", "launch-test/busybox:latest", "-e", "T=secret:tok"
        )
        proc.stdin.close()
        proc.stdin = None  # communicate() below: nothing more to write
        pod = fake_node.wait_pod("alice", "launch.job", timeout=60)
        fake_node.run(pod)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        job = out.decode().strip()
        assert job == pod.metadata.labels["launch.job"]
        code, listed, err = done("ps")
        assert code == 0, err
        assert job.encode() in listed and b"cluster-user-canary" not in listed + err
        fake_node.finish(pod, 0)
        assert done("rm", job)[0] == 0
    finally:
        _drop_user(user)
