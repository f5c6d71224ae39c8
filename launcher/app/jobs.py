"""Jobs across every backend: find, list (with the secrets each holds at an old version), logs masked with the
right values, stop, remove, inspect.

A job is named by its id, a unique prefix of it, or its --name. State comes from the engine's labels only.

Jobs belong to the store that started them (label `launch.store`, a hash of the store's random id): `list` gives
this store's jobs, `all_stores=True` every launch job on the engine (as `kubectl get` shows one namespace and
`-A` all of them). A job of another store, or of a launch that did not label jobs yet, is still reachable by its
full id or name (the engine would let you `docker stop` it anyway), never by a prefix, and its output is not
masked with this store's values (they are not its secrets).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from launcher.app import Warn, ignore
from launcher.errors import LaunchError

_LISTED_RUNNING = ("running", "restarting", "paused", "pending", "starting")  # what `docker ps` lists without -a


class Registry:
    """Jobs across every backend (local containers, swarm services on a manager, Jobs on the clusters this store
    has used)."""

    def __init__(self):
        from launcher.runtime import all_backends
        from launcher.store import Store

        self.backends = all_backends()
        self.store = Store.open().tag()  # None: no store yet, so no job is this store's
        self._listing: dict[str, list] = {}  # backend name -> its jobs, ended ones too: one listing per command

    def _jobs(self, backend) -> list:
        if backend.name not in self._listing:
            self._listing[backend.name] = backend.jobs(all=True)
        return self._listing[backend.name]

    def list(self, all: bool, all_stores: bool = False) -> list:
        """Jobs of this store (of every store with `all_stores`), newest first. The engine is asked once per
        command (a listing of a few hundred containers costs the engine 60-250 ms here); without `all`, the jobs
        `docker ps` would show."""
        found = [job for backend in self.backends for job in self._jobs(backend)]
        if not all:
            found = [job for job in found if job.status in _LISTED_RUNNING]
        if not all_stores:
            found = [job for job in found if self.own(job)]
        return sorted(found, key=lambda j: j.created, reverse=True)

    def own(self, job) -> bool:
        return self.store is not None and job.store == self.store

    def find(self, ref: str):
        """(backend, job) for a job id, unique id prefix or name of this store's jobs, else a full id or name of
        another store's job, whichever backend it lives on."""
        from launcher.errors import NotFound
        from launcher.jobs import check_ref, match

        check_ref(ref)
        try:
            job = match(self.list(all=True), ref)
        except NotFound:
            others = [j for j in self.list(all=True, all_stores=True) if not self.own(j) and ref in (j.id, j.name)]
            if len(others) != 1:
                raise
            job = others[0]
        return self.backend_of(job), job

    def find_all(self, ref: str) -> list:
        """[(backend, job)]: every job of this store's sweep `ref` (its full id), else the one job `ref` names."""
        from launcher.jobs import LABEL_SWEEP, check_ref

        check_ref(ref)
        members = [job for job in self.list(all=True) if job.labels.get(LABEL_SWEEP) == ref]
        if members:
            return [(self.backend_of(job), job) for job in members]
        from launcher.app import waiter

        if waiter.pending(ref):
            return []  # a sweep whose jobs all wait: ending its waiter is all there is to do
        return [self.find(ref)]

    def backend_of(self, job):
        return next(b for b in self.backends if b.name == job.backend)

    def sweep(self) -> None:
        for backend in self.backends:
            if backend.sweep(self._jobs(backend)):
                self._listing.pop(backend.name, None)  # it changed something: list again when asked


def registry() -> Registry:
    return Registry()


def jobs_using(names: Iterable[str], reg: Registry | None = None) -> dict[str, list[str]]:
    """Secret name -> the running jobs (ids, with names) of this store that use it, on every backend."""
    wanted = set(names)
    users: dict[str, list[str]] = {}
    for job in (reg or registry()).list(all=False):
        if not job.running:
            continue
        for name in wanted & set(job.secrets):
            users.setdefault(name, []).append(f"{job.id} ({job.name})" if job.name else job.id)
    return users


def current_versions() -> dict[str, int]:
    """Secret name -> current version in the store (metadata only, nothing decrypted)."""
    from launcher.store import Store

    try:
        return {info.name: info.version for info in Store.open().list()}
    except LaunchError:
        return {}


def stale_secrets(job, current: dict[str, int]) -> list[str]:
    """Names of secrets a running job holds at an older version than the store's (edited since it started)."""
    return sorted(n for n, v in job.secrets.items() if n in current and current[n] > v)


def list_jobs(all: bool = False, all_stores: bool = False, warn: Warn = ignore) -> list[dict[str, Any]]:
    """Rows for `ps` and the console: each job's data plus `stale_secrets` (held at an old version), newest first.
    Expired life-spans are stopped first (the sweep)."""
    reg = registry()
    reg.sweep()
    jobs = reg.list(all=all, all_stores=all_stores)
    for backend in reg.backends:
        for problem in getattr(backend, "warnings", ()):
            warn(f"warning: {problem}")
    if not jobs and not all_stores and reg.list(all=all, all_stores=True):
        warn("no jobs of this store; --all-stores lists the others on this engine")
    current = current_versions()
    now = time.time()
    rows = []
    for job in jobs:
        data = job.to_dict(now)
        data["stale_secrets"] = stale_secrets(job, current) if job.running and reg.own(job) else []
        rows.append(data)
    return rows


