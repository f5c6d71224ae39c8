"""The pod template's shape, declared once: the validator walks it and the published JSON schema is generated from it.

`TEMPLATE` below is the single table of every key a template may have. `validate()` checks loaded YAML against it
and reports the first problem as `TemplateError("FILE:LINE:COL: key.path: what is wrong")`; `json_schema()` turns
the same table into a JSON Schema (draft 2020-12) for editors, published as launcher/template.schema.json. After
changing the table, regenerate the file (a test checks it is in sync)::

    python -m launcher.schema > launcher/template.schema.json

The table describes *shape* only (types, keys, text patterns). What needs more than a pattern (port ranges,
container paths, references inside env values) is checked while building the job in `launcher.template`.

Scalars are read as the text written in the file wherever text is expected (`Text`): `restart: no` is the text
"no" (not YAML 1.1's false), `- 80:22` a port mapping (not the sexagesimal number 4822), `mode: 0440` the octal
mode 0440, `FOO: 8080` the text "8080". Error messages name keys and positions; they quote the text at fault
only where it cannot be a secret's value (`Text(quoted=True)`: images, paths, names, ports, sizes...), never
an env value, a command, a label or an invalid secret name.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from launcher import names
from launcher import references as refs
from launcher.errors import TemplateError

KeyPath = tuple[str | int, ...]

# Text patterns shared with the command line (launcher.overrides). A job's name: launcher.names.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a network name, as Docker accepts them
KUBE_NAMESPACE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a DNS-1123 label, what a namespace name is
KUBE_CONTEXT = r"^[^\s].{0,252}$"  # kubeconfig context names are free text (EKS: arn:aws:eks:...:cluster/x)
NAME_HINT = "letters, digits, '_', '.' and '-', starting with a letter or digit"
IMAGE = r"^[^\s]+$"
PORT = r"^(([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]):)?([0-9]{1,5}:)?[0-9]{1,5}(/(tcp|udp))?$"
MEMORY = r"^[0-9]+(\.[0-9]+)?([kKmMgGtT][bB]?|[bB])?$"
RESTART = r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$"
USER = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$"
GPUS = r"^([1-9][0-9]*|all)$"
PROTOCOL = r"^(tcp|udp)$"
BACKEND = r"^(docker|swarm|kubernetes)$"


class Source(Protocol):
    """Where loaded data came from: positions and the text of scalars as written."""

    def where(self, path: KeyPath, *, key: bool = False) -> str:
        """'FILE:LINE:COL' of the value at `path` (or of its key, with key=True)."""

    def text(self, path: KeyPath) -> str:
        """The scalar at `path` as written in the file."""


def dotted(path: KeyPath) -> str:
    """`env.DB_URL`, `volumes[2]`, `resources.memory`: how messages name a place in the template."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def fail(source: Source, path: KeyPath, problem: str, *, key: bool = False) -> TemplateError:
    """The error for `problem` at `path`: 'FILE:LINE:COL: key.path: problem'.

    With key=True the problem is the key itself: the position is the key's, and the message names its map.
    """
    subject = dotted(path[:-1] if key else path)
    prefix = f"{subject}: " if subject else ""
    return TemplateError(f"{source.where(path, key=key)}: {prefix}{problem}")


def kind(value: Any) -> str:
    """What a loaded value is, in words, for 'expected X, got Y' (never the value itself)."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return "text" if isinstance(value, str) else "a scalar"


class Type(Protocol):
    expected: str  # in words, for messages: "text", "a list", "a whole number from 1 to 65535"

    def accepts(self, value: Any) -> bool:
        """Whether `value` has this type's kind (a OneOf uses it to pick an alternative)."""

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        """Raise TemplateError at the first problem in `value`."""

    def json(self) -> dict[str, Any]:
        """This type as JSON Schema."""


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, **schema} if description else schema


