"""The Docker runtime: the only module (with runtime/swarm.py) that imports `docker`.

It carries a resolved `Plan` out on the local engine:

1. make sure the image is present (pull only when it is missing);
2. create the container (not started), with every secret file bind-mounted read-only, one file per mount, from a
   private folder on a tmpfs (`launcher.runtime.secretfs`);
3. learn the uid:gid the container runs as (numeric `user:`, or the name looked up in the image's /etc/passwd),
   then write the secret files owned by it, mode 0400 by default;
4. start it, and unlink the host copies at once (a file bind mount pins its inode, so the container keeps its view);
5. in the foreground, stream its stdout and stderr through the masker, wait, and exit with its exit code; Ctrl-C or
   SIGTERM stops it with a grace period, cleans up and exits 130 / 143.

Env secrets are *sealed* by default: their values go into a file in the same private folder, and a small shim
(runtime/shim.sh, run by the image's /bin/sh) loads them and `exec`s the job's own entrypoint and command. The
container's config, `docker inspect` and /var/lib/docker hold no value. `--plain-env` opts into Docker's own env
(the values are then visible in `docker inspect`), for images without a shell.

`container_args()` is the pure step that turns a plan into API arguments (tested without an engine).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import jobs as jobmod
from launcher.errors import Conflict, EngineError, ExitCode, LaunchError, UsageError
from launcher.runtime import secretfs

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

SHIM_DIR = "/.launch"
SHIM_PATH = f"{SHIM_DIR}/shim"
ENV_PATH = f"{SHIM_DIR}/env"
_GO_MODE_SYMLINK = 1 << 27  # os.ModeSymlink in the engine's stat header
STOP_GRACE = 10  # seconds between SIGTERM and SIGKILL, as `docker stop`


class Terminated(BaseException):
    """Raised in the main thread when the launcher receives SIGTERM."""


@dataclass(frozen=True)
class RunOptions:
    detach: bool = False
    remove: bool = False
    life_span: int | None = None  # seconds
    plain_env: bool = False  # opt-in: env secrets through Docker's own env (visible in `docker inspect`)
    mask: bool = True
    stop_grace: int = STOP_GRACE


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    workdir: str
    id: str = ""

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ImageConfig:
        config = data.get("Config") or {}
        return cls(
            tuple(config.get("Entrypoint") or ()),
            tuple(config.get("Cmd") or ()),
            config.get("User") or "",
            config.get("WorkingDir") or "",
            data.get("Id") or "",
        )


def plan_labels(plan: Plan, job_id: str, options: RunOptions, backend: str) -> tuple[dict[str, str], float | None]:
    """The labels that record a job in the engine (names, versions, the redacted plan), and its deadline."""
    from launcher.plan import redacted

    deadline = time.time() + options.life_span if options.life_span else None
    labels = jobmod.job_labels(
        job_id,
        plan.spec.name,
        dict(plan.versions),
        redacted(plan),
        deadline=deadline,
        remove=options.remove,
        backend=backend,
        user_labels=plan.spec.labels,
    )
    return labels, deadline


def job_argv(plan: Plan, image: ImageConfig) -> list[str]:
    """The argv Docker would run: entrypoint + command, with Docker's rule that a new entrypoint drops the CMD."""
    spec = plan.spec
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else list(image.entrypoint)
    if spec.command is not None:
        command = list(spec.command)
    else:
        command = [] if spec.entrypoint is not None else list(image.cmd)
    return entrypoint + command


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def env_file_bytes(pairs: tuple[tuple[str, str], ...]) -> bytes:
    """The sealed env file the shim sources: `export NAME='value'` lines (names are validated identifiers)."""
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in pairs).encode("utf-8")


def _secret_file_name(index: int) -> str:
    return f"f{index}"