def masker_for(job, reg: Registry, warn: Warn = ignore):
    """A masker over the values of the secret versions the job holds, and the current ones (a warning for each it
    cannot have: removed from the store, or the job is another store's)."""
    if not job.secrets:
        return None
    if not reg.own(job):
        warn(f"warning: job {job.id} was not started from this store: its output is shown unmasked")
        return None
    from launcher.mask import Masker
    from launcher.store import Store

    store = Store.open()
    present = {info.name for info in store.list()}
    held, missing = store.reveal_versions(job.secrets)
    current = store.reveal(sorted(set(job.secrets) & present)).values()
    if missing:
        warn(f"warning: cannot mask secrets no longer in the store: {', '.join(missing)}; the output may show them")
    values = [*held, *(r.value for r in current)]
    return Masker(values) if values else None


def logs(
    ref: str, *, follow: bool = False, tail: int | None = None, mask: bool = True, warn: Warn = ignore
) -> tuple[Iterator[tuple[bytes | None, bytes | None]], Any]:
    """(the job's output as (stdout, stderr) chunks, the masker to apply or None). The job is found (and its
    masker built) before the first chunk is read, so a bad reference fails at once."""
    from launcher.jobs import check_count, check_ref

    check_ref(ref)
    if tail is not None:
        check_count("--tail", tail, 10**9)
    reg = registry()
    backend, found = reg.find(ref)
    masker = masker_for(found, reg, warn) if mask else None
    return backend.logs(found, follow=follow, tail=tail), masker


def prune_versions(reg: Registry | None = None) -> None:
    """Let the store drop the old secret versions that no job of this store holds any more (kept since
    `secret edit` so that `launch logs` can mask them). With no engine reachable nothing is dropped."""
    from launcher.errors import EngineError
    from launcher.store import Store

    try:
        reg = reg or registry()
        jobs = reg.list(all=True)
    except EngineError:
        return
    Store.open().prune_versions((name, version) for job in jobs for name, version in job.secrets.items())


def _on_each(refs: Iterable[str], act, done: Warn, check=None) -> list[str]:
    """Find every job first (a bad name changes nothing; a sweep's id names all its jobs), then `check` them all,
    end the waiters of the sweeps named (no more of their jobs start), act on each, then sweep what they leave."""
    from launcher.app import waiter
    from launcher.jobs import check_ref

    refs = list(refs)
    for ref in refs:  # before the engine is asked anything
        check_ref(ref)
    reg = registry()

    def find() -> list:
        return list({job.id: (backend, job) for ref in refs for backend, job in reg.find_all(ref)}.values())

    found = find()
    if check is not None:
        check(found)
    if any([waiter.cancel(ref) for ref in refs]):  # every one; then the jobs they started meanwhile too
        found = find()
    ids = []
    for backend, job in found:
        act(backend, job)
        ids.append(job.id)
        done(job.id)
    reg.sweep()
    return ids


def stop(refs: Iterable[str], grace: int = 10, done: Warn = ignore) -> list[str]:
    """Stop running jobs (SIGTERM, then SIGKILL after `grace` seconds); the ids stopped."""
    from launcher.jobs import MAX_DURATION, check_count

    check_count("--time", grace, MAX_DURATION)
    return _on_each(refs, lambda backend, job: backend.stop(job, grace=grace), done)


def _none_running(found) -> None:
    """`rm` without --force refuses before removing anything when one of the jobs named still runs."""
    from launcher.errors import Conflict

    running = [job for _, job in found if job.running]
    if len(found) > 1 and running:
        listed = ", ".join(job.id for job in running[:5]) + (", ..." if len(running) > 5 else "")
        raise Conflict(f"{len(running)} of these jobs are running ({listed}); stop them first or pass --force")


def remove(refs: Iterable[str], force: bool = False, done: Warn = ignore) -> list[str]:
    """Remove ended jobs (running ones with `force`); the ids removed."""
    ids = _on_each(refs, lambda backend, job: backend.remove(job, force=force), done, None if force else _none_running)
    prune_versions()
    return ids


def inspect_started(job_id: str, backend_name: str) -> dict[str, Any]:
    """`inspect` of a job this process has just started on `backend_name`: one look at it where the backend knows
    it (docker: its container), not a listing of every job on every backend."""
    from launcher import runtime
    from launcher.jobs import with_iso_times

    backend = runtime.open_backend(backend_name)
    started = getattr(backend, "inspect_started", None)
    return with_iso_times(started(job_id) if started is not None else backend.inspect(backend.find(job_id)))


def inspect(ref: str) -> dict[str, Any]:
    """The job as it was run: template, image, command, mounts, secret names and versions; never a value."""
    from launcher.jobs import check_ref, with_iso_times

    check_ref(ref)
    backend, found = registry().find(ref)
    return with_iso_times(backend.inspect(found))
