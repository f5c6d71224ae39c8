"""The Docker Swarm runtime (`launch run --backend swarm`): the same plan, run as a swarm service.

A job is one service, labelled like a local job (`launcher.jobs.job_labels`, backend "swarm"):

- mode `replicated-job` (one task, run once) for restart policies "no" and "on-failure"; "always" and
  "unless-stopped" become a `replicated` service of one replica with restart condition "any", because a swarm job
  never restarts a task that exited 0;
- every secret file becomes a swarm secret mounted at the template's path, owned by the container's uid:gid with
  the template's mode. Swarm keeps secrets encrypted in its Raft log and mounts them on a tmpfs in the task, so a
  value never reaches a disk of ours or a worker's, and no API call ever returns it;
- env secrets are sealed as on the local engine: an env file (a swarm secret at /.launch/env) and the shim
  (a swarm config at /.launch/shim) run by the image's /bin/sh, which sources the file and `exec`s the job's own
  argv. The service's env holds plain variables only.

Swarm secrets are immutable, so each is named after what it holds: `launch-<secret>-v<version>-<digest>`, the
digest an HMAC of name, version and value keyed by the swarm's cluster id. Two jobs using the same version of a
secret share one swarm secret; a new version (or a different store's value) never collides with an old one; and
a name seen alone (in `docker secret ls`, or pasted into a log) is no dictionary-attack oracle for its value.
Each carries `launch.kind` (file, env or shim) and, for a secret file, `launch.secret` and `launch.version` labels.

Swarm counts references for us: it refuses to remove a secret or config that a service still names. So a job
releases its objects when it ends (its service is "retired": scaled to zero completions and stripped of its
secret references, which keeps the ended task and its logs), when it is removed, and `sweep()` removes any launch
object no service names. Two launchers racing (one releasing what the other is about to use) are safe: creating
a service that names a vanished secret fails, and `run` creates the objects again and retries.

The container's uid:gid (for secret ownership) and the image's entrypoint and command (for the shim's argv) come
from the image on the manager we talk to (pulled there when missing; workers pull it themselves). A user given by
name is looked up in the image's /etc/passwd through a created, never-started container, as the local runtime
does; a numeric `uid:gid` needs no lookup. An image without /bin/sh cannot run the shim: its task fails to start,
and that failure is reported as such.

A swarm cannot stop a task and keep it: `stop` (and a life span running out) retires the service, and swarm deletes
the stopped task together with its container, logs and exit code. The job stays listed (status "stopped", no exit
code) until `launch rm`; a foreground job stopped that way exits 143.

Logs: swarm's follow stream never ends and lags the task's state, so a followed stream is read on a thread until
the job has ended, then closed, and one more non-following read delivers whatever was still on its way, skipping
what was shown (`LogCursor`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import queue
import socket
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import jobs as jobmod
from launcher.errors import Conflict, EngineError, ExitCode, LaunchError, NotFound, UsageError
from launcher.runtime.common import (
    STOP_GRACE,
    ImageConfig,
    RunHooks,
    RunOptions,
    Terminated,
    api_error_text,
    connect,
    demux_frames,
    epoch,
    install_sigterm,
    job_argv,
    parse_stamp,
    plan_labels,
    pump,
)
from launcher.runtime.docker import DockerBackend
from launcher.spec import Resources, Restart

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

LABEL_KIND = "launch.kind"  # on every swarm secret and config launch creates: "file", "env" or "shim"
LABEL_SECRET = "launch.secret"
LABEL_VERSION = "launch.version"
LABEL_PROBE = "launch.probe"  # the throwaway container that reads an image's /etc/passwd
SWARM_SECRET_MAX = 500 * 1024  # swarmkit's limit on a secret's size
GPU_RESOURCE = "NVIDIA-GPU"  # the generic resource kind GPU nodes advertise (`node-generic-resources`)
POLL = 0.5  # seconds between looks at a job's tasks
RESTART_DELAY = 1_000_000_000  # ns between a failed task and its replacement: a crash loop does not spin
PROBE_MAX_AGE = 300  # seconds after which a probe container left by a killed launcher is swept
_NAME_MAX = 64  # swarm's limit on an object's name
_TASK_ID = b"com.docker.swarm.task.id"
_RAN = "task: non-zero exit"  # swarmkit's error for a container that ran and exited non-zero
_TERMINAL = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
_NEVER_RAN = frozenset({"rejected", "orphaned"})


# --- pure: what to create ----------------------------------------------------------------------------------------


SHIM_DIR = "/.launch"
SHIM_PATH = f"{SHIM_DIR}/shim"
ENV_PATH = f"{SHIM_DIR}/env"
_GO_MODE_SYMLINK = 1 << 27  # os.ModeSymlink in the engine's stat header


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def env_file_bytes(pairs: tuple[tuple[str, str], ...]) -> bytes:
    """The sealed env file the shim sources: `export NAME='value'` lines (names are validated identifiers)."""
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in pairs).encode("utf-8")


def parse_passwd(text: str, user: str) -> tuple[int, int] | None:
    """(uid, gid) of `user` (a name or a uid) in passwd text."""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and user in (fields[0], fields[2]):
            try:
                return int(fields[2]), int(fields[3])
            except ValueError:
                return None
    return None


def parse_group(text: str, group: str) -> int | None:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and group in (fields[0], fields[2]):
            try:
                return int(fields[2])
            except ValueError:
                return None
    return None


def resolve_user(user: str, read_file: Callable[[str], str | None]) -> tuple[int, int]:
    """uid:gid for a Docker `user` string, as the engine resolves it ('' is root; a missing gid is the primary group).

    `read_file(path)` returns a file of the image (or None when it is missing); it is only called for names.
    """
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    passwd: str | None = None
    if name.isdigit():
        uid = int(name)
        passwd = read_file("/etc/passwd") or ""
        entry = parse_passwd(passwd, name)
        gid = entry[1] if entry else 0
    else:
        passwd = read_file("/etc/passwd") or ""
        entry = parse_passwd(passwd, name)
        if entry is None:
            raise UsageError(f"user {name!r} is not in the image's /etc/passwd")
        uid, gid = entry
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = parse_group(read_file("/etc/group") or "", group)
            if found is None:
                raise UsageError(f"group {group!r} is not in the image's /etc/group")
            gid = found
    return uid, gid


def shim_bytes() -> bytes:
    return (Path(__file__).with_name("shim.sh")).read_bytes()


def read_file(api, container_id: str, path: str) -> str | None:
    """A file of the (created, not started) container's filesystem, following symlinks; None when missing."""
    import docker.errors

    for _ in range(8):  # a chain of symlinks, bounded
        try:
            stream, stat = api.get_archive(container_id, path)
        except docker.errors.NotFound:
            return None
        data = b"".join(stream)
        if stat.get("mode", 0) & _GO_MODE_SYMLINK and stat.get("linkTarget"):
            path = stat["linkTarget"]  # the engine resolves it to an absolute path in the container
            continue
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read(1 << 20).decode("utf-8", "replace") if extracted else ""
    return None


