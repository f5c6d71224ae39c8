"""`launch ps`, `logs`, `stop`, `rm`, `inspect`: jobs you can come back to.

A job is named by its id, a unique prefix of it, or its --name. State comes from the engine's labels only.

Jobs belong to the store that started them (label `launch.store`, a hash of the store's random id): `ps` lists
this store's jobs, `ps --all-stores` every launch job on the engine (as `kubectl get` shows one namespace and
`-A` all of them). A job of another store, or of a launch that did not label jobs yet, is still reachable by its
full id or name (the engine would let you `docker stop` it anyway), never by a prefix, and its output is not
masked with this store's values (they are not its secrets).
"""

import sys
import time

import typer

from launcher.cli import complete, write_json
from launcher.errors import LaunchError


class _Jobs:
    """Jobs across every backend the engine offers (local containers, and swarm services on a manager)."""

    def __init__(self):
        from launcher.runtime import all_backends
        from launcher.store import Store

        self.backends = all_backends()
        self.store = Store.open().tag()  # None: no store yet, so no job is this store's

    def list(self, all: bool, all_stores: bool = False) -> list:
        """Jobs of this store (of every store with `all_stores`), newest first."""
        found = [job for backend in self.backends for job in backend.jobs(all=all)]
        if not all_stores:
            found = [job for job in found if self.own(job)]
        return sorted(found, key=lambda j: j.created, reverse=True)

    def own(self, job) -> bool:
        return self.store is not None and job.store == self.store

    def find(self, ref: str):
        """(backend, job) for a job id, unique id prefix or name of this store's jobs, else a full id or name of
        another store's job, whichever backend it lives on."""
        from launcher.errors import NotFound
        from launcher.jobs import match

        try:
            job = match(self.list(all=True), ref)
        except NotFound:
            others = [j for j in self.list(all=True, all_stores=True) if not self.own(j) and ref in (j.id, j.name)]
            if len(others) != 1:
                raise
            job = others[0]
        return self.backend_of(job), job

    def backend_of(self, job):
        return next(b for b in self.backends if b.name == job.backend)

    def sweep(self) -> None:
        for backend in self.backends:
            backend.sweep()


def _registry() -> _Jobs:
    return _Jobs()


def _find(ref: str, registry: "_Jobs | None" = None):
    """(backend, job) for one reference; a reference that cannot mean anything is refused before the engine is asked."""
    from launcher.jobs import check_ref

    check_ref(ref)
    return (registry or _registry()).find(ref)


def jobs_using(names) -> dict[str, list[str]]:
    """Secret name -> the running jobs (ids, with names) that use it, on every backend."""
    wanted = set(names)
    users: dict[str, list[str]] = {}
    for job in _registry().list(all=False):
        if not job.running:
            continue
        for name in wanted & set(job.secrets):
            users.setdefault(name, []).append(f"{job.id} ({job.name})" if job.name else job.id)
    return users


def _current_versions() -> dict[str, int]:
    """Secret name -> current version in the store (metadata only, nothing decrypted)."""
    from launcher.store import Store

    try:
        return {info.name: info.version for info in Store.open().list()}
    except LaunchError:
        return {}


def stale_secrets(job, current: dict[str, int]) -> list[str]:
    """Names of secrets a running job holds at an older version than the store's (edited since it started)."""
    return sorted(n for n, v in job.secrets.items() if n in current and current[n] > v)


