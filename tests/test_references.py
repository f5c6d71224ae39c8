"""The reference syntax shared by templates and the command line (pure functions, no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher import references as refs
from launcher.references import Invalid
from launcher.spec import BindMount, EnvVar, SecretFile, SecretRef

CANARY = "sk-CANARY-4f9a1c"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("plain text", ("plain text",)),
        ("", ()),
        ("secret:db_pass", (SecretRef("db_pass"),)),
        ("secret:a.b-c_D9", (SecretRef("a.b-c_D9"),)),
        (
            "postgres://app:{{ RUNPOD_SECRET_db_pass }}@db/app",
            ("postgres://app:", SecretRef("db_pass"), "@db/app"),
        ),
        ("{{RUNPOD_SECRET_x}}", (SecretRef("x"),)),
        ("{{   RUNPOD_SECRET_x   }}", (SecretRef("x"),)),
        ("{{ RUNPOD_SECRET_a }}{{ RUNPOD_SECRET_b }}", (SecretRef("a"), SecretRef("b"))),
        ("a {{ RUNPOD_SECRET_k }} b {{ RUNPOD_SECRET_k }} c", ("a ", SecretRef("k"), " b ", SecretRef("k"), " c")),
        ("{{ OTHER_THING }}", ("{{ OTHER_THING }}",)),  # only RunPod's secret form is a reference
        ("x secret:abc", ("x secret:abc",)),  # secret: counts only as the whole value
        ("SECRET:abc", ("SECRET:abc",)),
        ("\\secret:abc", ("secret:abc",)),  # a leading backslash: the rest is literal
        ("\\secret-file:abc", ("secret-file:abc",)),
        ("\\{{ RUNPOD_SECRET_x }}", ("{{ RUNPOD_SECRET_x }}",)),
        ("\\\\server\\share", ("\\server\\share",)),  # two backslashes: one literal backslash
        ("\\", ()),
        ("C:\\path\\secret:x", ("C:\\path\\secret:x",)),  # backslashes elsewhere are plain text
    ],
)
def test_parse_env_value(text, parts):
    assert refs.parse_env_value(text) == parts


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("secret:", "no secret name after 'secret:'"),
        ("secret:.hidden", "invalid secret name"),
        ("secret:has space", "invalid secret name"),
        ("secret:a/b", "invalid secret name"),
        ("secret:" + "a" * 254, "invalid secret name"),
        ("{{ RUNPOD_SECRET_ }}", "no secret name"),
        ("{{ RUNPOD_SECRET_two words }}", "invalid secret name"),
        ("a\0b", "NUL"),
    ],
)
def test_parse_env_value_errors(text, needle):
    with pytest.raises(Invalid, match=needle) as info:
        refs.parse_env_value(text)
    assert "has space" not in str(info.value)
    assert "two words" not in str(info.value)


def test_a_longest_valid_secret_name_is_accepted():
    assert refs.parse_env_value("secret:" + "a" * 253) == (SecretRef("a" * 253),)


def test_an_invalid_name_never_quotes_the_value():
    with pytest.raises(Invalid) as info:
        refs.parse_env_value(f"secret:{CANARY} oops")
    assert CANARY not in str(info.value)


def test_secret_file_entry_expands_to_a_file_and_a_path_variable():
    variable, file = refs.parse_env_entry("PW_FILE", "secret-file:db_pass", "job.yaml:3:3")
    assert file == SecretFile("db_pass", "/run/secrets/db_pass", 0o400, "job.yaml:3:3")
    assert variable == EnvVar("PW_FILE", ("/run/secrets/db_pass",), "job.yaml:3:3")
    assert not variable.is_secret


def test_plain_entries_ask_for_no_file():
    assert refs.parse_env_entry("A", "secret:k", "--env A") == (EnvVar("A", (SecretRef("k"),), "--env A"), None)
    assert refs.parse_env_entry("A", "\\secret-file:k", "o") == (EnvVar("A", ("secret-file:k",), "o"), None)


def test_secret_file_needs_a_valid_name():
    with pytest.raises(Invalid, match="after 'secret-file:'"):
        refs.parse_env_entry("A", "secret-file:", "o")


@pytest.mark.parametrize(("text", "mode"), [("0400", 0o400), ("400", 0o400), ("0o440", 0o440), ("0644", 0o644)])
def test_parse_mode(text, mode):
    assert refs.parse_mode(text) == mode


@pytest.mark.parametrize("text", ["ro", "0800", "04000", "", "0200", "0000"])
def test_parse_mode_errors(text):
    with pytest.raises(Invalid):
        refs.parse_mode(text)


@pytest.mark.parametrize(
    ("text", "path"),
    [("/a", "/a"), ("/a/", "/a"), ("//a//b/./c", "/a/b/c"), ("/run/secrets/x.y", "/run/secrets/x.y")],
)
def test_container_path_is_normalised(text, path):
    assert refs.container_path(text) == path


@pytest.mark.parametrize(
    ("text", "needle"),
    [("a/b", "absolute"), ("", "absolute"), ("/a/../b", "'..'"), ("/..", "'..'"), ("/", "root"), ("/./", "root")],
)
def test_container_path_errors(text, needle):
    with pytest.raises(Invalid, match=needle):
        refs.container_path(text)


def test_parse_volume_secret_forms():
    assert refs.parse_volume("secret:k:/run/k", "o", None) == SecretFile("k", "/run/k", 0o400, "o")
    assert refs.parse_volume("secret:k:/run/k:0440", "o", None) == SecretFile("k", "/run/k", 0o440, "o")


def test_parse_volume_host_forms(tmp_path):
    base = tmp_path / "tpl"
    assert refs.parse_volume("/data:/data", "o", base) == BindMount("/data", "/data", False, "o")
    assert refs.parse_volume("/data:/data:ro", "o", base) == BindMount("/data", "/data", True, "o")
    assert refs.parse_volume("/data:/data:rw", "o", base) == BindMount("/data", "/data", False, "o")
    assert refs.parse_volume("./in:/in", "o", base).source == str(base / "in")
    assert refs.parse_volume("../up:/in", "o", base).source == str(tmp_path / "up")
    assert refs.parse_volume("sub/dir:/in", "o", base).source == str(base / "sub" / "dir")
    assert refs.parse_volume(".:/in", "o", base).source == str(base)
    assert refs.parse_volume("cache:/root/.cache", "o", base) == BindMount("cache", "/root/.cache", False, "o")


def test_relative_host_paths_default_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert refs.parse_volume("./x:/x", "o", None).source == str(tmp_path / "x")


def test_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert refs.parse_volume("~/data:/d", "o", Path("/elsewhere")).source == str(tmp_path / "data")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("secret:k", "secret:KEY:/container/path"),
        ("secret:/data", "secret:KEY:/container/path"),  # not a named volume called "secret"
        ("secret:k:/a:0400:x", "secret:KEY:/container/path"),
        ("secret:.k:/a", "invalid secret name"),
        ("secret:k:rel", "absolute"),
        ("secret:k:/a:ro", "octal"),
        ("/a", "HOST:/container/path"),
        ("/a:/b:ro:x", "HOST:/container/path"),
        ("/a:/b:rx", "'ro' or 'rw'"),
        ("/a:b", "absolute"),
        ("/a:/b/../c", "'..'"),
        (":/b", "empty host path"),
        ("-bad:/b", "invalid volume name"),
    ],
)
def test_parse_volume_errors(spec, needle):
    with pytest.raises(Invalid, match=needle):
        refs.parse_volume(spec, "o", Path("/base"))


def test_shared_files_merges_one_secret_file_asked_twice():
    a = SecretFile("k", "/run/secrets/k", 0o400, "job.yaml:3:3")
    b = SecretFile("k", "/run/secrets/k", 0o400, "job.yaml:4:3")
    c = SecretFile("k", "/run/secrets/k", 0o440, "job.yaml:5:3")
    assert refs.shared_files([a, b, c]) == [a, c]


@pytest.mark.parametrize(
    "second",
    [
        SecretFile("other", "/m", 0o400, "job.yaml:9:5"),
        SecretFile("k", "/m", 0o440, "job.yaml:9:5"),
        SecretFile("k", "/m", 0o400, "job.yaml:9:5"),  # the same volume listed twice is a mistake too
        BindMount("/host", "/m/", False, "job.yaml:9:5"),
    ],
)
def test_check_mounts_refuses_two_mounts_on_one_path(second):
    first = SecretFile("k", "/m", 0o400, "job.yaml:8:5")
    with pytest.raises(Invalid, match="two mounts on container path /m") as info:
        refs.check_mounts([first, second])
    assert info.value.origin == "job.yaml:9:5"
    assert "job.yaml:8:5" in str(info.value)


@pytest.mark.parametrize(("target", "needle"), [("rel", "absolute"), ("/a/../b", "'..'")])
def test_check_mounts_checks_each_path(target, needle):
    mounts = [BindMount("/h", "/ok", False, "a"), BindMount("/h", target, False, "b")]
    with pytest.raises(Invalid, match=needle) as info:
        refs.check_mounts(mounts)
    assert info.value.origin == "b"


def test_check_mounts_accepts_distinct_paths():
    refs.check_mounts([SecretFile("k", "/a"), BindMount("/h", "/b"), BindMount("v", "/a/b")])