@dataclass(frozen=True)
class SwarmObject:
    """A swarm secret (or, for the shim, a config) that a job mounts. Immutable, so named after its content."""

    kind: str  # "file" | "env" | "shim"
    name: str
    data: bytes = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_config(self) -> bool:
        return self.kind == "shim"


@dataclass(frozen=True)
class Mount:
    """Where a job sees a swarm object: a file at `target`, owned by uid:gid, with `mode`."""

    source: SwarmObject
    target: str
    uid: int
    gid: int
    mode: int


def digest(salt: bytes, *parts: bytes) -> str:
    """A short keyed digest of `parts`: names stay distinct per content without revealing it."""
    return hmac.new(salt, b"\0".join(parts), hashlib.sha256).hexdigest()[:16]


def secret_object_name(key: str, version: int, tag: str) -> str:
    """`launch-<key>-v<version>-<tag>`, the key shortened to fit swarm's 64 characters (the tag keeps it unique)."""
    tail = f"-v{version}-{tag}"
    return f"launch-{key[: _NAME_MAX - len('launch-') - len(tail)]}{tail}"


def secret_mounts(plan: Plan, *, salt: bytes, uid: int, gid: int, sealed: bool) -> list[Mount]:
    """Every swarm object the job mounts: its secret files, and for sealed env the env file and the shim."""
    mounts = []
    for secret_file, value in plan.files:
        version = plan.versions[secret_file.key]
        source = SwarmObject(
            "file",
            secret_object_name(
                secret_file.key, version, digest(salt, secret_file.key.encode(), b"%d" % version, value)
            ),
            value,
            {LABEL_KIND: "file", LABEL_SECRET: secret_file.key, LABEL_VERSION: str(version)},
        )
        mounts.append(Mount(source, secret_file.target, uid, gid, secret_file.mode))
    if sealed:
        env = env_file_bytes(plan.secret_env)
        used = sorted({ref.key for variable in plan.spec.env for ref in variable.refs})
        versions = json.dumps({key: plan.versions[key] for key in used}, sort_keys=True)
        labels = {LABEL_KIND: "env", jobmod.LABEL_SECRETS: versions}
        mounts.append(
            Mount(SwarmObject("env", f"launch-env-{digest(salt, env)}", env, labels), ENV_PATH, uid, gid, 0o400)
        )
        shim = shim_bytes()
        name = f"launch-shim-{hashlib.sha256(shim).hexdigest()[:16]}"
        mounts.append(Mount(SwarmObject("shim", name, shim, {LABEL_KIND: "shim"}), SHIM_PATH, 0, 0, 0o444))
    return mounts


