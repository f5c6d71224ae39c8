"""A sweep: one template run once per combination of value lists (Hydra's `--multirun a=1,2 b=x,y`).

`launch run train.yaml --matrix lr=1e-3,1e-4 --matrix seed=1,2,3` starts 6 jobs from one process, detached: each
gets its combination as env variables (the key upper-cased: `LR`, `SEED`), a name suffixed by its values
(`train-lr1e-3-seed1`, cut to the job-name rule of launcher.names) and the label `launch.sweep=SWEEP_ID`, by which
`launch ps` groups them and `launch stop/rm SWEEP_ID` acts on all of them. A template may carry the axes too
(`matrix:`); a `--matrix` axis with the same variable replaces the template's.

Everything that can fail on input fails before anything starts: the axes, every job's name, the template, every
secret reference (resolved once, for all jobs: the values are the same). Then each job is started by the same
backend call as `launch run --detach` (the same delivery, the same "never a success without having run" check); a
job that fails to start is reported and the others go on. The first job starts alone (it fills the per-image
caches), the others a few at a time on one engine client: the engine does the work in parallel, as it does for
concurrent `docker run -d`.

`max_parallel` caps how many of the sweep's jobs run at once: the first N start now, the rest wait in a detached
waiter (`launcher.app.waiter`) that starts one as another ends, after the launcher has exited. It gets the
pending jobs on a pipe (values in its memory only, never in argv, env or a file); its pid file under the launch
home (`sweeps/SWEEP_ID`) names it so that `launch stop/rm SWEEP_ID` can end it first.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from launcher.app import Warn, ignore
from launcher.app.run import RunRequest
from launcher.errors import LaunchError, UsageError
from launcher.jobs import LABEL_SWEEP  # the sweep's id on each of its jobs

MAX_JOBS = 1000  # the most jobs one sweep may start (a typo like 1..1000000 should not flood the engine)
WORKERS = 4  # jobs started at once by the launcher (the engine does the heavy part; more only adds contention)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class SweepRequest:
    run: RunRequest
    matrix: tuple[str, ...] = ()  # "KEY=V1,V2,..." from the command line
    max_parallel: int | None = None


@dataclass
class SweepResult:
    sweep_id: str
    started: list[str] = field(default_factory=list)  # job ids, in the order they started
    waiting: list[str] = field(default_factory=list)  # names of the jobs left to the waiter
    failed: list[tuple[str, LaunchError]] = field(default_factory=list)  # (job name, why)
    plans: list[dict[str, Any]] | None = None  # dry-run: each job's redacted plan

    @property
    def code(self) -> int:
        return int(self.failed[0][1].code) if self.failed else 0


Axes = tuple[tuple[str, tuple[str, ...]], ...]


def parse_axis(flag: str) -> tuple[str, tuple[str, ...]]:
    """`KEY=V1,V2,...` -> (KEY, values). Matrix values are plain text given on the command line, never secrets."""
    from launcher.names import shown
    from launcher.references import ENV_NAME_HINT, is_env_name

    key, equals, values = flag.partition("=")
    if not equals or not key:
        raise UsageError(f"--matrix {shown(flag)}: expected KEY=V1,V2,... (e.g. lr=1e-3,1e-4)")
    if not is_env_name(key):
        raise UsageError(f"--matrix {shown(flag)}: invalid key {shown(key)} (use {ENV_NAME_HINT})")
    return key, tuple(values.split(","))


def merge_axes(template: Axes, flags: tuple[str, ...]) -> Axes:
    """The template's axes, then each --matrix (replacing a template axis of the same variable); checked."""
    axes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for key, values in template:
        axes[key.upper()] = (key, values)
    given: set[str] = set()
    for flag in flags:
        key, values = parse_axis(flag)
        if key.upper() in given:
            raise UsageError(f"--matrix {key}: given twice (one --matrix per variable; list its values with commas)")
        given.add(key.upper())
        axes[key.upper()] = (key, values)
    for key, values in axes.values():
        if not values:
            raise UsageError(f"matrix {key}: no values")
        for value in values:
            if value == "":
                raise UsageError(f"matrix {key}: an empty value (write V1,V2 without an empty item)")
            if "\0" in value or "\n" in value or "\r" in value:
                raise UsageError(f"matrix {key}: a value with a line break or NUL byte")
        if len(set(values)) != len(values):
            raise UsageError(f"matrix {key}: a value is listed twice")
    total = 1
    for _, values in axes.values():
        total *= len(values)
        if total > MAX_JOBS:
            raise UsageError(f"the matrix makes more than {MAX_JOBS} jobs; split the sweep")
    return tuple(axes.values())


