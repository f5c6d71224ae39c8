"""`launch run` against a real Docker engine, through the real CLI in a subprocess.

Jobs prove they received a value by printing its sha256, never the value: so the tests can also assert that the
value itself is absent from everything the launcher printed.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import (
    TEST_IMAGE,
    add_secret,
    job_containers,
    launch_cmd,
    own_containers,
    run_launch,
    sh_job,
    sha,
    wait_for,
)

pytestmark = pytest.mark.docker

CANARY = "canary-7f3a9c-" + "x" * 12  # unusual enough to grep for


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_clean_failure(result, code: int, *needles: str) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.startswith("launch: error:"), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_env_secrets_both_syntaxes_and_file_secret(docker, tmp_path):
    add_secret("api_key", CANARY)
    add_secret("db_pass", "pa ss'word")
    add_secret("cert", b"\x00\x01binary\xff" * 10)
    job = write(
        tmp_path,
        f"""
image: {TEST_IMAGE}
network: none
command:
  - sh
  - -c
  - |
    printf %s "$API" | sha256sum; printf %s "$URL" | sha256sum
    sha256sum < /run/s/cert; stat -c '%a %u:%g' /run/s/cert; echo "$PLAIN"
env:
  API: secret:api_key
  URL: "postgres://app:{{{{ RUNPOD_SECRET_db_pass }}}}@db/app"
  PLAIN: just text
volumes:
  - secret:cert:/run/s/cert
""",
    )
    result = run_launch("run", "--rm", str(job))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().split("\n")
    assert lines[0].split()[0] == sha(CANARY)
    assert lines[1].split()[0] == sha("postgres://app:pa ss'word@db/app")
    assert lines[2].split()[0] == sha(b"\x00\x01binary\xff" * 10)
    assert lines[3] == "400 0:0"
    assert lines[4] == "just text"
    assert CANARY.encode() not in result.stdout + result.stderr
    assert job_containers(docker) == [] or all(
        c["Labels"].get("launch.job") not in result.stderr.decode() for c in job_containers(docker)
    )


def test_non_root_user_reads_its_file(docker, tmp_path):
    add_secret("token", CANARY)
    for user, owner in (("app", "1000:1000"), ("1000:1000", "1000:1000"), ("4321", "4321:0")):
        template = write(tmp_path, f"image: {TEST_IMAGE}\nnetwork: none\nuser: '{user}'\n")
        result = run_launch(
            "run",
            "--rm",
            str(template),
            "--volume",
            "secret:token:/home/app/.secrets/token",
            "--",
            "sh",
            "-c",
            "id -u; stat -c '%a %u:%g' /home/app/.secrets/token; sha256sum < /home/app/.secrets/token",
        )
        assert result.returncode == 0, (user, result.stderr)
        uid, mode_owner, digest = result.stdout.decode().split("\n")[:3]
        assert uid == owner.split(":")[0]
        assert mode_owner == f"400 {owner}"
        assert digest.split()[0] == sha(CANARY)


def test_command_line_overrides_template(docker, tmp_path, monkeypatch):
    add_secret("a", "value-a")
    add_secret("b", "value-b")
    job = write(
        tmp_path,
        f"""
image: {TEST_IMAGE}
network: none
env:
  X: secret:a
  Y: from-template
  Z: from-template
volumes:
  - secret:a:/s/file