def preflight(plan: Plan, options: RunOptions) -> None:
    """Checks that need no engine, run before connecting: what a swarm cannot do as the template asks."""
    spec = plan.spec
    if spec.network == "none":
        raise UsageError(
            "network 'none' is not available on swarm (a service always has a network); drop `network: none` or "
            "use the docker backend"
        )
    if spec.resources.gpus == -1:
        raise UsageError("gpus: 'all' cannot be expressed on swarm; give a number of GPUs")
    for port in spec.ports:
        if port.host_ip not in ("", "0.0.0.0", "::"):
            raise UsageError(
                f"port {port.container}: swarm publishes a port on every interface of every node and cannot bind "
                f"it to {port.host_ip}; publish it on 0.0.0.0 explicitly to accept that, or use the docker backend"
            )
    sizes = [(f"secret '{secret_file.key}'", len(value)) for secret_file, value in plan.files]
    if plan.secret_env and not options.plain_env:
        sizes.append(("the sealed env file", len(env_file_bytes(plan.secret_env))))
    for what, size in sizes:
        if size > SWARM_SECRET_MAX:
            raise UsageError(
                f"{what} is {size} bytes, over swarm's limit of 500 KiB per secret; use the docker backend"
            )


def service_mode(restart: Restart) -> dict[str, Any]:
    """A job runs once; "always" needs a replicated service, since a swarm job never restarts a task that exited 0."""
    if restart.policy in ("always", "unless-stopped"):
        return {"Replicated": {"Replicas": 1}}
    return {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}


def retired_mode(mode: dict[str, Any]) -> dict[str, Any]:
    """The same mode asking for no task at all: running tasks stop, ended ones (and their logs) are kept."""
    if "ReplicatedJob" in mode:
        return {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 0}}
    return {"Replicated": {"Replicas": 0}}


def is_retired(mode: dict[str, Any]) -> bool:
    """True for a service asking for no task: its job has ended or was stopped."""
    if "ReplicatedJob" in mode:
        return (mode["ReplicatedJob"] or {}).get("TotalCompletions", 1) == 0
    return ((mode.get("Replicated") or {}).get("Replicas", 1)) == 0


def restart_policy(restart: Restart) -> dict[str, Any]:
    """Docker's restart policy in swarm's terms (max retries = max attempts; 0 is unlimited in both)."""
    if restart.policy == "no":
        return {"Condition": "none"}
    if restart.policy == "on-failure":
        return {"Condition": "on-failure", "MaxAttempts": restart.max_retries, "Delay": RESTART_DELAY}
    return {"Condition": "any", "Delay": RESTART_DELAY}


def resources(res: Resources) -> dict[str, Any]:
    """Limits, and GPUs as generic resources: a node offers them with `node-generic-resources` in daemon.json."""
    limits: dict[str, Any] = {}
    if res.cpus:
        limits["NanoCPUs"] = int(res.cpus * 1e9)
    if res.memory:
        limits["MemoryBytes"] = res.memory
    result: dict[str, Any] = {"Limits": limits} if limits else {}
    if res.gpus:
        result["Reservations"] = {
            "GenericResources": [{"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": res.gpus}}]
        }
    return result


def _file(mount: Mount) -> dict[str, Any]:
    return {"Name": mount.target, "UID": str(mount.uid), "GID": str(mount.gid), "Mode": mount.mode}


def service_spec(
    plan: Plan,
    job_id: str,
    *,
    image: ImageConfig | None,
    mounts: list[tuple[Mount, str]],
    labels: dict[str, str],
    sealed: bool,
    options: RunOptions,
) -> dict[str, Any]:
    """Pure: the keyword arguments of `create_service` (`mounts` pairs each Mount with its object's id)."""
    spec = plan.spec
    env = [f"{name}={value}" for name, value in plan.env]
    if not sealed:
        env += [f"{name}={value}" for name, value in plan.secret_env]  # --plain-env, asked for explicitly
    container: dict[str, Any] = {"Image": spec.image, "Env": env, "StopGracePeriod": options.stop_grace * 10**9}
    if sealed:
        assert image is not None
        container["Command"] = ["/bin/sh", SHIM_PATH, *job_argv(plan, image)]
    else:
        if spec.entrypoint is not None:
            container["Command"] = list(spec.entrypoint)
        if spec.command is not None:
            container["Args"] = list(spec.command)
    if spec.workdir:
        container["Dir"] = spec.workdir
    if spec.user:
        container["User"] = spec.user
    secrets = [
        {"SecretID": oid, "SecretName": m.source.name, "File": _file(m)} for m, oid in mounts if not m.source.is_config
    ]
    configs = [
        {"ConfigID": oid, "ConfigName": m.source.name, "File": _file(m)} for m, oid in mounts if m.source.is_config
    ]
    if secrets:
        container["Secrets"] = secrets
    if configs:
        container["Configs"] = configs
    if spec.binds:
        container["Mounts"] = [
            {
                "Type": "bind" if b.source.startswith("/") else "volume",
                "Source": b.source,
                "Target": b.target,
                "ReadOnly": b.read_only,
            }
            for b in spec.binds
        ]
    task: dict[str, Any] = {"ContainerSpec": container, "RestartPolicy": restart_policy(spec.restart)}
    limits = resources(spec.resources)
    if limits:
        task["Resources"] = limits
    if spec.constraints:
        task["Placement"] = {"Constraints": list(spec.constraints)}
    if spec.network:
        task["Networks"] = [{"Target": spec.network}]  # "host" and "bridge" are swarm's predefined networks
    endpoint = None
    if spec.ports:
        endpoint = {
            "Ports": [
                {
                    "Protocol": p.protocol,
                    "TargetPort": p.container,
                    "PublishedPort": p.host if p.host is not None else p.container,
                    "PublishMode": "ingress",
                }
                for p in spec.ports
            ]
        }
    return {
        "name": jobmod.container_name(job_id, spec.name),
        "labels": labels,
        "mode": service_mode(spec.restart),
        "task_template": task,
        "endpoint_spec": endpoint,
    }


