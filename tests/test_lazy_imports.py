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
    "fastapi",  # the console's (launch ui) only: never for another command
    "starlette",
    "uvicorn",
    "jinja2",
    "launcher.console",
)
WEB = {"fastapi", "starlette", "uvicorn", "jinja2", "launcher.console"}

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


@pytest.mark.parametrize(
    "args", [["--help"], ["secret", "--help"], ["run", "-h"], ["secret", "add", "--help"], ["ui", "--help"]]
)
def test_help_loads_none_of_them(args):
    """Help is click's plain formatter (launcher/cli/main.py): not even Rich is imported."""
    assert loaded(*args) == set()


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


@pytest.mark.parametrize(
    "args",
    [
        ["ps"],
        ["logs", "nope"],
        ["templates", "ls"],
        ["templates", "show", "jupyter"],
        ["secret", "show", "nothing"],
        ["run", "/no/such.yaml"],
        ["inspect", "nope"],
    ],
)
def test_no_other_command_loads_the_web_framework(args):
    assert not loaded(*args) & WEB


def test_the_probe_sees_the_web_framework_when_ui_starts():
    """`launch ui` with a port it cannot have fails after the framework has loaded: the probe can see it."""
    assert WEB <= loaded("ui", "--no-browser", "--port", "1", "--host", "203.0.113.1")


def test_the_probe_sees_imports():
    """The probe can tell: `--json` output loads json, and a Path parameter (Typer's own coercion) pydantic."""
    assert "json" in loaded("templates", "ls", "--json")
    assert "pydantic" in loaded("secret", "import", "/no/such/file.env")


def test_a_command_loads_only_its_own_command_module(tmp_path):
    modules = (
        "launcher.cli.secret",
        "launcher.cli.run",
        "launcher.cli.jobs",
        "launcher.cli.templates",
        "launcher.cli.ui",
    )
    code = (
        "import sys\nfrom launcher.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print(' '.join(m for m in {modules!r} if m in sys.modules), file=sys.stderr)\n"
    )

    def command_modules(*args: str) -> set[str]:
        result = subprocess.run([sys.executable, "-c", code, *args], check=False, capture_output=True, text=True)
        return set(result.stderr.splitlines()[-1].split())

    assert command_modules("run", str(tmp_path / "missing.yaml")) == {"launcher.cli.run"}
    assert command_modules("logs", "nope") == {"launcher.cli.jobs"}
    assert command_modules("secret", "ls") == {"launcher.cli.secret"}
    assert command_modules("--help") == set(modules)
    assert command_modules("nosuch") == set(modules)  # a typo gets every command for its "did you mean"


def test_providers_name_every_command_and_its_module():
    """PROVIDERS maps each top-level command to the module that registers it; a command's help is the same
    whether the whole CLI or only its module is built."""
    import typer.main
    from typer.testing import CliRunner

    from launcher.cli import main

    whole = typer.main.get_command(main.build_app())
    assert set(main.PROVIDERS) == set(whole.commands)
    for command, module in main.PROVIDERS.items():
        alone = typer.main.get_command(main.build_app((module,)))
        assert command in alone.commands
        full_help = CliRunner().invoke(main.build_app(), [command, "--help"])
        own_help = CliRunner().invoke(main.app_for([command]), [command, "--help"])
        assert full_help.exit_code == own_help.exit_code == 0
        assert own_help.output == full_help.output