command: ["sh", "-c", "echo never"]
""",
    )
    envfile = tmp_path / "job.env"
    envfile.write_text("Y=from-env-file\nZ=from-env-file\n")
    monkeypatch.setenv("FROM_CALLER", "caller-value")
    result = run_launch(
        "run",
        "--rm",
        str(job),
        "--env-file",
        str(envfile),
        "--env",
        "Z=from-flag",
        "--env",
        "X=secret:b",
        "--env",
        "FROM_CALLER",
        "--volume",
        "secret:b:/s/file",
        "--",
        "sh",
        "-c",
        'printf %s "$X" | sha256sum; echo "$Y $Z $FROM_CALLER"; sha256sum < /s/file',
        env={"FROM_CALLER": "caller-value"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode().split("\n")
    assert out[0].split()[0] == sha("value-b")
    assert out[1] == "from-env-file from-flag caller-value"
    assert out[2].split()[0] == sha("value-b")


def test_exit_code_and_stream_separation(docker):
    result = run_launch("run", "--rm", "--image", TEST_IMAGE, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"to-out\n"
    assert b"to-err\n" in result.stderr
    assert b"to-out" not in result.stderr


def test_job_output_is_masked(docker):
    add_secret("tok", CANARY)
    result = run_launch(
        "run", "--rm", *sh_job('echo "out $T"; echo "err $T" >&2; printf "\\033[31m%s\\033[0m\\n" "$T"')
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out ***\n\x1b[31m***\x1b[0m\n"
    assert b"err ***" in result.stderr
    unmasked = run_launch("run", "--rm", "--no-mask", *sh_job('echo "$T"'))
    assert unmasked.stdout == CANARY.encode() + b"\n"


def _launch_until_ready(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*launch_cmd(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    assert line == b"ready\n", (line, proc.stderr.read() if proc.poll() is not None else b"")
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_the_job_and_cleans_up(docker, sig, code):
    add_secret("tok", CANARY)
    proc = _launch_until_ready(
        "run",
        "--rm",
        "--name",
        f"sigtest-{code}",
        "--volume",
        "secret:tok:/s/tok",
        *sh_job("trap 'echo got-term; exit 143' TERM; echo ready; while true; do sleep 0.1; done"),
    )
    assert len(job_containers(docker)) >= 1
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"got-term" in out  # the job was asked to stop, not killed
    assert b"Traceback" not in err
    assert [c for c in job_containers(docker) if c["Names"] == [f"/sigtest-{code}"]] == []
    assert_no_plaintext_on_host(CANARY)


def assert_no_plaintext_on_host(value: str) -> None:
    needle = value.encode()
    for base in {"/dev/shm", os.environ.get("XDG_RUNTIME_DIR") or "/dev/shm"}:
        for root, _dirs, files in os.walk(base):
            for name in files:
                path = os.path.join(root, name)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue  # sockets, fifos: nothing stored
                    with open(path, "rb") as f:
                        assert needle not in f.read(), path
                except (PermissionError, FileNotFoundError):
                    continue


def test_no_plaintext_left_on_host_after_jobs(docker, tmp_path):
    add_secret("tok", CANARY)
    for detach in (False, True):
        args = ["run", "--image", TEST_IMAGE, "--env", "T=secret:tok", "--volume", "secret:tok:/s/t"]
        if detach:
            args.insert(1, "--detach")
        result = run_launch(*args, "--", "sh", "-c", "cat /s/t >/dev/null; sleep 1")
        assert result.returncode == 0, result.stderr
        assert_no_plaintext_on_host(CANARY)  # host copies go as soon as the job has started
    leftovers = [p for p in Path("/dev/shm").iterdir() if p.name.startswith(f"launch-{os.getuid()}-")]
    assert all(p.is_dir() and not any(p.iterdir()) for p in leftovers) or leftovers == []


def test_detach_prints_only_the_job_id(docker):
    result = run_launch("run", "--detach", "--image", TEST_IMAGE, "--", "sh", "-c", "echo hi")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.decode().strip()
    assert result.stdout.decode() == job_id + "\n" and len(job_id) == 10
    assert len(job_containers(docker, job_id)) == 1


def test_dry_run_starts_nothing_and_redacts(docker, tmp_path):
    add_secret("tok", CANARY)
    before = own_containers(docker)
    result = run_launch(
        "run", "--dry-run", "--image", TEST_IMAGE, "--env", "T=secret:tok", "--volume", "secret:tok:/s/t"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["image"] == TEST_IMAGE
    assert CANARY.encode() not in result.stdout + result.stderr
    assert "tok" in result.stdout.decode()
    assert own_containers(docker) == before
    missing_image = run_launch("run", "--dry-run", "--image", "launch-test/nope:1")
    assert_clean_failure(missing_image, 7, "launch-test/nope:1")


BAD_TEMPLATES = [
    ("image: [unclosed\n", 6, "job.yaml:1:"),
    ("command: [echo]\n", 2, "image"),
    (f"image: {TEST_IMAGE}\nvolumes:\n  - secret:tok:relative/path\n", 6, "job.yaml:3:"),
    (f"image: {TEST_IMAGE}\nvolumes:\n  - secret:tok:/a/../b\n", 6, "job.yaml:3:"),
    (f"image: {TEST_IMAGE}\nvolumes:\n  - secret:tok:/a\n  - secret:tok:/a\n", 6, "/a"),
    (f"image: {TEST_IMAGE}\nenv:\n  BAD-NAME: x\n", 6, "job.yaml:3:"),
    (f"imgae: {TEST_IMAGE}\n", 6, "did you mean 'image'"),
]


@pytest.mark.parametrize("text, code, needle", BAD_TEMPLATES)
def test_bad_templates_fail_cleanly_and_start_nothing(docker, tmp_path, text, code, needle):
    add_secret("tok", CANARY)
    before = own_containers(docker)
    result = run_launch("run", str(write(tmp_path, text)))
    assert_clean_failure(result, code, needle)
    assert own_containers(docker) == before


def test_missing_secrets_are_all_listed_and_nothing_starts(docker, tmp_path):
    add_secret("present", "x")
    before = own_containers(docker)
    result = run_launch(
        "run",
        "--image",
        TEST_IMAGE,
        "--env",
        "A=secret:missing_one",
        "--env",
        "B=secret:present",
        "--volume",
        "secret:missing_two:/s/f",
        "--",
        "true",
    )
    err = assert_clean_failure(result, 3, "missing_one", "missing_two")
    assert "present" not in err.replace("not present", "")
    assert own_containers(docker) == before


def test_binary_value_into_env_is_refused(docker):
    add_secret("blob", b"\xff\xfe\x00binary")
    before = own_containers(docker)
    result = run_launch("run", "--image", TEST_IMAGE, "--env", "B=secret:blob", "--", "true")
    assert_clean_failure(result, 2, "B", "blob")
    assert own_containers(docker) == before


def test_missing_image_is_one_clear_error(docker):
    result = run_launch("run", "--image", "launch-test/does-not-exist:latest", "--", "true")
    assert_clean_failure(result, 7, "launch-test/does-not-exist")


def test_unreachable_engine_is_one_clear_error():
    result = run_launch("run", "--image", TEST_IMAGE, "--", "true", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert_clean_failure(result, 7, "Docker engine")


def test_an_unreachable_remote_engine_is_one_clear_error(docker):
    add_secret("tok", CANARY)
    result = run_launch(
        "run",
        "--image",
        TEST_IMAGE,
        "--volume",
        "secret:tok:/s/t",
        "--",
        "true",
        env={"DOCKER_HOST": "tcp://127.0.0.1:9"},
    )
    assert_clean_failure(result, 7, "tcp://127.0.0.1:9")


def test_a_job_a_killed_launcher_never_started_is_removed_by_the_next_command(docker):
    """Killed between create and start, a launcher leaves a job in "created" (holding no secret: values only travel
    on stdin); the next `launch` command removes it. A live launcher's job is left alone."""
    from launcher.runtime.common import LABEL_LAUNCHER, boot_id

    gone = subprocess.Popen(["true"])
    gone.wait()
    ids = {}
    for who, pid in (("dead", gone.pid), ("alive", os.getpid())):
        job = f"{who}{os.urandom(3).hex()}"
        labels = {"launch.job": job, LABEL_LAUNCHER: f"{boot_id()}:{pid}"}
        ids[who] = docker.create_container(TEST_IMAGE, command=["true"], labels=labels)["Id"]
    try:
        assert run_launch("ps", "-a").returncode == 0
        remaining = {c["Id"] for c in job_containers(docker)}
        assert ids["dead"] not in remaining and ids["alive"] in remaining
    finally:
        for cid in ids.values():
            try:
                docker.remove_container(cid, force=True)
            except Exception:
                pass


