"""`launch run`: the command line parsed into a `launcher.app.run.RunRequest`; the use case does the rest."""

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


def run(
    ctx: typer.Context,
    template: str | None = typer.Argument(
        None, help="A template file, or the name of a built-in or saved template.", autocompletion=complete.template
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
    matrix: list[str] = typer.Option(
        [],
        "--matrix",
        help="A sweep: KEY=V1,V2,... (repeatable); one detached job per combination, KEY upper-cased in its env.",
    ),
    max_parallel: int | None = typer.Option(
        None, "--max-parallel", help="A sweep runs at most N jobs at once; the rest start as others end."
    ),
    backend_name: str | None = typer.Option(
        None,
        "--backend",
        help="docker (the local engine, default), swarm or kubernetes; also $LAUNCH_BACKEND or `backend:`.",
    ),
    context: str | None = typer.Option(
        None, "--context", help="kubernetes: the kubeconfig context (default: the current one)."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="kubernetes: the namespace (default: the context's, else default)."
    ),
) -> None:
    """Run a job: resolve its secret references from the store and start it."""
    from launcher.app.run import RunRequest, RunResult
    from launcher.app.sweep import SweepRequest, launch

    request = RunRequest(
        template=template,
        image=image,
        env=tuple(env),
        volumes=tuple(volume),
        env_files=tuple(env_file),
        name=name,
        command=tuple(ctx.meta.get("launch.command") or ()) or None,
        detach=detach,
        remove=rm,
        dry_run=dry_run,
        life_span=life_span,
        plain_env=plain_env,
        mask=not no_mask,
        interactive=interactive,
        read_only=read_only,
        backend=backend_name,
        context=context,
        namespace=namespace,
        environ=os.environ,
    )
    sweep = SweepRequest(request, matrix=tuple(matrix), max_parallel=max_parallel)
    # a sweep's jobs are detached whatever the flags: each one's id is printed once its command runs
    result = launch(sweep, started=_print_id if detach else None, each=_print_id, failed=_failed, warn=_warn)
    if isinstance(result, RunResult):
        if result.plan is not None:
            write_json(result.plan, sort_keys=True)
            return
        raise typer.Exit(result.code)
    if result.plans is not None:
        write_json(result.plans, sort_keys=True)
        return
    waits = f"; {len(result.waiting)} more start as others end (--max-parallel)" if result.waiting else ""
    _warn(f"sweep {result.sweep_id}: {len(result.started)} jobs started{waits}")
    if result.failed:
        total = len(result.started) + len(result.failed) + len(result.waiting)
        _warn(f"error: sweep {result.sweep_id}: {len(result.failed)} of {total} jobs failed to start")
    raise typer.Exit(result.code)


def _print_id(job_id: str) -> None:
    sys.stdout.write(job_id + "\n")
    sys.stdout.flush()


def _failed(name: str, error) -> None:
    sys.stderr.write(f"launch: error: job {name}: {error.message}\n")


def _warn(message: str) -> None:
    sys.stderr.write(f"launch: {message}\n")


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        cls=_RunCommand,
        context_settings={"help_option_names": ["-h", "--help"]},
    )(run)
