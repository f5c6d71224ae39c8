"""Hostile and careless input (issue 17): every bad input gets one line on stderr and a documented exit code,
nothing is half-done, and no input is read without a bound. Through the real CLI unless noted."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
from contextlib import closing

import pytest
from conftest import TEST_IMAGE, detach, job_containers, launch_cmd, run_launch

from launcher import overrides
from launcher.cli.main import one_line
from launcher.errors import NotFound, StoreError, UsageError
from launcher.jobs import Job, check_name, match, parse_duration
from launcher.spec import Spec
from launcher.store import Store


def one_error_line(result, code: int) -> str:
    """The single `launch: error:` line of a failed command with exit `code` (and no traceback)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch: error: "), stderr
    return lines[0]


# -- 1. job references -------------------------------------------------------------------------------------------


def _job(job_id: str, name: str | None = None) -> Job:
    return Job(id=job_id, name=name, image="i", status="exited", created=0.0, exit_code=0)


@pytest.mark.parametrize("ref", ["", " ", "\t\n"])
def test_an_empty_or_blank_reference_matches_nothing(ref):
    with pytest.raises(UsageError, match="empty job reference"):
        match([_job("0123456789")], ref)


def test_a_prefix_needs_four_characters_but_a_name_matches_exactly():
    jobs = [_job("0123456789", "ab"), _job("abcdef0123")]
    assert match(jobs, "ab").id == "0123456789"  # a short name, exactly
    assert match(jobs, "0123").id == "0123456789"
    assert match(jobs, "0123456789").id == "0123456789"
    with pytest.raises(UsageError, match="at least 4 characters"):
        match(jobs, "012")
    with pytest.raises(NotFound):
        match(jobs, "fffff")


@pytest.mark.docker
def test_rm_stop_inspect_logs_refuse_an_empty_or_short_reference(docker):
    job = detach("--image", TEST_IMAGE, "--", "sleep", "30")
    for command in ("rm", "stop", "inspect", "logs"):
        for ref in ("", "  "):
            line = one_error_line(run_launch(command, ref), 2)
            assert "empty job reference" in line and "at least 4 characters" in line
        line = one_error_line(run_launch(command, job[:3]), 2)
        assert f"'{job[:3]}'" in line and "at least 4 characters" in line
    assert run_launch("rm", "--force", job, "").returncode == 2  # one bad reference: nothing is done
    assert [c["State"] for c in job_containers(docker, job)] == ["running"]
    assert run_launch("inspect", job[:4]).returncode == 0
    assert run_launch("rm", "--force", job[:4]).returncode == 0
    assert job_containers(docker, job) == []


# -- 8. a store.db emptied or gone beside its key file ----------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_store_emptied_or_gone_beside_its_key_file_is_refused_never_rebuilt(launch_home, damage):
    assert run_launch("secret", "add", "k", "-", input=b"v").returncode == 0
    db, key = launch_home / "store.db", launch_home / "key"
    key_bytes = key.read_bytes()
    if damage == "truncate":
        db.write_bytes(b"")
    else:
        db.unlink()
    for args in (
        ("secret", "ls"),
        ("secret", "add", "k2", "-"),
        ("secret", "show", "k"),
        ("run", "--image", "x", "-e", "T=secret:k"),
    ):
        line = one_error_line(run_launch(*args, input=b"v2"), 5)
        assert str(db) in line and ("restore" in line) and "backup" in line, line
    assert key.read_bytes() == key_bytes  # nothing was made beside it
    assert (db.read_bytes() == b"") if damage == "truncate" else not db.exists()


def test_a_creation_cut_short_after_its_key_file_is_finished_by_the_next_write(launch_home):
    assert run_launch("secret", "add", "k", "-", input=b"v").returncode == 0
    (launch_home / "store.db").rename(launch_home / ".store-00ff.tmp")  # as left between key file and link
    assert run_launch("secret", "add", "k2", "-", input=b"v").returncode == 0
    names = run_launch("secret", "ls", "--json").stdout
    assert b'"k"' in names and b'"k2"' in names
    assert not (launch_home / ".store-00ff.tmp").exists()


# -- 5. no input is read without a bound ---------------------------------------------------------------------------