def job_name(base: str, combo: tuple[tuple[str, str], ...]) -> str:
    """`base` suffixed by the combination's keys and values, made to fit the job-name rule (launcher.names):
    characters it does not allow become '_', and a name too long keeps a short hash of the whole so that two jobs
    of one sweep never share a name."""
    suffix = "-".join(f"{key.lower()}{value}" for key, value in combo)
    name = _NAME_CHARS.sub("_", f"{base}-{suffix}")
    if len(name) > 63:
        import hashlib

        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:54]}-{digest}"
    return name


def _base_name(spec, sweep_id: str) -> str:
    """The name every job of the sweep starts with: the job's --name or `name:`, else the template file's stem
    and the sweep's id (so that running the same sweep twice gives no clash of names)."""
    if spec.name:
        return spec.name
    stem = os.path.splitext(os.path.basename(spec.source))[0] if spec.source else "sweep"
    stem = _NAME_CHARS.sub("_", stem)[:30].strip("_.-") or "sweep"
    if not stem[0].isalnum():
        stem = "s" + stem
    return f"{stem}-{sweep_id}"


def sweep_specs(spec, axes: Axes, sweep_id: str) -> list:
    """One Spec per combination: its env variables set (replacing the template's of the same name), its name,
    the sweep's label."""
    from launcher.names import job_name_problem
    from launcher.spec import EnvVar

    base = _base_name(spec, sweep_id)
    specs = []
    for values in itertools.product(*(values for _, values in axes)):
        combo = tuple((key, value) for (key, _), value in zip(axes, values, strict=True))
        names = {key.upper() for key, _ in combo}
        env = tuple(v for v in spec.env if v.name not in names) + tuple(
            EnvVar(key.upper(), (value,), f"--matrix {key}") for key, value in combo
        )
        name = job_name(base, combo)
        problem = job_name_problem(name)
        if problem:  # pragma: no cover - job_name makes names that fit
            raise UsageError(f"matrix: {problem}")
        labels = (*tuple((k, v) for k, v in spec.labels if k != LABEL_SWEEP), (LABEL_SWEEP, sweep_id))
        specs.append(dataclasses.replace(spec, env=env, name=name, labels=labels, matrix=()))
    return specs


def start(
    request: SweepRequest,
    *,
    started: Callable[[str], None] | None = None,
    failed: Callable[[str, LaunchError], None] | None = None,
    warn: Warn = ignore,
    spec=None,
) -> SweepResult:
    """Start the sweep. `started(job_id)` runs once each job's command runs (from worker threads, one at a time);
    `failed(name, error)` for each job that could not start. `spec`: the prepared spec, when the caller has it."""
    from launcher import jobs as jobmod
    from launcher import plan as plans
    from launcher import runtime
    from launcher.app.run import prepare_spec
    from launcher.runtime.common import RunOptions
    from launcher.store import Store

    run = request.run
    if run.interactive:
        raise UsageError("--interactive conflicts with --matrix: a sweep's jobs run detached")
    if request.max_parallel is not None and not 1 <= request.max_parallel <= MAX_JOBS:
        raise UsageError(f"--max-parallel: {request.max_parallel} is out of range (1-{MAX_JOBS})")
    seconds = None
    if spec is None:
        spec, seconds = prepare_spec(run)
    elif run.life_span is not None:
        seconds = jobmod.parse_duration(run.life_span)
    axes = merge_axes(spec.matrix, request.matrix)
    if not axes:
        raise UsageError("--max-parallel needs a sweep: give --matrix KEY=V1,V2 (or a template with matrix:)")
    sweep_id = jobmod.new_id()
    specs = sweep_specs(spec, axes, sweep_id)
    store = Store.open()
    revealed = store.reveal(spec.secret_keys()) if spec.secret_keys() else {}  # once, for every job
    job_plans = [plans.resolve(s, revealed) for s in specs]
    which = runtime.choose(run.backend, spec.backend)
    options = RunOptions(detach=True, remove=run.remove, life_span=seconds, plain_env=run.plain_env, mask=run.mask)
    runtime.preflight(which, job_plans[0], options)  # the same files for every job
    backend = runtime.open_backend(which)
    result = SweepResult(sweep_id)
    if run.dry_run:
        from launcher.plan import redacted

        backend.image_config(spec.image, pull=False)
        result.plans = [redacted(p) for p in job_plans]
        return result
    if run.plain_env and job_plans[0].secret_env:
        names = ", ".join(name for name, _ in job_plans[0].secret_env)
        warn(f"warning: --plain-env: the values of {names} will be visible in `docker inspect` of every job")
    import sys

    backend.image_config(spec.image, progress=sys.stderr.isatty())  # pulled once, before any job starts
    now = job_plans if request.max_parallel is None else job_plans[: request.max_parallel]
    later = job_plans[len(now) :]
    _start_all(backend, store, now, options, result, started, failed)
    if later:
        from launcher.app import waiter

        waiter.spawn(which, sweep_id, request.max_parallel, later, options)
        result.waiting = [p.spec.name for p in later]
    return result


