"""Secrets reach every job through the engine's API: whatever the launcher's filesystem, the values arrive byte for
byte; a bundle that is cut or corrupted never runs the job's command; a restarted job gets them again.

Real engine, real CLI. The launcher runs in a private mount namespace with its own /dev/shm (as for a rootless
engine or Docker Desktop), or talks to the engine over TCP on 127.0.0.1 (as to a remote engine).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import threading
import uuid

import pytest
from conftest import TEST_IMAGE, add_secret, detach, job_containers, launch_cmd, run_launch, sha, wait_for

pytestmark = pytest.mark.docker

BINARY = bytes(range(256)) * 64 + b"\x00tail"
TEXT = "multi\nline 'quoted' \\ % $HOME `x` é"
CHECK = (
    'printf %s "$T" | sha256sum | cut -c1-64; sha256sum < /run/secrets/bin | cut -c1-64; '
    "stat -c '%a %u' /run/secrets/bin; exit 3"
)


def _expected(uid: str = "0") -> str:
    return f"{sha(TEXT)}\n{sha(BINARY)}\n400 {uid}\n"


def _args(*extra: str, image: str = TEST_IMAGE) -> list[str]:
    return [
        "--image",
        image,
        "--env",
        "T=secret:text",
        "--volume",
        "secret:bin:/run/secrets/bin",
        *extra,
        "--",
        "sh",
        "-c",
        CHECK,
    ]


@pytest.fixture
def secrets(docker):
    add_secret("text", TEXT)
    add_secret("bin", BINARY)


def test_values_arrive_byte_for_byte_and_the_exit_code_comes_back(secrets):
    result = run_launch("run", "--rm", *_args())
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode() == _expected()


def test_files_belong_to_the_jobs_user_whoever_it_is(secrets, tmp_path):
    for user, uid in (("0", "0"), ("app", "1000"), ("4321:4321", "4321")):
        template = tmp_path / "job.yaml"
        template.write_text(f"image: {TEST_IMAGE}\nnetwork: none\nuser: '{user}'\n")
        result = run_launch("run", "--rm", str(template), *_args()[2:-3], "--", "sh", "-c", f"id -u; {CHECK}")
        assert result.returncode == 3, (user, result.stderr)
        assert result.stdout.decode() == f"{uid}\n" + _expected(uid)


def test_a_read_only_root_filesystem_still_gets_its_secrets(secrets):
    result = run_launch("run", "--rm", "--read-only", *_args()[:-1], "touch /x 2>/dev/null && echo WROTE; " + CHECK)
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode() == _expected()


def test_a_launcher_that_does_not_share_the_engines_filesystem(secrets, tmp_path):
    """A private mount namespace with its own /dev/shm and runtime dir: nothing the launcher writes could reach
    the engine; the job still gets every value and its exit code comes back (foreground and detached)."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make a mount namespace")
    argv = shlex.join([*launch_cmd(), "run", "--rm", *_args()])
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    script = f"mount -t tmpfs tmpfs /dev/shm && mount -t tmpfs tmpfs {runtime} && XDG_RUNTIME_DIR={runtime} {argv}"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], capture_output=True, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode() == _expected()


class _Proxy:
    """127.0.0.1:PORT -> the engine's unix socket, both directions, half-closes passed on (as a TCP engine)."""

    def __init__(self):
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.target = host.removeprefix("unix://")
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


def test_an_engine_over_tcp_gets_every_value(secrets):
    proxy = _Proxy()
    try:
        env = {"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"}
        result = run_launch("run", "--rm", *_args(), env=env)
        assert result.returncode == 3, result.stderr
        assert result.stdout.decode() == _expected()
        job = detach(*_args()[:-3], "--", "sh", "-c", 'printf %s "$T" | sha256sum | cut -c1-64')
        wait_for(lambda: run_launch("logs", job, env=env).stdout.decode() == sha(TEXT) + "\n", what="the job's log")
    finally:
        proxy.close()


@pytest.mark.parametrize("image, why", [("launch-test/cutstdin", "incomplete"), ("launch-test/flipstdin", "corrupted")])
@pytest.mark.parametrize("mode", [("--rm",), ("--detach",), ("--detach", "--rm")], ids=["rm", "detach", "detach-rm"])
def test_a_bundle_that_is_not_whole_never_runs_the_command(secrets, image, why, mode):
    """Never a success without having run: also `run -d --rm`, whose failed job the engine removes at once (with
    its exit code and the shim's line: the exit code comes from a wait registered before the start)."""
    name = f"cut-{uuid.uuid4().hex[:8]}"
    result = run_launch(
        "run", *mode, "--name", name, "--image", image, "--env", "T=secret:text", "--", "sh", "-c", "echo RAN; exit 0"
    )
    err = result.stderr.decode()
    assert result.returncode == 7, err
    assert b"RAN" not in result.stdout and "RAN" not in err
    assert "not run" in err and err.count("launch: error:") == 1
    if mode != ("--detach", "--rm"):  # there, the shim's line went with the job
        assert why in err
    assert TEXT not in err
    assert not [c for c in job_containers(_api()) if c["Labels"].get("launch.name") == name]  # nothing left


def _api():
    import docker

    return docker.from_env().api