def _capped(*args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """`launch ARGS` with its address space capped at 1 GiB: reading /dev/zero whole fails fast, not at 3 GiB."""

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([*launch_cmd(), *args], stdin=stdin, capture_output=True, timeout=60, preexec_fn=cap)


@pytest.mark.parametrize(
    "args",
    [
        ("secret", "add", "new", "@/dev/zero"),
        ("secret", "edit", "k", "@/dev/zero"),
        ("secret", "import", "/dev/zero"),
        ("run", "--env-file", "/dev/zero", "--image", TEST_IMAGE),
    ],
)
def test_endless_files_are_refused_after_reading_at_most_the_limit(args):
    assert run_launch("secret", "add", "k", "-", input=b"v").returncode == 0
    line = one_error_line(_capped(*args), 2)
    assert "/dev/zero" in line and "larger than the limit of 1 MiB (1048576 bytes)" in line


def test_an_endless_stdin_is_refused_after_reading_at_most_the_limit():
    with open("/dev/zero", "rb") as zero:
        line = one_error_line(_capped("secret", "add", "k", "-", stdin=zero), 2)
    assert "stdin" in line and "larger than the limit of 1 MiB" in line
    assert run_launch("secret", "ls", "--json").stdout.strip() == b"[]"  # nothing half-done


def test_a_value_of_exactly_the_limit_is_taken_from_a_file_and_from_stdin(tmp_path):
    value = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "v").write_bytes(value)
    assert run_launch("secret", "add", "f", f"@{tmp_path / 'v'}").returncode == 0
    assert run_launch("secret", "add", "s", "-", input=value + b"\r\n").returncode == 0
    sizes = {s["name"]: s["size"] for s in json.loads(run_launch("secret", "ls", "--json").stdout)}
    assert sizes == {"f": len(value), "s": len(value)}
    (tmp_path / "v").write_bytes(value + b"x")
    assert "larger than the limit" in one_error_line(run_launch("secret", "add", "g", f"@{tmp_path / 'v'}"), 2)


def test_a_template_over_1_mib_is_refused_after_reading_at_most_the_limit(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"image: x\n" + b"# padding\n" * 110_000)
    line = one_error_line(run_launch("run", "--dry-run", str(big)), 6)
    assert str(big) in line and "larger than the limit of 1 MiB" in line
    env = tmp_path / "big.env"
    env.write_bytes(b"# padding\n" * 110_000)
    line = one_error_line(run_launch("run", "--env-file", str(env), "--image", TEST_IMAGE), 2)
    assert str(env) in line and "larger than the limit of 1 MiB" in line


# -- 6. an env secret over the kernel's limit for one environment string ------------------------------------------


@pytest.mark.docker
def test_an_env_secret_over_128_kib_is_refused_before_anything_is_created(docker, launch_home, tmp_path):
    fits = 131072 - len("BIG=") - 1  # the longest value the kernel takes for BIG (MAX_ARG_STRLEN, NUL included)
    (tmp_path / "fits").write_bytes(b"a" * fits)
    (tmp_path / "over").write_bytes(b"a" * (fits + 1))
    assert run_launch("secret", "add", "fits", f"@{tmp_path / 'fits'}").returncode == 0
    assert run_launch("secret", "add", "over", f"@{tmp_path / 'over'}").returncode == 0
    ok = run_launch("run", "--rm", "--image", TEST_IMAGE, "-e", "BIG=secret:fits", "--", "sh", "-c", 'echo "${#BIG}"')
    assert ok.returncode == 0 and ok.stdout == f"{fits}\n".encode(), ok.stderr  # the job got it whole
    line = one_error_line(run_launch("run", "--image", TEST_IMAGE, "-e", "BIG=secret:over", "--", "true"), 2)
    assert "variable BIG" in line and "131072" in line and "BIG_FILE: secret-file:over" in line
    log = (launch_home / "usage.log").read_text().splitlines()
    assert len(log) == 1  # only the first job started


# -- 7. --life-span bounds -------------------------------------------------------------------------------------------


def test_durations_are_bounded_by_a_year():
    assert parse_duration("365d") == 365 * 86400
    assert parse_duration("364d23h59m60s") == 365 * 86400
    for text in ("366d", "99999d", "1" + "0" * 400 + "s", "9" * 5000 + "s", "365d1s"):
        with pytest.raises(UsageError, match=r"too long: at most 365d"):
            parse_duration(text)
    with pytest.raises(UsageError, match=r"invalid duration '': "):
        parse_duration("")


