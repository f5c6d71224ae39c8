"""The swarm backend: its pure steps, then real jobs on a real one-node swarm.

The swarm is created for the session (`docker swarm init --advertise-addr 127.0.0.1`, listening on loopback only)
when the engine is in none, and left afterwards; an engine that is a manager already is used as it is. Jobs prove
they received a value by printing its sha256, never the value, so the tests can also check the value is absent
from what the launcher printed and from what swarm's API shows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_IMAGE, add_secret, engine_required, run_launch, sha, wait_for

from launcher import jobs as jobmod
from launcher.errors import Conflict, EngineError, ExitCode, UsageError
from launcher.plan import resolve
from launcher.runtime import swarm as sw
from launcher.runtime.common import ImageConfig, RunHooks, RunOptions
from launcher.runtime.swarm import ENV_PATH, SHIM_PATH
from launcher.spec import BindMount, EnvVar, Port, Resources, Restart, SecretFile, SecretRef, Spec

CANARY = "canary-swarm-5d1e-" + "y" * 10
docker_test = pytest.mark.docker


@dataclass(frozen=True)
class Revealed:
    value: bytes
    version: int


def plan_of(spec: Spec, **secrets: tuple[bytes | str, int]):
    """A resolved plan, as `launch run` builds it from the store: name=(value, version)."""
    revealed = {k: Revealed(v.encode() if isinstance(v, str) else v, n) for k, (v, n) in secrets.items()}
    return resolve(spec, revealed)


def shell(script: str, **fields) -> Spec:
    return Spec(image=TEST_IMAGE, command=("sh", "-c", script), **fields)


# --- pure ----------------------------------------------------------------------------------------------------------

IMAGE = ImageConfig(entrypoint=("/bin/entry",), cmd=("serve",), user="app", workdir="/w")


def test_service_spec_keeps_values_out_and_maps_the_template():
    spec = Spec(
        image="img",
        env=(EnvVar("PLAIN", ("v",)), EnvVar("TOKEN", (SecretRef("tok"),))),
        secret_files=(SecretFile("cert", "/run/s/cert", 0o440),),
        binds=(BindMount("/data", "/data", True), BindMount("cache", "/cache")),
        ports=(Port(8888, 80, "0.0.0.0"),),
        resources=Resources(cpus=1.5, memory=1 << 30, gpus=2),
        restart=Restart("on-failure", 3),
        network="host",
        constraints=("node.labels.gpu==true",),
        user="1000:1000",
        workdir="/w",
    )
    plan = plan_of(spec, tok=(CANARY, 4), cert=(b"cert-" + CANARY.encode(), 2))
    mounts = sw.secret_mounts(plan, salt=b"cluster", uid=1000, gid=1000, sealed=True)
    args = sw.service_spec(
        plan,
        "abc",
        image=IMAGE,
        mounts=[(m, f"id-{i}") for i, m in enumerate(mounts)],
        labels={"launch.job": "abc"},
        sealed=True,
        options=RunOptions(stop_grace=3),
    )
    assert CANARY not in repr(args) and CANARY not in repr(mounts)
    container, task = args["task_template"]["ContainerSpec"], args["task_template"]
    assert args["name"] == "launch-abc" and args["labels"] == {"launch.job": "abc"}
    assert args["mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert container["Command"] == ["/bin/sh", SHIM_PATH, "/bin/entry", "serve"] and "Args" not in container
    assert container["Env"] == ["PLAIN=v"]
    assert container["User"] == "1000:1000" and container["Dir"] == "/w"
    assert container["StopGracePeriod"] == 3_000_000_000
    secrets = {s["File"]["Name"]: (s["SecretID"], s["File"]) for s in container["Secrets"]}
    assert secrets["/run/s/cert"] == ("id-0", {"Name": "/run/s/cert", "UID": "1000", "GID": "1000", "Mode": 0o440})
    assert secrets[ENV_PATH][1] == {"Name": ENV_PATH, "UID": "1000", "GID": "1000", "Mode": 0o400}
    assert container["Configs"] == [
        {
            "ConfigID": "id-2",
            "ConfigName": mounts[2].source.name,
            "File": {"Name": SHIM_PATH, "UID": "0", "GID": "0", "Mode": 0o444},
        }
    ]
    assert container["Mounts"] == [
        {"Type": "bind", "Source": "/data", "Target": "/data", "ReadOnly": True},
        {"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": False},
    ]
    assert task["RestartPolicy"] == {"Condition": "on-failure", "MaxAttempts": 3, "Delay": sw.RESTART_DELAY}
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": 1_500_000_000, "MemoryBytes": 1 << 30},
        "Reservations": {"GenericResources": [{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}]},
    }
    assert task["Placement"] == {"Constraints": ["node.labels.gpu==true"]}
    assert task["Networks"] == [{"Target": "host"}]
    assert args["endpoint_spec"] == {
        "Ports": [{"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 80, "PublishMode": "ingress"}]
    }
    # the env file holds the values the shim sources; its labels name the secrets and versions only
    env = mounts[1].source
    assert env.kind == "env" and CANARY.encode() in env.data
    assert env.labels == {sw.LABEL_KIND: "env", jobmod.LABEL_SECRETS: '{"tok": 4}'}
    assert mounts[0].source.labels == {sw.LABEL_KIND: "file", sw.LABEL_SECRET: "cert", sw.LABEL_VERSION: "2"}


def test_service_spec_plain_env_image_argv_and_restart_always():
    spec = Spec(
        image="img",
        entrypoint=("/bin/sh",),
        env=(EnvVar("TOKEN", (SecretRef("tok"),)),),
        restart=Restart("always"),
    )
    plan = plan_of(spec, tok=("v", 1))
    args = sw.service_spec(
        plan, "abc", image=None, mounts=[], labels={}, sealed=False, options=RunOptions(plain_env=True)
    )
    container = args["task_template"]["ContainerSpec"]
    assert container["Env"] == ["TOKEN=v"]  # --plain-env: asked for explicitly
    assert container["Command"] == ["/bin/sh"] and "Args" not in container  # a new entrypoint drops the CMD
    assert args["mode"] == {"Replicated": {"Replicas": 1}}  # a swarm job never restarts a task that exited 0
    assert args["task_template"]["RestartPolicy"]["Condition"] == "any"
    assert sw.retired_mode(args["mode"]) == {"Replicated": {"Replicas": 0}}
    assert sw.is_retired(sw.retired_mode(sw.service_mode(Restart())))
    assert not sw.is_retired(sw.service_mode(Restart()))


def test_secret_names_follow_content_and_fit_swarm():
    def name(key="db", version=1, value=b"v", salt=b"cluster"):
        spec = Spec(image="i", secret_files=(SecretFile(key, "/s"),))
        plan = plan_of(spec, **{key: (value, version)})
        return sw.secret_mounts(plan, salt=salt, uid=0, gid=0, sealed=False)[0].source.name

    assert name() == name()  # two jobs using one version share it
    assert len({name(), name(version=2), name(value=b"w"), name(salt=b"other")}) == 4
    assert re.fullmatch(r"launch-db-v1-[0-9a-f]{16}", name())
    long = name(key="k" * 200)
    assert len(long) <= 64 and long != name(key="k" * 199)
    assert re.fullmatch(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?", long)


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        (plan_of(Spec(image="i", network="none")), "network 'none' is not available on swarm"),
        (plan_of(Spec(image="i", resources=Resources(gpus=-1))), "gpus: 'all' cannot be expressed on swarm"),
        (plan_of(Spec(image="i", ports=(Port(8888),))), "port 8888: swarm publishes a port on every interface"),
        (
            plan_of(Spec(image="i", secret_files=(SecretFile("big", "/s"),)), big=(b"x" * 512001, 1)),
            "secret 'big' is 512001 bytes, over swarm's limit",
        ),
        (
            # five variables under the kernel's 128 KiB each (plan.resolve refuses one over it), 600 KB together
            plan_of(
                Spec(image="i", env=tuple(EnvVar(f"A{i}", (SecretRef("a"),)) for i in range(5))), a=("x" * 120000, 1)
            ),
            "the sealed env file is",
        ),
    ],
)
def test_preflight_refuses_what_swarm_cannot_do(plan, needle):
    with pytest.raises(UsageError, match=re.escape(needle)):
        sw.preflight(plan, RunOptions())


def task(state: str, desired: str = "shutdown", code: int | None = None, err: str | None = None, at: str = "1"):
    status = {"State": state, "ContainerStatus": {"ExitCode": code} if code is not None else {}}
    if err:
        status["Err"] = err
    return {"Status": status, "DesiredState": desired, "CreatedAt": at}


@pytest.mark.parametrize(
    ("tasks", "retired", "expected"),
    [
        ([], False, sw.JobState("pending")),
        ([], True, sw.JobState("stopped", ended=True)),
        ([task("preparing", "complete")], False, sw.JobState("pending")),
        ([task("running", "complete", 0)], False, sw.JobState("running")),
        ([task("running", "remove", 0)], True, sw.JobState("running")),  # being stopped
        ([task("shutdown", "remove", 0)], True, sw.JobState("stopped", ended=True)),
        ([task("complete", "complete", 0)], False, sw.JobState("exited", 0, ended=True)),
        ([task("failed", "shutdown", 3, "task: non-zero exit (3)")], False, sw.JobState("exited", 3, ended=True)),
        # failed, but the orchestrator has not decided yet whether to restart it
        ([task("failed", "complete", 3, "task: non-zero exit (3)")], False, sw.JobState("restarting", 3)),
        (
            [task("failed", "shutdown", 2, "task: non-zero exit (2)", "1"), task("starting", "complete", 0, at="2")],
            False,
            sw.JobState("starting"),
        ),
        (
            [task("rejected", "shutdown", 0, "No such image: x")],
            False,
            sw.JobState("failed", None, "No such image: x", True),
        ),
        (
            [task("failed", "shutdown", 127, "starting container failed: exec")],
            False,
            sw.JobState("failed", None, "starting container failed: exec", True),
        ),
    ],
)
def test_job_state_from_tasks(tasks, retired, expected):
    assert sw.job_state(tasks, retired) == expected


def frame(stamp: str, line: bytes, stream: int = 1, task_id: str = "t1") -> sw.Frame:
    data = f"{stamp} com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id={task_id} "
    return sw.parse_frame(stream, data.encode() + line)


def test_parse_frame_and_stamps():
    f = frame("2024-05-01T12:00:00.000000005Z", b"a b\n", 2)
    assert (f.stream, f.task, f.line, f.pair()) == (2, b"t1", b"a b\n", (None, b"a b\n"))
    assert f.stamp == (1714564800, 5)
    assert sw.parse_stamp("2024-05-01T14:00:00.5+02:00") == (1714564800, 500_000_000)
    assert sw.parse_stamp("2024-05-01T12:00:00Z") == (1714564800, 0)


def test_log_cursor_shows_each_message_once_across_reads():
    t = "2024-05-01T12:00:{:02d}.000000000Z"
    log = [
        frame(t.format(1), b"one\n"),
        frame(t.format(2), b"long-part-1"),  # a long line split in parts shares its timestamp
        frame(t.format(2), b"long-part-1"),
        frame(t.format(2), b"long-part-2\n"),
        frame(t.format(3), b"three\n"),
        frame(t.format(3), b"other task\n", task_id="t2"),
    ]
    late_stderr = frame(t.format(1), b"err\n", 2)  # older than stdout shown, still on its way
    cursor = sw.LogCursor()
    assert cursor.begin() is None
    shown = [f for f in log[:3] if cursor.fresh(f)]  # the followed stream was closed here
    since = cursor.begin()
    assert since == f"{1714564802 - sw.LogCursor.CATCH_UP}.000000000"
    again = [f for f in [log[0], late_stderr, *log[1:]] if cursor.fresh(f)]
    assert shown == log[:3] and again == [late_stderr, log[3], log[4], log[5]]
    cursor.begin()
    assert [f for f in [late_stderr, *log] if cursor.fresh(f)] == []


class FakeClient:
    def __init__(self, swarm: dict):
        self.swarm = swarm

    def info(self):
        return {"Swarm": self.swarm}


@pytest.mark.parametrize(
    ("swarm", "needle"),
    [
        ({"LocalNodeState": "inactive"}, "is not part of a swarm; run `docker swarm init`"),
        ({"LocalNodeState": "active", "ControlAvailable": False}, "is a swarm worker, not a manager"),
        ({"LocalNodeState": "locked"}, "`docker swarm unlock`"),
    ],
)
def test_an_engine_that_is_no_manager_is_one_clear_error(swarm, needle):
    with pytest.raises(EngineError, match=re.escape(needle)):
        sw.swarm_cluster(FakeClient(swarm))
    assert (
        sw.swarm_cluster(FakeClient({"LocalNodeState": "active", "ControlAvailable": True, "Cluster": {"ID": "c"}}))
        == "c"
    )


# --- a real swarm --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def swarm_api(docker_api):
    """The engine as a swarm manager: a one-node swarm made for the session if it is in none (left afterwards)."""
    state = docker_api.info()["Swarm"]
    created = False
    bridges = {n["Id"] for n in docker_api.networks(names=["docker_gwbridge"])}  # swarm init makes one
    if state.get("LocalNodeState") == "inactive":
        docker_api.init_swarm(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        created = True
    elif not state.get("ControlAvailable"):
        message = f"the engine is a swarm member but not a usable manager ({state.get('LocalNodeState')})"
        pytest.fail(message) if engine_required() else pytest.skip(message)
    yield docker_api
    if created:
        docker_api.leave_swarm(force=True)
        for network in docker_api.networks(names=["docker_gwbridge"]):
            if network["Id"] not in bridges:
                docker_api.remove_network(network["Id"])


def launch_objects(api) -> list[dict]:
    return api.secrets(filters={"label": sw.LABEL_KIND}) + api.configs(filters={"label": sw.LABEL_KIND})


@pytest.fixture
def swarm(swarm_api):
    """A SwarmBackend; every service this test made is removed afterwards, then the launch objects swept."""
    before = {s["ID"] for s in swarm_api.services()}
    backend = sw.SwarmBackend()
    yield backend
    for service in swarm_api.services():
        if service["ID"] not in before:
            swarm_api.remove_service(service["ID"])
    backend.sweep()


def output(backend, job) -> bytes:
    return b"".join((out or b"") + (err or b"") for out, err in backend.logs(job))


@docker_test
def test_env_and_file_secrets_reach_the_job_masked_and_are_released(swarm, capfdbinary):
    from launcher.mask import Masker

    cert = b"\x00\x01cert\xff" + CANARY.encode()
    spec = shell(
        'printf %s "$API" | sha256sum; sha256sum < /run/s/cert; stat -c "%a %u:%g" /run/s/cert /.launch/env; '
        'echo "raw=$API"; echo "$PLAIN" >&2; exit 3',
        user="app",
        env=(EnvVar("API", (SecretRef("api"),)), EnvVar("PLAIN", ("just text",))),
        secret_files=(SecretFile("cert", "/run/s/cert"),),
    )
    plan = plan_of(spec, api=(CANARY, 1), cert=(cert, 7))
    started: list[str] = []
    code = swarm.run(plan, RunOptions(), masker=Masker([CANARY.encode(), cert]), hooks=RunHooks(started=started.append))
    out, err = capfdbinary.readouterr()
    assert code == 3
    lines = out.decode().splitlines()
    assert lines[0].split()[0] == sha(CANARY) and lines[1].split()[0] == sha(cert)
    assert lines[2:4] == ["400 1000:1000", "400 1000:1000"]  # owned by the image's user `app`, mode 0400
    assert lines[4] == "raw=***" and err.decode().strip() == "just text"
    assert CANARY.encode() not in out + err
    (job,) = [j for j in swarm.jobs() if j.id == started[0]]
    assert (job.status, job.exit_code, job.backend, job.secrets) == ("exited", 3, "swarm", {"api": 1, "cert": 7})
    assert CANARY not in json.dumps(swarm.api.inspect_service(job.ref))
    assert launch_objects(swarm.api) == []  # released when the job ended; the job and its logs stay
    assert sha(CANARY).encode() in output(swarm, job)
    assert swarm.inspect(job)["spec"]["env"]["API"] == "secret:api"
    swarm.remove(job)
    assert swarm.jobs() == []


@docker_test
def test_foreground_output_is_complete_and_in_order(swarm, capfdbinary):
    # swarm's follow stream lags the task's end: without the final read most of this would be lost
    code = swarm.run(plan_of(shell("seq 1 20000; echo done >&2")), RunOptions(remove=True))
    out, err = capfdbinary.readouterr()
    assert code == 0
    assert out == "".join(f"{i}\n" for i in range(1, 20001)).encode()
    assert err == b"done\n"
    assert swarm.jobs() == []  # --rm


@docker_test
def test_versions_share_a_swarm_secret_and_never_collide(swarm):
    loop = 'trap "exit 0" TERM; sha256sum < /s; while :; do sleep 0.2; done'
    spec = shell(loop, secret_files=(SecretFile("db", "/s"),))
    ids: list[str] = []
    for value, version in (("one", 1), ("two", 2), ("two", 2)):
        swarm.run(plan_of(spec, db=(value, version)), RunOptions(detach=True), hooks=RunHooks(started=ids.append))
    first, second, third = (swarm.find(i) for i in ids)
    for job, value in ((first, "one"), (second, "two"), (third, "two")):
        wait_for(lambda job=job, value=value: sha(value).encode() in output(swarm, job), what=f"job {job.id}'s output")
    objects = {o["Spec"]["Name"]: o["Spec"]["Labels"] for o in launch_objects(swarm.api)}
    assert sorted((labels[sw.LABEL_SECRET], labels[sw.LABEL_VERSION]) for labels in objects.values()) == [
        ("db", "1"),
        ("db", "2"),
    ]
    with pytest.raises(Conflict, match="stop it first or pass --force"):
        swarm.remove(swarm.find(second.id))
    swarm.stop(swarm.find(first.id))
    stopped = swarm.find(first.id)
    assert (stopped.status, stopped.running) == ("stopped", False)
    assert [o["Spec"]["Labels"][sw.LABEL_VERSION] for o in launch_objects(swarm.api)] == ["2"]
    swarm.remove(swarm.find(second.id), force=True)
    assert len(launch_objects(swarm.api)) == 1  # the third job still uses version 2
    for job_id in (third.id, first.id):
        swarm.remove(swarm.find(job_id), force=True)
    assert launch_objects(swarm.api) == [] and swarm.jobs() == []


@docker_test
def test_a_task_that_never_ran_is_an_engine_error_and_leaves_nothing(swarm):
    with pytest.raises(EngineError, match=r"could not run job .*No such image"):
        swarm.run(plan_of(Spec(image="launch-test/missing:latest", command=("true",))), RunOptions())
    assert swarm.jobs() == []


@docker_test
def test_sealed_env_in_an_image_without_a_shell_is_a_usage_error(swarm):
    spec = Spec(image="launch-test/noshell:latest", command=("x",), env=(EnvVar("A", (SecretRef("a"),)),))
    with pytest.raises(UsageError, match="has no /bin/sh, so the sealed-env shim cannot run in it"):
        swarm.run(plan_of(spec, a=("v", 1)), RunOptions())
    assert swarm.jobs() == [] and launch_objects(swarm.api) == []


@docker_test
def test_restart_on_failure_then_the_last_exit_code(swarm, capfdbinary):
    spec = shell("echo try; exit 2", restart=Restart("on-failure", 1))
    ids: list[str] = []
    assert swarm.run(plan_of(spec), RunOptions(), hooks=RunHooks(started=ids.append)) == 2
    assert capfdbinary.readouterr().out == b"try\ntry\n"
    job = swarm.find(ids[0])
    assert (job.status, job.exit_code, swarm.inspect(job)["restarts"]) == ("exited", 2, 1)


@docker_test
def test_foreground_life_span_stops_the_job(swarm, capfdbinary):
    spec = shell('trap "exit 0" TERM; echo started; while :; do sleep 0.2; done', secret_files=(SecretFile("k", "/k"),))
    ids: list[str] = []
    assert (
        swarm.run(plan_of(spec, k=("v", 1)), RunOptions(life_span=1), hooks=RunHooks(started=ids.append))
        == ExitCode.TERMINATED
    )
    out, err = capfdbinary.readouterr()
    assert out == b"started\n" and b"launch: the job's life span is over; stopping it\n" in err
    assert swarm.find(ids[0]).status == "stopped" and launch_objects(swarm.api) == []


@docker_test
def test_sweep_releases_ended_jobs_and_orphans_and_enforces_life_spans(swarm):
    ids: list[str] = []
    swarm.run(
        plan_of(shell("true", secret_files=(SecretFile("k", "/k"),)), k=("v", 1)),
        RunOptions(detach=True),
        hooks=RunHooks(started=ids.append),
    )
    swarm.run(
        plan_of(shell('trap "exit 0" TERM; while :; do sleep 0.2; done')),
        RunOptions(detach=True, life_span=1),
        hooks=RunHooks(started=ids.append),
    )
    swarm.api.create_secret("launch-orphan-test", b"x", labels={sw.LABEL_KIND: "file"})
    wait_for(lambda: swarm.find(ids[0]).status == "exited", what="the first job to end")
    assert len(launch_objects(swarm.api)) == 2
    time.sleep(max(0.0, swarm.find(ids[1]).deadline - time.time()))
    swarm.sweep()
    assert launch_objects(swarm.api) == []
    assert [(j.id, j.status) for j in swarm.jobs()] == [(ids[1], "stopped"), (ids[0], "exited")]


@docker_test
def test_unplaceable_job_waits_pending_and_rm_force_cleans_up(swarm):
    spec = shell("true", constraints=("node.labels.launch-test-nowhere==1",), secret_files=(SecretFile("k", "/k"),))
    ids: list[str] = []
    swarm.run(plan_of(spec, k=("v", 1)), RunOptions(detach=True), hooks=RunHooks(started=ids.append))
    job = wait_for(lambda: swarm.find(ids[0]), what="the job")
    assert (job.status, job.running) == ("pending", True)
    swarm.remove(job, force=True)
    swarm.sweep()
    assert swarm.jobs() == [] and launch_objects(swarm.api) == []


INTERRUPTIBLE = """
import sys
from dataclasses import dataclass
from launcher.errors import LaunchError
from launcher.plan import resolve
from launcher.runtime.docker import RunOptions
from launcher.runtime.swarm import SwarmBackend
from launcher.spec import SecretFile, Spec