# --- pure: what the tasks say ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    status: str  # "pending", "starting", "running", "restarting", "exited", "failed", "stopped", "removed"
    exit_code: int | None = None
    error: str | None = None  # why the job's task never ran (status "failed")
    ended: bool = False  # swarm will start no further task for it


def _settled(task: dict[str, Any]) -> bool:
    """A task swarm is done with: ended, and not about to be replaced (the orchestrator has marked it)."""
    state = task["Status"].get("State")
    return state in _TERMINAL and (state == "complete" or task.get("DesiredState") in ("shutdown", "remove"))


def _latest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)


def job_state(tasks: list[dict[str, Any]], retired: bool) -> JobState:
    """A job's state from its service's tasks (the latest one speaks for it)."""
    if not tasks:
        return JobState("stopped", ended=True) if retired else JobState("pending")
    latest = _latest(tasks)
    status = latest["Status"]
    state = status.get("State", "")
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state not in _TERMINAL:
        return JobState(state if state in ("running", "starting") else "pending")
    if not all(_settled(t) for t in tasks):
        return JobState("restarting", code)
    if latest.get("DesiredState") == "remove":  # stopped: swarm deletes the task, its exit code with it
        return JobState("stopped", ended=True)
    err = status.get("Err") or ""
    if state in _NEVER_RAN or (state == "failed" and not err.startswith(_RAN)):
        return JobState("failed", None, err or f"its task was {state}", ended=True)
    return JobState("exited", code, ended=True)


# --- pure: log frames --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One log message of a service, as read with `timestamps` and `details`."""

    stream: int  # 1 stdout, 2 stderr
    stamp: tuple[int, int]  # (epoch seconds, nanoseconds)
    task: bytes
    line: bytes = field(repr=False)

    @property
    def key(self) -> tuple[bytes, int]:
        return self.task, self.stream

    def pair(self) -> tuple[bytes | None, bytes | None]:
        return (None, self.line) if self.stream == 2 else (self.line, None)


def parse_frame(stream: int, data: bytes) -> Frame:
    """`<timestamp> <k=v,k=v details> <line>` -> Frame."""
    stamp, _, rest = data.partition(b" ")
    details, _, line = rest.partition(b" ")
    task = b""
    for item in details.split(b","):
        name, _, value = item.partition(b"=")
        if name == _TASK_ID:
            task = value
    return Frame(stream, parse_stamp(stamp.decode("ascii", "replace")), task, line)


class LogCursor:
    """How far the reads of a job's log got, per task and stream, so that each read shows only what none before
    it did (swarm's follow stream must be closed and read again: it never ends, and it lags).

    Per task and stream, messages come in order with non-decreasing timestamps; a long line split in parts gives
    several messages with one timestamp. So a mark is (last timestamp shown, how many messages had it), and
    skipping by marks is exact. Across streams there is no order: swarm relays stdout and stderr separately, so a
    stderr line may still be on its way while later stdout lines have arrived. A second read therefore starts
    CATCH_UP seconds before the newest message shown, and whatever a stream still had on its way within that
    window is shown by it.
    """

    CATCH_UP = 30

    def __init__(self) -> None:
        self.marks: dict[tuple[bytes, int], tuple[tuple[int, int], int]] = {}
        self._base: dict[tuple[bytes, int], tuple[tuple[int, int], int]] = {}
        self._repeats: Counter = Counter()

    def begin(self) -> str | None:
        """Start a read; returns where it must start (swarm's `since`, inclusive), or None: from the start."""
        self._base, self._repeats = dict(self.marks), Counter()
        if not self.marks:
            return None
        seconds, nanos = max(stamp for stamp, _ in self.marks.values())
        return f"{max(0, seconds - self.CATCH_UP)}.{nanos:09d}"

    def fresh(self, frame: Frame) -> bool:
        """True, and noted, when no earlier read showed `frame`."""
        mark = self._base.get(frame.key)
        if mark is not None and frame.stamp <= mark[0]:
            if frame.stamp < mark[0]:
                return False
            self._repeats[frame.key] += 1
            if self._repeats[frame.key] <= mark[1]:
                return False
        last = self.marks.get(frame.key)
        self.marks[frame.key] = (frame.stamp, last[1] + 1 if last and last[0] == frame.stamp else 1)
        return True


# --- the engine --------------------------------------------------------------------------------------------------


