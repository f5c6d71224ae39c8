"""`launch templates ls/show`, and the built-ins shipped inside a wheel (not only the editable install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from launcher import template
from launcher.cli.main import app, main
from launcher.errors import ExitCode

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_ls_prints_a_table_of_names_and_descriptions():
    result = runner.invoke(app, ["templates", "ls"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(template.builtin_names())
    for builtin in template.builtins():
        assert builtin.description in rows[builtin.name]
    column = lines[0].index("DESCRIPTION")
    assert all(line[column - 2 : column] == "  " for line in lines[1:]), "descriptions line up"


def test_ls_json():
    result = runner.invoke(app, ["templates", "ls", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == template.builtin_names()
    assert all(row["description"] and Path(row["path"]).is_file() for row in rows)


def test_show_prints_the_yaml_verbatim():
    result = runner.invoke(app, ["templates", "show", "jupyter"])
    assert result.exit_code == 0, result.output
    assert result.stdout == template.builtin_path("jupyter").read_text()
    assert template.parse(result.stdout, "shown.yaml").image


def test_show_unknown_name_is_not_found(capsys):
    with pytest.raises(SystemExit) as info:
        main(["templates", "show", "nope"])
    assert info.value.code == ExitCode.NOT_FOUND
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"launch: error: no built-in template 'nope' (built-ins: {', '.join(template.builtin_names())})\n"
    )


def test_templates_without_a_subcommand_shows_help():
    result = runner.invoke(app, ["templates"])
    assert "ls" in result.output
    assert "show" in result.output


def test_ls_through_the_real_command_line():
    from conftest import run_launch

    result = run_launch("templates", "ls")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert b"python-batch" in result.stdout
    assert b"model-server" in result.stdout


@pytest.mark.slow
def test_a_built_wheel_carries_the_builtins_and_the_schema(tmp_path):
    """Build a wheel from a copy of the project, then use the built-ins from the unpacked wheel alone."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "templates", source / "templates")
    shutil.copytree(REPO / "launcher", source / "launcher", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("launch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for path in (REPO / "templates").glob("*.yaml"):
            member = f"launcher/builtin_templates/{path.name}"
            assert member in names
            assert archive.read(member) == path.read_bytes()
        assert "launcher/template.schema.json" in names
        archive.extractall(tmp_path / "site")
    probe = (
        "import json, launcher, launcher.template as t, launcher.schema as s; "
        "print(json.dumps([launcher.__file__, [b.name for b in t.builtins()], "
        "open(s.__file__[:-9] + 'template.schema.json').read() == s.render()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        timeout=60,
    )
    location, names, schema_in_sync = json.loads(result.stdout)
    assert location.startswith(str(tmp_path / "site"))
    assert names == template.builtin_names()
    assert schema_in_sync
