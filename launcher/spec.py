"""The plain-data model of a job: what a template (plus command-line overrides) asks for.

Pure data, no I/O: `launcher.template` builds a `Spec` from YAML, `launcher.overrides` applies the command line,
`launcher.plan` resolves its secret references into a `Plan`, and a runtime (`launcher.runtime.*`) carries the
plan out. A `Spec` holds secret *names* only, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret in the store, by name (`secret:KEY` or `{{ RUNPOD_SECRET_KEY }}`)."""

    key: str


# An env value is a sequence of literal text pieces and secret references, concatenated at resolve time:
# "postgres://app:{{ RUNPOD_SECRET_db }}@db/app" -> ("postgres://app:", SecretRef("db"), "@db/app").
EnvPart = str | SecretRef


@dataclass(frozen=True)
class EnvVar:
    name: str
    parts: tuple[EnvPart, ...]
    origin: str = ""  # where it was written, for messages: "job.yaml:7:5", "--env", ".env:3"

    @property
    def refs(self) -> tuple[SecretRef, ...]:
        return tuple(p for p in self.parts if isinstance(p, SecretRef))

    @property
    def is_secret(self) -> bool:
        return bool(self.refs)


@dataclass(frozen=True)
class SecretFile:
    """A secret delivered as a read-only file at `target` inside the container."""

    key: str
    target: str  # absolute container path
    mode: int = 0o400
    origin: str = ""


@dataclass(frozen=True)
class BindMount:
    source: str  # host path (absolute after loading) or a named volume
    target: str  # absolute container path
    read_only: bool = False
    origin: str = ""


@dataclass(frozen=True)
class Port:
    container: int
    host: int | None = None  # None: same as container
    host_ip: str = "127.0.0.1"  # published on loopback unless the template says otherwise
    protocol: str = "tcp"  # "tcp" | "udp"


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory: int | None = None  # bytes
    gpus: int | None = None  # -1 means "all"


@dataclass(frozen=True)
class Restart:
    policy: str = "no"  # "no" | "on-failure" | "always" | "unless-stopped"
    max_retries: int = 0  # only for on-failure


@dataclass(frozen=True)
class Spec:
    image: str | None = None
    command: tuple[str, ...] | None = None  # None: the image's CMD
    entrypoint: tuple[str, ...] | None = None  # None: the image's ENTRYPOINT
    env: tuple[EnvVar, ...] = ()
    secret_files: tuple[SecretFile, ...] = ()
    binds: tuple[BindMount, ...] = ()
    workdir: str | None = None
    user: str | None = None  # "uid", "uid:gid", "name", "name:group"
    ports: tuple[Port, ...] = ()
    resources: Resources = field(default_factory=Resources)
    restart: Restart = field(default_factory=Restart)
    labels: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    read_only: bool = False  # Docker's --read-only: the root filesystem is mounted read-only
    network: str | None = None  # "none", "host", "bridge" or a network name; None: the engine's default
    backend: str | None = None  # "docker" | "swarm" | "kubernetes"; None: --backend, $LAUNCH_BACKEND, else "docker"
    context: str | None = None  # kubernetes: the kubeconfig context (None: the current one)
    namespace: str | None = None  # kubernetes: the namespace (None: the context's, else "default")
    constraints: tuple[str, ...] = ()  # placement, e.g. "node.labels.gpu==true" (kubernetes: a node selector)
    source: str | None = None  # the template file it came from, if any
    # a sweep (launcher.app.sweep): (key, its values as written) per axis, in order; the job runs once per
    # combination, with the key upper-cased as an env variable
    matrix: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def secret_keys(self) -> tuple[str, ...]:
        """Every secret name this job uses, sorted, each once."""
        keys = {ref.key for var in self.env for ref in var.refs}
        keys.update(f.key for f in self.secret_files)
        return tuple(sorted(keys))
