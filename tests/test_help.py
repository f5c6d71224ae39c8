"""`--help` through the real CLI (issue 13): every help text printed as written (no Rich markup or emoji codes:
`secret:KEY:/path` stays that), at a narrow and a wide terminal; metavars as click writes them (none on a flag,
TEXT/INTEGER or the value's meaning on an option, the name on an argument), never this Typer's `<str>`."""

from __future__ import annotations

import re

import pytest
import typer.main
from conftest import run_launch

from launcher.cli.main import build_app


def _commands(command, path=()):
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(build_app())))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _help(path, columns: int) -> str:
    result = run_launch(*path, "--help", env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    return result.stdout.decode()


@pytest.mark.parametrize("columns", [80, 200])
def test_every_help_text_prints_as_written(columns):
    """Each command's description and each parameter's help appear verbatim (wrapping aside) in its --help."""
    assert len(COMMANDS) > 15
    colon_words = 0
    for path, command in COMMANDS:
        shown = _flat(_help(path, columns))
        texts = [param.help for param in command.params if getattr(param, "help", None)]
        texts.append(command.help or "")
        for text in texts:
            assert _flat(text) in shown, (path, text)
            colon_words += len(re.findall(r":\w+:", text))
        assert "🔑" not in shown
    assert colon_words >= 1  # `secret:KEY:/path` is among them


@pytest.mark.parametrize("columns", [80, 200])
def test_run_help_shows_the_volume_spec(columns):
    shown = _help(["run"], columns)
    assert "secret:KEY:/path, or HOST:/path[:ro|rw]" in _flat(shown)
    assert shown.isascii()


def test_no_type_labels_and_flags_have_no_metavar():
    for path, _ in COMMANDS:
        shown = _help(path, 80)
        assert not re.search(r"<\w+(\[\w+\])?>", shown), (path, shown)
        assert re.search(r"^  -h, --help +Show this message and exit\.$", shown, re.M), (path, shown)
    run = _help(["run"], 80)
    for line in ("-e, --env VAR=VALUE", "-v, --volume SPEC", "--life-span DURATION", "--image IMAGE", "--name NAME"):
        assert re.search(rf"^  {re.escape(line)}  ", run, re.M), (line, run)
    for flag in ("--rm", "-d, --detach", "--dry-run", "--no-mask"):
        assert re.search(rf"^  {re.escape(flag)} +[A-Z][a-z]", run, re.M), (flag, run)
    assert "Usage: launch run [OPTIONS] [TEMPLATE] [-- COMMAND ARGS...]" in run
    assert re.search(r"^  TEMPLATE +A template file", run, re.M)
    assert re.search(r"^  --tail N  ", _help(["logs"], 80), re.M)
    assert re.search(r"^  -t, --time SECONDS  ", _help(["stop"], 80), re.M)
    assert re.search(r"^  -d, --description TEXT  ", _help(["secret", "add"], 80), re.M)
    assert re.search(r"^  --to \[keyfile\|passphrase\]  ", _help(["secret", "rotate-key"], 80), re.M)
    assert "Usage: launch secret add [OPTIONS] NAME [VALUE]" in _help(["secret", "add"], 80)
    assert "Usage: launch secret rm [OPTIONS] NAME..." in _help(["secret", "rm"], 80)


def test_a_missing_argument_is_named_as_in_the_usage():
    result = run_launch("secret", "show")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "launch: error: Missing argument 'NAME'. (see 'launch secret show -h')"
    ]
