"""Sealed env: env secrets reach the job's main process, yet Docker never stores them.

A canary value is checked against `docker inspect`, every file under /var/lib/docker, an image committed from the
job, and every process's argument list on the host; and it must be present in the job's environment.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from conftest import TEST_IMAGE, detach, job_containers, own_containers, run_launch, sh_job, sha, wait_for

pytestmark = pytest.mark.docker

ENTRYPOINT_IMAGE = "launch-test/entrypoint:latest"
NOSHELL_IMAGE = "launch-test/noshell:latest"


@pytest.fixture
def canary() -> str:
    value = f"sealed-canary-{uuid.uuid4().hex}"
    result = run_launch("secret", "add", "tok", "-", input=value + "\n")
    assert result.returncode == 0, result.stderr
    return value


def files_containing(root: str, needle: bytes, limit: int = 64 << 20) -> list[str]:
    found = []
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > limit:
                    continue
                with open(path, "rb") as f:
                    if needle in f.read():
                        found.append(path)
            except OSError:
                continue
    return found


def cmdlines_containing(needle: bytes) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def container_of(api, job: str) -> dict:
    (c,) = job_containers(api, job)
    return c


def wait_exit(api, container_id: str, timeout: float = 30) -> int:
    return api.wait(container_id, timeout=timeout)["StatusCode"]


def test_value_reaches_the_job_but_no_docker_record(docker, canary):
    job = detach(*sh_job('printf %s "$T" | sha256sum; echo ready; sleep 3'))
    container = container_of(docker, job)["Id"]
    wait_for(lambda: b"ready" in docker.logs(container), what="the job to start")
    needle = canary.encode()
    assert cmdlines_containing(needle) == []  # while it runs: no argv on the host holds it
    assert needle not in json.dumps(docker.inspect_container(container)).encode()
    image = docker.commit(container, repository="launch-test/committed", tag=job)["Id"]
    try:
        saved = b"".join(docker.get_image(image))
        assert needle not in saved
        assert needle not in json.dumps(docker.inspect_image(image)).encode()
    finally:
        docker.remove_image(image, force=True)
    assert wait_exit(docker, container) == 0
    assert docker.logs(container).split()[0].decode() == sha(canary)
    assert files_containing("/var/lib/docker", needle) == []
    assert files_containing("/dev/shm", needle) == []


def test_image_entrypoint_and_cmd_run_unchanged(docker, canary):
    # launch-test/entrypoint: ENTRYPOINT /bin/job-entry (prints argv, cwd, uid, pid; then execs its args),
    # CMD ["echo", "default", "cmd"], WORKDIR /home/app, USER app
    result = run_launch("run", "--rm", "--image", ENTRYPOINT_IMAGE, "--env", "T=secret:tok")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "entrypoint argv: echo default cmd",
        "cwd: /home/app",
        "uid: 1000",
        "pid: 1",
        "default cmd",
    ]
    override = run_launch("run", "--rm", *sh_job('printf %s "$T" | sha256sum', image=ENTRYPOINT_IMAGE))
    assert override.returncode == 0, override.stderr
    lines = override.stdout.decode().splitlines()
    assert lines[0] == 'entrypoint argv: sh -c printf %s "$T" | sha256sum'
    assert lines[3] == "pid: 1"
    assert lines[4].split()[0] == sha(canary)


def test_exit_codes_and_sigterm_reach_the_process(docker, canary):
    result = run_launch("run", "--rm", *sh_job("exit 42"))
    assert result.returncode == 42
    job = detach(*sh_job("trap 'echo got-term-as-pid-$$; exit 143' TERM; echo up; while true; do sleep 0.1; done"))
    container = container_of(docker, job)["Id"]
    wait_for(lambda: b"up" in docker.logs(container), what="the job to start")
    stop = run_launch("stop", job)
    assert stop.returncode == 0, stop.stderr
    assert wait_exit(docker, container) == 143
    assert b"got-term-as-pid-1" in docker.logs(container)


def test_shell_less_image_is_refused_with_the_choices(docker, canary):
    before = own_containers(docker)
    result = run_launch("run", "--image", NOSHELL_IMAGE, "--env", "T=secret:tok")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith("launch: error:") and len(err.strip().splitlines()) == 1
    assert "/bin/sh" in err and "--plain-env" in err
    assert own_containers(docker) == before
    # the explicit opt-in works, with a warning that says where the value is visible
    plain = run_launch("run", "--rm", "--plain-env", *sh_job('printf %s "$T" | sha256sum', image=NOSHELL_IMAGE))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split()[0].decode() == sha(canary)
    assert b"docker inspect" in plain.stderr
    # files travel through the shim too: refused the same way, and nothing is left
    as_file = run_launch("run", "--rm", "--image", NOSHELL_IMAGE, "--env", "T_FILE=secret-file:tok", "--", "true")
    assert as_file.returncode == 2 and b"/bin/sh" in as_file.stderr
    assert own_containers(docker) == before


def test_restarted_job_still_gets_its_values(docker, canary, tmp_path):
    template = tmp_path / "job.yaml"
    template.write_text(
        f"image: {TEST_IMAGE}\nnetwork: none\nrestart: on-failure:2\nenv:\n  T: secret:tok\n"
        "command: [sh, -c, 'printf %s \"$T\" | sha256sum; exit 1']\n"
    )
    job = detach(str(template))
    container = container_of(docker, job)["Id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        state = docker.inspect_container(container)
        if state["State"]["Status"] == "exited" and state["RestartCount"] >= 2:
            break
        time.sleep(0.2)
    digests = docker.logs(container).decode().split()
    assert digests == [sha(canary), "-"] * 3
    # the job has ended: the next launch command sweeps its secret folder
    run_launch("ps")
    assert files_containing("/dev/shm", canary.encode()) == []
