"""`launch secret ...` end to end: in-process through Typer's CliRunner, and as real processes (exit codes, one
error line, no traceback, values never in any output; prompts on a real pseudo-terminal)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import termios
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import launch_cmd, run_launch
from typer.testing import CliRunner

from launcher import crypto
from launcher.cli.main import app
from launcher.errors import Conflict, ExitCode
from launcher.store import Store

VALUE = "s3cr3t-VALUE-that-must-never-be-printed"


def invoke(*args: str, input: bytes | str | None = None):
    """Run `launch ARGS` in-process (the runner keeps stdout and stderr apart); no value in either."""
    result = CliRunner().invoke(app, list(args), input=input)
    assert VALUE not in result.stdout + result.stderr
    return result


def value_of(name: str) -> bytes:
    return Store.open().reveal([name])[name].value


def names() -> list[str]:
    return [s.name for s in Store.open().list()]


# -- add: every value source -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "stored"),
    [(b"tok\n", b"tok"), (b"tok\r\n", b"tok"), (b"tok\n\n", b"tok\n"), (b"tok", b"tok"), (b" tok \n", b" tok ")],
)
@pytest.mark.parametrize("source", [["-"], []], ids=["dash", "no-value"])
def test_add_reads_stdin_dropping_one_trailing_newline(source, stdin, stored):
    result = invoke("secret", "add", "k", *source, input=stdin)
    assert result.exit_code == 0, result.exception
    assert result.stdout == ""
    assert result.stderr == "launch: added secret 'k' (version 1)\n"
    assert value_of("k") == stored


def test_add_from_a_file_keeps_its_exact_bytes(tmp_path):
    data = b"line one\r\n\x00\xff binary\n\n"
    (tmp_path / "v.bin").write_bytes(data)
    result = invoke("secret", "add", "k", f"@{tmp_path / 'v.bin'}", "--description", "a file")
    assert result.exit_code == 0, result.exception
    assert value_of("k") == data
    assert Store.open().info("k").description == "a file"


def test_a_value_on_the_command_line_works_with_a_warning():
    result = invoke("secret", "add", "k", "from-argv", "-d", "d")
    assert result.exit_code == 0, result.exception
    assert "warning: a value given as an argument is visible in shell history" in result.stderr
    assert "from-argv" not in result.stdout + result.stderr
    assert value_of("k") == b"from-argv"


def test_adding_an_existing_name_changes_nothing_and_points_at_edit():
    invoke("secret", "add", "k", "-", input=VALUE)
    result = invoke("secret", "add", "k", "-", input="other")
    assert isinstance(result.exception, Conflict)
    assert "launch secret edit k" in str(result.exception)
    assert value_of("k") == VALUE.encode()


# -- ls and show -----------------------------------------------------------------------------------------------


def test_ls_of_an_empty_store_prints_no_data():
    result = invoke("secret", "ls")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no secrets yet" in result.stderr
    assert json.loads(invoke("secret", "ls", "--json").stdout) == []


def test_ls_shows_metadata_never_values():
    invoke("secret", "add", "beta", "-", "-d", "the\x1b[31m second", input=VALUE)
    invoke("secret", "add", "alpha", "-", input=VALUE + "2")
    invoke("secret", "edit", "alpha", "-", input=VALUE + "3")
    table = invoke("secret", "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "UPDATED", "CREATED", "DESCRIPTION"]
    assert [line.split()[:2] for line in table[1:]] == [["alpha", "2"], ["beta", "1"]]
    assert table[2].endswith("the [31m second")  # no raw escape sequence reaches the terminal

    listed = json.loads(invoke("secret", "ls", "--json").stdout)
    assert [(s["name"], s["version"], s["size"], s["description"]) for s in listed] == [
        ("alpha", 2, len(VALUE) + 1, ""),
        ("beta", 1, len(VALUE), "the\x1b[31m second"),
    ]
    assert all(s["created"].endswith("Z") and s["updated"] >= s["created"] for s in listed)


def test_show_tells_details_and_last_use():
    invoke("secret", "add", "k", "-", "-d", "db password", input=VALUE)
    text = invoke("secret", "show", "k").stdout
    assert "description: db password" in text and "version:     1" in text and "last used:   never" in text
    assert f"size:        {len(VALUE)} bytes" in text
    assert json.loads(invoke("secret", "show", "k", "--json").stdout)["last_used"] is None

    Store.open().record_use("job-42", "postgres:16", {"k": 1})
    assert "by job job-42 (image postgres:16, docker), version 1" in invoke("secret", "show", "k").stdout
    shown = json.loads(invoke("secret", "show", "k", "--json").stdout)
    assert {k: shown[k] for k in ("name", "description", "version", "size")} == {
        "name": "k",
        "description": "db password",
        "version": 1,
        "size": len(VALUE),
    }
    assert {k: shown["last_used"][k] for k in ("job", "image", "backend", "version")} == {
        "job": "job-42",
        "image": "postgres:16",
        "backend": "docker",
        "version": 1,
    }


# -- edit ------------------------------------------------------------------------------------------------------


def test_edit_changes_the_value_and_or_the_description(tmp_path):
    invoke("secret", "add", "k", "-", input="v1")
    result = invoke("secret", "edit", "k", "-", input="v2\n")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "launch: updated secret 'k' (version 2)\n"
    assert value_of("k") == b"v2"

    invoke("secret", "edit", "k", "--description", "new words", input="not read")
    assert value_of("k") == b"v2" and Store.open().info("k").version == 2
    assert Store.open().info("k").description == "new words"

    invoke("secret", "edit", "k", input="v3")  # neither: the value, from stdin when it is not a terminal
    (tmp_path / "v4").write_bytes(b"v4\n")
    invoke("secret", "edit", "k", f"@{tmp_path / 'v4'}", "-d", "both")
    assert (value_of("k"), Store.open().info("k").version) == (b"v4\n", 4)
    assert Store.open().info("k").description == "both"


# -- rm --------------------------------------------------------------------------------------------------------


@pytest.fixture
def three():
    for name in ("a", "b", "c"):
        invoke("secret", "add", name, "-", input=VALUE)


def test_rm_deletes_after_each_name_is_typed_back(three):
    result = invoke("secret", "rm", "a", "b", input="a\nb\n")
    assert result.exit_code == 0, result.exception
    assert "Type the name of the secret to delete (a): " in result.stderr
    assert "Type the name of the secret to delete (b): " in result.stderr
    assert result.stdout == ""
    assert names() == ["c"]


@pytest.mark.parametrize("answers", ["a\nc\n", "a\n", "", "A\nb\n"], ids=["wrong", "eof", "nothing", "case"])
def test_rm_without_the_right_confirmation_deletes_nothing(three, answers):
    result = invoke("secret", "rm", "a", "b", input=answers)
    assert isinstance(result.exception, Conflict)
    assert result.exception.code == ExitCode.CONFLICT
    assert names() == ["a", "b", "c"]


def test_rm_yes_skips_the_confirmation(three):
    result = invoke("secret", "rm", "c", "a", "--yes", "--force")
    assert result.exit_code == 0, result.exception
    assert "Type the name" not in result.stderr
    assert "deleted 2 secrets: 'c', 'a'" in result.stderr
    assert names() == ["b"]


# -- import ----------------------------------------------------------------------------------------------------


def test_import_adds_what_it_can_and_reports_the_rest(tmp_path):
    invoke("secret", "add", "EXISTS", "-", input="old")
    dotenv = tmp_path / ".env"
    content = f'# comment\nexport TOKEN={VALUE}\nEXISTS=new\nEMPTY=\nQUOTED="two\\nlines"\nTOKEN=again\n'
    dotenv.write_text(content)
    result = invoke("secret", "import", str(dotenv), "-d", "imported")
    assert result.exit_code == 0, result.exception
    assert result.stdout == ""
    err = result.stderr
    assert "imported 2 secrets: 'TOKEN', 'QUOTED'" in err
    assert "skipped EXISTS: exists" in err and "skipped EMPTY: empty value" in err and "skipped TOKEN: repeated" in err
    assert f"you may delete {dotenv}" in err
    assert (value_of("TOKEN"), value_of("QUOTED"), value_of("EXISTS")) == (VALUE.encode(), b"two\nlines", b"old")
    assert Store.open().info("TOKEN").description == "imported"
    assert dotenv.read_text() == content


# -- rotate-key ------------------------------------------------------------------------------------------------


def test_rotate_key_switches_to_a_passphrase_and_back(launch_home, monkeypatch):
    invoke("secret", "add", "k", "-", input=VALUE)
    monkeypatch.setattr(crypto.ScryptParams, "fresh", classmethod(lambda cls: cls(salt=os.urandom(16), n=2**14)))
    monkeypatch.setenv("LAUNCH_NEW_PASSPHRASE", "pass phrase")
    result = invoke("secret", "rotate-key", "--to", "passphrase")
    assert result.exit_code == 0, result.exception
    assert "a passphrase protects it now" in result.stderr
    assert not (launch_home / "key").exists()
    monkeypatch.setenv("LAUNCH_PASSPHRASE", "pass phrase")
    assert invoke("secret", "rotate-key", "--to", "keyfile").exit_code == 0
    monkeypatch.delenv("LAUNCH_PASSPHRASE")
    assert value_of("k") == VALUE.encode()


# -- real processes: errors are one line with a documented code ------------------------------------------------


def _make(*secrets: str) -> None:
    for name in secrets:
        Store.open().add(name, VALUE.encode())


def _setup_loose_key(home: Path) -> None:
    _make("k")
    (home / "key").chmod(0o644)


def _setup_other_store_id(home: Path) -> None:
    _make("k")
    with closing(sqlite3.connect(home / "store.db")) as db, db:
        db.execute("UPDATE store SET store_id = ?", (os.urandom(16),))


def _setup_passphrase(home: Path) -> None:
    """A store with secret 'k' behind the passphrase 'right', derived at n=2**14 to keep the tests fast (the store
    keeps its scrypt parameters, so the processes that open it use these; test_store.py uses the default cost)."""
    _make("k")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAUNCH_NEW_PASSPHRASE", "right")
        patch.setattr(crypto.ScryptParams, "fresh", classmethod(lambda cls: cls(salt=os.urandom(16), n=2**14)))
        Store.open().rotate_key("passphrase")


ERROR_CASES = {  # setup, arguments, stdin, exit code, part of the message
    "invalid-name": (None, ["add", ".k", "-"], VALUE, ExitCode.USAGE, "invalid secret name '.k': use 1 to 253"),
    "exists": (lambda h: _make("k"), ["add", "k", "-"], VALUE, ExitCode.CONFLICT, "launch secret edit k"),
    "missing-file": (None, ["add", "k", "@/nonexistent/v"], "", ExitCode.NOT_FOUND, "/nonexistent/v not found"),
    "empty-stdin": (None, ["add", "k", "-"], "\n", ExitCode.USAGE, "empty value"),
    "too-big": (None, ["add", "k", "-"], "x" * (1024 * 1024 + 1), ExitCode.USAGE, "over the limit of 1 MiB"),
    "show-missing": (None, ["show", "nope"], "", ExitCode.NOT_FOUND, "secret 'nope' not found"),
    "edit-missing": (None, ["edit", "nope", "-"], VALUE, ExitCode.NOT_FOUND, "secret 'nope' not found"),
    "rm-missing": (lambda h: _make("k"), ["rm", "k", "x", "y"], "k\n", ExitCode.NOT_FOUND, "secrets 'x', 'y' not"),
    "rm-wrong": (lambda h: _make("k"), ["rm", "k"], "x\n", ExitCode.CONFLICT, "did not match 'k'; nothing was"),
    "rm-no-answer": (lambda h: _make("k"), ["rm", "k"], "", ExitCode.CONFLICT, "no confirmation given"),
    "import-missing": (None, ["import", "/nonexistent/.env"], "", ExitCode.NOT_FOUND, "/nonexistent/.env not found"),
    "import-malformed": (None, ["import", "/dev/stdin"], f"A=1\n{VALUE}\n", ExitCode.USAGE, "/dev/stdin:2: not a"),
    "readable-key": (_setup_loose_key, ["edit", "k", "-"], VALUE, ExitCode.STORE, "mode 0644"),
    "other-store-id": (_setup_other_store_id, ["add", "k2", "-"], VALUE, ExitCode.STORE, "does not open this store"),
    "no-passphrase": (_setup_passphrase, ["edit", "k", "-"], VALUE, ExitCode.STORE, "set LAUNCH_PASSPHRASE"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_are_one_line_with_a_documented_exit_code(case, launch_home):
    setup, args, stdin, code, message = ERROR_CASES[case]
    if setup:
        setup(launch_home)
    before = names()
    result = run_launch("secret", *args, input=stdin)
    assert_one_error_line(result, code, message)
    assert names() == before  # nothing half-done


def assert_one_error_line(result: subprocess.CompletedProcess, code: int, message: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert result.stdout == b""
    error_lines = [line for line in err.splitlines() if line.startswith("launch: error: ")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err
    assert VALUE not in err


def test_a_wrong_passphrase_is_a_store_error(launch_home):
    _setup_passphrase(launch_home)
    result = run_launch("secret", "edit", "k", "-", input=VALUE, env={"LAUNCH_PASSPHRASE": "wrong"})
    assert_one_error_line(result, ExitCode.STORE, "wrong passphrase")
    assert run_launch("secret", "edit", "k", "-", input="new", env={"LAUNCH_PASSPHRASE": "right"}).returncode == 0
    assert Store.open().info("k").version == 2


def test_usage_errors_from_the_command_line_parser_have_no_traceback():
    result = run_launch("secret", "rotate-key", "--to", "keyring")
    assert_one_error_line(result, ExitCode.USAGE, "--to")
    assert result.stdout == b""


# -- real processes: value sources and imports -----------------------------------------------------------------


def test_at_dev_stdin_keeps_exact_bytes_and_dash_drops_one_newline():
    assert run_launch("secret", "add", "exact", "@/dev/stdin", input=VALUE + "\n").returncode == 0
    assert run_launch("secret", "add", "piped", input=VALUE + "\n").returncode == 0
    assert value_of("exact") == VALUE.encode() + b"\n"
    assert value_of("piped") == VALUE.encode()


def test_ls_never_imports_cryptography():
    _make(*(f"s{i}" for i in range(20)))
    code = (
        "import sys\n"
        "from launcher.cli.main import main\n"
        "try:\n    main(['secret', 'ls'])\n"
        "except SystemExit:\n    pass\n"
        "print('cryptography' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.stderr.strip() == "False"
    assert result.stdout.count("\n") == 21


# -- prompts on a real terminal --------------------------------------------------------------------------------


def run_on_terminal(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[subprocess.Popen, bytes]:
    """Run `launch ARGS` as a user at a terminal would: a pseudo-terminal is its controlling terminal, stdin and
    stderr (stdout stays a pipe, to check that it carries no data). For each (prompt, answer), wait for the prompt
    on the terminal, then type the answer. Returns the finished process and everything the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*launch_cmd(), *args],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    shown = b""
    try:
        for prompt, answer in answers:
            deadline = time.monotonic() + 30
            while prompt not in shown:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    pytest.fail(f"no prompt {prompt!r} on the terminal, which showed: {shown!r}")
                if select.select([master], [], [], 0.1)[0]:
                    shown += os.read(master, 1024)
            shown = shown.replace(prompt, b"<prompt>", 1)
            os.write(master, answer + b"\n")
        proc.wait(timeout=30)
        while select.select([master], [], [], 0.1)[0]:
            shown += os.read(master, 1024)
    except OSError:  # EIO: the terminal went away with the process
        pass
    finally:
        os.close(master)
        proc.kill()
    return proc, shown