def test_a_foreground_rm_job_is_removed_by_the_engine_even_if_the_launcher_is_killed(docker):
    """`--rm` is the engine's AutoRemove, as with `docker run --rm`: a SIGKILLed launcher leaves no container."""
    add_secret("tok", CANARY)
    proc = subprocess.Popen(
        [*launch_cmd(), "run", "--rm", *sh_job("sleep 3")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        job = wait_for(lambda: _running_job(docker), timeout=60, what="the job to start")
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not job_containers(docker, job), timeout=60, what="the engine to remove the ended job")


def test_a_foreground_rm_job_reports_its_exit_code_and_leaves_nothing(docker, launch_home):
    result = run_launch("run", "--rm", "--image", TEST_IMAGE, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    (record,) = (launch_home / "usage.log").read_text().splitlines()  # this job only: other tests share the engine
    assert job_containers(docker, json.loads(record)["job"]) == []  # gone by the time the launcher exits


def _running_job(api) -> str | None:
    running = [c for c in job_containers(api) if c["State"] == "running"]
    return running[0]["Labels"]["launch.job"] if running else None


@pytest.mark.docker
def test_a_detached_start_is_confirmed_through_proc_only_for_the_containers_own_pid(docker_api):
    """`run -d` watches the shim exec the command in /proc (a file read, not the engine's `top`) only once the
    pid is proven the container's: its cgroup names the container; otherwise, and once it ends, the engine."""
    from launcher.runtime.docker import LocalPid1

    api = docker_api
    ids = []
    try:
        for _ in range(2):
            made = api.create_container(
                TEST_IMAGE, ["sleep", "30"], host_config=api.create_host_config(network_mode="none")
            )
            ids.append(made["Id"])
            api.start(made["Id"])
        watch = LocalPid1.of(api, ids[0])
        if "name=rootless" in (api.info().get("SecurityOptions") or []):
            # a rootless engine's pids are of its own pid namespace: never taken for this machine's
            assert watch is None
            return
        assert watch is not None and watch.state() == "job"

        class Crossed:
            """An engine whose pid for one container is another's (as a rootless engine's pids would mislead)."""

            base_url = api.base_url

            def inspect_container(self, container_id):
                return api.inspect_container(ids[1])

        assert LocalPid1.of(Crossed(), ids[0]) is None

        class Remote(Crossed):
            base_url = "https://engine.example:2376"

        assert LocalPid1.of(Remote(), ids[1]) is None
        api.kill(ids[0])
        wait_for(lambda: watch.state() == "gone", 10, "the ended pid seen gone")
    finally:
        for container_id in ids:
            api.remove_container(container_id, force=True)
