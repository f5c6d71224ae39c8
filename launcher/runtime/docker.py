"""The Docker backend: a job is a container on the engine `DOCKER_HOST` names (or the local socket).

Secrets travel through the engine's API only (launcher/runtime/bundle.py), so the same path serves root, a user in
the `docker` group, rootless Docker, Docker Desktop and a remote engine; no file of ours is written anywhere.

`run` is prepare -> start -> after start:

- prepare: the image's config (pulled only when missing), every check that needs no container, and the pure step
  `container_args()` (tested without an engine): tmpfs mounts for the secrets, the shim as entrypoint, stdin open
  once. Then create the container, check that no secret folder would hide files of the image, and call
  `hooks.before_start` (the usage record): a failure there removes the container, and nothing has run.
- start: attach (stdin for the bundle; stdout and stderr too in the foreground), start, write the bundle, close
  stdin (or hand it on with `--interactive`).
- after start: detached, wait until the shim has exec'd the job's command (or failed: exit 126 and one line, the
  container removed); foreground, stream the output masked and return the job's exit code. Any failure or
  interrupt after the start stops the job (and removes it when it is --rm): it is never left unattended.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import jobs as jobmod
from launcher.errors import Conflict, EngineError, ExitCode, LaunchError, UsageError
from launcher.runtime import bundle as bundles
from launcher.runtime.common import (
    LABEL_LAUNCHER,
    STOP_GRACE,
    ImageConfig,
    RunHooks,
    RunOptions,
    Terminated,
    api_error_text,
    connect,
    demux_frames,
    engine_errors,
    epoch,
    install_sigterm,
    job_argv,
    plan_labels,
    process_alive,
    pump,
)

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

CONFIRM_TIMEOUT = 60.0  # seconds a detached run waits for the shim to take its secrets
LABEL_WARDEN = "launch.warden"  # the same as launcher.runtime.warden.LABEL (not imported: it is rarely needed)
ABANDONED_AFTER = 120.0  # a job still "created" this long after its creation was left by a launcher that died


def container_args(
    plan: Plan,
    job_id: str,
    *,
    image: ImageConfig,
    labels: dict[str, str],
    options: RunOptions,
) -> dict[str, Any]:
    """Pure: the container's config and host config. No value is in either: secrets go through the bundle."""
    spec = plan.spec
    delivered = delivers(plan, options)
    stdin = delivered or wants_stdin(options)
    env = [f"{name}={value}" for name, value in plan.env]
    entrypoint: list[str] | None = list(spec.entrypoint) if spec.entrypoint is not None else None
    command: list[str] | None = list(spec.command) if spec.command is not None else None
    if delivered:
        entrypoint = bundles.shim_entrypoint(job_argv(plan, image))
        command = []
    else:  # --plain-env, or no secret at all
        env += [f"{name}={value}" for name, value in plan.secret_env]
    host: dict[str, Any] = {"Binds": [f"{b.source}:{b.target}:{'ro' if b.read_only else 'rw'}" for b in spec.binds]}
    if delivered:
        host["Tmpfs"] = bundles.tmpfs_mounts(plan)
    if spec.read_only:
        host["ReadonlyRootfs"] = True
    if spec.ports:
        host["PortBindings"] = {
            f"{p.container}/{p.protocol}": [
                {"HostIp": p.host_ip, "HostPort": str(p.host if p.host is not None else p.container)}
            ]
            for p in spec.ports
        }
    if spec.restart.policy != "no":
        host["RestartPolicy"] = {"Name": spec.restart.policy, "MaximumRetryCount": spec.restart.max_retries}
    if spec.resources.cpus:
        host["NanoCpus"] = int(spec.resources.cpus * 1e9)
    if spec.resources.memory:
        host["Memory"] = spec.resources.memory
    if spec.resources.gpus:
        host["DeviceRequests"] = [{"Driver": "", "Count": spec.resources.gpus, "Capabilities": [["gpu"]]}]
    if spec.network:
        host["NetworkMode"] = spec.network
    if options.remove:
        # the engine removes the job when it ends, as `docker run --rm`: even if the launcher is killed meanwhile
        host["AutoRemove"] = True
    if options.remove and not options.detach:
        # a foreground --rm job's output reaches the user through attach; the engine need not keep a copy on disk
        host["LogConfig"] = {"Type": "none", "Config": {}}
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": env,
        "Labels": labels,
        "AttachStdin": stdin,
        "AttachStdout": not options.detach,
        "AttachStderr": not options.detach,
        "OpenStdin": stdin,
        "StdinOnce": stdin,  # the engine closes the job's stdin when the launcher is done with it
        "Tty": False,
        "HostConfig": host,
    }
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if command is not None:
        config["Cmd"] = command
    if spec.workdir:
        config["WorkingDir"] = spec.workdir
    if spec.user:
        config["User"] = spec.user
    if spec.ports:
        config["ExposedPorts"] = {f"{p.container}/{p.protocol}": {} for p in spec.ports}
    return {"config": config, "name": jobmod.container_name(job_id, spec.name)}


