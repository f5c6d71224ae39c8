"""`launch ps`, `logs`, `stop`, `rm`, `inspect`: adapters of `launcher.app.jobs` (which jobs, masking, the rules);
here only arguments and rendering."""

import sys

import typer

from launcher.cli import complete, write_json


def _registry():
    """This store's jobs across backends (shell completion uses it too)."""
    from launcher.app.jobs import registry

    return registry()


def ps(
    all: bool = typer.Option(False, "--all", "-a", help="Show ended jobs too."),
    all_stores: bool = typer.Option(
        False, "--all-stores", help="Show the jobs of every store (other users') too, not only this store's."
    ),
    as_json: bool = typer.Option(False, "--json", help="A JSON list on stdout."),
) -> None:
    """List this store's jobs: id, name, image, status, age, exit code, the secrets each uses."""
    from launcher.app.jobs import list_jobs

    rows = list_jobs(all=all, all_stores=all_stores, warn=_note)
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

    def line(r) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() + "\n"

    # a sweep's jobs together under one line naming it, where its newest job would be
    sys.stdout.write(line(table[0]))
    groups: dict[str | None, list[int]] = {}
    order: list[str | int] = []
    for index, row in enumerate(rows):
        sweep = row.get("sweep")
        if sweep is None:
            order.append(index)
            continue
        if sweep not in groups:
            groups[sweep] = []
            order.append(sweep)
        groups[sweep].append(index)
    for item in order:
        if isinstance(item, int):
            sys.stdout.write(line(table[item + 1]))
            continue
        from launcher.app.sweep import waiting

        members = [rows[i] for i in groups[item]]
        running = sum(1 for m in members if m["status"] == "running")
        left = waiting(item)
        more = f", {left} waiting" if left else ""
        sys.stdout.write(f"sweep {item}: {len(members)} jobs ({running} running{more})\n")
        for i in groups[item]:
            sys.stdout.write("  " + line(table[i + 1]))
    if any(row["stale_secrets"] for row in rows):
        sys.stderr.write("launch: (old) marks a running job holding a secret edited since it started\n")


def logs(
    job: str = typer.Argument(..., help="Job id, id prefix or name.", autocompletion=complete.job),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new output."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
    no_mask: bool = typer.Option(False, "--no-mask", help="Do not mask secret values."),
) -> None:
    """Show a job's output (stdout to stdout, stderr to stderr), secret values masked."""
    from launcher.app import jobs as use
    from launcher.runtime.common import pump

    streams, masker = use.logs(job, follow=follow, tail=tail, mask=not no_mask, warn=_note)
    try:
        pump(streams, masker)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C ends `logs -f`: the usual way out, not an error


def stop(
    jobs: list[str] = typer.Argument(
        ..., help="Job ids, prefixes or names.", metavar="JOB", autocompletion=complete.job
    ),
    time_: int = typer.Option(10, "--time", "-t", help="Seconds to wait before killing."),
) -> None:
    """Stop running jobs (SIGTERM, then SIGKILL after the grace period)."""
    from launcher.app.jobs import stop as stop_jobs

    stop_jobs(jobs, grace=time_, done=lambda job_id: _note(f"stopped {job_id}"))


def rm(
    jobs: list[str] = typer.Argument(
        ..., help="Job ids, prefixes or names.", metavar="JOB", autocompletion=complete.job
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Stop and remove running jobs too."),
) -> None:
    """Remove ended jobs (running ones with --force)."""
    from launcher.app.jobs import remove

    remove(jobs, force=force, done=lambda job_id: _note(f"removed {job_id}"))


def inspect(
    job: str = typer.Argument(..., help="Job id, id prefix or name.", autocompletion=complete.job),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """The job as it was run: template, image, command, mounts, secret names and versions; never a value."""
    from launcher.app.jobs import inspect as inspect_job

    data = inspect_job(job)
    if as_json:
        write_json(data, sort_keys=True)
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _note(message: str) -> None:
    sys.stderr.write(f"launch: {message}\n")


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("stop")(stop)
    app.command("rm")(rm)
    app.command("inspect")(inspect)