def container_args(
    plan: Plan,
    job_id: str,
    *,
    image: ImageConfig,
    secret_dir: str | None,
    labels: dict[str, str],
    sealed: bool,
    options: RunOptions,
) -> dict[str, Any]:
    """Pure: the keyword arguments for `create_container` and `create_host_config` (no values in argv)."""
    spec = plan.spec
    binds: list[str] = []
    for index, (secret_file, _value) in enumerate(plan.files):
        assert secret_dir is not None
        binds.append(f"{secret_dir}/{_secret_file_name(index)}:{secret_file.target}:ro")
    for bind in spec.binds:
        binds.append(f"{bind.source}:{bind.target}:{'ro' if bind.read_only else 'rw'}")
    env = [f"{name}={value}" for name, value in plan.env]
    entrypoint: list[str] | None = list(spec.entrypoint) if spec.entrypoint is not None else None
    command: list[str] | None = list(spec.command) if spec.command is not None else None
    if plan.secret_env:
        if sealed:
            assert secret_dir is not None
            binds.append(f"{secret_dir}/shim:{SHIM_PATH}:ro")
            binds.append(f"{secret_dir}/env:{ENV_PATH}:ro")
            entrypoint = ["/bin/sh", SHIM_PATH]
            command = job_argv(plan, image)
        else:
            env += [f"{name}={value}" for name, value in plan.secret_env]
    host_config: dict[str, Any] = {"binds": binds}
    if spec.ports:
        host_config["port_bindings"] = {
            f"{p.container}/{p.protocol}": (p.host_ip, p.host if p.host is not None else p.container)
            for p in spec.ports
        }
    if spec.restart.policy != "no":
        host_config["restart_policy"] = {"Name": spec.restart.policy, "MaximumRetryCount": spec.restart.max_retries}
    if spec.resources.cpus:
        host_config["nano_cpus"] = int(spec.resources.cpus * 1e9)
    if spec.resources.memory:
        host_config["mem_limit"] = spec.resources.memory
    if spec.resources.gpus:
        host_config["device_requests"] = [
            {"Driver": "", "Count": spec.resources.gpus, "Capabilities": [["gpu"]]},
        ]
    if spec.network:
        host_config["network_mode"] = spec.network
    if options.remove:
        # the engine removes the job when it ends, as `docker run --rm`: even if the launcher is killed meanwhile
        host_config["auto_remove"] = True
    if options.remove and not options.detach:
        # a foreground --rm job's output reaches the user through attach; the engine need not keep a copy on disk
        # (where anything the job printed, a value included, would sit unmasked until the container is removed)
        host_config["log_config"] = {"Type": "none", "Config": {}}
    create: dict[str, Any] = {
        "image": spec.image,
        "command": command,
        "entrypoint": entrypoint,
        "environment": env,
        "labels": labels,
        "name": jobmod.container_name(job_id, spec.name),
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    if spec.workdir:
        create["working_dir"] = spec.workdir
    if spec.user:
        create["user"] = spec.user
    if spec.ports:
        create["ports"] = [(p.container, p.protocol) for p in spec.ports]
    return {"create": create, "host_config": host_config}


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


def is_remote_engine() -> bool:
    """True when DOCKER_HOST names another machine (a bind mount would name a path over there)."""
    host = os.environ.get("DOCKER_HOST", "")
    return bool(host) and not host.startswith(("unix://", "npipe://"))


def preflight(plan: Plan, options: RunOptions) -> None:
    """Checks that need no engine, run before connecting: a remote engine cannot bind-mount our tmpfs files."""
    sealed = bool(plan.secret_env) and not options.plain_env
    if (plan.files or sealed) and is_remote_engine():
        raise UsageError(
            "secret files and sealed env need the engine on this machine, but DOCKER_HOST names another one "
            "(a bind mount would name a path over there); use --backend swarm, or --plain-env for env secrets"
        )


# Character-set detectors `requests` looks for at import and uses only to guess the encoding of a text body that
# declares none (`Response.apparent_encoding`); without one it assumes UTF-8.
_DETECTORS = ("charset_normalizer", "chardet")


def import_docker():
    """`import docker`, without the character-set detector `requests` would load with it.

    The engine's API is JSON, which needs no guessing, and charset_normalizer (a compiled module) costs 35-50 ms of
    every command that reaches the engine, about a twentieth of `launch run`. A `None` in sys.modules makes an
    import fail (Python's documented way to hide a module), so requests takes its no-detector path; the entries
    are removed again at once, so anything imported later can still load them. Only when this process has not
    loaded requests or a detector already; if a requests release ever needs one, the import is retried without
    hiding anything."""
    hide = not any(name in sys.modules for name in ("requests", *_DETECTORS))
    if hide:
        import warnings

        sys.modules.update(dict.fromkeys(_DETECTORS))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
                import docker

            return docker
        except ImportError:  # a requests that insists: forget the half-done import and do it plainly
            for name in [m for m in sys.modules if m.split(".")[0] in ("docker", "requests")]:
                del sys.modules[name]
        finally:
            for name in _DETECTORS:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
    import docker

    return docker


def connect():
    """A docker client, or one clear EngineError saying what to do."""
    try:
        docker = import_docker()
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineError("the `docker` Python package is missing: pip install docker") from exc
    try:
        client = docker.from_env(timeout=120)  # asks the engine for its API version: fails when it is not there
    except Exception as exc:  # docker raises several types here; all mean "no engine"
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineError(
            f"cannot reach the Docker engine at {where} ({type(exc).__name__}); start it "
            "(`sudo systemctl start docker`, or `sudo dockerd &`) or point DOCKER_HOST at a running engine"
        ) from None
    return client


def is_swarm_manager(client) -> bool:
    try:
        return bool((client.info().get("Swarm") or {}).get("ControlAvailable"))
    except Exception:
        return False


def api_error_text(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


class DockerBackend:
    name = "docker"

    def __init__(self, client=None):
        self.client = client or connect()
        self.api = self.client.api

    # --- images -------------------------------------------------------------------------------------------------

    def image_config(self, image: str, *, pull: bool = True, progress: bool = False) -> ImageConfig:
        import docker.errors

        try:
            return ImageConfig.from_inspect(self.api.inspect_image(image))
        except docker.errors.ImageNotFound:
            if not pull:
                raise EngineError(
                    f"image {image!r} is not present locally (it would be pulled by `launch run`)"
                ) from None
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot inspect image {image!r}: {api_error_text(exc)}") from None
        self._pull(image, progress)
        try:
            return ImageConfig.from_inspect(self.api.inspect_image(image))
        except docker.errors.APIError as exc:  # pragma: no cover - pulled yet missing
            raise EngineError(f"image {image!r} is still missing after a pull: {api_error_text(exc)}") from None

    def _pull(self, image: str, progress: bool) -> None:
        import docker.errors

        repo, tag = _split_image(image)
        if progress:
            sys.stderr.write(f"launch: image {image} is not present locally; pulling it\n")
        try:
            for event in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise EngineError(f"cannot pull image {image!r}: {event['error']}")
                if progress and event.get("status"):
                    line = event["status"] + (f" {event['progress']}" if event.get("progress") else "")
                    sys.stderr.write(f"\r\x1b[2K{event.get('id', '')} {line}"[:200])
                    sys.stderr.flush()
        except docker.errors.APIError as exc:
            raise EngineError(
                f"image {image!r} is not present locally and cannot be pulled ({api_error_text(exc)}); "
                "build it (`docker build -t ...`) or check its name"
            ) from None
        finally:
            if progress:
                sys.stderr.write("\r\x1b[2K")
        sys.stderr.write(f"launch: pulled {image}\n")

    # --- running ------------------------------------------------------------------------------------------------

    def run(self, plan: Plan, options: RunOptions, masker=None, on_started: Callable[[str], None] | None = None) -> int:
        """Run a plan. Detached: returns 0 once started (the id went to `on_started`). Foreground: the job's code."""
        spec = plan.spec
        job_id = jobmod.new_id()
        image = self.image_config(spec.image, progress=sys.stderr.isatty())
        preflight(plan, options)
        sealed = bool(plan.secret_env) and not options.plain_env
        needs_dir = bool(plan.files) or sealed
        if sealed and not job_argv(plan, image):
            raise UsageError(f"image {spec.image!r} has no entrypoint or command, and none was given")
        labels, deadline = plan_labels(plan, job_id, options, self.name)
        if any(secretfs.unlocked(path) for _job, path in secretfs.leftovers()):
            self.sweep()  # only when a launcher that is gone left a folder: keeps `run` lean
        secret_dir = secretfs.SecretDir.create(job_id) if needs_dir else None
        container_id: str | None = None
        removed = None  # a foreground --rm job's wait, registered before start (closed whatever happens)
        started = False
        restore = install_sigterm()
        try:
            args = container_args(
                plan,
                job_id,
                image=image,
                secret_dir=secret_dir.path if secret_dir else None,
                labels=labels,
                sealed=sealed,
                options=options,
            )
            if secret_dir is not None:
                # the files must exist before the container is created (the engine would make a missing bind
                # source a directory); they belong to us, mode 0400, until we know the container's user
                self._write_secrets(secret_dir, plan, sealed)
            container_id = self._create(args, spec.name)
            if secret_dir is not None:
                secret_dir.chown_all(*self._container_user(container_id, spec.user or image.user, image.id))
            if deadline is not None:
                from launcher.runtime import reaper

                reaper.spawn(self.name, job_id, deadline)
            # attach before start, as `docker run` does, so no early output is missed (and none needs replaying
            # from the log driver, which a foreground --rm job does not use at all)
            streams = None
            if not options.detach:
                streams = self.api.attach(container_id, stdout=True, stderr=True, stream=True, logs=False, demux=True)
                if options.remove:
                    removed = self._wait_removed(container_id)
            self._start(container_id, spec.image if sealed else None)
            started = True
            if on_started:
                on_started(job_id)
            if secret_dir is not None and spec.restart.policy == "no":
                secret_dir.remove()  # the container holds the inodes it mounted
                secret_dir = None
            if options.detach:
                return 0
            return self._foreground(container_id, streams, options, masker, removed)
        except (KeyboardInterrupt, Terminated) as exc:
            code = ExitCode.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ExitCode.TERMINATED
            if container_id is not None:
                self._stop_quietly(container_id, options.stop_grace, remove=options.remove or not started)
            raise LaunchError("interrupted: the job was stopped" if started else "interrupted", code) from None
        except BaseException:
            if container_id is not None and not started:
                self.remove_quietly(container_id)
            raise
        finally:
            restore()
            if removed is not None:
                removed.close()
            if secret_dir is not None and (not started or not options.detach):
                secret_dir.remove()
            if secret_dir is not None:
                secret_dir.release()

    def _create(self, args: dict[str, Any], name: str | None) -> str:
        import docker.errors

        try:
            host_config = self.api.create_host_config(**args["host_config"])
            return self.api.create_container(host_config=host_config, **args["create"])["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise Conflict(
                    f"a container named {args['create']['name']!r} exists already; pick another --name"
                ) from None
            raise EngineError(f"the engine refused the job: {api_error_text(exc)}") from None

    def _start(self, container_id: str, shim_image: str | None) -> None:
        """Start the container. With the shim, an image without /bin/sh fails here, before anything ran: that
        failure is the check (it costs nothing when the shell is there, unlike reading the image's files)."""
        import docker.errors

        try:
            self.api.start(container_id)
        except docker.errors.APIError as exc:
            self.remove_quietly(container_id)
            text = api_error_text(exc)
            if shim_image is not None and "/bin/sh" in text and ("no such file" in text or "not found" in text):
                raise UsageError(
                    f"image {shim_image!r} has no /bin/sh, so the sealed-env shim cannot run in it; deliver "
                    "these secrets as files (`VAR_FILE: secret-file:KEY` or a `secret:KEY:/path` volume), or "
                    "pass --plain-env to use Docker's env (the values are then visible in `docker inspect`)"
                ) from None
            raise EngineError(f"the engine could not start the job: {text}") from None

    def _container_user(self, container_id: str, user: str, image_id: str) -> tuple[int, int]:
        """uid:gid the container runs as. Numeric users need no lookup; names are looked up in the image's
        /etc/passwd once per image id (an image is immutable, so the answer is cached in the store folder)."""
        name, _, group = user.partition(":")
        if not user or (name.isdigit() and group.isdigit()):
            return resolve_user(user, lambda _path: None)
        from launcher import paths

        cache = _UserCache(paths.home() / "image-users.json")
        key = f"{image_id}|{user}"
        cached = cache.get(key)
        if cached is not None:
            return cached
        resolved = resolve_user(user, lambda p: self.read_file(container_id, p))
        cache.put(key, resolved)
        return resolved

    def read_file(self, container_id: str, path: str) -> str | None:
        """A file of the (created, not started) container's filesystem, following symlinks; None when missing."""
        import docker.errors

        for _ in range(8):  # a chain of symlinks, bounded
            try:
                stream, stat = self.api.get_archive(container_id, path)
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

    def _write_secrets(self, secret_dir: secretfs.SecretDir, plan: Plan, sealed: bool) -> None:
        for index, (secret_file, value) in enumerate(plan.files):
            secret_dir.write(_secret_file_name(index), value, secret_file.mode)
        if sealed:
            secret_dir.write("env", env_file_bytes(plan.secret_env), 0o400)
            secret_dir.write("shim", shim_bytes(), 0o444)

    def _wait_removed(self, container_id: str):
        """Ask the engine, before the job starts, to answer once the job has ended and been removed: what
        `docker run --rm` does. The engine sends the answer's headers as soon as it has registered the wait, and
        `post(stream=True)` returns on them, so no end can be missed; the body (the exit code) is read by
        `_exit_code` after the job ended, with no request left to make then."""
        url = f"{self.api.base_url}/v{self.api.api_version}/containers/{container_id}/wait"
        try:
            response = self.api.post(url, params={"condition": "removed"}, stream=True, timeout=None)
            response.raise_for_status()
        except Exception as exc:
            raise EngineError(f"the engine cannot wait for the job: {type(exc).__name__}") from None
        return response

    @staticmethod
    def _exit_code(response) -> int:
        """The exit code in a wait's answer (1 when the engine reports an error instead)."""
        try:
            return int(response.json().get("StatusCode", 1))
        except (ValueError, TypeError, AttributeError):
            return 1
        finally:
            response.close()

    def _foreground(self, container_id: str, streams, options: RunOptions, masker, removed=None) -> int:
        """Stream the job's output until it ends. The main thread only waits, so that Ctrl-C or SIGTERM can stop
        the job and the job's last words (what it prints while stopping) still reach the user."""
        failure: list[BaseException] = []

        def stream() -> None:
            try:
                pump(streams, masker if options.mask else None)
            except BaseException as exc:
                failure.append(exc)

        pumper = threading.Thread(target=stream, name="launch-output", daemon=True)
        pumper.start()
        interrupted: BaseException | None = None
        try:
            pumper.join()
        except (KeyboardInterrupt, Terminated) as exc:
            interrupted = exc
            self._stop(container_id, options.stop_grace)
            pumper.join(timeout=10)
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0]
        if removed is not None:  # --rm: the engine removed the job, then answered the wait made before start
            code = self._exit_code(removed)
        else:
            code = int(self.api.wait(container_id).get("StatusCode", 1))
        if interrupted is not None:
            code = ExitCode.INTERRUPTED if isinstance(interrupted, KeyboardInterrupt) else ExitCode.TERMINATED
            raise LaunchError("interrupted: the job was stopped", code)
        return code

    def _stop(self, container_id: str, grace: int) -> None:
        """Stop with a grace period; a second Ctrl-C or SIGTERM while waiting kills the job at once."""
        sys.stderr.write(f"launch: stopping the job (up to {grace}s; interrupt again to kill it)\n")
        sys.stderr.flush()
        try:
            self.api.stop(container_id, timeout=grace)
        except (KeyboardInterrupt, Terminated):
            self.api.kill(container_id)

    def _stop_quietly(self, container_id: str, grace: int, remove: bool) -> None:
        try:
            self._stop(container_id, grace)
        except Exception:
            pass
        if remove:
            self.remove_quietly(container_id)

    def remove_quietly(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True)
        except Exception:
            pass

    # --- jobs ---------------------------------------------------------------------------------------------------

    def jobs(self, all: bool = True) -> list[jobmod.Job]:
        containers = self.api.containers(all=all, filters={"label": jobmod.LABEL_JOB})
        result = []
        for c in containers:
            labels = c.get("Labels") or {}
            if "com.docker.swarm.service.id" in labels:
                continue  # a swarm task's container: that job is the swarm backend's
            state = c.get("State", "")
            exit_code = None
            status_text = c.get("Status", "")
            if state == "exited" and "(" in status_text:
                try:
                    exit_code = int(status_text.split("(", 1)[1].split(")", 1)[0])
                except ValueError:
                    exit_code = None
            deadline = labels.get(jobmod.LABEL_DEADLINE)
            result.append(
                jobmod.Job(
                    id=labels[jobmod.LABEL_JOB],
                    name=labels.get(jobmod.LABEL_NAME),
                    image=c.get("Image", ""),
                    status=state,
                    created=float(c.get("Created", 0)),
                    exit_code=exit_code,
                    secrets=jobmod.secrets_from_labels(labels),
                    ref=c["Id"],
                    deadline=float(deadline) if deadline else None,
                    labels=labels,
                )
            )
        result.sort(key=lambda j: j.created, reverse=True)
        return result

    def find(self, ref: str) -> jobmod.Job:
        return jobmod.match(self.jobs(all=True), ref)

    def logs(
        self, job: jobmod.Job, follow: bool = False, tail: int | None = None
    ) -> Iterator[tuple[bytes | None, bytes | None]]:
        params = {"stdout": 1, "stderr": 1, "follow": 1 if follow else 0, "tail": "all" if tail is None else tail}
        url = self.api._url("/containers/{0}/logs", job.ref)
        response = self.api._get(url, params=params, stream=True)
        self.api._raise_for_status(response)
        return demux_frames(response.raw)

    def stop(self, job: jobmod.Job, grace: int = STOP_GRACE) -> None:
        self.api.stop(job.ref, timeout=grace)

    def remove(self, job: jobmod.Job, force: bool = False) -> None:
        import docker.errors

        if job.running and not force:
            raise Conflict(f"job {job.id} is {job.status}; stop it first or pass --force")
        try:
            self.api.remove_container(job.ref, force=force)
        except docker.errors.NotFound:
            pass

    def inspect(self, job: jobmod.Job) -> dict[str, Any]:
        data = self.api.inspect_container(job.ref)
        state = data.get("State") or {}
        spec = json.loads(job.labels.get(jobmod.LABEL_SPEC, "{}") or "{}")
        return {
            **job.to_dict(),
            "container": data.get("Id"),
            "started_at": state.get("StartedAt"),
            "finished_at": state.get("FinishedAt"),
            "restarts": data.get("RestartCount", 0),
            "deadline": job.deadline,
            "spec": spec,
        }

    def sweep(self) -> None:
        """Housekeeping on every run: expired life-spans are stopped, secret folders of ended jobs removed."""
        now = time.time()
        live: set[str] = set()
        for job in self.jobs(all=True):
            if job.running and job.deadline is not None and job.deadline <= now:
                try:
                    self.api.stop(job.ref, timeout=STOP_GRACE)
                except Exception:
                    pass
                continue
            if job.running:
                live.add(job.id)
        secretfs.sweep(live)


def demux_frames(raw) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(stdout, stderr) pairs from the engine's multiplexed stream format (8-byte header: stream id, length).

    docker-py can demultiplex a hijacked socket, but not a plain (chunked) HTTP body such as /logs, where reading
    the socket directly would wait forever on a keep-alive connection.
    """
    import struct

    def read_exactly(n: int) -> bytes:
        """n bytes, or fewer only at the end: one read may stop short at a chunk boundary."""
        parts, missing = [], n
        while missing:
            part = raw.read(missing)
            if not part:
                break
            parts.append(part)
            missing -= len(part)
        return b"".join(parts)

    while True:
        header = read_exactly(8)
        if len(header) < 8:
            return
        stream_id, length = struct.unpack(">BxxxL", header)
        data = read_exactly(length)
        yield (None, data) if stream_id == 2 else (data, None)


class _UserCache:
    """A small JSON map "image id|user" -> [uid, gid]; no secrets in it. Lost or corrupt: simply rebuilt."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict[str, list[int]]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> tuple[int, int] | None:
        value = self._load().get(key)
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return value[0], value[1]
        return None

    def put(self, key: str, value: tuple[int, int]) -> None:
        data = self._load()
        data[key] = list(value)
        if len(data) > 512:  # bounded: drop the oldest entries
            data = dict(list(data.items())[-256:])
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: failing to write it only costs the next run a lookup


def pump(streams, masker) -> None:
    """Copy (stdout, stderr) chunks to our stdout/stderr, masked, flushing as they come (interactive output)."""
    outs = [sys.stdout.buffer, sys.stderr.buffer]
    masks = [masker.stream(), masker.stream()] if masker is not None else [None, None]
    sys.stderr.flush()
    for pair in streams:
        for index, chunk in enumerate(pair):
            if not chunk:
                continue
            if masks[index] is not None:
                chunk = masks[index].feed(chunk)
            if chunk:
                outs[index].write(chunk)
                outs[index].flush()
    for index, mask in enumerate(masks):
        if mask is not None:
            rest = mask.flush()
            if rest:
                outs[index].write(rest)
                outs[index].flush()


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    repo, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return image, "latest"


def shim_bytes() -> bytes:
    return (Path(__file__).with_name("shim.sh")).read_bytes()


def install_sigterm() -> Callable[[], None]:
    """SIGTERM raises Terminated in the main thread (so the job is stopped and cleaned up); returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
