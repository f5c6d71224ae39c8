"""Resolving a job's references into a Plan, and describing jobs without values."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from launcher import plan, template
from launcher.errors import ExitCode, NotFound, UsageError
from launcher.spec import EnvVar, SecretFile, SecretRef, Spec

CANARY = "sk-CANARY-4f9a1c"


@dataclass(frozen=True)
class Revealed:
    """What `Store.reveal` hands out: the plan accepts anything with these two attributes."""

    value: bytes = field(repr=False)
    version: int


JOB = """\
image: app:1
command: [serve, --port, "80"]
workdir: /srv
user: "1000:1000"
env:
  PLAIN: hello
  TOKEN: secret:token
  DB_URL: "postgres://app:{{ RUNPOD_SECRET_db_pass }}@db/app"
  PW_FILE: secret-file:db_pass
volumes:
  - secret:tls:/etc/tls/key.pem:0440
  - /srv/data:/data:ro
  - cache:/cache
ports:
  - "8080:80"
resources: {cpus: 1.5, memory: 1g, gpus: all}
restart: on-failure:2
labels: {team: ml}
name: web
network: bridge
"""


def spec_of(text: str = JOB) -> Spec:
    return template.parse(textwrap.dedent(text), "job.yaml", Path("/tpl"))


def revealed(**values: bytes | str) -> dict[str, Revealed]:
    return {
        name: Revealed(value.encode() if isinstance(value, str) else value, version)
        for version, (name, value) in enumerate(sorted(values.items()), start=1)
    }


SECRETS = revealed(token=CANARY, db_pass="p@ss:" + CANARY, tls=b"\x00\xffkey-" + CANARY.encode())


def test_resolve_joins_values_into_env_and_files():
    job = plan.resolve(spec_of(), SECRETS)
    assert job.env == (("PLAIN", "hello"), ("PW_FILE", "/run/secrets/db_pass"))
    assert job.secret_env == (("TOKEN", CANARY), ("DB_URL", f"postgres://app:p@ss:{CANARY}@db/app"))
    files = {f.target: (f.key, f.mode, content) for f, content in job.files}
    assert files == {
        "/run/secrets/db_pass": ("db_pass", 0o400, b"p@ss:" + CANARY.encode()),
        "/etc/tls/key.pem": ("tls", 0o440, b"\x00\xffkey-" + CANARY.encode()),
    }
    assert job.versions == {"db_pass": 1, "tls": 2, "token": 3}
    assert job.spec == spec_of()


def test_binary_values_go_to_files_byte_for_byte():
    blob = bytes(range(256))
    spec = Spec(image="x", secret_files=(SecretFile("blob", "/b"),))
    job = plan.resolve(spec, revealed(blob=blob))
    assert job.files[0][1] == blob


def test_a_job_without_secrets_needs_nothing_revealed():
    job = plan.resolve(Spec(image="x", env=(EnvVar("A", ("1",)), EnvVar("E", ()))), {})
    assert job.env == (("A", "1"), ("E", ""))
    assert job.secret_env == ()
    assert job.versions == {}


def test_missing_secrets_are_all_named():
    with pytest.raises(NotFound) as info:
        plan.resolve(spec_of(), revealed(token="x"))
    assert str(info.value) == "secrets not found: db_pass, tls"
    assert info.value.code == ExitCode.NOT_FOUND


@pytest.mark.parametrize(
    ("value", "problem"),
    [(b"\xff\xfe" + CANARY.encode(), "is not UTF-8 text"), (CANARY.encode() + b"\x00", "contains a NUL byte")],
)
def test_a_secret_unfit_for_an_environment_variable_is_refused(value, problem):
    spec = Spec(image="x", env=(EnvVar("B", ("pre-", SecretRef("blob")), "job.yaml:4:3"),))
    with pytest.raises(UsageError) as info:
        plan.resolve(spec, revealed(blob=value))
    message = str(info.value)
    assert message == (
        f"variable B (job.yaml:4:3): secret 'blob' {problem}, which an environment variable cannot hold; "
        "deliver it as a file instead, e.g. B_FILE: secret-file:blob"
    )
    assert CANARY not in message


def test_repr_never_shows_a_value():
    job = plan.resolve(spec_of(), SECRETS)
    text = repr(job) + str(job)
    assert CANARY not in text
    assert "p@ss" not in text
    assert "hello" not in text
    assert "TOKEN" in text
    assert "/etc/tls/key.pem" in text
    assert "'token': 3" in text


def test_redacted_describes_without_values():
    job = plan.resolve(spec_of(), SECRETS)
    described = plan.redacted(job)
    text = json.dumps(described)
    assert CANARY not in text
    assert "p@ss" not in text
    assert described == {
        "template": "job.yaml",
        "image": "app:1",
        "command": ["serve", "--port", "80"],
        "entrypoint": None,
        "env": {
            "PLAIN": "hello",
            "TOKEN": "secret:token",
            "DB_URL": "postgres://app:{{ secret:db_pass }}@db/app",
            "PW_FILE": "/run/secrets/db_pass",
        },
        "mounts": [
            {"type": "secret", "key": "db_pass", "path": "/run/secrets/db_pass", "mode": "0400"},
            {"type": "secret", "key": "tls", "path": "/etc/tls/key.pem", "mode": "0440"},
            {"type": "bind", "source": "/srv/data", "path": "/data", "read_only": True},
            {"type": "volume", "source": "cache", "path": "/cache", "read_only": False},
        ],
        "workdir": "/srv",
        "user": "1000:1000",
        "ports": [{"container": 80, "host": 8080, "host_ip": "127.0.0.1", "protocol": "tcp"}],
        "resources": {"cpus": 1.5, "memory": 1024**3, "gpus": "all"},
        "restart": "on-failure:2",
        "labels": {"team": "ml"},
        "name": "web",
        "network": "bridge",
        "read_only": False,
        "backend": None,
        "constraints": [],
        "secrets": {"db_pass": 1, "tls": 2, "token": 3},
    }


def test_redacted_spec_has_no_versions_and_defaults():
    described = plan.redacted(Spec(image="x", env=(EnvVar("A", (SecretRef("k"),)),), ports=()))
    assert described["secrets"] == {"k": None}
    assert described["restart"] == "no"
    assert described["resources"] == {"cpus": None, "memory": None, "gpus": None}
    assert described["command"] is None
    json.dumps(described)


def test_redacted_of_a_spec_and_its_plan_agree_except_versions():
    spec = spec_of()
    from_spec = plan.redacted(spec)
    from_plan = plan.redacted(plan.resolve(spec, SECRETS))
    assert from_spec.pop("secrets") == {"db_pass": None, "tls": None, "token": None}
    from_plan.pop("secrets")
    assert from_spec == from_plan


def test_a_secret_variable_over_the_kernels_limit_for_one_env_string_is_refused():
    """MAX_ARG_STRLEN: 131072 bytes for "NAME=value" and its NUL; one byte more fails the job's exec."""
    spec = Spec(image="x", env=(EnvVar("BIG", (SecretRef("blob"),), "--env BIG"),))
    fits = "a" * (131072 - len("BIG=") - 1)
    assert plan.resolve(spec, revealed(blob=fits.encode())).secret_env == (("BIG", fits),)
    with pytest.raises(UsageError) as info:
        plan.resolve(spec, revealed(blob=fits.encode() + b"a"))
    assert str(info.value) == (
        "variable BIG (--env BIG): with secret 'blob' it is 131073 bytes, over the kernel's limit of 131072 for one "
        "environment variable (NAME=value and a NUL); deliver it as a file instead, e.g. BIG_FILE: secret-file:blob"
    )