@dataclass
class Revealed:
    value: bytes
    version: int

script = 'trap "echo last words; exit 0" TERM; echo started; while :; do sleep 0.2; done'
spec = Spec(image=sys.argv[1], command=("sh", "-c", script), secret_files=(SecretFile("k", "/k"),))
try:
    code = SwarmBackend().run(resolve(spec, {"k": Revealed(b"v", 1)}), RunOptions())
except LaunchError as exc:
    print(exc.message, file=sys.stderr)
    code = int(exc.code)
sys.exit(code)
"""


@docker_test
def test_sigterm_stops_the_job_shows_its_last_words_and_removes_everything(swarm, tmp_path):
    script = tmp_path / "interruptible.py"
    script.write_text(INTERRUPTIBLE)
    proc = subprocess.Popen(
        [sys.executable, str(script), TEST_IMAGE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == ExitCode.TERMINATED, err
    assert b"last words\n" in out
    assert b"interrupted: the job was stopped" in err
    assert swarm.jobs() == [] and launch_objects(swarm.api) == []


# --- through the real CLI ------------------------------------------------------------------------------------------


@docker_test
def swarm_rows(result) -> list[dict]:
    """The swarm jobs of a `launch ps --json` (local jobs of other tests may share the engine)."""
    assert result.returncode == 0, result.stderr
    return [row for row in json.loads(result.stdout) if row["backend"] == "swarm"]


def test_cli_run_backend_swarm_foreground(swarm, tmp_path):
    add_secret("api", CANARY)
    add_secret("cert", "cert-" + CANARY)
    job = tmp_path / "job.yaml"
    job.write_text(
        f"""
