"""Pure pieces of the Docker runtime and job model, tested without an engine."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from launcher import jobs as jobmod
from launcher.errors import NotFound, UsageError
from launcher.runtime import bundle
from launcher.runtime import docker as rt
from launcher.runtime.common import boot_id
from launcher.runtime.swarm import resolve_user
from launcher.spec import BindMount, EnvVar, Port, Resources, Restart, SecretFile, SecretRef, Spec


class FakePlan:
    """Just the attributes a Plan has (launcher.plan.Plan); the runtime reads nothing else."""

    def __init__(self, spec, env=(), secret_env=(), files=(), versions=None):
        self.spec, self.env, self.secret_env, self.files = spec, env, secret_env, files
        self.versions = versions or {}


IMAGE = rt.ImageConfig(entrypoint=("/bin/entry",), cmd=("serve", "--port", "80"), user="app", workdir="/w")


def test_job_argv_follows_docker_rules():
    spec = Spec(image="x")
    assert rt.job_argv(FakePlan(spec), IMAGE) == ["/bin/entry", "serve", "--port", "80"]
    assert rt.job_argv(FakePlan(Spec(image="x", command=("a", "b"))), IMAGE) == ["/bin/entry", "a", "b"]
    # a new entrypoint drops the image's CMD, as `docker run --entrypoint` does
    assert rt.job_argv(FakePlan(Spec(image="x", entrypoint=("/bin/sh",))), IMAGE) == ["/bin/sh"]
    assert rt.job_argv(FakePlan(Spec(image="x", entrypoint=("/bin/sh",), command=("-c", "true"))), IMAGE) == [
        "/bin/sh",
        "-c",
        "true",
    ]


def test_container_args_keep_values_out_of_the_config():
    canary = "canary-3b1f'\"$x\nline2"
    spec = Spec(
        image="img",
        env=(EnvVar("PLAIN", ("v",)), EnvVar("TOKEN", (SecretRef("tok"),))),
        secret_files=(SecretFile("cert", "/run/secrets/cert", 0o440),),
        binds=(BindMount("/data", "/data", True),),
        ports=(Port(8888),),
        resources=Resources(cpus=1.5, memory=1 << 30, gpus=-1),
        restart=Restart("on-failure", 3),
        network="none",
        user="1000:1000",
        workdir="/w",
        read_only=True,
    )
    plan = FakePlan(spec, env=(("PLAIN", "v"),), secret_env=(("TOKEN", canary),), files=((spec.secret_files[0], b"c"),))
    args = rt.container_args(plan, "abc", image=IMAGE, labels={"l": "1"}, options=rt.RunOptions())
    assert canary not in repr(args)
    config, host = args["config"], args["config"]["HostConfig"]
    assert config["Env"] == ["PLAIN=v"]
    assert config["Entrypoint"] == bundle.shim_entrypoint(["/bin/entry", "serve", "--port", "80"])
    assert config["Cmd"] == []
    assert args["name"] == "launch-abc"
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/w"
    assert host["Binds"] == ["/data:/data:ro"]
    assert set(host["Tmpfs"]) == {"/.launch", "/run/secrets"}
    assert host["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8888"}]}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["NanoCpus"] == 1_500_000_000 and host["Memory"] == 1 << 30
    assert host["DeviceRequests"][0]["Count"] == -1
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True


def test_container_args_plain_env_is_explicit():
    spec = Spec(image="img", env=(EnvVar("TOKEN", (SecretRef("tok"),)),), command=("env",))
    plan = FakePlan(spec, secret_env=(("TOKEN", "v1"),))
    args = rt.container_args(plan, "abc", image=IMAGE, labels={}, options=rt.RunOptions(plain_env=True))
    assert args["config"]["Env"] == ["TOKEN=v1"]
    assert "Entrypoint" not in args["config"] and args["config"]["Cmd"] == ["env"]


def test_abandoned_jobs_are_those_whose_launcher_is_gone():
    me = f"{boot_id()}:{os.getpid()}"
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not rt._abandoned(me, created=0)
    assert rt._abandoned(f"{boot_id()}:{gone.pid}", created=time.time())
    assert rt._abandoned("another-boot:1", created=time.time() - rt.ABANDONED_AFTER - 1)
    assert not rt._abandoned("another-boot:1", created=time.time())


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\napp:x:1001:\n"


def _files(path):
    return {"/etc/passwd": PASSWD, "/etc/group": GROUP}.get(path)


@pytest.mark.parametrize(
    "user, expected",
    [
        ("", (0, 0)),
        ("app", (1000, 1001)),
        ("1000", (1000, 1001)),
        ("4242", (4242, 0)),
        ("app:staff", (1000, 50)),
        ("1000:77", (1000, 77)),
        ("root", (0, 0)),
    ],
)
def test_resolve_user_like_the_engine(user, expected):
    assert resolve_user(user, _files) == expected


def test_resolve_user_unknown_names_are_clear_errors():
    with pytest.raises(UsageError, match="'ghost' is not in the image's /etc/passwd"):
        resolve_user("ghost", _files)
    with pytest.raises(UsageError, match="group 'nope'"):
        resolve_user("app:nope", _files)


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 5M ", 300)]
)
def test_parse_duration(text, seconds):
    assert jobmod.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "10", "1x", "m5", "1h 30m", "-1h"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError, match="invalid duration"):
        jobmod.parse_duration(text)


def _job(id, name=None):
    return jobmod.Job(id=id, name=name, image="i", status="running", created=0, exit_code=None)


def test_match_by_id_prefix_and_name():
    jobs = [_job("abc1230000", "web"), _job("abd4560000"), _job("ffff000000", "abc"), _job("abc1990000")]
    assert jobmod.match(jobs, "abc1230000").id == "abc1230000"
    assert jobmod.match(jobs, "web").id == "abc1230000"
    assert jobmod.match(jobs, "abd4").id == "abd4560000"
    assert jobmod.match(jobs, "abc").id == "ffff000000"  # an exact name beats an id prefix, however short
    with pytest.raises(UsageError, match="ambiguous"):
        jobmod.match(jobs, "abc1")
    with pytest.raises(UsageError, match="at least 4 characters"):
        jobmod.match(jobs, "abd")  # a prefix shorter than 4 names nothing
    with pytest.raises(NotFound):
        jobmod.match(jobs, "zzzz")


def test_labels_hold_names_and_versions_only():
    labels = jobmod.job_labels("j1", "web", {"tok": 2}, {"env": {"T": "secret:tok"}}, deadline=100.4, remove=True)
    assert labels[jobmod.LABEL_JOB] == "j1" and labels[jobmod.LABEL_NAME] == "web"
    assert jobmod.secrets_from_labels(labels) == {"tok": 2}
    assert labels[jobmod.LABEL_DEADLINE] == "100" and labels[jobmod.LABEL_RM] == "1"


def test_the_proc_watch_tells_a_running_program_from_one_that_ended_or_a_reused_pid():
    """`run -d` watches the job's PID 1 in /proc: a program running is 'job'; a zombie, a reaped pid, or a pid
    whose start time is not the one first seen (reused) is 'gone', never taken for the job still running."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        watch = rt.LocalPid1(proc.pid, rt._stat(proc.pid)[1])
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep") and time.monotonic() < deadline:
            time.sleep(0.01)  # forked, not yet exec'd
        assert watch.state() == "job"
        assert rt.LocalPid1(proc.pid, b"1").state() == "gone"  # the same pid, another process's start time
        proc.kill()
        deadline = time.monotonic() + 10
        while rt._stat(proc.pid)[0] != b"Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.state() == "gone"  # a zombie: ended, not yet reaped
    finally:
        proc.kill()
        proc.wait()
    assert watch.state() == "gone"
    # alive with an empty command line is a process between two programs (an exec under way; a kernel thread's
    # always is): still the shim's, not an end
    kernel = _a_kernel_thread()
    assert rt.LocalPid1(kernel, rt._stat(kernel)[1]).state() == "shim"


def _a_kernel_thread() -> int:
    """A pid whose command line is empty while it sleeps: a kernel thread (kthreadd, pid 2, is one)."""
    for entry in Path("/proc").iterdir():
        try:
            alive = entry.name.isdigit() and (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] in (b"S", b"I")
            if alive and (entry / "cmdline").read_bytes() == b"":
                return int(entry.name)
        except OSError:
            continue  # it ended meanwhile
    raise AssertionError("no kernel thread in /proc")