def _start_all(backend, store, job_plans, options, result: SweepResult, started, failed) -> None:
    """Start each plan as `launch run -d` would; the first alone, the rest WORKERS at a time. Ctrl-C starts no
    more jobs, lets those being started finish (each is either confirmed or removed by the backend), then stops."""
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    stop = threading.Event()

    def one(plan) -> None:
        if stop.is_set():
            return
        try:
            job_id = start_one(backend, store, plan, options)
        except LaunchError as exc:
            with lock:
                result.failed.append((plan.spec.name, exc))
                if failed is not None:
                    failed(plan.spec.name, exc)
            return
        with lock:
            result.started.append(job_id)
            if started is not None:
                started(job_id)

    try:
        one(job_plans[0])
        if len(job_plans) > 1:
            with ThreadPoolExecutor(max_workers=min(WORKERS, len(job_plans) - 1)) as pool:
                futures = [pool.submit(one, plan) for plan in job_plans[1:]]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    stop.set()
                    raise
    except KeyboardInterrupt:
        from launcher.errors import ExitCode

        raise LaunchError(
            f"interrupted: {len(result.started)} of {len(job_plans)} jobs of sweep {result.sweep_id} started "
            f"(`launch rm -f {result.sweep_id}` removes them)",
            ExitCode.INTERRUPTED,
        ) from None


def start_one(backend, store, plan, options) -> str:
    """Start one job of a sweep, detached, its usage recorded before it starts; its id once its command runs."""
    from launcher.runtime.common import RunHooks

    job: list[str] = []

    def record(job_id: str) -> None:
        job.append(job_id)
        store.record_use(job_id, plan.spec.image, dict(plan.versions), backend=backend.name)

    backend.run(plan, options, masker=None, hooks=RunHooks(before_start=record))
    return job[0]


# -- a sweep's jobs afterwards ---------------------------------------------------------------------------------


def waiting(sweep_id: str) -> int:
    """How many of the sweep's jobs its waiter has still to start (0 when it has none or is gone)."""
    from launcher.app import waiter

    return waiter.pending(sweep_id)


def launch(
    request: SweepRequest,
    *,
    started: Callable[[str], None] | None = None,
    each: Callable[[str], None] | None = None,
    failed: Callable[[str, LaunchError], None] | None = None,
    warn: Warn = ignore,
):
    """`launch run` as every face calls it: a sweep (a SweepResult) when the command line or the template gives
    a matrix, else one job (launcher.app.run.run's RunResult). `started` is the one job's hook (as for
    launcher.app.run.run), `each` and `failed` a sweep's (as for `start`). The template is read once either way."""
    from launcher.app.run import prepare_spec
    from launcher.app.run import run as run_one

    prepared = prepare_spec(request.run)
    spec = prepared[0]
    if request.matrix or spec.matrix:
        return start(request, started=each, failed=failed, warn=warn, spec=spec)
    if request.max_parallel is not None:
        raise UsageError("--max-parallel needs a sweep: give --matrix KEY=V1,V2 (or a template with matrix:)")
    return run_one(request.run, started=started, warn=warn, prepared=prepared)
