"""Run a job: a template (a file, a built-in's or a saved template's name) plus overrides, resolved and started.

Everything that can fail on input fails before anything is created: the template and overrides are validated,
every secret reference is resolved (all missing names in one error), env values are checked, and only then does a
backend create the container. A usage record is written once the job exists and before it starts: a record that
cannot be written leaves nothing running.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from launcher.app import Warn, ignore


@dataclass(frozen=True)
class RunRequest:
    """What `launch run` takes, whichever face asks."""

    template: str | None = None  # a template file, or a built-in's or saved template's name
    image: str | None = None
    env: tuple[str, ...] = ()  # VAR=VALUE, VAR=secret:KEY, VAR (copied from `environ`)
    volumes: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    name: str | None = None
    command: tuple[str, ...] | None = None
    detach: bool = False
    remove: bool = False
    dry_run: bool = False
    life_span: str | None = None  # 30m, 2h, 1d
    plain_env: bool = False
    mask: bool = True
    interactive: bool = False
    read_only: bool = False
    backend: str | None = None
    context: str | None = None  # kubernetes: the kubeconfig context (overrides the template's)
    namespace: str | None = None  # kubernetes: the namespace (overrides the template's)
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    code: int = 0  # foreground: the job's exit code; detached: 0
    job_id: str | None = None
    plan: dict[str, Any] | None = None  # dry-run: the resolved plan, values redacted
    backend: str | None = None  # the backend it runs on


def load_spec(template: str | None):
    """A Spec from a template file, a built-in or saved template's name, or nothing (an empty spec)."""
    from launcher.spec import Spec

    if template is None:
        return Spec()
    from launcher import template as templates
    from launcher.app.templates import find

    return templates.load(find(template))


def build_plan(spec, store):
    """Resolve every secret the spec uses (all missing ones reported at once) into a Plan."""
    from launcher import plan as plans

    revealed = store.reveal(spec.secret_keys()) if spec.secret_keys() else {}
    return plans.resolve(spec, revealed), revealed


def prepare_spec(request: RunRequest):
    """(the Spec, the life-span in seconds) `request` describes: template, then --env-file, then --env, then the
    other overrides; checked."""
    from launcher import jobs as jobmod
    from launcher import overrides
    from launcher.errors import UsageError

    spec = overrides.apply(
        load_spec(request.template),
        image=request.image,
        env=list(request.env),
        volumes=list(request.volumes),
        env_files=list(request.env_files),
        name=jobmod.check_name(request.name) if request.name is not None else None,
        command=list(request.command) if request.command else None,
        environ=request.environ,
    )
    if request.read_only:
        spec = dataclasses.replace(spec, read_only=True)
    if request.context is not None or request.namespace is not None:
        spec = dataclasses.replace(
            spec,
            context=_kube_text("--context", request.context, spec.context),
            namespace=_kube_text("--namespace", request.namespace, spec.namespace),
        )
    seconds = jobmod.parse_duration(request.life_span) if request.life_span is not None else None
    if request.remove and spec.restart.policy != "no":
        raise UsageError(f"--rm conflicts with the restart policy {spec.restart.policy!r}")
    return spec, seconds


def _kube_text(flag: str, value: str | None, default: str | None) -> str | None:
    """--context / --namespace: checked by the template schema's own rule, so both places refuse the same."""
    if value is None:
        return default
    import re

    from launcher import schema
    from launcher.errors import UsageError
    from launcher.names import shown

    pattern = schema.KUBE_CONTEXT if flag == "--context" else schema.KUBE_NAMESPACE
    if not re.fullmatch(pattern, value):
        what = "a context name" if flag == "--context" else "lowercase letters, digits and '-', at most 63"
        raise UsageError(f"{flag}: invalid value {shown(value)}: use {what}")
    return value


def run(
    request: RunRequest,
    *,
    started: Callable[[str], None] | None = None,
    warn: Warn = ignore,
    progress: Callable[[str], None] | None = None,
    prepared: tuple[Any, int | None] | None = None,
) -> RunResult:
    """Start the job (or, with `dry_run`, check it and return its redacted plan). `started(job_id)` runs once the
    job's command runs; `warn` gets what the user should be told besides (the --plain-env warning); `progress`,
    when given, gets an image pull's progress line by line (else a terminal shows it). `prepared`: what
    `prepare_spec(request)` returned, when the caller has it (launcher.app.sweep.launch). A template with a
    `matrix:` is a sweep: launcher.app.sweep starts it."""
    from launcher import runtime
    from launcher.errors import UsageError
    from launcher.runtime.common import RunHooks, RunOptions
    from launcher.store import Store

    spec, seconds = prepared or prepare_spec(request)
    if spec.matrix:
        raise UsageError("the template has a matrix: it starts a sweep (launch run with --matrix, or the sweep API)")
    store = Store.open()
    plan, revealed = build_plan(spec, store)

    which = runtime.choose(request.backend, spec.backend)
    options = RunOptions(
        detach=request.detach,
        remove=request.remove,
        life_span=seconds,
        plain_env=request.plain_env,
        mask=request.mask,
        interactive=request.interactive,
    )
    runtime.preflight(which, plan, options)
    backend = runtime.open_backend(which)
    if request.dry_run:
        from launcher.plan import redacted

        backend.image_config(spec.image, pull=False)
        return RunResult(plan=redacted(plan))
    masker = None
    if request.mask and revealed:
        from launcher.mask import Masker

        masker = Masker(r.value for r in revealed.values())
    job: list[str] = []

    def record(job_id: str) -> None:
        # before the start: a usage record that cannot be written leaves nothing running (nothing has run)
        job.append(job_id)
        store.record_use(job_id, spec.image, dict(plan.versions), backend=backend.name)

    def on_started(job_id: str) -> None:
        if started is not None:
            started(job_id)

    if request.plain_env and plan.secret_env:
        names = ", ".join(name for name, _ in plan.secret_env)
        warn(
            f"warning: --plain-env: the values of {names} will be visible in "
            f"`docker {'service ' if which == 'swarm' else ''}inspect` and stored in plaintext under "
            "/var/lib/docker until the job is removed"
        )
    code = backend.run(
        plan, options, masker=masker, hooks=RunHooks(before_start=record, started=on_started, progress=progress)
    )
    return RunResult(code=code, job_id=job[0] if job else None, backend=which)