def ps(
    all: bool = typer.Option(False, "--all", "-a", help="Show ended jobs too."),
    all_stores: bool = typer.Option(
        False, "--all-stores", help="Show the jobs of every store (other users') too, not only this store's."
    ),
    as_json: bool = typer.Option(False, "--json", help="A JSON list on stdout."),
) -> None:
    """List this store's jobs: id, name, image, status, age, exit code, the secrets each uses."""
    registry = _registry()
    registry.sweep()
    jobs = registry.list(all=all, all_stores=all_stores)
    if not jobs and not all_stores and registry.list(all=all, all_stores=True):
        sys.stderr.write("launch: no jobs of this store; --all-stores lists the others on this engine\n")
    current = _current_versions()
    now = time.time()
    rows = []
    for job in jobs:
        data = job.to_dict(now)
        data["stale_secrets"] = stale_secrets(job, current) if job.running and registry.own(job) else []
        rows.append(data)
    if as_json:
        write_json(rows)
        return
    if not rows:
        return
    table = [("ID", "NAME", "IMAGE", "STATUS", "AGE", "EXIT", "SECRETS")]
    for row in rows:
        secrets = ",".join(
            f"{n}@v{v}" + (" (old)" if n in row["stale_secrets"] else "") for n, v in sorted(row["secrets"].items())
        )
        table.append(
            (
                row["id"],
                row["name"] or "-",
                row["image"],
                row["status"],
                row["age"],
                "-" if row["exit_code"] is None else str(row["exit_code"]),
                secrets or "-",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        sys.stdout.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() + "\n")
    if any(row["stale_secrets"] for row in rows):
        sys.stderr.write("launch: (old) marks a running job holding a secret edited since it started\n")


def logs(
    job: str = typer.Argument(..., help="Job id, id prefix or name.", autocompletion=complete.job),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new output."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
    no_mask: bool = typer.Option(False, "--no-mask", help="Do not mask secret values."),
) -> None:
    """Show a job's output (stdout to stdout, stderr to stderr), secret values masked."""
    from launcher.jobs import check_count
    from launcher.runtime.common import pump

    check_count("--tail", tail, 10**9)
    registry = _registry()
    backend, found = _find(job, registry)
    masker = None if no_mask else _masker_for(found, registry)
    try:
        pump(backend.logs(found, follow=follow, tail=tail), masker)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C ends `logs -f`: the usual way out, not an error


def _masker_for(job, registry):
    """A masker over the values of the secret versions the job holds, and the current ones (a note on stderr for
    each it cannot have: removed from the store, or the job is another store's)."""
    if not job.secrets:
        return None
    if not registry.own(job):
        sys.stderr.write(
            f"launch: warning: job {job.id} was not started from this store: its output is shown unmasked\n"
        )
        return None
    from launcher.mask import Masker
    from launcher.store import Store

    store = Store.open()
    present = {info.name for info in store.list()}
    held, missing = store.reveal_versions(job.secrets)
    current = store.reveal(sorted(set(job.secrets) & present)).values()
    if missing:
        sys.stderr.write(
            f"launch: warning: cannot mask secrets no longer in the store: {', '.join(missing)}; "
            "the output may show them\n"
        )
    values = [*held, *(r.value for r in current)]
    return Masker(values) if values else None


def prune_versions(registry=None) -> None:
    """Let the store drop the old secret versions that no job of this store holds any more (kept since
    `secret edit` so that `launch logs` can mask them). With no engine reachable nothing is dropped."""
    from launcher.errors import EngineError
    from launcher.store import Store

    try:
        registry = registry or _registry()
        jobs = registry.list(all=True)
    except EngineError:
        return
    Store.open().prune_versions((name, version) for job in jobs for name, version in job.secrets.items())


def stop(
    jobs: list[str] = typer.Argument(
        ..., help="Job ids, prefixes or names.", metavar="JOB", autocompletion=complete.job
    ),
    time_: int = typer.Option(10, "--time", "-t", help="Seconds to wait before killing."),
) -> None:
    """Stop running jobs (SIGTERM, then SIGKILL after the grace period)."""
    from launcher.jobs import MAX_DURATION, check_count

    check_count("--time", time_, MAX_DURATION)
    _on_each(jobs, lambda backend, job: backend.stop(job, grace=time_), "stopped")


def rm(
    jobs: list[str] = typer.Argument(
        ..., help="Job ids, prefixes or names.", metavar="JOB", autocompletion=complete.job
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Stop and remove running jobs too."),
) -> None:
    """Remove ended jobs (running ones with --force)."""
    _on_each(jobs, lambda backend, job: backend.remove(job, force=force), "removed")
    prune_versions()


def _on_each(refs: list[str], act, done: str) -> None:
    """Find every job first (a bad name changes nothing), then act on each, then sweep what they leave."""
    from launcher.jobs import check_ref

    for ref in refs:  # before the engine is asked anything
        check_ref(ref)
    registry = _registry()
    found = [registry.find(ref) for ref in refs]
    for backend, job in found:
        act(backend, job)
        sys.stderr.write(f"launch: {done} {job.id}\n")
    registry.sweep()


def inspect(
    job: str = typer.Argument(..., help="Job id, id prefix or name.", autocompletion=complete.job),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """The job as it was run: template, image, command, mounts, secret names and versions; never a value."""
    from launcher.jobs import with_iso_times

    backend, found = _find(job)
    data = with_iso_times(backend.inspect(found))
    if as_json:
        write_json(data, sort_keys=True)
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("stop")(stop)
    app.command("rm")(rm)
    app.command("inspect")(inspect)
