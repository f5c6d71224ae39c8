"""`launch secret ...`: manage the encrypted store (RunPod's and Apolo's semantics). No command prints a value.

A value comes from `@FILE` (exact bytes), `-` (stdin), a hidden prompt on a terminal, or, discouraged, the
command line. Messages go to stderr; stdout carries data only (`ls` and `show`), so both pipe cleanly.
"""

import functools
import os
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from launcher.cli import complete, write_json
from launcher.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:  # the store (sqlite3, json) loads only when a command runs, not for --help
    from launcher.store import SecretInfo, Store, UsageRecord

app = typer.Typer(
    help="Manage the encrypted secret store. No command ever prints a secret's value; there is no `get`.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help printed as written: see launcher/cli/main.py
    no_args_is_help=True,
)

_VALUE_HELP = (
    "@FILE (its exact bytes), - (stdin, less one trailing newline; @/dev/stdin keeps every byte), or nothing (stdin"
    " too). On a terminal, - and nothing ask for the value without echo. A value typed here instead is visible in"
    " shell history and the process list."
)
NameArg = Annotated[
    str,
    typer.Argument(
        help="The secret's name: letters, digits, '_', '.', '-'.",
        show_default=False,
        autocompletion=complete.secret_name,
    ),
]
ValueArg = Annotated[str | None, typer.Argument(help=_VALUE_HELP, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class KeyKind(StrEnum):
    keyfile = "keyfile"
    passphrase = "passphrase"


@app.command()
def add(
    name: NameArg,
    value: ValueArg = None,
    description: Annotated[str, typer.Option("--description", "-d", help="What the secret is for.")] = "",
) -> None:
    """Add a secret. A name that exists already is refused: change it with `launch secret edit`.

    Examples: `launch secret add db-pass` (asks), `launch secret add tls-key @key.pem`,
    `echo "$TOKEN" | launch secret add api-token`.
    """
    store = _open_store()
    if store.exists(name):  # before asking for a value that would be thrown away
        from launcher.store import already_exists

        raise already_exists(name)
    info = store.add(name, _read_value(name, value), description)
    _note(f"added secret '{info.name}' (version {info.version})")


@app.command()
def edit(
    name: NameArg,
    value: ValueArg = None,
    description: Annotated[str | None, typer.Option("--description", "-d", help="A new description.")] = None,
) -> None:
    """Change a secret's value (a new version) and/or its description. The value is asked for if neither is given."""
    store = _open_store()
    store.require([name])
    new_value = _read_value(name, value) if value is not None or description is None else None
    from launcher.app.secrets import edit as edit_secret

    info = edit_secret(name, new_value, description)
    _note(f"updated secret '{info.name}' (version {info.version})")


@app.command("ls")
def list_secrets(as_json: JsonOpt = False) -> None:
    """List the secrets: names, versions, times and descriptions, never values."""
    secrets = _open_store().list()
    if as_json:
        write_json([_info_dict(s) for s in secrets])
    elif secrets:
        header = ("NAME", "VERSION", "UPDATED", "CREATED", "DESCRIPTION")
        rows = [(s.name, str(s.version), _local(s.updated), _local(s.created), _clean(s.description)) for s in secrets]
        _print(_table([header, *rows]))
    else:
        _note("no secrets yet; add one with `launch secret add NAME`")


@app.command()
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """Show a secret's details and where it was last used, never its value."""
    info = _open_store().info(name)
    if as_json:
        write_json(_info_dict(info, with_last_use=True))
        return
    fields = {
        "name": info.name,
        "description": _clean(info.description),
        "version": str(info.version),
        "size": f"{info.size} bytes",
        "created": _local(info.created),
        "updated": _local(info.updated),
        "last used": _describe_use(info.last_used, info.name),
    }
    _print("\n".join(f"{key + ':':<13}{value}".rstrip() for key, value in fields.items()))


@app.command()
def rm(
    names: Annotated[
        list[str],
        typer.Argument(
            help="The secrets to delete.", show_default=False, metavar="NAME", autocompletion=complete.secret_name
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to type each name to confirm.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete even secrets that running jobs use.")] = False,
) -> None:
    """Delete secrets, after you type each name to confirm (read from stdin when it is not a terminal)."""
    from launcher.app.secrets import check_not_in_use

    names = list(dict.fromkeys(names))
    store = _open_store()
    store.require(names)
    check_not_in_use(names, force, warn=_note)
    if not yes:
        _confirm_removal(names)
    store.remove(names)
    _note(f"deleted {_quoted(names)}")


@app.command("import")
def import_dotenv(
    file: Annotated[Path, typer.Argument(help="A dotenv file: KEY=VALUE lines.", show_default=False)],
    description: Annotated[str, typer.Option("--description", "-d", help="For every imported secret.")] = "",
) -> None:
    """Import a dotenv file's entries as secrets, in one transaction. Existing names are skipped, not changed."""
    from launcher.dotenv import parse

    try:
        text = _read_file(file).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{file}: not UTF-8 text") from None
    entries = parse(text, filename=str(file))
    result = _open_store().import_entries([(e.name, e.value.encode()) for e in entries], description)
    for name, reason in result.skipped:
        _note(f"skipped {name}: {reason}")
    if result.added:
        _note(f"imported {_quoted(result.added)} from {file}")
        _note(f"the values are now in the encrypted store; you may delete {file}")
    else:
        _note(f"imported nothing from {file}")


@app.command("rotate-key")
def rotate_key(
    to: Annotated[KeyKind | None, typer.Option("--to", help="Switch to a key file or a passphrase.")] = None,
) -> None:
    """Re-wrap the store's data key under a new key file or passphrase (LAUNCH_NEW_PASSPHRASE, or asked)."""
    store = _open_store()
    store.rotate_key(to.value if to else None)
    protection = {KeyKind.keyfile: "; a key file protects it now", KeyKind.passphrase: "; a passphrase protects it now"}
    _note(f"rotated the store's key{protection.get(to, '')}")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="secret")


# -- values ----------------------------------------------------------------------------------------------------


def _read_value(name: str, source: str | None) -> bytes:
    """The value `source` points at: @FILE, - (stdin), None (a prompt on a terminal, else stdin), or itself."""
    if source is None or source == "-":
        return _prompt_value(name) if _stdin_is_terminal() else _read_stdin()
    if source.startswith("@"):
        if source == "@":
            raise UsageError("@ must be followed by a file name")
        from launcher.store import MAX_VALUE_BYTES

        return _read_file(Path(source[1:]), MAX_VALUE_BYTES)
    _note(
        "warning: a value given as an argument is visible in shell history and the process list;"
        " use - (stdin) or leave it out to be asked for it"
    )
    return os.fsencode(source)


def _read_stdin() -> bytes:
    """All of stdin, less one trailing newline (`echo $TOKEN | launch secret add k` stores just the token); never
    more than the largest value and a line ending."""
    from launcher.inputs import describe
    from launcher.store import MAX_VALUE_BYTES

    data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 3)
    if len(data) > MAX_VALUE_BYTES + 2:
        raise UsageError(f"the value on stdin is larger than the limit of {describe(MAX_VALUE_BYTES)}")
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data


def _prompt_value(name: str) -> bytes:
    """Ask for the value without echo; getpass writes its prompt to the terminal itself, never to stdout."""
    import getpass

    try:
        return getpass.getpass(f"Value of secret '{name}' (input hidden): ").encode()
    except EOFError:
        raise UsageError(f"no value given for secret '{name}'") from None


def _read_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of the file at `path` (at most `limit`, else launcher.inputs' bound for files)."""
    from launcher.inputs import MAX_FILE_BYTES, read_limited

    try:
        return read_limited(path, limit or MAX_FILE_BYTES)
    except FileNotFoundError:
        raise NotFound(f"file {path} not found") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _confirm_removal(names: Sequence[str]) -> None:
    """Ask for each name to be typed back (RunPod's confirmation); Conflict, and nothing deleted, on a mismatch."""
    for name in names:
        sys.stderr.write(f"Type the name of the secret to delete ({name}): ")
        sys.stderr.flush()
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if not _stdin_is_terminal():
            sys.stderr.write("\n")  # a terminal echoes the answer and its newline; elsewhere, end the line here
        if not answer:
            raise Conflict("no confirmation given; nothing was deleted (--yes skips the confirmation)")
        if answer.strip() != name:
            raise Conflict(f"the confirmation did not match '{name}'; nothing was deleted")


# -- output ----------------------------------------------------------------------------------------------------


def _open_store() -> "Store":
    from launcher.store import Store

    return Store.open()


def _note(message: str) -> None:
    """A message for the user: stderr, so stdout stays data."""
    typer.echo(f"launch: {message}", err=True)


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")


def _table(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns; the last one is not padded, so lines end where their text does."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ("  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _quoted(names: Sequence[str]) -> str:
    noun = "secret" if len(names) == 1 else f"{len(names)} secrets:"
    return f"{noun} " + ", ".join(f"'{n}'" for n in names)


def _clean(text: str) -> str:
    """`text` on one line without control characters (a description could hold terminal escapes)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " for c in text)


def _local(timestamp: float) -> str:
    return _local_minute(int(timestamp // 60))


@functools.cache
def _local_minute(minute: int) -> str:
    """Local time to the minute, computed once per minute: `ls` of a thousand secrets calls this 2,000 times."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(minute * 60))


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _describe_use(record: "UsageRecord | None", name: str) -> str:
    if record is None:
        return "never"
    return _clean(
        f"{_local(record.time)} by job {record.job} (image {record.image}, {record.backend}),"
        f" version {record.secrets[name]}"
    )


def _info_dict(info: "SecretInfo", with_last_use: bool = False) -> dict:
    data = {
        "name": info.name,
        "description": info.description,
        "version": info.version,
        "size": info.size,
        "created": _utc(info.created),
        "updated": _utc(info.updated),
    }
    if with_last_use:
        use = info.last_used
        data["last_used"] = use and {
            "time": _utc(use.time),
            "job": use.job,
            "image": use.image,
            "backend": use.backend,
            "version": use.secrets[info.name],
        }
    return data