@dataclass(frozen=True)
class Text:
    """Any scalar but null, read as written; with a pattern, the written text must match it."""

    description: str = ""
    pattern: str | None = None
    hint: str = ""  # what the pattern means, for messages: "a size like 512m or 2g"
    quoted: bool = False  # a message may quote the text: it cannot be a secret's value

    @property
    def expected(self) -> str:
        return self.hint or "text"

    def accepts(self, value: Any) -> bool:
        return value is not None and not isinstance(value, (dict, list))

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value):
            raise fail(source, path, f"expected {self.expected}, got {kind(value)}")
        if self.pattern and re.fullmatch(self.pattern, source.text(path)) is None:
            got = f", got {names.shown(source.text(path))}" if self.quoted else ""
            raise fail(source, path, f"expected {self.expected}{got}")

    def json(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["string", "number", "boolean"]}
        if self.pattern:
            schema["pattern"] = self.pattern
        return _described(schema, self.description)


@dataclass(frozen=True)
class Integer:
    description: str = ""
    minimum: int | None = None
    maximum: int | None = None

    @property
    def expected(self) -> str:
        return f"a whole number from {self.minimum} to {self.maximum}"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value) or not (self.minimum <= value <= self.maximum):
            raise fail(source, path, f"expected {self.expected}, got {kind(value)}")

    def json(self) -> dict[str, Any]:
        return _described({"type": "integer", "minimum": self.minimum, "maximum": self.maximum}, self.description)


@dataclass(frozen=True)
class Number:
    """A number greater than zero (CPUs)."""

    description: str = ""
    expected: str = "a number greater than 0"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value) or not value > 0:
            raise fail(source, path, f"expected {self.expected}, got {kind(value)}")

    def json(self) -> dict[str, Any]:
        return _described({"type": "number", "exclusiveMinimum": 0}, self.description)


@dataclass(frozen=True)
class Bool:
    description: str = ""
    expected: str = "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value):
            raise fail(source, path, f"expected {self.expected}, got {kind(value)}")

    def json(self) -> dict[str, Any]:
        return _described({"type": "boolean"}, self.description)


@dataclass(frozen=True)
class ListOf:
    item: Type
    description: str = ""
    expected: str = "a list"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value):
            raise fail(source, path, f"expected a list, got {kind(value)}")
        for index, item in enumerate(value):
            self.item.check(item, (*path, index), source)

    def json(self) -> dict[str, Any]:
        return _described({"type": "array", "items": self.item.json()}, self.description)