image: {TEST_IMAGE}
user: app
command: ["sh", "-c", "printf %s \\"$API\\" | sha256sum; sha256sum < /run/secrets/cert; echo \\"$API\\" >&2; exit 5"]
env:
  API: secret:api
volumes:
  - secret:cert:/run/secrets/cert
"""
    )
    result = run_launch("run", "--backend", "swarm", str(job))
    assert result.returncode == 5, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines == [f"{sha(CANARY)}  -", f"{sha('cert-' + CANARY)}  -"]
    assert result.stderr == b"***\n"
    (listed,) = swarm_rows(run_launch("ps", "-a", "--json"))
    assert (listed["backend"], listed["status"], listed["exit_code"]) == ("swarm", "exited", 5)
    assert run_launch("rm", listed["id"]).returncode == 0
    assert swarm.jobs() == [] and launch_objects(swarm.api) == []


@docker_test
def test_cli_detached_swarm_job_ps_logs_stop_rm(swarm, tmp_path):
    add_secret("api", CANARY)
    job = tmp_path / "job.yaml"
    job.write_text(
        f"""
image: {TEST_IMAGE}
backend: swarm
command: ["sh", "-c", "trap 'exit 0' TERM; echo \\"token=$API\\"; while :; do sleep 0.2; done"]
env:
  API: secret:api
"""
    )
    started = run_launch("run", "-d", str(job))
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{10}", job_id)
    (listed,) = swarm_rows(run_launch("ps", "--json"))
    assert (listed["id"], listed["backend"], listed["secrets"]) == (job_id, "swarm", {"api": 1})
    wait_for(lambda: b"token=***" in run_launch("logs", job_id).stdout, what="the job's masked output")
    stopped = run_launch("stop", job_id)
    assert stopped.returncode == 0, stopped.stderr
    (listed,) = swarm_rows(run_launch("ps", "-a", "--json"))
    assert listed["status"] == "stopped"
    assert launch_objects(swarm.api) == []  # released once the job stopped
    assert run_launch("rm", job_id).returncode == 0
    assert swarm.jobs() == []