def swarm_cluster(client) -> str:
    """The id of the swarm whose manager `client` talks to, or one clear EngineError saying what to do."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    info = client.info().get("Swarm") or {}
    state = info.get("LocalNodeState")
    if state == "locked":
        raise EngineError(f"the swarm of the engine at {where} is locked; unlock it with `docker swarm unlock`")
    if state != "active":
        raise EngineError(
            f"the Docker engine at {where} is not part of a swarm; run `docker swarm init` to make it a one-node "
            "swarm, or point DOCKER_HOST at a manager of your swarm"
        )
    if not info.get("ControlAvailable"):
        raise EngineError(
            f"the Docker engine at {where} is a swarm worker, not a manager; point DOCKER_HOST at a manager "
            "(`docker node ls` on one lists them)"
        )
    return info["Cluster"]["ID"]


def _no_shell(error: str) -> bool:
    return "/bin/sh" in error and ("no such file" in error or "not found" in error)


def _object_refs(spec: dict[str, Any]) -> list[tuple[bool, str]]:
    """(is a config, id) of every secret and config a service spec names."""
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    return [(False, s["SecretID"]) for s in container.get("Secrets") or ()] + [
        (True, c["ConfigID"]) for c in container.get("Configs") or ()
    ]


_END = object()


class SwarmBackend:
    name = "swarm"

    def __init__(self, client=None):
        self.client = client or connect()
        self.api = self.client.api
        self.salt = swarm_cluster(self.client).encode()
        self.local = DockerBackend(self.client)  # images and their files, on the manager we talk to

    def image_config(self, image: str, *, pull: bool = True, progress: bool = False) -> ImageConfig:
        return self.local.image_config(image, pull=pull, progress=progress)

    # --- running ------------------------------------------------------------------------------------------------

    def run(self, plan: Plan, options: RunOptions, masker=None, hooks=None) -> int:
        """Run a plan. Detached: returns 0 once the service exists. Foreground: the job's exit code. A service
        starts as it is created, so `hooks.before_start` (the usage record) runs before anything is created."""
        hooks = hooks or RunHooks()
        spec = plan.spec
        preflight(plan, options)
        job_id = jobmod.new_id()
        sealed = bool(plan.secret_env) and not options.plain_env
        image, (uid, gid) = self._image_and_owner(plan, sealed)
        mounts = secret_mounts(plan, salt=self.salt, uid=uid, gid=gid, sealed=sealed)
        labels, deadline = plan_labels(plan, job_id, options, self.name)
        self.sweep()
        service_id: str | None = None
        refs: list[tuple[bool, str]] = []
        hooks.before_start(job_id)
        restore = install_sigterm()
        try:
            service_id, refs = self._create_service(
                plan, job_id, image=image, mounts=mounts, labels=labels, sealed=sealed, options=options
            )
            hooks.started(job_id)
            if options.detach:
                if deadline is not None:
                    from launcher.runtime import warden

                    warden.spawn(self.name, job_id, service_id, deadline)
                return 0
            return self._foreground(service_id, job_id, options, masker, deadline, spec.image if sealed else None)
        except (KeyboardInterrupt, Terminated) as exc:
            code = ExitCode.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ExitCode.TERMINATED
            if service_id is not None:
                self._remove_service(service_id)
            raise LaunchError("interrupted: the job was stopped" if service_id else "interrupted", code) from None
        finally:
            restore()
            if not options.detach:
                self._release(refs)  # the job has ended (or was removed): its objects, unless another job uses them

    def _image_and_owner(self, plan: Plan, sealed: bool) -> tuple[ImageConfig | None, tuple[int, int]]:
        """The image's config (the shim needs its argv) and the uid:gid that owns the job's secrets (a user name
        is looked up in the image's /etc/passwd)."""
        spec = plan.spec
        if not plan.files and not sealed:
            return None, (0, 0)
        image = self.image_config(spec.image, progress=sys.stderr.isatty())
        if sealed and not job_argv(plan, image):
            raise UsageError(f"image {spec.image!r} has no entrypoint or command, and none was given")
        user = spec.user or image.user
        name, _, group = user.partition(":")
        if not user or (name.isdigit() and group.isdigit()):
            return image, resolve_user(user, lambda _path: None)
        with self._probe(spec.image) as read_file:
            return image, resolve_user(user, read_file)

    @contextmanager
    def _probe(self, image: str) -> Iterator[Callable[[str], str | None]]:
        """Read files of `image` through a created, never-started container on the manager, removed afterwards."""
        import docker.errors

        try:
            probe = self.api.create_container(
                image, entrypoint=["/.launch-probe"], labels={LABEL_PROBE: "1"}, network_disabled=True
            )["Id"]
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot read the files of image {image!r}: {api_error_text(exc)}") from None
        try:
            yield lambda path: read_file(self.api, probe, path)
        finally:
            self.local.remove_quietly(probe)

    def _create_service(
        self, plan: Plan, job_id: str, *, mounts: list[Mount], **spec_args
    ) -> tuple[str, list[tuple[bool, str]]]:
        """Create the job's objects and service: (service id, [(is a config, id) of each object]). On failure
        nothing of it is left."""
        import docker.errors

        refs: list[tuple[Mount, str]] = []
        attempts = 0
        try:
            while True:
                attempts += 1
                refs = [(m, self._ensure(m.source)) for m in mounts]
                args = service_spec(plan, job_id, mounts=refs, **spec_args)
                try:
                    service_id = self.api.create_service(**args)["ID"]
                    return service_id, [(m.source.is_config, oid) for m, oid in refs]
                except docker.errors.APIError as exc:
                    text = api_error_text(exc)
                    if exc.status_code == 409:
                        raise Conflict(
                            f"a swarm service named {args['name']!r} exists already; pick another --name"
                        ) from None
                    if attempts < 3 and ("secret not found" in text or "config not found" in text):
                        continue  # another launcher released a shared object meanwhile: create it again
                    raise EngineError(f"the swarm refused the job: {text}") from None
        except BaseException:
            self._release([(m.source.is_config, oid) for m, oid in refs])
            raise

    def _ensure(self, obj: SwarmObject) -> str:
        """The id of the swarm object named `obj.name`, created when missing (another job may have made it)."""
        import docker.errors

        kind = "config" if obj.is_config else "secret"
        create = self.api.create_config if obj.is_config else self.api.create_secret
        listing = self.api.configs if obj.is_config else self.api.secrets
        for _ in range(3):
            try:
                return create(obj.name, obj.data, labels=obj.labels)["ID"]
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise EngineError(f"the swarm refused {kind} {obj.name}: {api_error_text(exc)}") from None
            for item in listing(filters={"name": obj.name}):
                if item["Spec"]["Name"] == obj.name:
                    return item["ID"]
        raise EngineError(f"the swarm {kind} {obj.name} keeps vanishing; is another launcher sweeping it?")

    def _foreground(
        self, service_id: str, job_id: str, options: RunOptions, masker, deadline: float | None, shim_image: str | None
    ) -> int:
        watch = _Watch(self, service_id, deadline)
        cursor = LogCursor()
        masker = masker if options.mask else None
        try:
            pump(self._follow(service_id, watch.ended, cursor=cursor), masker)
        except BrokenPipeError:  # our reader went away (`| head`): the job goes on, and its exit code still counts
            while not watch.ended():
                time.sleep(POLL)
        except (KeyboardInterrupt, Terminated):
            # stop it gracefully and keep streaming, so its last words reach the user; `run` then removes it
            grace = self._grace(service_id)
            sys.stderr.write(f"launch: stopping the job (up to {grace}s; interrupt again to stop waiting)\n")
            sys.stderr.flush()
            self._retire(service_id)
            pump(self._follow(service_id, watch.ended, cursor=cursor), masker)
            raise
        state = watch.state if watch.state.ended else self._snapshot(service_id)[0]
        if options.remove or state.error:
            self._remove_service(service_id)
        else:
            self._retire(service_id)  # keeps the ended task and its logs; `run` releases the objects
        if state.error and shim_image is not None and _no_shell(state.error):
            raise UsageError(
                f"image {shim_image!r} has no /bin/sh, so the sealed-env shim cannot run in it; deliver these "
                "secrets as files (`VAR_FILE: secret-file:KEY` or a `secret:KEY:/path` volume), or pass "
                "--plain-env (the values are then visible in `docker service inspect`)"
            )
        if state.error:
            raise EngineError(f"the swarm could not run job {job_id}: {state.error}")
        return int(ExitCode.TERMINATED) if state.exit_code is None else state.exit_code

    # --- services and their objects -----------------------------------------------------------------------------

    def _snapshot(self, service_id: str) -> tuple[JobState, dict[str, Any] | None]:
        """The job's state, and its latest task (None when it has none)."""
        import docker.errors

        try:
            service = self.api.inspect_service(service_id)
        except docker.errors.NotFound:
            return JobState("removed", ended=True), None
        tasks = self.api.tasks(filters={"service": service_id})
        return job_state(tasks, is_retired(service["Spec"].get("Mode", {}))), _latest(tasks)

    def _update(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        url = self.api._url("/services/{0}/update", service["ID"])
        response = self.api._post_json(url, params={"version": service["Version"]["Index"]}, data=spec)
        self.api._raise_for_status(response)

    def _retire(self, service_id: str) -> list[tuple[bool, str]]:
        """Ask for no more tasks and drop the secret references (the ended task and its logs are kept); returns
        the objects that were referenced, for `_release` once the running task (if any) has gone."""
        import docker.errors

        try:
            service = self.api.inspect_service(service_id)
        except docker.errors.NotFound:
            return []
        spec = service["Spec"]
        refs = _object_refs(spec)
        if refs or not is_retired(spec["Mode"]):
            container = spec["TaskTemplate"]["ContainerSpec"]
            container.pop("Secrets", None)
            container.pop("Configs", None)
            spec["Mode"] = retired_mode(spec["Mode"])
            self._update(service, spec)
        return refs

    def _remove_service(self, service_id: str) -> None:
        import docker.errors

        try:
            refs = _object_refs(self.api.inspect_service(service_id)["Spec"])
            self.api.remove_service(service_id)
        except docker.errors.NotFound:
            return
        self._release(refs)

    def _release(self, refs: list[tuple[bool, str]]) -> None:
        """Remove these objects where no service names them any more (swarm refuses the others)."""
        for is_config, object_id in refs:
            try:
                (self.api.remove_config if is_config else self.api.remove_secret)(object_id)
            except Exception:
                pass

    # --- logs ---------------------------------------------------------------------------------------------------

    def _open_logs(self, service_id: str, *, follow: bool, tail: int | None, since: str | None = None):
        import docker.errors

        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "details": 1, "follow": int(follow)}
        params["tail"] = "all" if tail is None else tail
        if since is not None:
            params["since"] = since
        response = self.api._get(self.api._url("/services/{0}/logs", service_id), params=params, stream=True)
        try:
            self.api._raise_for_status(response)
        except docker.errors.NotFound:
            raise NotFound(f"the job's service {service_id} no longer exists") from None
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot read the job's logs: {api_error_text(exc)}") from None
        if follow:
            self.api._disable_socket_timeout(self.api._get_raw_response_socket(response))
        return response

    def _frames(self, response) -> Iterator[Frame]:
        try:
            for out, err in demux_frames(response.raw):
                yield parse_frame(1, out) if err is None else parse_frame(2, err)
        finally:
            response.close()

    def _follow(
        self, service_id: str, ended: Callable[[], bool], tail: int | None = None, cursor: LogCursor | None = None
    ) -> Iterator[tuple]:
        """The job's output as it comes until `ended()`, then whatever was still on its way (after what `cursor`
        has seen already)."""
        cursor = cursor or LogCursor()
        done = False
        while True:
            since = cursor.begin()
            try:
                response = self._open_logs(
                    service_id, follow=not done, tail=tail if since is None else None, since=since
                )
            except NotFound:
                return  # removed meanwhile
            if done:
                yield from (frame.pair() for frame in self._frames(response) if cursor.fresh(frame))
                return
            done = yield from self._read_until(response, cursor, ended)
            if not done:  # the engine closed the stream early: look again
                time.sleep(POLL)
                done = ended()

    def _read_until(self, response, cursor: LogCursor, ended: Callable[[], bool]):
        """Yield a followed stream's new frames until `ended()` (returns True) or the stream closes (False)."""
        frames: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pour, args=(self._frames(response), frames), daemon=True)
        reader.start()
        try:
            check_at = 0.0
            while True:
                try:
                    frame = frames.get(timeout=POLL)
                except queue.Empty:
                    frame = None
                if frame is _END:
                    return False
                if frame is not None and cursor.fresh(frame):
                    yield frame.pair()
                if time.monotonic() >= check_at:
                    if ended():
                        return True
                    check_at = time.monotonic() + POLL
        finally:
            self._abort(response)
            reader.join(timeout=5)

    def _abort(self, response) -> None:
        """Close a followed stream from this thread: shut its socket down so the reader's blocked read returns."""
        try:
            raw = self.api._get_raw_response_socket(response)
            getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

    # --- jobs ---------------------------------------------------------------------------------------------------

    def _services(self) -> list[dict[str, Any]]:
        return self.api.services(filters={"label": [jobmod.LABEL_JOB, f"{jobmod.LABEL_BACKEND}={self.name}"]})

    def _tasks_by_service(self, services: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {s["ID"]: [] for s in services}
        if grouped:
            for task in self.api.tasks(filters={"service": list(grouped)}):
                grouped.setdefault(task["ServiceID"], []).append(task)
        return grouped

    def _job(self, service: dict[str, Any], tasks: list[dict[str, Any]]) -> jobmod.Job:
        spec = service["Spec"]
        labels = spec.get("Labels") or {}
        state = job_state(tasks, is_retired(spec.get("Mode", {})))
        deadline = labels.get(jobmod.LABEL_DEADLINE)
        return jobmod.Job(
            id=labels[jobmod.LABEL_JOB],
            name=labels.get(jobmod.LABEL_NAME),
            image=spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@sha256:", 1)[0],
            status=state.status,
            created=epoch(service["CreatedAt"]),
            exit_code=state.exit_code,
            secrets=jobmod.secrets_from_labels(labels),
            backend=self.name,
            ref=service["ID"],
            deadline=float(deadline) if deadline else None,
            labels=labels,
        )

    def jobs(self, all: bool = True) -> list[jobmod.Job]:
        services = self._services()
        tasks = self._tasks_by_service(services)
        result = [self._job(s, tasks[s["ID"]]) for s in services]
        if not all:
            result = [j for j in result if j.running]
        result.sort(key=lambda j: j.created, reverse=True)
        return result

    def find(self, ref: str) -> jobmod.Job:
        return jobmod.match(self.jobs(all=True), ref)

    def logs(self, job: jobmod.Job, follow: bool = False, tail: int | None = None) -> Iterator[tuple]:
        if follow and job.running:
            return self._follow(job.ref, lambda: self._snapshot(job.ref)[0].ended, tail=tail)
        response = self._open_logs(job.ref, follow=False, tail=tail)
        return (frame.pair() for frame in self._frames(response))

    def stop(self, job: jobmod.Job, grace: int = STOP_GRACE) -> None:
        """End a running job: its service is retired, and swarm stops the task (SIGTERM, then SIGKILL after the
        grace period the job was started with: a swarm task's grace is fixed in its spec, so `grace` only bounds
        how long this waits beyond it). Swarm deletes the stopped task with its logs; the job stays listed."""
        if job.running:
            self._stop_service(job.ref, grace)

    def _stop_service(self, service_id: str, grace: int) -> None:
        bound = time.monotonic() + max(grace, self._grace(service_id)) + 15
        refs = self._retire(service_id)
        while time.monotonic() < bound and not self._snapshot(service_id)[0].ended:
            time.sleep(POLL / 2)
        self._release(refs)

    def _grace(self, service_id: str) -> int:
        import docker.errors

        try:
            container = self.api.inspect_service(service_id)["Spec"]["TaskTemplate"]["ContainerSpec"]
        except docker.errors.NotFound:
            return 0
        return int(container.get("StopGracePeriod", STOP_GRACE * 10**9)) // 10**9

    def remove(self, job: jobmod.Job, force: bool = False) -> None:
        if job.running and not force:
            raise Conflict(f"job {job.id} is {job.status}; stop it first or pass --force")
        self._remove_service(job.ref)

    def inspect(self, job: jobmod.Job) -> dict[str, Any]:
        tasks = self.api.tasks(filters={"service": job.ref})
        latest = _latest(tasks)
        status = latest["Status"] if latest else {}
        return {
            **job.to_dict(),
            "service": job.ref,
            "task": latest["ID"] if latest else None,
            "node": latest.get("NodeID") if latest else None,
            "task_state": status.get("State"),
            "task_error": status.get("Err"),
            "updated_at": status.get("Timestamp"),
            "restarts": max(0, len(tasks) - 1),
            "deadline": job.deadline,
            "spec": json.loads(job.labels.get(jobmod.LABEL_SPEC, "{}") or "{}"),
        }

    def sweep(self, jobs=None) -> bool:
        """Housekeeping on every run: expired life-spans are stopped, ended `--rm` jobs removed, ended jobs retired
        (their secrets released), and launch's swarm objects that no service names any more removed. `jobs` is
        not used (this needs the services and their tasks); True: a listing taken before may be out of date."""
        now = time.time()
        services = self._services()
        tasks = self._tasks_by_service(services)
        referenced: set[str] = set()
        for service in services:
            job = self._job(service, tasks[service["ID"]])
            try:
                if job.running and job.deadline is not None and job.deadline <= now:
                    self.stop(job)
                elif job.running:
                    referenced.update(object_id for _, object_id in _object_refs(service["Spec"]))
                elif job.labels.get(jobmod.LABEL_RM) == "1":
                    self._remove_service(job.ref)
                elif _object_refs(service["Spec"]):
                    self._release(self._retire(job.ref))
            except Exception:
                continue
        orphans = [(False, s["ID"]) for s in self.api.secrets(filters={"label": LABEL_KIND})]
        orphans += [(True, c["ID"]) for c in self.api.configs(filters={"label": LABEL_KIND})]
        self._release([(is_config, oid) for is_config, oid in orphans if oid not in referenced])
        for probe in self.api.containers(all=True, filters={"label": LABEL_PROBE}):
            if probe.get("Created", now) < now - PROBE_MAX_AGE:
                self.local.remove_quietly(probe["Id"])
        return True


class _Watch:
    """Looks at a foreground job's tasks: says when it has ended, tells the user once why it waits (no node fits,
    an image cannot be pulled...), and stops the job when its life span is over."""

    def __init__(self, backend: SwarmBackend, service_id: str, deadline: float | None):
        self.backend, self.service_id, self.deadline = backend, service_id, deadline
        self.state = JobState("pending")
        self.said: set[str] = set()

    def ended(self) -> bool:
        self.state, latest = self.backend._snapshot(self.service_id)
        if self.state.ended:
            return True
        err = (latest or {}).get("Status", {}).get("Err") or ""
        if err and not err.startswith(_RAN) and err not in self.said:
            self.said.add(err)
            sys.stderr.write(f"launch: swarm: {err}\n")
        if self.deadline is not None and time.time() >= self.deadline:
            sys.stderr.write("launch: the job's life span is over; stopping it\n")
            self.deadline = None
            self.backend._retire(self.service_id)  # swarm stops the task; following goes on until it has
        return False


def _pour(frames: Iterator[Frame], into: queue.Queue) -> None:
    """The reader thread of a followed log stream: frames into the queue, then _END (also on a read error)."""
    try:
        for frame in frames:
            into.put(frame)
    except Exception:
        pass
    finally:
        into.put(_END)
