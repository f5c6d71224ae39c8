"""Issue 13, through the real CLI: template errors quote the value at fault where it cannot be a secret's value,
never an env value; one rule for job names and one for secret names, whichever path a name comes by."""

from __future__ import annotations

import pytest
from conftest import TEST_IMAGE, add_secret, run_launch

from launcher.errors import ExitCode


def one_error(result) -> str:
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("launch: error: ")
    assert result.stdout == b""
    return lines[0].removeprefix("launch: error: ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("volumes:\n  - secret:k:relative/path\n", "3:5: volumes[0]: container path 'relative/path' must be absolute"),
        ("volumes:\n  - ./h:/c:rx\n", "3:5: volumes[0]: the third field of a volume must be 'ro' or 'rw', got 'rx'"),
        ("volumes:\n  - {secret: k, path: /k, mode: '0200'}\n", "the mode '0200' must let the owner read"),
        ("workdir: /a/../b\n", "2:10: workdir: container path '/a/../b' must not contain '..'"),
        ("ports: ['70000']\n", "2:9: ports[0]: port 70000 is out of range"),
        (
            "ports: ['8080:80x']\n",
            "ports[0]: expected a port like 8888, 8080:80 or 127.0.0.1:8080:80, optionally /udp, got",
        ),
        (
            "resources: {memory: 12q}\n",
            "resources.memory: expected a size like 512m or 2g, or a number of bytes, got '12q'",
        ),
        (
            "restart: sometimes\n",
            "restart: expected one of no, always, unless-stopped, on-failure[:N], got 'sometimes'",
        ),
        ("user: 'a b'\n", "user: expected a user like 1000, 1000:1000 or app, got 'a b'"),
        ("network: 'a b'\n", "network: expected a network name of letters, digits, '_', '.' and '-', starting with"),
    ],
)
def test_template_errors_quote_the_value(tmp_path, body, expected):
    path = tmp_path / "job.yaml"
    path.write_text(f"image: {TEST_IMAGE}\n" + body)
    result = run_launch("run", str(path))
    assert result.returncode == ExitCode.TEMPLATE
    message = one_error(result)
    assert message.startswith(f"{path}:")
    assert expected in message


@pytest.mark.parametrize(
    "value",
    [
        "secret:sk live value",  # a value pasted where a name was meant: not a valid name, never quoted
        "{{ RUNPOD_SECRET_sk live }}",
    ],
)
def test_env_values_and_invalid_secret_names_are_never_quoted(tmp_path, value):
    path = tmp_path / "job.yaml"
    path.write_text(f"image: {TEST_IMAGE}\nenv:\n  A: '{value}'\n")
    result = run_launch("run", str(path))
    assert result.returncode == ExitCode.TEMPLATE
    message = one_error(result)
    assert "env.A: invalid secret name" in message
    assert "sk live" not in message
    result = run_launch("run", "--image", TEST_IMAGE, "-e", f"A={value}")
    assert result.returncode == ExitCode.USAGE
    assert "sk live" not in one_error(result)


@pytest.mark.parametrize("length", [64, 100])
def test_a_too_long_job_name_is_refused_the_same_way_everywhere(tmp_path, length):
    name = "a" * length
    path = tmp_path / "job.yaml"
    path.write_text(f"image: {TEST_IMAGE}\nname: {name}\n")
    from_template = run_launch("run", str(path))
    assert from_template.returncode == ExitCode.TEMPLATE
    assert "name: expected a job name of 1 to 63 letters, digits, '_', '.' and '-'" in one_error(from_template)
    from_flag = run_launch("run", "--image", TEST_IMAGE, "--name", name)
    assert from_flag.returncode == ExitCode.USAGE
    assert one_error(from_flag).startswith(f"--name: invalid job name '{name[:80]}'")
    assert "use 1 to 63 letters, digits, '_', '.' and '-'" in one_error(from_flag)


def test_a_63_character_job_name_passes_both_paths(tmp_path):
    """Both stop at the next check, a missing secret: the name itself was accepted."""
    name = "b" * 63
    path = tmp_path / "job.yaml"
    path.write_text(f"image: {TEST_IMAGE}\nname: {name}\nenv:\n  A: secret:missing\n")
    assert run_launch("run", str(path)).returncode == ExitCode.NOT_FOUND
    result = run_launch("run", "--image", TEST_IMAGE, "--name", name, "-e", "A=secret:missing")
    assert result.returncode == ExitCode.NOT_FOUND
    assert "'missing' not found" in one_error(result)


@pytest.mark.parametrize("name", [".hidden", "a" * 254, "a b"])
def test_one_rule_for_secret_names(tmp_path, name):
    """The store, a template reference and a `--env` reference refuse the same names, with the same rule."""
    added = run_launch("secret", "add", name, "-", input="v\n")
    assert added.returncode == ExitCode.USAGE
    assert "use 1 to 253 letters, digits, '_', '.' and '-', not starting with '.'" in one_error(added)
    result = run_launch("run", "--image", TEST_IMAGE, "-e", f"A=secret:{name}")
    assert result.returncode == ExitCode.USAGE
    assert "use 1 to 253 letters, digits, '_', '.' and '-', not starting with '.'" in one_error(result)


def test_a_253_character_secret_name_works_everywhere():
    name = "s" * 253
    add_secret(name, "v")
    result = run_launch("run", "--image", TEST_IMAGE, "-e", f"A=secret:{name}", "--name", "x y")
    assert result.returncode == ExitCode.USAGE  # the reference passed; the job name did not
    assert "--name: invalid job name 'x y'" in one_error(result)
