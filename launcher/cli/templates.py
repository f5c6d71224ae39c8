"""`launch templates ls` and `launch templates show NAME`: the built-in pod templates.

`launch run NAME` runs a built-in by name when NAME is not a file (`launcher.template.find`); `show` prints one so
it can be saved and edited (`launch templates show jupyter > my-jupyter.yaml`).
"""

import sys

import typer

from launcher.cli import complete, write_json
from launcher.errors import NotFound


def register(app: typer.Typer) -> None:
    """Add the `templates` command group to `app`."""
    group = typer.Typer(
        help="The built-in pod templates: list them, or print one to start your own.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # help printed as written: see launcher/cli/main.py
    )
    group.command("ls")(list_templates)
    group.command("show")(show_template)
    app.add_typer(group, name="templates")


def list_templates(
    as_json: bool = typer.Option(False, "--json", help="A JSON list of {name, description, path}."),
) -> None:
    """List the built-in templates with what each is for."""
    from launcher.template import builtins

    found = builtins()
    if as_json:
        rows = [{"name": b.name, "description": b.description, "path": str(b.path)} for b in found]
        write_json(rows)
        return
    width = max((len(b.name) for b in found), default=4)
    lines = [f"{'NAME':<{width}}  DESCRIPTION"]
    lines += [f"{b.name:<{width}}  {b.description.splitlines()[0] if b.description else ''}" for b in found]
    sys.stdout.write("\n".join(lines) + "\n")


def show_template(
    name: str = typer.Argument(..., help="A name from `launch templates ls`.", autocompletion=complete.template),
) -> None:
    """Print a built-in template's YAML (save it to a file to make your own)."""
    from launcher.template import builtin_names, builtin_path

    path = builtin_path(name)
    if path is None:
        raise NotFound(f"no built-in template {name!r} (built-ins: {', '.join(builtin_names()) or 'none'})")
    sys.stdout.write(path.read_text(encoding="utf-8"))