@dataclass(frozen=True)
class MapOf:
    """A map with free keys (env names, label keys), each key matching `key_pattern` when given."""

    value: Type
    description: str = ""
    key_pattern: str | None = None
    key_problem: str = ""  # e.g. "invalid variable name {key!r} (use letters, ...)"
    expected: str = "a map"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not self.accepts(value):
            raise fail(source, path, f"expected a map, got {kind(value)}")
        for key, item in value.items():
            if self.key_pattern and re.fullmatch(self.key_pattern, key) is None:
                raise fail(source, (*path, key), f"{self.key_problem.format(key=key)}", key=True)
            self.value.check(item, (*path, key), source)

    def json(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if self.key_pattern:
            schema["propertyNames"] = {"pattern": self.key_pattern}
        schema["additionalProperties"] = self.value.json()
        return _described(schema, self.description)


@dataclass(frozen=True)
class Record:
    """A map with fixed keys. Its first required key, if any, tells it apart from other records in a OneOf."""

    fields: Mapping[str, Type]
    required: tuple[str, ...] = ()
    description: str = ""

    @property
    def expected(self) -> str:
        return f"a map with '{self.required[0]}'" if self.required else "a map"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict) and (not self.required or self.required[0] in value)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        if not isinstance(value, dict):
            raise fail(source, path, f"expected a map, got {kind(value)}")
        for key, item in value.items():
            if key not in self.fields:
                raise fail(source, (*path, key), _unknown_key(key, self.fields), key=True)
            self.fields[key].check(item, (*path, key), source)
        for key in self.required:
            if key not in value:
                raise fail(source, path, f"missing key '{key}'")

    def json(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {key: t.json() for key, t in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        return _described(schema, self.description)


def _unknown_key(key: str, known: Mapping[str, Any], *, quote: bool = True) -> str:
    """'unknown key ...' with the closest known key, if any, as a suggestion; quote=False leaves a far-off key out."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    shown = f" '{key}'" if quote else ""
    return f"unknown key{shown} (expected one of: {', '.join(known)})"


@dataclass(frozen=True)
class OneOf:
    """One of several forms, picked by kind (text, list, map) and, among records, by their first required key."""

    options: tuple[Type, ...]
    description: str = ""

    @property
    def expected(self) -> str:
        words = [option.expected for option in self.options]
        return ", ".join(words[:-1]) + " or " + words[-1]

    def accepts(self, value: Any) -> bool:
        return any(option.accepts(value) for option in self.options)

    def check(self, value: Any, path: KeyPath, source: Source) -> None:
        matches = [option for option in self.options if option.accepts(value)]
        keyed = {
            option.required[0]: option for option in self.options if isinstance(option, Record) and option.required
        }
        if not matches and isinstance(value, dict) and keyed:
            known = {key for option in keyed.values() for key in option.fields}
            unknown = [key for key in value if key not in known]
            if unknown:
                # the key is quoted only beside a close match: `A: {sk-live-...}` is a map whose key is a secret
                raise fail(source, (*path, unknown[0]), _unknown_key(unknown[0], keyed, quote=False), key=True)
            raise fail(source, path, f"a map here needs one of the keys {', '.join(keyed)}")
        if not matches:
            raise fail(source, path, f"expected {self.expected}, got {kind(value)}")
        records = [option for option in matches if isinstance(option, Record) and option.required]
        if len(records) > 1:
            keys = " and ".join(f"'{option.required[0]}'" for option in records)
            raise fail(source, path, f"use only one of {keys}")
        matches[0].check(value, path, source)

    def json(self) -> dict[str, Any]:
        # anyOf, not oneOf: a number is valid both as an integer and as text in JSON Schema's eyes
        return _described({"anyOf": [option.json() for option in self.options]}, self.description)


# --- the table ---------------------------------------------------------------------------------------------------

_SECRET_NAME = Text("The name of a secret in the store.", refs.SECRET_NAME, f"a secret name ({refs.SECRET_NAME_HINT})")
_CONTAINER_PATH = Text("An absolute path inside the container.", r"^/.*$", "an absolute container path", True)
_MODE = Text("The file's mode, octal (default 0400).", refs.MODE, refs.MODE_HINT, True)
_ARGV = OneOf(
    (
        Text("A command line, split like a shell would (no variables, no globbing)."),
        ListOf(Text(), "The arguments, one per item."),
    )
)

ENV_VALUE = OneOf(
    (
        Text(
            "Literal text, except: 'secret:KEY' (whole value) is the secret's value; '{{ RUNPOD_SECRET_KEY }}' "
            "anywhere is replaced by the secret's value; 'secret-file:KEY' (whole value) mounts the secret as a "
            "file at /run/secrets/KEY and sets the variable to that path. A leading backslash makes the rest "
            "literal ('\\secret:x' is the text 'secret:x')."
        ),
        Record({"value": Text("Literal text, never interpreted.")}, ("value",)),
        Record({"secret": _SECRET_NAME}, ("secret",), "The variable holds the secret's value."),
        Record(
            {"secret_file": _SECRET_NAME, "path": _CONTAINER_PATH, "mode": _MODE},
            ("secret_file",),
            "The secret as a read-only file (default path /run/secrets/KEY); the variable holds its path.",
        ),
    )
)

VOLUME = OneOf(
    (
        Text(
            "'secret:KEY:/container/path[:MODE]' (a secret as a read-only file) or "
            "'HOST:/container/path[:ro|rw]' (HOST: a path, relative to the template's folder, or a volume name)."
        ),
        Record(
            {"secret": _SECRET_NAME, "path": _CONTAINER_PATH, "mode": _MODE},
            ("secret", "path"),
            "A secret as a read-only file.",
        ),
        Record(
            {
                "host": Text("A host path (relative to the template's folder) or a named volume."),
                "path": _CONTAINER_PATH,
                "read_only": Bool("Mount read-only (default false)."),
            },
            ("host", "path"),
            "A host folder, file or named volume.",
        ),
    )
)

_PORT_NUMBER = Integer(minimum=1, maximum=65535)
PORT_ENTRY = OneOf(
    (
        Text(
            "'CONTAINER', 'HOST:CONTAINER' or 'IP:HOST:CONTAINER', optionally '/udp'; published on 127.0.0.1 "
            "unless an IP is given (write 0.0.0.0 to publish on every interface).",
            PORT,
            "a port like 8888, 8080:80 or 127.0.0.1:8080:80, optionally /udp",
            quoted=True,
        ),
        Record(
            {
                "container": _PORT_NUMBER,
                "host": _PORT_NUMBER,
                "host_ip": Text("The host address to publish on (default 127.0.0.1)."),
                "protocol": Text("tcp (default) or udp.", PROTOCOL, "tcp or udp", True),
            },
            ("container",),
        ),
    )
)

RESOURCES = Record(
    {
        "cpus": Number("How many CPUs the job may use, e.g. 1.5."),
        "memory": Text(
            "A memory limit: bytes, or a size like 512m or 2g.",
            MEMORY,
            "a size like 512m or 2g, or a number of bytes",
            True,
        ),
        "gpus": Text("How many GPUs, or 'all'.", GPUS, "a number of GPUs or 'all'", True),
    },
    description="Limits and devices.",
)

KUBERNETES = Record(
    {
        "context": Text(
            "The kubeconfig context to run in (default: the current context).", KUBE_CONTEXT, "a context name", True
        ),
        "namespace": Text(
            "The namespace to run in (default: the context's, else default).",
            KUBE_NAMESPACE,
            "a namespace name: lowercase letters, digits and '-', at most 63",
            True,
        ),
    },
    description="Where the kubernetes backend runs the job (--context and --namespace override these).",
)

TEMPLATE = Record(
    {
        "description": Text("What this template is for (shown by `launch templates ls`)."),
        "image": Text(
            "The container image (required here or with --image).", IMAGE, "an image name without spaces", True
        ),
        "command": OneOf(_ARGV.options, "Replaces the image's CMD."),
        "entrypoint": OneOf(_ARGV.options, "Replaces the image's ENTRYPOINT."),
        "env": MapOf(
            ENV_VALUE,
            "Environment variables: NAME: value.",
            refs.ENV_NAME,
            "invalid variable name {key!r} (use " + refs.ENV_NAME_HINT + ")",
        ),
        "volumes": ListOf(VOLUME, "Secret files, host folders and named volumes."),
        "workdir": _CONTAINER_PATH,
        "user": Text(
            "The user to run as: uid, uid:gid, name or name:group.", USER, "a user like 1000, 1000:1000 or app", True
        ),
        "ports": ListOf(PORT_ENTRY, "Ports to publish."),
        "resources": RESOURCES,
        "restart": Text(
            "When to restart the container.", RESTART, "one of no, always, unless-stopped, on-failure[:N]", True
        ),
        "labels": MapOf(Text(), "Container labels."),
        "name": Text(
            "The job's name (and its container's).", names.JOB_NAME, f"a job name of {names.JOB_NAME_HINT}", True
        ),
        "read_only": Bool("Mount the container's root filesystem read-only (default false); secrets still work."),
        "network": Text(
            "none, host, bridge, or the name of a Docker network.", NAME, f"a network name of {NAME_HINT}", True
        ),
        "backend": Text(
            "Where to run: docker (default), swarm or kubernetes.", BACKEND, "docker, swarm or kubernetes", True
        ),
        "constraints": ListOf(
            Text(), "Placement: swarm constraints, e.g. node.labels.gpu==true (node selectors on kubernetes)."
        ),
        "kubernetes": KUBERNETES,
        "matrix": MapOf(
            ListOf(Text(), "The values, as written (each job gets one as text)."),
            "A sweep: one job per combination of the values; each key becomes an env variable, upper-cased "
            "(lr: [1e-3, 1e-4] sets LR). `launch run --matrix KEY=V1,V2` adds or replaces an axis.",
            refs.ENV_NAME,
            "invalid matrix key {key!r} (use " + refs.ENV_NAME_HINT + ")",
        ),
    },
    description="A launch pod template.",
)


def validate(data: Any, source: Source) -> None:
    """Raise TemplateError at the first place where `data` (loaded YAML) does not fit `TEMPLATE`."""
    if not isinstance(data, dict):
        raise fail(source, (), f"a template must be a map of keys (image:, env:, ...), got {kind(data)}")
    TEMPLATE.check(data, (), source)


def json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "launch pod template",
        **TEMPLATE.json(),
    }


def render() -> str:
    """The JSON schema as published in launcher/template.schema.json."""
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised through the sync test's command
    import sys

    sys.stdout.write(render())
