"""The secrets use cases: list (with the jobs using each), details, create, edit, delete (the "in use" rule).

The store (`launcher.store`) keeps the values and their metadata; what is decided here is what depends on jobs:
which running jobs use a secret (a delete is refused unless forced), which saved templates reference it, and that
an edited value's old version is let go once no job holds it. No function here returns a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from launcher.app import Warn, ignore
from launcher.errors import Conflict, EngineError


@dataclass(frozen=True)
class SecretView:
    """A secret as the faces show it: metadata, its last use, the running jobs that use it. Never a value."""

    info: object  # launcher.store.SecretInfo
    jobs: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    stale_jobs: tuple[str, ...] = field(default=())  # running jobs holding an older version


def _store():
    from launcher.store import Store

    return Store.open()


def running_users(names: Sequence[str]) -> dict[str, list[str]] | None:
    """Secret name -> running jobs using it; None when no engine is reachable (no job can be running there)."""
    from launcher.app.jobs import jobs_using
    from launcher.errors import EngineError

    try:
        return jobs_using(names)
    except EngineError:
        return None


def check_not_in_use(names: Sequence[str], force: bool, warn: Warn = ignore) -> None:
    """Refuse to delete a secret that a running job uses (on any backend), unless `force` (then a warning).

    With no engine reachable no job can be running there, so the check passes (with a note).
    """
    users = running_users(names)
    if users is None:
        warn("no container engine reachable: cannot check whether a running job uses these secrets")
        return
    if not users:
        return
    listing = "; ".join(f"'{name}' by {', '.join(jobs)}" for name, jobs in sorted(users.items()))
    if force:
        warn(f"warning: deleting secrets that running jobs use: {listing}")
        return
    raise Conflict(f"secrets in use by running jobs: {listing}; stop those jobs first, or pass --force")


def create(name: str, value: bytes, description: str = ""):
    """A new secret at version 1; Conflict when the name exists (nothing is overwritten)."""
    return _store().add(name, value, description)


def edit(name: str, value: bytes | None = None, description: str | None = None):
    """A new value (a new version) and/or description. The replaced version is kept while a job holds it (so its
    logs can be masked) and let go otherwise."""
    store = _store()
    info = store.edit(name, value, description)
    if value is not None:
        from launcher.app.jobs import prune_versions

        prune_versions()
    return info


def delete(names: Sequence[str], force: bool = False, warn: Warn = ignore) -> list[str]:
    """Delete every one of `names` or none: NotFound names the missing ones, Conflict the ones running jobs use."""
    names = list(dict.fromkeys(names))
    store = _store()
    store.require(names)
    check_not_in_use(names, force, warn)
    store.remove(names)
    return names


def names() -> list[str]:
    """The secrets' names (metadata only), for pickers."""
    return [info.name for info in _store().list()]


def views(names: Sequence[str] | None = None) -> list[SecretView]:
    """The secrets (all, or `names`) with last use, the running jobs using each, the saved templates referencing
    it, and the running jobs holding an old version. The engine is asked once; without one the job lists are
    empty."""
    from launcher.app import templates as templates_app

    store = _store()
    infos = store.list() if names is None else [store.info(n) for n in names]
    if names is None:
        infos = [store.info(i.name) for i in infos]  # with last use
    try:
        from launcher.app.jobs import registry

        running = [j for j in registry().list(all=False) if j.running]
    except EngineError:  # no engine: no job runs there
        running = []
    result = []
    for info in infos:
        using = [j for j in running if info.name in j.secrets]
        result.append(
            SecretView(
                info,
                tuple(j.id for j in using),
                tuple(templates_app.using_secret(info.name)),
                tuple(j.id for j in using if j.secrets[info.name] < info.version),
            )
        )
    return result