@pytest.mark.parametrize("span", ["1" + "0" * 400 + "s", "99999d"])
def test_run_refuses_a_life_span_over_a_year_before_anything_starts(span):
    line = one_error_line(run_launch("run", "--life-span", span, "--image", TEST_IMAGE, "--", "true"), 2)
    assert "too long: at most 365d" in line and len(line) < 200


# -- 9. one line, always; --name '' ------------------------------------------------------------------------------------


def test_a_damaged_schema_is_reported_on_one_line(launch_home):
    assert run_launch("secret", "add", "k", "-", input=b"v").returncode == 0
    with closing(sqlite3.connect(launch_home / "store.db", isolation_level=None)) as db:
        db.execute("PRAGMA writable_schema=ON")
        db.execute("UPDATE sqlite_master SET name = 'secrets\nsecond line' WHERE name = 'secrets'")
    with pytest.raises(StoreError) as info:
        Store.open(launch_home).list()
    assert "\n" not in str(info.value) and "malformed database schema" in str(info.value)
    line = one_error_line(run_launch("secret", "ls"), 5)
    assert "malformed database schema (secrets second line)" in line


def test_every_message_is_one_line_at_the_entry_point():
    assert one_line("a\nb\r\n  c\n") == "a b c" and one_line("plain") == "plain"


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_job_name_is_an_error_not_no_name(name):
    with pytest.raises(UsageError, match="--name: empty job name"):
        check_name(name)
    with pytest.raises(UsageError, match="--name: empty job name"):
        overrides.apply(Spec(image="x"), name=name, environ={})


def test_run_refuses_an_empty_name():
    line = one_error_line(run_launch("run", "--dry-run", "--name", "", "--image", TEST_IMAGE), 2)
    assert "--name: empty job name" in line


# -- 10. inputs that ended in a bare `internal error (...)` -------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 argument, as a shell's $'caf\xe9' passes it


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--image", NOT_UTF8), "--image"),  # was: internal error (UnicodeEncodeError)
        (("--image", TEST_IMAGE, "-e", f"X={NOT_UTF8}"), "--env X"),  # was: the job got U+FFFD instead
        (("--image", TEST_IMAGE, "--", "echo", NOT_UTF8), "the command"),
        (("--image", TEST_IMAGE, "-v", f"/tmp/{NOT_UTF8}:/x"), "--volume"),
    ],
)
def test_an_argument_that_is_not_utf8_is_refused_naming_where(args, where):
    line = one_error_line(run_launch("run", "--dry-run", *args), 2)
    assert line == f"launch: error: {where}: not UTF-8 text (the engine's API carries only text)"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("stop", "-t", "9" * 23, "abcd"), "--time"),  # was: internal error (OverflowError)
        (("stop", "-t", "9" * 5000, "abcd"), "--time"),  # was: internal error (ValueError), int() of 5,000 digits
        (("stop", "-t", "-5", "abcd"), "--time"),  # was: accepted (the engine's "no grace period")
        (("logs", "--tail", "-1", "abcd"), "--tail"),  # was: every line
        (("logs", "--tail", "9" * 5000, "abcd"), "--tail"),
    ],
)
def test_numbers_out_of_range_are_refused_before_the_engine_is_asked(args, flag):
    line = one_error_line(run_launch(*args, env={"DOCKER_HOST": "unix:///nonexistent"}), 2)
    assert line.startswith(f"launch: error: {flag}: ") and "out of range" in line and len(line) < 120


SHOW, ADD, RUN = ("secret", "show", "k"), ("secret", "add", "k2", "-"), ("run", "--image", "x", "-e", "T=secret:k")


@pytest.mark.parametrize(("file", "commands"), [("key", [ADD, RUN]), ("usage.log", [SHOW]), ("lock", [ADD, RUN])])
def test_a_folder_where_a_store_file_belongs_is_refused(launch_home, file, commands):
    """Was: internal error (IsADirectoryError) for `key` (any decryption) and `usage.log` (`secret show`)."""
    assert run_launch("secret", "add", "k", "-", input=b"v").returncode == 0
    assert run_launch("run", "--rm", "--image", TEST_IMAGE, "-e", "T=secret:k", "--", "true").returncode == 0
    path = launch_home / file
    path.rename(launch_home / f"{file}.bak")
    path.mkdir(mode=0o700)
    for args in commands:
        line = one_error_line(run_launch(*args, input=b"v2"), 5)
        assert f"refusing to use {path}: it is a folder" in line
