"""`launch run`: a template (a file or a built-in's name) plus command-line overrides, resolved and started.

Everything that can fail on input fails before anything is created: the template and overrides are validated,
every secret reference is resolved (all missing names in one error), env values are checked, and only then does a
runtime create the container.
"""

import os
import sys

import typer
from typer.core import TyperCommand

from launcher.cli import complete, write_json


class _RunCommand(TyperCommand):
    """Everything after the first `--` is the job's command, never a template or an option of ours."""

    def parse_args(self, ctx, args):
        if "--" in args:
            index = args.index("--")
            ctx.meta["launch.command"] = args[index + 1 :]
            args = args[:index]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, "[OPTIONS] [TEMPLATE] [-- COMMAND ARGS...]")


def load_spec(template: str | None):
    """A Spec from a template file, a built-in template's name, or nothing (an empty spec)."""
    from launcher.spec import Spec

    if template is None:
        return Spec()
    from launcher import template as templates

    return templates.load(templates.find(template))


def build_plan(spec, store):
    """Resolve every secret the spec uses (all missing ones reported at once) into a Plan."""
    from launcher import plan as plans

    revealed = store.reveal(spec.secret_keys()) if spec.secret_keys() else {}
    return plans.resolve(spec, revealed), revealed


def run(
    ctx: typer.Context,
    template: str | None = typer.Argument(
        None, help="A template file, or the name of a built-in template.", autocompletion=complete.template
    ),
    image: str | None = typer.Option(None, "--image", help="The image (overrides the template's)."),
    env: list[str] = typer.Option(
        [],
        "--env",
        "-e",
        help="VAR=VALUE, VAR=secret:KEY, VAR=secret-file:KEY, or VAR (copied from your environment).",
        autocompletion=complete.env_value,
    ),
    volume: list[str] = typer.Option(
        [], "--volume", "-v", help="secret:KEY:/path, or HOST:/path[:ro|rw].", autocompletion=complete.volume
    ),
    env_file: list[str] = typer.Option([], "--env-file", help="A dotenv file; its values may be references too."),
    name: str | None = typer.Option(None, "--name", help="A name for the job (and its container)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Start the job and print its id."),
    rm: bool = typer.Option(False, "--rm", help="Remove the job once it has ended."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan, values redacted; start nothing."),
    life_span: str | None = typer.Option(
        None, "--life-span", help="Stop the job after this long: 30m, 2h, 1d (at most 365d)."
    ),
    plain_env: bool = typer.Option(
        False, "--plain-env", help="Env secrets through Docker's own env (visible in `docker inspect`)."
    ),
    no_mask: bool = typer.Option(False, "--no-mask", help="Do not mask secret values in the job's output."),
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="Pass your stdin on to the job (after its secrets), as docker run -i."
    ),
    read_only: bool = typer.Option(False, "--read-only", help="Mount the job's root filesystem read-only."),
    backend_name: str | None = typer.Option(
        None, "--backend", help="docker (the local engine, default) or swarm; also $LAUNCH_BACKEND or `backend:`."
    ),
) -> None:
    """Run a job: resolve its secret references from the store and start it."""
    from launcher import jobs as jobmod
    from launcher import overrides
    from launcher.store import Store

    command = ctx.meta.get("launch.command")
    spec = load_spec(template)
    spec = overrides.apply(
        spec,
        image=image,
        env=env,
        volumes=volume,
        env_files=env_file,
        name=jobmod.check_name(name) if name is not None else None,
        command=command or None,
        environ=os.environ,
    )
    if read_only:
        import dataclasses

        spec = dataclasses.replace(spec, read_only=True)
    seconds = jobmod.parse_duration(life_span) if life_span is not None else None
    if rm and spec.restart.policy != "no":
        from launcher.errors import UsageError

        raise UsageError(f"--rm conflicts with the restart policy {spec.restart.policy!r}")
    store = Store.open()
    plan, revealed = build_plan(spec, store)

    from launcher import runtime
    from launcher.runtime.common import RunHooks, RunOptions

    which = runtime.choose(backend_name, spec.backend)
    options = RunOptions(
        detach=detach,
        remove=rm,
        life_span=seconds,
        plain_env=plain_env,
        mask=not no_mask,
        interactive=interactive,
    )
    runtime.preflight(which, plan, options)
    backend = runtime.open_backend(which)
    if dry_run:
        from launcher.plan import redacted

        backend.image_config(spec.image, pull=False)
        write_json(redacted(plan), sort_keys=True)
        return
    masker = None
    if not no_mask and revealed:
        from launcher.mask import Masker

        masker = Masker(r.value for r in revealed.values())

    def record(job_id: str) -> None:
        # before the start: a usage record that cannot be written leaves nothing running (nothing has run)
        store.record_use(job_id, spec.image, dict(plan.versions), backend=backend.name)

    def started(job_id: str) -> None:
        if detach:
            sys.stdout.write(job_id + "\n")
            sys.stdout.flush()

    if plain_env and plan.secret_env:
        names = ", ".join(name for name, _ in plan.secret_env)
        sys.stderr.write(
            f"launch: warning: --plain-env: the values of {names} will be visible in "
            f"`docker {'service ' if which == 'swarm' else ''}inspect` and stored in plaintext under "
            "/var/lib/docker until the job is removed\n"
        )
    code = backend.run(plan, options, masker=masker, hooks=RunHooks(before_start=record, started=started))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        cls=_RunCommand,
        context_settings={"help_option_names": ["-h", "--help"]},
    )(run)
