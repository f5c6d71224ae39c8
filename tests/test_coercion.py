"""launcher/cli/coercion.py: Typer's parameter coercion without pydantic, for str, list[str], int and flags.
Pure logic and the real command tree; the import side is in test_lazy_imports.py."""

from __future__ import annotations

import pytest
import typer.main
from conftest import run_launch
from typer.testing import CliRunner

from launcher.cli import coercion
from launcher.cli.main import app


def all_params(command):
    yield from command.params
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from all_params(sub)


@pytest.mark.parametrize(
    ("text", "number"),
    [("5", 5), (" 5 ", 5), ("-3", -3), ("+7", 7), ("10.0", 10), ("10.", 10), ("007", 7)],
)
def test_whole_numbers(text, number):
    assert coercion.whole_number(text) == number


@pytest.mark.parametrize("text", ["", " ", "x", "1.5", "1e3", "1_000", "+", "-", "٣", "5 5", "0x10", ".5"])
def test_not_whole_numbers(text):
    assert coercion.whole_number(text) is None


def test_every_plain_parameter_of_the_command_tree_is_covered():
    """Each str, list[str], int and flag parameter (help options included) gets the plain coercion; the others
    (a Path, an enum) keep Typer's. A Typer that moved its internals fails here, not in users' hands."""
    command = typer.main.get_command(app)  # LaunchGroup installs on construction
    coercion.install(command)  # and on the options Typer adds after it (completion), when it parses: here, now
    kinds = set(coercion._kinds().values())
    plain, other = [], []
    for param in all_params(command):
        (plain if type(param._runtime_param) in kinds else other).append(param)
    assert len(plain) >= 40
    assert {p.type_descriptor.annotation.__name__ for p in other} == {"Path", "KeyKind"}
    commands = [command, *command.commands.values(), *command.commands["secret"].commands.values()]
    helps = [c._help_option for c in commands]  # made by install, with the names a context would give
    assert all(type(h._runtime_param) in kinds for h in helps)
    assert all(sorted(h.opts) == ["--help", "-h"] for h in helps)


def test_install_is_idempotent_and_counts():
    command = typer.main.get_command(app)
    assert coercion.install(command) == coercion.install(command) > 40


def test_values_arrive_as_typer_would_give_them():
    """A group of our class: list[str] options become lists, positional lists tuples' lists, a missing str None,
    an int an int, flags booleans, and a default stays as declared: what the commands were written for."""
    demo = typer.Typer(cls=coercion.LaunchGroup)
    seen: dict = {}

    @demo.command()
    def first(
        name: str = typer.Argument(...),
        label: str | None = typer.Option(None, "--label"),
        env: list[str] = typer.Option([], "--env", "-e"),
        count: int = typer.Option(1, "--count"),
        loud: bool = typer.Option(False, "--loud"),
        kind: str = typer.Option("plain", "--kind"),
    ) -> None:
        seen.update(name=name, label=label, env=env, count=count, loud=loud, kind=kind)

    @demo.command()
    def second(items: list[str] = typer.Argument(...)) -> None:
        seen.update(items=items)

    runner = CliRunner()
    result = runner.invoke(demo, ["first", "-e", "A=1", "--env", "B=2", "--count", " 4 ", "--loud", "n"])
    assert result.exit_code == 0, result.output
    assert seen == {"name": "n", "label": None, "env": ["A=1", "B=2"], "count": 4, "loud": True, "kind": "plain"}
    assert type(seen["env"]) is list
    result = runner.invoke(demo, ["second", "x", "y"])
    assert result.exit_code == 0, result.output
    assert list(seen["items"]) == ["x", "y"]
    result = runner.invoke(demo, ["first", "n", "--count", "four"])
    assert result.exit_code == 2
    assert "'four' is not a whole number" in result.output
    result = runner.invoke(demo, ["first"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_bad_int_is_one_line_exit_2():
    result = run_launch("logs", "job", "--tail", "lots")
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines == ["launch: error: Invalid value for '--tail': 'lots' is not a whole number (see 'launch logs -h')"]


def test_good_int_reaches_the_command():
    result = run_launch("logs", "no-such-job", "--tail", " 5 ")
    assert result.returncode == 3  # not found: the option was accepted
    assert b"no job 'no-such-job'" in result.stderr


def test_a_positional_list_reaches_the_command():
    rm = run_launch("rm", "nope-1", "nope-2")
    assert rm.returncode == 3
    assert b"nope-1" in rm.stderr
