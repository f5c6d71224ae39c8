"""What every backend shares: run options, the image's config, job labels, the job's argv, output pumping, the
engine connection (the Docker SDK, loaded lean), SIGTERM as an exception, and engine errors as our own.

Only modules under launcher/runtime/ import `docker`.
"""

from __future__ import annotations

import calendar
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import jobs as jobmod
from launcher.errors import EngineError, LaunchError

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

STOP_GRACE = 10  # seconds between SIGTERM and SIGKILL, as `docker stop`
LABEL_LAUNCHER = "launch.launcher"  # "BOOT_ID:PID" of the launcher that created the job (to find abandoned ones)


def process_alive(stamp: str) -> bool | None:
    """Whether the process a "BOOT_ID:PID" stamp names still runs: None when the stamp is not of this boot (or not a
    stamp), so the caller decides. A pid of another user's counts as alive."""
    boot, _, pid = stamp.strip().partition(":")
    if not boot or boot != boot_id() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def boot_id() -> str:
    """This machine's boot id (Linux), so a pid in a label is only compared on the boot that made it."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


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
    interactive: bool = False  # foreground: the launcher's stdin goes on to the job after its secrets


@dataclass
class RunHooks:
    """What the use case does around the start: `before_start(job_id)` once the container exists (a failure
    removes it: nothing ran); `started(job_id)` once the job's command runs; `progress(line)`, when given, instead
    of a terminal's progress line while the image is pulled (the console shows it)."""

    before_start: Callable[[str], None] = field(default=lambda _job: None)
    started: Callable[[str], None] = field(default=lambda _job: None)
    progress: Callable[[str], None] | None = None  # one line at a time while work takes long (an image pull)


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
    labels[LABEL_LAUNCHER] = f"{boot_id()}:{os.getpid()}"
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
        stand_in = _certifi_stand_in()
        if stand_in is not None:
            sys.modules["certifi"] = stand_in
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
            if stand_in is not None and sys.modules.get("certifi") is stand_in:
                del sys.modules["certifi"]
    import docker

    return docker


def _certifi_stand_in():
    """A module with certifi's one function `requests` uses, `where()`, giving the same path the real one gives
    for a package on disk: the CA bundle next to certifi's own __init__. `requests` calls it at import for its
    default bundle, and certifi answers through importlib.resources (about 20-28 ms of imports: pathlib, zipfile,
    importlib.resources), a bundle a unix socket never needs; TLS to a tcp:// engine still gets the real file. Only
    while docker is imported (then removed from sys.modules: a later `import certifi` loads the real one), and only
    when certifi is a plain folder with the bundle in it (else None: the plain import)."""
    import importlib.util
    import types

    if "certifi" in sys.modules:
        return None
    try:
        found = importlib.util.find_spec("certifi")
    except (ImportError, ValueError):
        return None
    origin = getattr(found, "origin", None)
    if not origin or not origin.endswith("__init__.py"):
        return None
    bundle = os.path.join(os.path.dirname(origin), "cacert.pem")
    if not os.path.isfile(bundle):
        return None
    module = types.ModuleType("certifi")
    module.where = lambda: bundle
    module.contents = lambda: open(bundle, encoding="ascii").read()
    return module


_CLIENTS: dict[tuple, Any] = {}  # (pid, engine settings) -> the client `connect` made
_CLIENTS_LOCK = threading.Lock()