def test_on_a_terminal_the_value_is_asked_for_without_echo():
    proc, shown = run_on_terminal(["secret", "add", "k"], [(b"Value of secret 'k' (input hidden): ", VALUE.encode())])
    assert proc.returncode == 0, shown
    assert b"added secret 'k' (version 1)" in shown
    assert VALUE.encode() not in shown and proc.stdout.read() == b""
    assert value_of("k") == VALUE.encode()


def test_on_a_terminal_the_passphrase_is_asked_for_without_echo(launch_home):
    _setup_passphrase(launch_home)
    proc, shown = run_on_terminal(
        ["secret", "edit", "k", "-"],  # "-" on a terminal: asked for, not echoed
        [
            (b"Value of secret 'k' (input hidden): ", b"new-value"),
            (b"Passphrase of the launch secret store: ", b"right"),
        ],
    )
    assert proc.returncode == 0, shown
    assert b"new-value" not in shown and b"right" not in shown
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAUNCH_PASSPHRASE", "right")
        assert value_of("k") == b"new-value"


def test_on_a_terminal_rm_asks_for_the_name():
    _make("k")
    proc, shown = run_on_terminal(["secret", "rm", "k"], [(b"Type the name of the secret to delete (k): ", b"k")])
    assert proc.returncode == 0, shown
    assert b"<prompt>k\r\n" in shown  # the name is echoed as typed
    assert names() == []


def test_on_a_terminal_a_new_passphrase_is_asked_for_twice(launch_home):
    _make("k")
    new, again = b"New passphrase of the launch secret store: ", b"Type it again: "
    proc, shown = run_on_terminal(["secret", "rotate-key", "--to", "passphrase"], [(new, b"one"), (again, b"two")])
    assert proc.returncode == ExitCode.USAGE and b"the two passphrases differ" in shown
    assert (launch_home / "key").exists()
    proc, shown = run_on_terminal(["secret", "rotate-key", "--to", "passphrase"], [(new, b"twice"), (again, b"twice")])
    assert proc.returncode == 0, shown
    assert b"twice" not in shown and not (launch_home / "key").exists()