def delivers(plan: Plan, options: RunOptions) -> bool:
    """Whether the job's secrets travel in a bundle (any secret file, or env secrets without --plain-env)."""
    return bool(plan.files) or (bool(plan.secret_env) and not options.plain_env)


def wants_stdin(options: RunOptions) -> bool:
    """`-i` in the foreground: the launcher's stdin goes on to the job."""
    return options.interactive and not options.detach


def preflight(plan: Plan, options: RunOptions) -> None:
    """Checks that need no engine: where secret files may go."""
    if delivers(plan, options):
        bundles.file_folders(plan)


class DockerBackend:
    name = "docker"

    def __init__(self, client=None):
        self.client = client or connect()
        self.api = self.client.api

    # --- images -------------------------------------------------------------------------------------------------

    def image_config(
        self, image: str, *, pull: bool = True, progress: bool = False, report: Callable[[str], None] | None = None
    ) -> ImageConfig:
        """The image's config, pulled first when it is missing (progress on a terminal with `progress`, or line by
        line to `report`)."""
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
        self._pull(image, report or (_terminal_line if progress else None))
        try:
            return ImageConfig.from_inspect(self.api.inspect_image(image))
        except docker.errors.APIError as exc:  # pragma: no cover - pulled yet missing
            raise EngineError(f"image {image!r} is still missing after a pull: {api_error_text(exc)}") from None

    def _pull(self, image: str, report: Callable[[str], None] | None) -> None:
        import docker.errors

        repo, tag = _split_image(image)
        if report is _terminal_line:
            sys.stderr.write(f"launch: image {image} is not present locally; pulling it\n")
        elif report is not None:
            report(f"pulling {image}")
        try:
            for event in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise EngineError(f"cannot pull image {image!r}: {' '.join(str(event['error']).split())}")
                if report is not None and event.get("status"):
                    layer = f"{event['id']}: " if event.get("id") else ""
                    report(layer + event["status"] + (f" {event['progress']}" if event.get("progress") else ""))
        except docker.errors.APIError as exc:
            raise EngineError(
                f"image {image!r} is not present locally and cannot be pulled ({api_error_text(exc)}); "
                "build it (`docker build -t ...`) or check its name"
            ) from None
        finally:
            if report is _terminal_line:
                sys.stderr.write("\r\x1b[2K")
        sys.stderr.write(f"launch: pulled {image}\n")

    # --- running ------------------------------------------------------------------------------------------------

    def run(self, plan: Plan, options: RunOptions, masker=None, hooks: RunHooks | None = None) -> int:
        """Run a plan. Detached: 0 once the job's command runs. Foreground: the job's exit code."""
        hooks = hooks or RunHooks()
        spec = plan.spec
        job_id = jobmod.new_id()
        delivered = delivers(plan, options)
        image = self.image_config(spec.image, progress=sys.stderr.isatty(), report=hooks.progress)
        preflight(plan, options)
        if delivered and not job_argv(plan, image):
            raise UsageError(f"image {spec.image!r} has no entrypoint or command, and none was given")
        labels, deadline = plan_labels(plan, job_id, options, self.name)
        payload = bundles.build(plan) if delivered else None
        if payload is not None and spec.restart.policy != "no":
            from launcher.runtime import warden

            labels[warden.LABEL] = "1"
        self._sweep_abandoned()
        container_id: str | None = None
        sock = None
        waited = None  # an --rm job's wait for its end, registered before start (closed whatever happens)
        started = False
        restore = install_sigterm()
        try:
            container_id = self._create(container_args(plan, job_id, image=image, labels=labels, options=options))
            if delivered:
                self._check_folders(container_id, plan, image)
            hooks.before_start(job_id)
            if deadline is not None or (payload is not None and spec.restart.policy != "no"):
                from launcher.runtime import warden

                warden.spawn(
                    self.name, job_id, container_id, deadline, payload if spec.restart.policy != "no" else None
                )
            # attach before start, as `docker run` does: no early output is missed, and stdin is ready for the bundle
            if delivered or not options.detach:
                sock = self._attach(container_id, stdin=delivered or wants_stdin(options), output=not options.detach)
            if options.remove and not options.detach:
                waited = self._wait(container_id, "removed")  # the job's exit code, once it is gone
            elif options.remove and payload is not None:
                # the shim's exit code, should it fail: the engine removes the job at once, and its code with it
                waited = self._wait(container_id, "next-exit")
            self._start(container_id, spec.image if delivered else None)
            started = True
            if payload is not None:
                self._deliver(sock, payload, forward=wants_stdin(options))
            elif wants_stdin(options):
                _hand_on_stdin(sock)
            if options.detach:
                if payload is not None:
                    self._confirm(container_id, job_id, spec.restart.policy, waited)
                _STARTED[job_id] = container_id
                hooks.started(job_id)
                return 0
            hooks.started(job_id)
            return self._foreground(container_id, sock, options, masker, waited, delivered)
        except (KeyboardInterrupt, Terminated) as exc:
            code = ExitCode.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ExitCode.TERMINATED
            if container_id is not None:
                # a detached job interrupted before its id was given is not left behind either
                unreported = not started or (options.detach and not _confirmed(container_id))
                self._stop_quietly(container_id, options.stop_grace, remove=options.remove or unreported)
            raise LaunchError("interrupted: the job was stopped" if started else "interrupted", code) from None
        except BaseException:
            if container_id is not None and not started:
                self.remove_quietly(container_id)
            elif container_id is not None and not (options.detach and _confirmed(container_id)):
                self._stop_quietly(container_id, options.stop_grace, remove=True)
            raise
        finally:
            restore()
            if waited is not None:
                waited.close()
            if sock is not None:
                _close(sock)

    def _create(self, args: dict[str, Any]) -> str:
        import docker.errors

        try:
            return self.api.create_container_from_config(args["config"], args["name"])["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise Conflict(f"a container named {args['name']!r} exists already; pick another --name") from None
            raise EngineError(f"the engine refused the job: {api_error_text(exc)}") from None

    def _check_folders(self, container_id: str, plan: Plan, image: ImageConfig) -> None:
        """Each secret file's folder becomes a tmpfs of its own, which must be a folder the image does not have:
        over one it has, the engine would hide what is there and keep its owner and mode (0755 root), so a
        non-root job could not take its files. Checked on the created container, whose view of paths is the
        image's; the answer is kept per image id (an image never changes)."""
        from launcher import paths

        cache = _ImageFacts(paths.home() / "image-folders.json")
        for secret_file in plan.spec.secret_files:
            folder = os.path.dirname(os.path.normpath(secret_file.target))
            key = f"{image.id}|{folder}"
            exists = cache.get(key)
            if exists is None:
                exists = self._exists(container_id, folder)
                if image.id:
                    cache.put(key, exists)
            if exists:
                where = f" ({secret_file.origin})" if secret_file.origin else ""
                raise UsageError(
                    f"secret file {secret_file.target!r}{where}: its folder {folder!r} exists in image "
                    f"{plan.spec.image!r}; secret files go on a tmpfs of their own, in a folder the image does not "
                    f"have (e.g. /run/secrets/{os.path.basename(secret_file.target)}, or a new subfolder)"
                )

    def _exists(self, container_id: str, path: str) -> bool:
        """Whether `path` exists in the (created, not started) container's filesystem: the archive's stat."""
        with engine_errors(f"cannot look at {path!r} in the image"):
            head = self.api.head(self.api._url("/containers/{0}/archive", container_id), params={"path": path})
        if head.status_code not in (200, 404):
            raise EngineError(f"cannot look at {path!r} in the image (the engine answered {head.status_code})")
        return head.status_code == 200

    def _attach(self, container_id: str, *, stdin: bool, output: bool):
        """A hijacked connection to the job's stdin and/or its (multiplexed) stdout and stderr."""
        params = {"stream": 1, "stdin": int(stdin), "stdout": int(output), "stderr": int(output)}
        with engine_errors("cannot attach to the job"):
            sock = self.api.attach_socket(container_id, params=params)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(None)
        return sock

    def _deliver(self, sock, payload: bundles.Bundle, *, forward: bool) -> None:
        """Write the bundle to the job's stdin, then close it (the job reads EOF), or hand our stdin on."""
        raw = getattr(sock, "_sock", sock)
        with engine_errors("cannot send the secrets to the job"):
            raw.sendall(payload.data)
            if not forward:
                raw.shutdown(socket.SHUT_WR)
                return
        _hand_on_stdin(sock)

    def _confirm(self, container_id: str, job_id: str, restart: str, exited=None) -> None:
        """Detached: return once the shim has exec'd the job's command; raise (and remove the job) when it could
        not, so that `launch run -d` never reports a job that did not run. `exited`: an --rm job's wait for its
        exit, registered before the start (its answer keeps the exit code the removal takes away)."""
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        pause = 0.001
        local = LocalPid1.of(self.api, container_id)
        while time.monotonic() < deadline:
            state = local.state() if local is not None else None
            if state == "gone" and restart == "no":
                state = "ended"  # PID 1 ended, and nothing restarts it: its exit code says whether the shim failed
            elif state in (None, "gone"):
                local = None  # a restart is a new process: the engine tells
                state = shim_state(self.api, container_id)
            if state == "job":
                _CONFIRMED.add(container_id)
                return
            if state == "ended":
                break
            # only the engine's answer can be a restart (the /proc watch hands a new process back to it)
            if state == "shim" and local is None and self._restarted(container_id):
                _CONFIRMED.add(container_id)  # it ran, ended and was restarted (its warden serves the restarts)
                return
            time.sleep(pause)
            # a look in /proc costs a file read: often; the engine's `top` runs `ps` on the host: seldom
            pause = min(pause * (1.5 if local is not None else 2), 0.05)
        else:
            raise EngineError(f"job {job_id}: its secrets were not taken within {CONFIRM_TIMEOUT:.0f}s; it was removed")
        left = max(1.0, deadline - time.monotonic())
        code = self._exit_code(exited) if exited is not None else self._ended(container_id, left)
        if code == bundles.FAILED:
            line = self._shim_line(container_id)
            self.remove_quietly(container_id)
            reason = line.removeprefix("launch shim: ").removesuffix(" (the job's command was not run)")
            cause = f" ({reason})" if reason else ""
            raise EngineError(f"job {job_id}: its secrets did not arrive whole{cause}; its command was not run")
        _CONFIRMED.add(container_id)  # it ran and ended already: a success of `run -d`

    def _restarted(self, container_id: str) -> bool:
        try:
            return int(self.api.inspect_container(container_id).get("RestartCount") or 0) > 0
        except Exception:
            return False

    def _ended(self, container_id: str, timeout: float) -> int | None:
        """The exit code of a job whose PID 1 ended, once the engine has seen it end (None when it is gone)."""
        try:
            return int(self.api.wait(container_id, timeout=timeout, condition="not-running")["StatusCode"])
        except Exception:  # removed already, or the engine did not answer
            return None

    def _shim_line(self, container_id: str) -> str:
        """The shim's last words (why it did not run the command), if the engine still has them."""
        try:
            text = self.api.logs(container_id, stdout=False, stderr=True, tail=5)
        except Exception:  # removed with the job (--rm)
            return ""
        return next((x for x in text.decode("utf-8", "replace").splitlines() if x.startswith("launch shim: ")), "")

    def _running(self, container_id: str) -> bool:
        try:
            return bool((self.api.inspect_container(container_id).get("State") or {}).get("Running"))
        except Exception:
            return False

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
                    f"image {shim_image!r} has no /bin/sh, so the shim that takes its secrets cannot run in it; "
                    "use an image with a shell, or pass --plain-env for env secrets (the values are then "
                    "visible in `docker inspect`)"
                ) from None
            raise EngineError(f"the engine could not start the job: {text}") from None

    def _wait(self, container_id: str, condition: str):
        """Ask the engine, before the job starts, to answer once the job has ended ("next-exit") or ended and
        been removed ("removed": what `docker run --rm` does). The engine sends the answer's headers as soon as it
        has registered the wait, and `post(stream=True)` returns on them, so no end can be missed; the body (the
        exit code) is read by `_exit_code` after the job ended, with no request left to make then."""
        url = f"{self.api.base_url}/v{self.api.api_version}/containers/{container_id}/wait"
        try:
            response = self.api.post(url, params={"condition": condition}, stream=True, timeout=None)
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

    def _foreground(self, container_id: str, sock, options: RunOptions, masker, removed, delivered: bool) -> int:
        """Stream the job's output until it ends. The main thread only waits, so that Ctrl-C or SIGTERM can stop
        the job and the job's last words (what it prints while stopping) still reach the user."""
        from docker.utils.socket import demux_adaptor, frames_iter

        failure: list[BaseException] = []
        watch = _ShimWatch() if delivered else None

        def frames():
            for stream_id, data in frames_iter(sock, tty=False):
                pair = demux_adaptor(stream_id, data)
                if watch is not None:
                    watch.see(pair)
                yield pair

        def stream() -> None:
            try:
                pump(frames(), masker if options.mask else None)
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
        if failure and not isinstance(failure[0], BrokenPipeError | OSError):
            raise failure[0]
        with engine_errors("cannot learn how the job ended"):
            if removed is not None:  # --rm: the engine removed the job, then answered the wait made before start
                code = self._exit_code(removed)
            else:
                code = int(self.api.wait(container_id).get("StatusCode", 1))
        if interrupted is not None:
            code = ExitCode.INTERRUPTED if isinstance(interrupted, KeyboardInterrupt) else ExitCode.TERMINATED
            raise LaunchError("interrupted: the job was stopped", code)
        if code == bundles.FAILED and watch is not None and watch.failed:
            raise EngineError(
                "the job's secrets did not arrive whole (see the shim's line above); its command was not run"
            )
        return code

    def _stop(self, container_id: str, grace: int, say: bool = True) -> None:
        """Stop with a grace period; a second Ctrl-C or SIGTERM while waiting kills the job at once."""
        if say:
            sys.stderr.write(f"launch: stopping the job (up to {grace}s; interrupt again to kill it)\n")
            sys.stderr.flush()
        try:
            self.api.stop(container_id, timeout=grace)
        except (KeyboardInterrupt, Terminated):
            self.api.kill(container_id)

    def _stop_quietly(self, container_id: str, grace: int, remove: bool) -> None:
        """Stop (saying so only while it runs) and maybe remove; errors ignored: a job on its way out."""
        try:
            self._stop(container_id, grace, say=self._running(container_id))
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

    def jobs(self, all: bool = True, job_id: str | None = None) -> list[jobmod.Job]:
        """This engine's launch jobs (only the one with `job_id`, when given: one filtered look)."""
        label = jobmod.LABEL_JOB if job_id is None else f"{jobmod.LABEL_JOB}={job_id}"
        with engine_errors("cannot list the jobs"):
            containers = self.api.containers(all=all, filters={"label": label})
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
            result.append(_job_of(c["Id"], c.get("Image", ""), state, float(c.get("Created", 0)), exit_code, labels))
        result.sort(key=lambda j: j.created, reverse=True)
        return result

    def find(self, ref: str) -> jobmod.Job:
        return jobmod.match(self.jobs(all=True), ref)

    def get(self, job_id: str) -> jobmod.Job:
        """The job with this full id (one this process just started), without listing every job."""
        return jobmod.match(self.jobs(all=True, job_id=job_id), job_id)

    def inspect_started(self, job_id: str) -> dict[str, Any]:
        """`inspect` of a job this process has just started detached: one look at its container."""
        container_id = _STARTED.pop(job_id, None)  # asked once, right after the start (a server lives long)
        if container_id is None:
            return self.inspect(self.get(job_id))
        with engine_errors(f"cannot inspect job {job_id}"):
            data = self.api.inspect_container(container_id)
        config, state = data.get("Config") or {}, data.get("State") or {}
        status = state.get("Status", "")
        exit_code = state.get("ExitCode") if status == "exited" else None
        job = _job_of(data["Id"], config.get("Image", ""), status, epoch(data["Created"]), exit_code, config["Labels"])
        return self._inspected(job, data)

    def logs(
        self, job: jobmod.Job, follow: bool = False, tail: int | None = None
    ) -> Iterator[tuple[bytes | None, bytes | None]]:
        params = {"stdout": 1, "stderr": 1, "follow": 1 if follow else 0, "tail": "all" if tail is None else tail}
        with engine_errors(f"cannot read the logs of job {job.id}"):
            url = self.api._url("/containers/{0}/logs", job.ref)
            response = self.api._get(url, params=params, stream=True)
            self.api._raise_for_status(response)
        return LogStream(response, demux_frames(response.raw))

    def stop(self, job: jobmod.Job, grace: int = STOP_GRACE) -> None:
        with engine_errors(f"cannot stop job {job.id}"):
            self.api.stop(job.ref, timeout=grace)

    def remove(self, job: jobmod.Job, force: bool = False) -> None:
        import docker.errors

        if job.running and not force:
            raise Conflict(f"job {job.id} is {job.status}; stop it first or pass --force")
        with engine_errors(f"cannot remove job {job.id}"):
            try:
                self.api.remove_container(job.ref, force=force)
            except docker.errors.NotFound:
                pass  # gone already: what was asked for
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "in progress" in api_error_text(exc):
                    return  # the engine is removing it already (--rm)
                raise

    def inspect(self, job: jobmod.Job) -> dict[str, Any]:
        with engine_errors(f"cannot inspect job {job.id}"):
            data = self.api.inspect_container(job.ref)
        return self._inspected(job, data)

    @staticmethod
    def _inspected(job: jobmod.Job, data: dict[str, Any]) -> dict[str, Any]:
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

    def sweep(self, jobs: list[jobmod.Job] | None = None) -> bool:
        """Housekeeping on every ps (and the cheap part on every run): expired life-spans are stopped, restarted
        jobs whose warden is gone are told so, and jobs a launcher left created but never started (it was killed
        between create and start) are removed. `jobs`: this engine's listing, when the caller has one. Returns
        whether it changed anything (a listing taken before is then out of date)."""
        now = time.time()
        changed = False
        for job in self.jobs(all=True) if jobs is None else jobs:
            if job.status == "created":
                if _abandoned(job.labels.get(LABEL_LAUNCHER, ""), job.created):
                    self.remove_quietly(job.ref)
                    changed = True
                continue
            if job.running and job.deadline is not None and job.deadline <= now:
                try:
                    self.api.stop(job.ref, timeout=STOP_GRACE)
                    changed = True
                except Exception:
                    pass
            if job.running and job.labels.get(LABEL_WARDEN) == "1":
                changed = self._orphaned(job) or changed
        return changed

    def _orphaned(self, job: jobmod.Job) -> bool:
        """A job with a restart policy whose warden is gone (a reboot) waits in its shim for secrets no one can
        send: tell the shim so (one line in the job's log, exit 126, its command not run) and stop restarting it."""
        from launcher.runtime import warden

        if warden.alive(job.id):
            return False
        try:
            if shim_state(self.api, job.ref) != "shim":
                return False  # its command runs; a later restart will be seen by a later sweep
            self.api.update_container(job.ref, restart_policy={"Name": "no"})
            sock = self._attach(job.ref, stdin=True, output=False)
            try:
                raw = getattr(sock, "_sock", sock)
                raw.sendall(bundles.GONE)
                raw.shutdown(socket.SHUT_WR)
            finally:
                _close(sock)
            warden.forget(job.id)
            return True
        except Exception:
            return False  # housekeeping: the next sweep tries again

    def _sweep_abandoned(self) -> None:
        """Remove jobs in "created" whose launcher is gone: created on this machine by a process that no longer
        lives, or older than ABANDONED_AFTER. They hold no secret (values only ever travel on stdin). At most once
        every SWEEP_EVERY seconds in one process (each CLI command once; the console's server now and then)."""
        global _swept_at
        if time.monotonic() - _swept_at < SWEEP_EVERY:
            return
        _swept_at = time.monotonic()
        try:
            created = self.api.containers(all=True, filters={"label": jobmod.LABEL_JOB, "status": "created"})
        except Exception:
            return
        for c in created:
            labels = c.get("Labels") or {}
            if _abandoned(labels.get(LABEL_LAUNCHER, ""), float(c.get("Created", 0))):
                self.remove_quietly(c["Id"])


