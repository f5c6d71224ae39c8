"""Runtimes carry a Plan out. Only the modules here import `docker`.

`docker` (the default) runs a job as a container on the local engine; `swarm` runs it as a service on the Docker
Swarm cluster the engine manages. Both have the same methods (run, jobs, find, logs, stop, remove, inspect,
sweep), so the commands do not care which one a job lives on.
"""

from __future__ import annotations

import os

from launcher.errors import UsageError

BACKENDS = ("docker", "swarm")


def choose(flag: str | None = None, template: str | None = None) -> str:
    """--backend, else $LAUNCH_BACKEND, else the template's `backend:`, else docker."""
    name = flag or os.environ.get("LAUNCH_BACKEND") or template or "docker"
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name


def preflight(name: str, plan, options) -> None:
    """The backend's checks that need no engine (run before connecting to one)."""
    if name == "swarm":
        from launcher.runtime.swarm import preflight as check
    else:
        from launcher.runtime.docker import preflight as check
    check(plan, options)


def open_backend(name: str, client=None):
    if name == "swarm":
        from launcher.runtime.swarm import SwarmBackend

        return SwarmBackend(client)
    from launcher.runtime.docker import DockerBackend

    return DockerBackend(client)


def all_backends() -> list:
    """Every backend this engine offers: the local one, and swarm when the engine is a swarm manager."""
    from launcher.runtime.docker import DockerBackend, is_swarm_manager

    local = DockerBackend()
    backends = [local]
    if is_swarm_manager(local.client):
        backends.append(open_backend("swarm", local.client))
    return backends
