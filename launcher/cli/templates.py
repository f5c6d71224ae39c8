"""`launch templates ls` and `launch templates show NAME`: the built-in pod templates and the saved ones.

`launch run NAME` runs a built-in or saved template by name when NAME is not a file (`launcher.app.templates.find`);
`show` prints one so it can be saved and edited (`launch templates show jupyter > my-jupyter.yaml`). Templates are
saved from the console (`launch ui`) into the launch home.
"""

import sys

import typer

from launcher.cli import complete, write_json


def register(app: typer.Typer) -> None:
    """Add the `templates` command group to `app`."""
    group = typer.Typer(
        help="The pod templates, built-in and saved: list them, or print one to start your own.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # help printed as written: see launcher/cli/main.py
    )
    group.command("ls")(list_templates)
    group.command("show")(show_template)
    app.add_typer(group, name="templates")


def list_templates(
    as_json: bool = typer.Option(False, "--json", help="A JSON list of {name, description, path, builtin}."),
) -> None:
    """List the built-in templates, then your saved ones, with what each is for."""
    from launcher.app.templates import list_templates as templates

    found = templates()
    if as_json:
        write_json([t.to_dict() for t in found])
        return
    width = max((len(b.name) for b in found), default=4)
    lines = [f"{'NAME':<{width}}  DESCRIPTION"]
    lines += [f"{b.name:<{width}}  {b.description.splitlines()[0] if b.description else ''}" for b in found]
    sys.stdout.write("\n".join(lines) + "\n")


def show_template(
    name: str = typer.Argument(..., help="A name from `launch templates ls`.", autocompletion=complete.template),
) -> None:
    """Print a template's YAML (save it to a file to make your own)."""
    from launcher.app.templates import text

    sys.stdout.write(text(name))
