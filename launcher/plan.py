"""A job with its secret references resolved: the one object that holds values, in memory only.

`resolve()` joins a validated `Spec` with the values revealed from the store into a `Plan` that a runtime carries
out. A plan never shows a value: its value fields are left out of `repr`, and `redacted()` describes a spec or a
plan for `launch run --dry-run` and `launch inspect` with every secret written as a reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from launcher.errors import NotFound, UsageError
from launcher.spec import BindMount, EnvVar, SecretFile, SecretRef, Spec


class Revealed(Protocol):
    """A secret's value and version, as `launcher.store.Store.reveal` returns them."""

    value: bytes
    version: int


@dataclass(frozen=True)
class Plan:
    spec: Spec
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # variables without a secret
    secret_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # variables holding a secret, resolved
    files: tuple[tuple[SecretFile, bytes], ...] = field(default=(), repr=False)  # each secret file and its content
    versions: dict[str, int] = field(default_factory=dict)  # the version of every secret used
    # each secret an env variable uses, by name (a backend that delivers references, not joined text: kubernetes)
    env_values: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        """Names only: a plan may be printed by a debugger or a log line, and must not leak through it."""
        return (
            f"Plan(image={self.spec.image!r}, env={[n for n, _ in self.env]}, "
            f"secret_env={[n for n, _ in self.secret_env]}, files={[f.target for f, _ in self.files]}, "
            f"versions={self.versions})"
        )


def resolve(spec: Spec, revealed: Mapping[str, Revealed]) -> Plan:
    """`spec` with every reference replaced by its value from `revealed` (name -> value and version).

    A secret spliced into an environment variable must be UTF-8 text without NUL bytes (an environment cannot
    carry anything else), and the variable at most MAX_ENV_STRING bytes; such a secret belongs in a file mount,
    which takes any bytes.
    """
    keys = spec.secret_keys()
    missing = [key for key in keys if key not in revealed]
    if missing:
        raise NotFound(f"secret{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")
    env = tuple((v.name, _join(v, revealed)) for v in spec.env if not v.is_secret)
    secret_env = tuple((v.name, _sized(v, _join(v, revealed))) for v in spec.env if v.is_secret)
    files = tuple((f, bytes(revealed[f.key].value)) for f in spec.secret_files)
    env_keys = sorted({ref.key for v in spec.env for ref in v.refs})
    env_values = {key: bytes(revealed[key].value) for key in env_keys}
    return Plan(spec, env, secret_env, files, {key: revealed[key].version for key in keys}, env_values)


MAX_ENV_STRING = 131072  # the kernel's MAX_ARG_STRLEN: one "NAME=value" string, its NUL included


def _sized(variable: EnvVar, value: str) -> str:
    """`value`, unless the kernel would refuse the variable at the job's exec ("Argument list too long")."""
    size = len(variable.name.encode()) + 1 + len(value.encode()) + 1
    if size <= MAX_ENV_STRING:
        return value
    keys = list(dict.fromkeys(part.key for part in variable.parts if isinstance(part, SecretRef)))
    where = f" ({variable.origin})" if variable.origin else ""
    named = f"secret{'s' if len(keys) > 1 else ''} {', '.join(repr(k) for k in keys)}"
    raise UsageError(
        f"variable {variable.name}{where}: with {named} it is {size} bytes, over the kernel's limit of "
        f"{MAX_ENV_STRING} for one environment variable (NAME=value and a NUL); deliver it as a file instead, "
        f"e.g. {variable.name}_FILE: secret-file:{keys[0]}"
    )


def _join(variable: EnvVar, revealed: Mapping[str, Revealed]) -> str:
    return "".join(part if isinstance(part, str) else _env_text(variable, part, revealed) for part in variable.parts)


def _env_text(variable: EnvVar, ref: SecretRef, revealed: Mapping[str, Revealed]) -> str:
    value = revealed[ref.key].value
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    else:
        if "\0" not in text:
            return text
        problem = "contains a NUL byte"
    where = f" ({variable.origin})" if variable.origin else ""
    raise UsageError(
        f"variable {variable.name}{where}: secret '{ref.key}' {problem}, which an environment variable cannot "
        f"hold; deliver it as a file instead, e.g. {variable.name}_FILE: secret-file:{ref.key}"
    )


def redacted(job: Spec | Plan) -> dict[str, Any]:
    """A JSON-able description of a job with secrets shown as references ('secret:KEY'), never as values.

    Plain variables are shown as they are; a variable holding a secret is shown as its template text, e.g.
    "postgres://app:{{ secret:db_pass }}@db/app". `secrets` maps each secret used to its version (None for a spec).
    """
    spec = job.spec if isinstance(job, Plan) else job
    versions: Mapping[str, int] = job.versions if isinstance(job, Plan) else {}
    resources = spec.resources
    return {
        "template": spec.source,
        "image": spec.image,
        "command": list(spec.command) if spec.command is not None else None,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "env": {variable.name: _reference_text(variable) for variable in spec.env},
        "mounts": [_secret_mount(f) for f in spec.secret_files] + [_bind_mount(b) for b in spec.binds],
        "workdir": spec.workdir,
        "user": spec.user,
        "ports": [
            {"container": p.container, "host": p.host or p.container, "host_ip": p.host_ip, "protocol": p.protocol}
            for p in spec.ports
        ],
        "resources": {
            "cpus": resources.cpus,
            "memory": resources.memory,
            "gpus": "all" if resources.gpus == -1 else resources.gpus,
        },
        "restart": _restart_text(spec),
        "labels": dict(spec.labels),
        "name": spec.name,
        "network": spec.network,
        "read_only": spec.read_only,
        "backend": spec.backend,
        "constraints": list(spec.constraints),
        "secrets": {key: versions.get(key) for key in spec.secret_keys()},
    }


def _reference_text(variable: EnvVar) -> str:
    if len(variable.parts) == 1 and isinstance(variable.parts[0], SecretRef):
        return f"secret:{variable.parts[0].key}"
    return "".join(part if isinstance(part, str) else f"{{{{ secret:{part.key} }}}}" for part in variable.parts)


def _secret_mount(file: SecretFile) -> dict[str, Any]:
    return {"type": "secret", "key": file.key, "path": file.target, "mode": f"0{file.mode:o}"}


def _bind_mount(bind: BindMount) -> dict[str, Any]:
    kind = "bind" if bind.source.startswith("/") else "volume"
    return {"type": kind, "source": bind.source, "path": bind.target, "read_only": bind.read_only}


def _restart_text(spec: Spec) -> str:
    restart = spec.restart
    return (
        f"on-failure:{restart.max_retries}"
        if restart.policy == "on-failure" and restart.max_retries
        else restart.policy
    )
