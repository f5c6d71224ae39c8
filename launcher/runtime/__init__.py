"""Runtimes carry a Plan out. Only the modules here import an engine SDK.

Every backend implements `Backend`; `REGISTRY` names them, and `open_backend` loads only the one asked for.
`docker` (the default) runs a job as a container on the engine DOCKER_HOST names; `swarm` runs it as a service on
the Docker Swarm cluster that engine manages; `kubernetes` runs it as a batch/v1 Job on the cluster the kubeconfig
names. The job commands (ps, logs, stop, rm, inspect) do not care which one a job lives on.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from launcher.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from launcher.jobs import Job
    from launcher.plan import Plan
    from launcher.runtime.common import ImageConfig, RunOptions

# name -> "module:class"; a backend's module is imported only when it is used
REGISTRY = {
    "docker": "launcher.runtime.docker:DockerBackend",
    "swarm": "launcher.runtime.swarm:SwarmBackend",
    "kubernetes": "launcher.runtime.kubernetes:KubernetesBackend",
}
BACKENDS = tuple(REGISTRY)


class Backend(Protocol):
    """What a backend does. Engine errors never leave it raw: each method raises LaunchError subclasses only
    (EngineError, exit 7, for what the engine refused or could not do)."""

    name: str

    def image_config(self, image: str, *, pull: bool = True, progress: bool = False) -> ImageConfig: ...

    def run(self, plan: Plan, options: RunOptions, masker: Any = None, hooks: Any = None) -> int:
        """prepare -> start -> after start. `hooks.before_start(job_id)` runs once the job exists and before it
        starts (a failure there leaves nothing behind); `hooks.started(job_id)` once its command runs. Detached:
        0; foreground: the job's exit code."""
        ...

    def jobs(self, all: bool = True) -> list[Job]: ...

    def find(self, ref: str) -> Job: ...

    def logs(
        self, job: Job, follow: bool = False, tail: int | None = None
    ) -> Iterator[tuple[bytes | None, bytes | None]]: ...

    def stop(self, job: Job, grace: int = 10) -> None: ...

    def remove(self, job: Job, force: bool = False) -> None: ...

    def inspect(self, job: Job) -> dict[str, Any]: ...

    def sweep(self) -> None:
        """Housekeeping: expired life-spans stopped, what a killed launcher left removed."""
        ...


def choose(flag: str | None = None, template: str | None = None) -> str:
    """--backend, else $LAUNCH_BACKEND, else the template's `backend:`, else docker."""
    name = flag or os.environ.get("LAUNCH_BACKEND") or template or "docker"
    if name not in REGISTRY:
        raise UsageError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name


def _module(name: str):
    return importlib.import_module(REGISTRY[name].partition(":")[0])


def preflight(name: str, plan, options) -> None:
    """The backend's checks that need no engine (run before connecting to one)."""
    _module(name).preflight(plan, options)


def open_backend(name: str, client=None) -> Backend:
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)(client)


def all_backends() -> list[Backend]:
    """Every backend with jobs to list: the local engine, swarm when that engine is a swarm manager, and
    kubernetes once this store has run a job on a cluster (or $LAUNCH_BACKEND says kubernetes). A user of a
    cluster only, with no Docker engine, is not stopped by its absence: the engine is then left out."""
    from launcher.errors import EngineError
    from launcher.runtime import kubernetes
    from launcher.runtime.common import is_swarm_manager

    backends: list[Backend] = []
    cluster = kubernetes.in_use()
    try:
        local = open_backend("docker")
        backends.append(local)
        if is_swarm_manager(local.client):
            backends.append(open_backend("swarm", local.client))
    except EngineError:
        if not cluster:
            raise
        backends = []
    if cluster:
        backends.append(open_backend("kubernetes"))
    return backends
