"""The examples in examples/ run as their walkthrough (examples/README.md) says."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_launch

pytestmark = pytest.mark.docker

EXAMPLES = REPO / "examples"
TOKEN = "demo-token-0123456789abcd"  # 25 characters
CONFIG = b'endpoint = "https://api.example"\nretries = 3\n'  # 44 bytes
DB_PASS = "correct horse battery staple"  # 28 bytes


@pytest.fixture
def secrets():
    for name, value in (("demo_token", TOKEN + "\n"), ("demo_config", CONFIG), ("db_pass", DB_PASS)):
        result = run_launch("secret", "add", name, "@/dev/stdin" if isinstance(value, bytes) else "-", input=value)
        assert result.returncode == 0, result.stderr


def run_example(name: str, *args: str):
    result = run_launch("run", "--rm", str(EXAMPLES / name), *args)
    assert result.returncode == 0, result.stderr
    assert TOKEN.encode() not in result.stdout + result.stderr and DB_PASS.encode() not in result.stdout
    return result.stdout.decode().splitlines()


def test_hello_secret(docker, secrets):
    assert run_example("hello-secret.yaml") == [
        "greeting: hello from launch",
        "token (masked by launch): ***",
        f"token length: {len(TOKEN)}",
        f"config file: {len(CONFIG)} bytes, owner app 400",
    ]


def test_file_convention(docker, secrets):
    assert run_example("file-convention.yaml") == [f"password file: /run/secrets/db_pass ({len(DB_PASS)} bytes)"]


def test_runpod_style(docker, secrets):
    assert run_example("runpod-style.yaml") == [
        "url: postgres://app:***@db.internal:5432/app",
        "literal: secret:this-is-not-a-reference",
    ]


def test_env_file_and_dry_run(docker, secrets):
    result = run_launch(
        "run",
        "--rm",
        "--image",
        "launch-test/busybox:latest",
        "--env-file",
        str(EXAMPLES / "app.env"),
        "--",
        "sh",
        "-c",
        'echo "$LOG_LEVEL"; wc -c < "$DB_PASSWORD_FILE"; echo "${#API_TOKEN}"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["info", str(len(DB_PASS)), str(len(TOKEN))]
    plan = run_launch("run", "--dry-run", str(EXAMPLES / "hello-secret.yaml"), "-e", "GREETING=hi")
    assert plan.returncode == 0, plan.stderr
    assert TOKEN.encode() not in plan.stdout and b"demo_token" in plan.stdout
    assert "hi" in json.dumps(json.loads(plan.stdout)["env"])


def test_a_builtin_template_runs_by_name(docker):
    """`launch run python-batch`: the built-in's env and workdir, with the image swapped for the local one."""
    assert run_launch("secret", "add", "api_key", "-", input=TOKEN + "\n").returncode == 0
    result = run_launch(
        "run", "--rm", "python-batch", "--image", "launch-test/busybox:latest",
        "--", "sh", "-c", 'echo "$PWD $PYTHONUNBUFFERED ${#API_KEY}"',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["/work", "1", str(len(TOKEN))]
