"""Shared fixtures: every test gets its own store folder; integration tests get a real Docker engine.

Integration tests (marker `docker`) fail, never skip, when the engine is missing and LAUNCH_REQUIRE_DOCKER=1 or CI
is set (as `.ci/run` does); on a developer's machine without an engine they skip with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["kubecluster"]  # the Kubernetes fixtures (kube_cluster, fake_node), started only when asked for
TEST_IMAGE = "launch-test/busybox:latest"


def engine_required() -> bool:
    return os.environ.get("LAUNCH_REQUIRE_DOCKER") == "1" or bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def launch_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh, private LAUNCH_HOME for each test (the store folder is created 0700 by the store itself)."""
    home = tmp_path_factory.mktemp("home") / "launch"
    monkeypatch.setenv("LAUNCH_HOME", str(home))
    monkeypatch.delenv("LAUNCH_PASSPHRASE", raising=False)
    monkeypatch.delenv("LAUNCH_NEW_PASSPHRASE", raising=False)
    monkeypatch.delenv("LAUNCH_DEBUG", raising=False)
    from launcher import redact

    monkeypatch.setattr(redact, "_values", set())  # values remembered by one test never scrub another's text
    return home


def launch_cmd() -> list[str]:
    """The installed console script when on PATH, else the module (same code, a real process either way)."""
    exe = shutil.which("launch")
    return [exe] if exe else [sys.executable, "-m", "launcher"]


def run_launch(*args: str, input: bytes | str | None = None, env: dict | None = None, timeout: float = 120):
    """Run the real `launch` CLI in a subprocess; returns CompletedProcess with bytes stdout/stderr."""
    if isinstance(input, str):
        input = input.encode()
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [*launch_cmd(), *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def docker_api():
    """A docker APIClient for a running engine with the test image built (see tests/images/build.sh)."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        message = f"no Docker engine reachable ({type(exc).__name__}); start dockerd or run `bash .ci/run`"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    try:
        client.api.inspect_image(TEST_IMAGE)
    except Exception:
        subprocess.run(["bash", str(REPO / "tests/images/build.sh")], check=True)
    return client.api


def _job_ids(home: Path) -> list[str]:
    log = home / "usage.log"
    if not log.exists():
        return []
    return [json.loads(line)["job"] for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def docker(docker_api, launch_home):
    """The engine, with every container this test's launcher started force-removed afterwards."""
    yield docker_api
    for job in _job_ids(launch_home):
        for c in docker_api.containers(all=True, filters={"label": f"launch.job={job}"}):
            docker_api.remove_container(c["Id"], force=True)


def job_containers(api, job: str | None = None) -> list[dict]:
    label = f"launch.job={job}" if job else "launch.job"
    return api.containers(all=True, filters={"label": label})


def own_containers(api) -> int:
    """How many containers this test's store started: other engineers' jobs on the same engine come and go."""
    from launcher.store import Store

    return len(api.containers(all=True, filters={"label": f"launch.store={Store.open().tag(create=True)}"}))


def sha(value: str | bytes) -> str:
    """Jobs prove they got a value by printing its sha256, never the value itself."""
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def add_secret(name: str, value: bytes | str) -> None:
    """`launch secret add NAME -`: text gets the trailing newline stdin drops; bytes go in as they are."""
    result = run_launch("secret", "add", name, "-", input=value if isinstance(value, bytes) else value + "\n")
    assert result.returncode == 0, result.stderr


def sh_job(script: str, image: str = TEST_IMAGE, env: str = "T=secret:tok") -> list[str]:
    """The `launch run` arguments of a job that runs `sh -c SCRIPT` in `image` with one env reference."""
    return ["--image", image, "--env", env, "--", "sh", "-c", script]


def detach(*args: str) -> str:
    """`launch run --detach ...`; the job id it printed."""
    result = run_launch("run", "--detach", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    """Poll until `predicate()` is truthy (and return it), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class UIServer:
    """A real `launch ui --no-browser --port 0` process; its URL and token read from ui.json, as a script would."""

    def __init__(self, home: Path, tmp: Path, env: dict | None = None):
        self.home = home
        self.log_path = tmp / "ui-server.log"
        self.log = open(self.log_path, "wb")
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [*launch_cmd(), "ui", "--no-browser", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        runtime = home / "ui.json"
        wait_for(lambda: runtime.exists() or self.proc.poll() is not None, 60, "ui.json")
        assert self.proc.poll() is None, self.log_path.read_text()
        data = json.loads(runtime.read_text())
        self.url, self.token = data["url"].rstrip("/"), data["token"]
        self.runtime = runtime
        self.host = self.url.removeprefix("http://")

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def ui_server(launch_home, tmp_path):
    server = UIServer(launch_home, tmp_path)
    yield server
    server.stop()
