"""Start-up stays lean (issue 7): each command imports the heavy modules it needs and no others, and no command
imports pydantic (Typer would, to coerce parameters: launcher/cli/coercion.py). A real interpreter runs
`main(ARGS)` and reports which of the watched modules it loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

WATCHED = (
    "pydantic",
    "rich",
    "docker",
    "requests",
    "yaml",
    "cryptography",
    "sqlite3",
    "json",
    "launcher.store",
    "launcher.template",
)

PROBE = (
    "import sys\n"
    "from launcher.cli.main import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "except SystemExit:\n    pass\n"
    f"watched = {WATCHED!r}\n"
    "sys.stderr.write('\\nLOADED ' + ' '.join(m for m in watched if m in sys.modules) + '\\n')\n"
)


def loaded(*args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], check=False, capture_output=True, text=True)
    assert "LOADED" in result.stderr, result.stderr
    return set(result.stderr.rsplit("LOADED", 1)[-1].split())


@pytest.mark.parametrize("args", [["--help"], ["secret", "--help"], ["run", "-h"], ["secret", "add", "--help"]])
def test_help_loads_only_rich(args):
    assert loaded(*args) == {"rich"}


def test_secret_ls_reads_the_store_without_crypto_yaml_docker_or_pydantic():
    assert loaded("secret", "ls") == {"sqlite3", "json", "launcher.store"}


def test_secret_show_with_an_argument_loads_no_pydantic():
    assert "pydantic" not in loaded("secret", "show", "nothing-here")


def test_run_with_a_template_and_options_loads_no_pydantic(tmp_path):
    missing = tmp_path / "missing.yaml"
    got = loaded("run", "--rm", "-e", "A=b", "-v", "secret:k:/k", "--name", "x", "--life-span", "1m", str(missing))
    assert "pydantic" not in got
    assert "docker" not in got  # the template is read before the engine is reached


def test_logs_with_an_int_option_loads_no_pydantic():
    assert "pydantic" not in loaded("logs", "no-such-job", "--tail", "3")


def test_templates_ls_needs_yaml_but_not_the_store_or_docker():
    got = loaded("templates", "ls")
    assert "yaml" in got
    assert not got & {"docker", "requests", "cryptography", "sqlite3", "launcher.store", "pydantic"}


def test_the_probe_sees_imports():
    """The probe can tell: `--json` output loads json, and a Path parameter (Typer's own coercion) pydantic."""
    assert "json" in loaded("templates", "ls", "--json")
    assert "pydantic" in loaded("secret", "import", "/no/such/file.env")
