"""Shell completion (issue 13) as the shell asks for it: `_LAUNCH_COMPLETE=complete_bash` with COMP_WORDS and
COMP_CWORD, through the real CLI. Names only, never a value; no crypto, no engine for secret names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import add_secret, detach, run_launch, sh_job

from launcher.cli import complete

VALUE = "completion-value-0123456789"


def offered(*words: str, env: dict | None = None) -> list[str]:
    line = " ".join(["launch", *words])
    result = run_launch(
        env={"_LAUNCH_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words)), **(env or {})}
    )
    assert result.returncode == 0, result.stderr
    assert VALUE.encode() not in result.stdout + result.stderr
    return result.stdout.decode().split()


def test_commands_and_subcommands():
    assert offered("sec") == ["secret"]
    assert {"add", "edit", "ls", "show", "rm", "import", "rotate-key"} <= set(offered("secret", ""))
    assert offered("templates", "s") == ["show"]


@pytest.mark.parametrize("command", ["show", "edit", "rm"])
def test_secret_names(command):
    add_secret("alpha", VALUE)
    add_secret("beta", VALUE)
    assert offered("secret", command, "a") == ["alpha"]
    assert set(offered("secret", command, "")) == {"alpha", "beta"}


def test_no_store_offers_nothing():
    assert offered("secret", "show", "") == []


def test_template_names():
    assert offered("templates", "show", "ju") == ["jupyter"]


@pytest.mark.docker
def test_job_ids_and_names_of_this_store(docker, tmp_path):
    add_secret("tok", VALUE)
    job = detach("--name", "complete-me", *sh_job("sleep 30"))
    for command in ("logs", "stop", "inspect", "rm"):
        assert {job, "complete-me"} <= set(offered(command, ""))
    assert offered("logs", job[:7]) == [job]
    assert job not in offered("logs", "", env={"LAUNCH_HOME": str(tmp_path / "other")})


def test_env_and_volume_values_for_run():
    """For `-e` and `-v` of `launch run` (wired in launcher/cli/run.py with autocompletion=): a real store."""
    add_secret("alpha", VALUE)
    add_secret("beta", VALUE)
    assert complete.env_value("T=secret:a") == ["T=secret:alpha"]
    assert complete.env_value("T=secret-file:") == ["T=secret-file:alpha", "T=secret-file:beta"]
    assert complete.env_value("T=sec") == ["T=secret:", "T=secret-file:"]
    assert complete.env_value("T=plain") == [] and complete.env_value("T") == []
    assert complete.volume("secret:b") == ["secret:beta:"]
    assert complete.volume("secret:beta:/x") == [] and complete.volume("./dir") == []


def test_show_completion_prints_the_script():
    result = run_launch("--show-completion", "bash")
    assert result.returncode == 0
    assert b"_LAUNCH_COMPLETE=complete_bash" in result.stdout


def test_secret_name_completion_loads_no_crypto_docker_or_pydantic():
    add_secret("alpha", VALUE)
    probe = (
        "import sys\nfrom launcher.cli.main import main\n"
        "try:\n    main([])\nexcept SystemExit:\n    pass\n"
        "heavy = ('cryptography', 'docker', 'pydantic', 'yaml')\n"
        "print(' '.join(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    env = {"_LAUNCH_COMPLETE": "complete_bash", "COMP_WORDS": "launch secret show a", "COMP_CWORD": "3"}
    result = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True)
    assert result.stdout.split() == ["alpha"]
    assert result.stderr.strip() == ""


def test_run_completes_secret_references_templates_and_volumes():
    """Through the real `launch run`: `-e VAR=secret:<TAB>`, `-v secret:<TAB>` and the template argument."""
    add_secret("alpha", VALUE)
    add_secret("beta", VALUE)
    assert set(offered("run", "-e", "T=secret:")) == {"T=secret:alpha", "T=secret:beta"}
    assert offered("run", "-e", "T=secret:a") == ["T=secret:alpha"]
    assert set(offered("run", "-v", "secret:")) >= {"secret:alpha:", "secret:beta:"}
    assert "jupyter" in offered("run", "ju")