def connect():
    """A docker client, or one clear EngineError saying what to do.

    One per process and engine settings, kept for the process's life and shared by its threads (its connection
    pool is urllib3's, made for that): a long-lived process (the console's server, a sweep's starter threads)
    pays the client's making (a GET /_ping) once, not once per request, and keeps at most a pool of
    idle connections. Keyed by the DOCKER_* variables and the pid, so a changed DOCKER_HOST or a forked child
    gets a client of its own."""
    key = (
        os.getpid(),
        *(os.environ.get(name) for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT")),
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_client()
    return client


def _new_client():
    """A client speaking the newest API version both sides know, learnt from the engine's `GET /_ping` (the
    `API-Version` header of a plain "OK", under a millisecond), not from docker-py's `GET /version`, which
    gathers the engine's whole version report first: 10-20 ms of every command here, and half a second on
    podman's Docker-compatible socket. The ping also proves the engine is there."""
    try:
        docker = import_docker()
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineError("the `docker` Python package is missing: pip install docker") from exc
    from docker.constants import DEFAULT_DOCKER_API_VERSION as known
    from docker.utils import version_lt

    try:
        client = docker.from_env(version=known, timeout=120)  # makes no request yet
        answer = client.api.get(client.api.base_url + "/_ping", timeout=client.api.timeout)
        if answer.status_code != 200:
            raise EngineError(f"HTTP {answer.status_code} from /_ping")
        server = answer.headers.get("API-Version")
        if not server:
            client.close()
            client = docker.from_env(timeout=120)  # an engine that does not say: docker-py asks it (GET /version)
        elif version_lt(server, known):
            client.close()
            client = docker.from_env(version=server, timeout=120)
    except Exception as exc:  # docker raises several types here; all mean "no engine"
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        why = str(exc) if isinstance(exc, EngineError) else type(exc).__name__
        raise EngineError(
            f"cannot reach the Docker engine at {where} ({why}); start it "
            "(`sudo systemctl start docker`, or `sudo dockerd &`) or point DOCKER_HOST at a running engine"
        ) from None
    return client


def is_swarm_manager(client) -> bool:
    """Whether the engine manages a swarm: `GET /swarm` answers only on a manager (503 elsewhere). A few ms,
    where `GET /info` (which gathers the whole engine's state) costs 15-35 ms of every `launch ps` here."""
    try:
        client.api.inspect_swarm()
        return True
    except Exception:
        return False


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


def pump(streams, masker) -> None:
    """Copy (stdout, stderr) chunks to our stdout/stderr, masked, flushing as they come (interactive output)."""
    from launcher.mask import masked

    outs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    sys.stderr.flush()
    for stream, chunk in masked(streams, masker):
        outs[stream].write(chunk)
        outs[stream].flush()


def install_sigterm() -> Callable[[], None]:
    """SIGTERM raises Terminated in the main thread (so the job is stopped and cleaned up); returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def api_error_text(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return " ".join(str(explanation or exc).split())


@contextmanager
def engine_errors(what: str):
    """Translate what the engine (or the connection to it) raises into one EngineError line, exit 7: the one
    place engine exceptions become ours. LaunchErrors and interrupts pass through unchanged."""
    try:
        yield
    except (LaunchError, KeyboardInterrupt, Terminated):
        raise
    except Exception as exc:
        import docker.errors
        import requests.exceptions

        if isinstance(exc, docker.errors.NotFound):
            raise EngineError(f"{what}: it no longer exists on the engine (removed meanwhile?)") from None
        if isinstance(exc, docker.errors.APIError):
            raise EngineError(f"{what}: the engine refused: {api_error_text(exc)}") from None
        if isinstance(exc, requests.exceptions.RequestException | ConnectionError | OSError):
            raise EngineError(f"{what}: lost the connection to the engine ({type(exc).__name__})") from None
        raise


def parse_stamp(text: str) -> tuple[int, int]:
    """RFC 3339 with any fraction and offset ('2024-05-01T12:00:00.123456789Z', '...+02:00') -> (seconds, ns)."""
    base, rest = text[:19], text[19:]
    fraction = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        fraction, rest = rest[1:end], rest[end:]
    seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    if rest and rest != "Z":
        sign = 1 if rest[0] == "+" else -1
        hours, _, minutes = rest[1:].partition(":")
        seconds -= sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    return seconds, int((fraction + "000000000")[:9])


def epoch(text: str) -> float:
    """The engine's RFC 3339 time as epoch seconds."""
    seconds, nanos = parse_stamp(text)
    return seconds + nanos / 1e9