def _job_of(
    container_id: str, image: str, status: str, created: float, exit_code: int | None, labels: dict[str, str]
) -> jobmod.Job:
    """A job from what the engine says of its container (a listing's row or an inspect)."""
    deadline = labels.get(jobmod.LABEL_DEADLINE)
    return jobmod.Job(
        id=labels[jobmod.LABEL_JOB],
        name=labels.get(jobmod.LABEL_NAME),
        image=image,
        status=status,
        created=created,
        exit_code=exit_code,
        secrets=jobmod.secrets_from_labels(labels),
        ref=container_id,
        deadline=float(deadline) if deadline else None,
        labels=labels,
    )


class LogStream:
    """A job's output as (stdout, stderr) pairs, with `close()`: closing the engine's response from any thread ends
    a read that waits for output (a follower whose reader went away must not hold a thread and a connection)."""

    def __init__(self, response, pairs: Iterator[tuple[bytes | None, bytes | None]]):
        self.response = response
        self.pairs = pairs

    def __iter__(self):
        return self

    def __next__(self) -> tuple[bytes | None, bytes | None]:
        try:
            return next(self.pairs)
        except (OSError, ValueError, AttributeError):
            if self.response is None:  # closed meanwhile: the end
                raise StopIteration from None
            raise

    def close(self) -> None:
        response, self.response = self.response, None
        if response is None:
            return
        sock = _response_socket(response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread (a close alone would not)
            except OSError:
                pass
        try:
            response.close()
        except Exception:
            pass


def _response_socket(response):
    """The socket under a streamed `requests` response (http.client's reader over a SocketIO), or None."""
    try:
        return response.raw._fp.fp.raw._sock
    except AttributeError:
        return None


_swept_at = -1e9  # when this process last looked for abandoned jobs (time.monotonic())
SWEEP_EVERY = 30.0
_CONFIRMED: set[str] = set()  # containers whose detached start was confirmed in this process
_STARTED: dict[str, str] = {}  # job id -> container id, of the detached jobs this process started


class LocalPid1:
    """The job's PID 1 as this machine's /proc shows it, where the engine runs here: seeing the shim exec the
    job's command costs a file read, where the engine's `top` runs `ps` on the host (20-50 ms a look).

    Used only once proven to be the container's process: its cgroup names the container (a rootless engine's pids
    are of another pid namespace, a remote engine's of another machine: both fail the proof and are asked
    through the engine). A pid that ends, or whose start time changes (reused), is 'gone': with no restart
    policy, the job ended, and the engine's exit code tells whether it ran; else the engine is asked."""

    def __init__(self, pid: int, started: bytes):
        self.pid = pid
        self.started = started

    @classmethod
    def of(cls, api, container_id: str) -> LocalPid1 | None:
        if not str(getattr(api, "base_url", "")).startswith("http+docker://"):
            return None  # not a unix socket: the engine is not (known to be) on this machine
        try:
            pid = int((api.inspect_container(container_id).get("State") or {}).get("Pid") or 0)
            if pid <= 0:
                return None
            with open(f"/proc/{pid}/cgroup", "rb") as f:
                if container_id.encode() not in f.read():
                    return None
            found = cls(pid, _stat(pid)[1])
        except (OSError, ValueError, TypeError):
            return None
        except Exception:
            return None  # the engine hiccuped: its own answer is used
        return found

    def state(self) -> str:
        """'shim', 'job', or 'gone' once this pid is no longer the job's first process: it ended (a zombie, or
        reaped), or it is another process's now (its start time differs)."""
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            status, started = _stat(self.pid)
        except OSError:
            return "gone"
        if started != self.started or status in (b"Z", b"X"):
            return "gone"
        # an empty command line is a process between two programs (exec under way): not yet the job's
        return "shim" if not args or _not_exec_yet(args) else "job"


def _stat(pid: int) -> tuple[bytes, bytes]:
    """Fields 3 and 22 of /proc/PID/stat: the process's state (R, S, Z...) and its start time, which tells a
    reused pid from the first."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return fields[0], fields[19]


# Asked inside the container when the engine cannot list its processes: PID 1's first line of argv.
_WHO_IS_PID1 = 'IFS= read -r x < /proc/1/cmdline; case "$x" in *": launch-shim 1"*) echo shim;; *) echo job;; esac'


def shim_state(api, container_id: str) -> str:
    """'shim' while the job's first process is still the shim (waiting for or loading its secrets), 'job' once it
    has exec'd the job's command, 'ended' when the job is not running. From the engine's `top`, or, where the
    engine cannot list a container's processes (a rootless engine without cgroups), from PID 1's command line
    read by a process run in the container."""
    import docker.errors

    try:
        rows = api.top(container_id, ps_args="-o pid,args").get("Processes") or []
    except docker.errors.NotFound:
        return "ended"
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # not running
            return "ended"
        return _shim_state_inside(api, container_id)
    except Exception:
        return "shim"  # the connection hiccuped: look again
    args = [row[-1] for row in rows]
    if not args or any(_not_exec_yet(a) for a in args):
        return "shim"
    return "job"


def _not_exec_yet(args: str) -> bool:
    """Whether a process's command line is of a job that has not exec'd its command: runc's init (until the
    engine's start has it exec the shim), or the shim itself, waiting for or loading its secrets."""
    return args.startswith("runc") or bundles.is_shim(args)


def _shim_state_inside(api, container_id: str) -> str:
    import docker.errors

    try:
        exec_id = api.exec_create(container_id, ["/bin/sh", "-c", _WHO_IS_PID1], stdout=True, stderr=False)["Id"]
        answer = api.exec_start(exec_id).strip()
    except docker.errors.APIError as exc:
        return "ended" if exc.status_code in (404, 409) else "shim"
    return "job" if answer == b"job" else "shim"


def _confirmed(container_id: str) -> bool:
    return container_id in _CONFIRMED


def _abandoned(launcher: str, created: float, now: float | None = None) -> bool:
    """Whether a never-started job's launcher (label "BOOT_ID:PID") is gone."""
    now = time.time() if now is None else now
    alive = process_alive(launcher)
    if alive is not None:
        return not alive
    return now - created > ABANDONED_AFTER


class _ShimWatch:
    """Sees the first bytes of the job's stderr: whether the shim failed (its line comes before anything else)."""

    def __init__(self) -> None:
        self.head = b""
        self.done = False
        self.failed = False

    def see(self, pair: tuple[bytes | None, bytes | None]) -> None:
        if self.done:
            return
        out, err = pair
        if out:
            self.done = True  # the job printed: the shim had exec'd it
            return
        if err:
            self.head += err
            if len(self.head) >= len(bundles.MESSAGE_PREFIX) or not bundles.MESSAGE_PREFIX.startswith(self.head):
                self.failed = self.head.startswith(bundles.MESSAGE_PREFIX)
                self.done = True


def _hand_on_stdin(sock) -> None:
    raw = getattr(sock, "_sock", sock)
    threading.Thread(target=_forward_stdin, args=(raw,), name="launch-stdin", daemon=True).start()


def _terminal_line(line: str) -> None:
    """A pull's progress on a terminal: one line, rewritten in place."""
    sys.stderr.write(f"\r\x1b[2K{line}"[:200])
    sys.stderr.flush()


def _forward_stdin(raw) -> None:
    """Copy the launcher's stdin to the job (after its secrets), then close the job's stdin."""
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            raw.sendall(data)
    except OSError:
        pass
    finally:
        try:
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _close(sock) -> None:
    try:
        sock.close()
        raw = getattr(sock, "_sock", None)
        if raw is not None:
            raw.close()
    except OSError:
        pass


class _ImageFacts:
    """A small JSON map "image id|question" -> answer about an (immutable) image; no secrets in it. Lost or
    corrupt: simply rebuilt."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def put(self, key: str, value: Any) -> None:
        data = self._load()
        data[key] = value
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
            pass  # a cache: failing to write it only costs the next run a look


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    repo, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return image, "latest"