def test_a_restarted_job_gets_its_secrets_again(secrets, tmp_path):
    """on-failure:2: the job fails twice and succeeds the third time; each run sees the same values, given again
    by the job's warden (the launcher exited long before)."""
    template = tmp_path / "job.yaml"
    template.write_text(f"image: {TEST_IMAGE}\nnetwork: none\nrestart: on-failure:2\n")
    script = (
        'printf %s "$T" | sha256sum | cut -c1-64; sha256sum < /run/secrets/bin | cut -c1-64; '
        "n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; [ $n -ge 2 ]"
    )
    job = detach(str(template), *_args()[2:-3], "--", "sh", "-c", script)
    api = _api()
    [container] = job_containers(api, job)
    state = wait_for(
        lambda: (s := api.inspect_container(container["Id"]))["State"]["Status"] == "exited" and s,
        timeout=90,
        what="the job to end",
    )
    assert state["RestartCount"] == 2 and state["State"]["ExitCode"] == 0
    logs = run_launch("logs", job).stdout.decode()
    assert logs == f"{sha(TEXT)}\n{sha(BINARY)}\n" * 3


def test_a_usage_record_that_cannot_be_written_leaves_nothing_running(secrets, launch_home):
    assert run_launch("run", "--rm", "--image", TEST_IMAGE, "--", "true").returncode == 0
    (launch_home / "usage.log").chmod(0o644)  # refused: group and others may read it
    name = f"rec-{uuid.uuid4().hex[:8]}"
    result = run_launch("run", "--detach", "--name", name, *_args())
    assert result.returncode == 5, result.stderr
    assert "usage" in result.stderr.decode() and result.stdout == b""
    assert not [c for c in job_containers(_api()) if c["Labels"].get("launch.name") == name]


def test_commands_on_a_job_that_vanished_say_so(docker):
    job = detach("--image", TEST_IMAGE, "--", "sleep", "30")
    [container] = job_containers(docker, job)
    from launcher.runtime.docker import DockerBackend

    backend = DockerBackend()
    found = backend.find(job)
    docker.remove_container(container["Id"], force=True)
    from launcher.errors import EngineError

    for action in (lambda: backend.stop(found), lambda: list(backend.logs(found)), lambda: backend.inspect(found)):
        with pytest.raises(EngineError, match="no longer exists"):
            action()
    for args in (("stop", job), ("logs", job), ("rm", job)):
        result = run_launch(*args)
        assert result.returncode in (3, 0), result.stderr  # gone before the command looked: not found (rm: done)


def test_a_restart_with_no_warden_left_never_runs_the_command(secrets, tmp_path):
    """After a reboot the warden is gone: the restarted shim waits; the next `launch ps` tells it so, and the job's
    log gets one clear line while its command does not run again."""
    template = tmp_path / "job.yaml"
    template.write_text(f"image: {TEST_IMAGE}\nnetwork: none\nrestart: always\n")
    job = detach(str(template), *_args()[2:-3], "--", "sh", "-c", "echo RAN; sleep 600")
    api = _api()
    [container] = job_containers(api, job)
    wait_for(lambda: run_launch("logs", job).stdout == b"RAN\n", what="the first run")
    from launcher.runtime import warden

    assert warden.alive(job)
    os.kill(int(warden._pidfile(job).read_text().partition(":")[2]), 9)  # as a reboot would end it
    wait_for(lambda: not warden.alive(job), what="the warden to end")
    api.restart(container["Id"], timeout=1)
    assert run_launch("ps").returncode == 0
    state = wait_for(lambda: (s := api.inspect_container(container["Id"])["State"])["Status"] == "exited" and s)
    assert state["ExitCode"] == 126
    log = run_launch("logs", job)
    assert log.stdout == b"RAN\n"  # once, from the first run: never again
    assert b"secrets are gone" in log.stderr and TEXT.encode() not in log.stdout + log.stderr


def test_interactive_hands_stdin_on_after_the_secrets(secrets):
    """`-i`: the job reads the launcher's stdin, after its bundle (with secrets) or alone (without)."""
    script = 'printf %s "$T" | sha256sum | cut -c1-64; cat'
    with_secret = run_launch(
        "run", "--rm", "-i", "--image", TEST_IMAGE, "-e", "T=secret:text", "--", "sh", "-c", script, input="typed\n"
    )
    assert with_secret.returncode == 0, with_secret.stderr
    assert with_secret.stdout.decode() == f"{sha(TEXT)}\ntyped\n"
    alone = run_launch("run", "--rm", "-i", "--image", TEST_IMAGE, "--", "cat", input=b"\x00bytes\n")
    assert alone.returncode == 0 and alone.stdout == b"\x00bytes\n", alone.stderr
    without = run_launch("run", "--rm", "--image", TEST_IMAGE, "-e", "T=secret:text", "--", "cat", input="typed\n")
    assert without.returncode == 0 and without.stdout == b""  # no -i: the job reads end-of-file


def test_the_bundle_is_gone_before_the_command_runs(secrets):
    """Once the shim has loaded them, the values are in the job's environment and files only: /.launch is empty,
    and no process but the job's own is left (its PID 1 is the job's command)."""
    script = 'ls -A /.launch; echo "pid=$$"; cat /proc/1/cmdline | tr "\\0" " "; echo'
    result = run_launch("run", "--rm", *_args()[:-1], script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "pid=1"
    assert lines[1].startswith("sh -c ls -A /.launch")
