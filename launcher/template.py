"""YAML pod templates -> `Spec`: load with positions, validate the shape, build the job model.

Loading keeps, next to the plain data, the line and column of every value and key and the text of every scalar as
written (the approach of dagster's yaml_utils: compose the node tree with PyYAML's SafeLoader, then walk it), so
each error reads `FILE:LINE:COL: what is wrong`. The shape is checked against the one table in
`launcher.schema`; what needs more than a pattern (ports, paths, references inside env values, mounts that
collide) is checked here, while building. Env values are parsed by `launcher.references`, shared with the
command line. `yaml` is imported lazily: `launch --help` must not pay for it.

The image is not required here: `--image` may supply it, so `launcher.overrides.validate` checks it last.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher import names, schema
from launcher import references as refs
from launcher.errors import NotFound, TemplateError
from launcher.inputs import read_limited
from launcher.references import Invalid
from launcher.schema import KeyPath, fail
from launcher.spec import BindMount, EnvVar, Port, Resources, Restart, SecretFile, SecretRef, Spec

BUILTIN_DIR = Path(__file__).parent / "builtin_templates"  # the repo's templates/ folder, see pyproject.toml
MAX_NODES = 100_000  # YAML aliases can make a small file expand into a huge tree ("billion laughs")
_SEQUENCE_TAG = "tag:yaml.org,2002:seq"
_MAPPING_TAG = "tag:yaml.org,2002:map"
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass
class _Document:
    """Loaded YAML: plain data plus, by key path, positions and scalar texts (implements `schema.Source`)."""

    filename: str
    data: Any = None
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    texts: dict[KeyPath, str] = field(default_factory=dict)

    def where(self, path: KeyPath, *, key: bool = False) -> str:
        line, column = (self.key_marks if key else self.marks).get(path, (0, 0))
        return f"{self.filename}:{line + 1}:{column + 1}"

    def text(self, path: KeyPath) -> str:
        return self.texts[path]


def load(path: str | Path) -> Spec:
    """The job a template file describes. NotFound if there is no such file; TemplateError if it is invalid."""
    path = Path(path)
    try:
        text = read_limited(path).decode("utf-8")
    except FileNotFoundError:
        raise NotFound(f"template {str(path)!r} not found") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read ({exc.strerror})") from None
    return parse(text, str(path), path.parent.absolute())


def parse(text: str, filename: str, base_dir: Path | None = None) -> Spec:
    """The job described by template `text`; `filename` is used in messages and relative host paths resolve
    against `base_dir` (the template's folder; the current folder when None)."""
    doc = _load(text, filename)
    schema.validate(doc.data, doc)
    return _build(doc, base_dir)


def describe(path: str | Path) -> str:
    """A template file's `description:` (empty when it has none), for listings."""
    doc = _load(read_limited(path).decode("utf-8"), str(path))
    schema.validate(doc.data, doc)
    return doc.text(("description",)) if "description" in doc.data else ""


# --- loading -----------------------------------------------------------------------------------------------------


def _load(text: str, filename: str) -> _Document:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    loader = Loader(text)
    doc = _Document(filename)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _Walker(loader, doc).walk(node, ())
    except yaml.MarkedYAMLError as exc:
        # problem and context are fixed phrases ("mapping values are not allowed here"); str(exc) would quote the
        # offending line, which may hold a secret
        message = f"{_mark(filename, exc.problem_mark or exc.context_mark)}: invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark:
            # an unclosed bracket or quote is found at the end of the file: say where it was opened
            message += f" ({exc.context} at {_mark(filename, exc.context_mark)})"
        raise TemplateError(message) from None
    except yaml.YAMLError:
        raise TemplateError(f"{filename}: invalid YAML") from None
    except RecursionError:
        raise TemplateError(f"{filename}: nested too deeply") from None
    finally:
        loader.dispose()
    return doc


def _mark(filename: str, mark: Any) -> str:
    return f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename


class _Walker:
    """Turns composed YAML nodes into plain data, recording positions and scalar texts by key path."""

    def __init__(self, loader: Any, doc: _Document):
        self.loader = loader
        self.doc = doc
        self.budget = MAX_NODES

    def walk(self, node: Any, path: KeyPath) -> Any:
        import yaml

        self.budget -= 1
        if self.budget < 0:
            raise TemplateError(f"{self.doc.filename}: too large (more than {MAX_NODES} values once aliases expand)")
        self.doc.marks[path] = (node.start_mark.line, node.start_mark.column)
        if isinstance(node, yaml.ScalarNode):
            self.doc.texts[path] = node.value
            return self.loader.construct_object(node)
        if node.tag not in (_SEQUENCE_TAG, _MAPPING_TAG):  # never constructed, so an unknown tag would be ignored
            raise fail(self.doc, path, f"unsupported YAML tag {node.tag!r}")
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, index)) for index, item in enumerate(node.value)]
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        data: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value if isinstance(key_node, yaml.ScalarNode) else "?")
            self.doc.key_marks[key_path] = (key_node.start_mark.line, key_node.start_mark.column)
            if not isinstance(key_node, yaml.ScalarNode):
                raise fail(self.doc, key_path, "a key must be text, not a list or a map", key=True)
            if key_node.value in data:
                raise fail(self.doc, key_path, f"duplicate key '{key_node.value}'", key=True)
            data[key_node.value] = self.walk(value_node, key_path)
        return data


# --- building ----------------------------------------------------------------------------------------------------


def _build(doc: _Document, base_dir: Path | None) -> Spec:
    data = doc.data
    text = _texts(doc, data)
    env, env_files = _env(doc, data.get("env", {}))
    volumes = [_volume(doc, ("volumes", i), item, base_dir) for i, item in enumerate(data.get("volumes", []))]
    mounts = [*refs.shared_files(env_files), *volumes]
    try:
        refs.check_mounts(mounts)
    except Invalid as exc:
        raise TemplateError(f"{exc.origin}: {exc}") from None
    return Spec(
        image=text("image"),
        command=_argv(doc, ("command",), data),
        entrypoint=_argv(doc, ("entrypoint",), data),
        env=tuple(env),
        secret_files=tuple(m for m in mounts if isinstance(m, SecretFile)),
        binds=tuple(m for m in mounts if isinstance(m, BindMount)),
        workdir=_at(doc, ("workdir",), refs.container_path) if "workdir" in data else None,
        user=text("user"),
        ports=_ports(doc, data.get("ports", [])),
        resources=_resources(doc, data.get("resources", {})),
        restart=_restart(text("restart")),
        labels=tuple((key, doc.text(("labels", key))) for key in data.get("labels", {})),
        name=text("name"),
        read_only=bool(data.get("read_only", False)),
        network=text("network"),
        backend=text("backend"),
        context=doc.text(("kubernetes", "context")) if "context" in data.get("kubernetes", {}) else None,
        namespace=doc.text(("kubernetes", "namespace")) if "namespace" in data.get("kubernetes", {}) else None,
        constraints=tuple(doc.text(("constraints", i)) for i in range(len(data.get("constraints", [])))),
        source=doc.filename,
        matrix=tuple(
            (key, tuple(doc.text(("matrix", key, i)) for i in range(len(values))))
            for key, values in data.get("matrix", {}).items()
        ),
    )


def _texts(doc: _Document, data: dict[str, Any]) -> Callable[[str], str | None]:
    """A getter: a top-level key's text as written, or None when the template does not set it."""
    return lambda key: doc.text((key,)) if key in data else None


def _at(doc: _Document, path: KeyPath, parse: Callable[[str], Any]) -> Any:
    """`parse` applied to the text at `path`, its `Invalid` turned into a TemplateError at that position."""
    try:
        return parse(doc.text(path))
    except Invalid as exc:
        raise fail(doc, path, str(exc)) from None


def _argv(doc: _Document, path: KeyPath, data: dict[str, Any]) -> tuple[str, ...] | None:
    key = path[0]
    if key not in data:
        return None
    if isinstance(data[key], list):
        return tuple(doc.text((*path, i)) for i in range(len(data[key])))
    try:
        return tuple(shlex.split(doc.text(path)))
    except ValueError:
        raise fail(doc, path, "unbalanced quotes (or a trailing backslash)") from None


def _env(doc: _Document, data: dict[str, Any]) -> tuple[list[EnvVar], list[SecretFile]]:
    """The variables, and the secret files that `secret-file:` values and `{secret_file: ...}` entries ask for."""
    variables: list[EnvVar] = []
    files: list[SecretFile] = []
    for name, value in data.items():
        path: KeyPath = ("env", name)
        origin = doc.where(path, key=True)
        try:
            if isinstance(value, dict):
                variable, file = _env_long_form(doc, path, value, origin)
            else:
                variable, file = refs.parse_env_entry(name, doc.text(path), origin)
        except Invalid as exc:
            raise fail(doc, path, str(exc)) from None
        variables.append(variable)
        if file is not None:
            files.append(file)
    return variables, files


def _env_long_form(
    doc: _Document, path: KeyPath, value: dict[str, Any], origin: str
) -> tuple[EnvVar, SecretFile | None]:
    name = str(path[-1])
    if "value" in value:
        return EnvVar(name, refs.literal(doc.text((*path, "value"))), origin), None
    if "secret" in value:
        return EnvVar(name, (SecretRef(doc.text((*path, "secret"))),), origin), None
    key = doc.text((*path, "secret_file"))
    target = _at(doc, (*path, "path"), refs.container_path) if "path" in value else refs.default_file_path(key)
    mode = _at(doc, (*path, "mode"), refs.parse_mode) if "mode" in value else refs.DEFAULT_MODE
    file = SecretFile(key, target, mode, origin)
    return EnvVar(name, (target,), origin), file


def _volume(doc: _Document, path: KeyPath, value: Any, base_dir: Path | None) -> SecretFile | BindMount:
    origin = doc.where(path)
    if not isinstance(value, dict):
        return _at(doc, path, lambda spec: refs.parse_volume(spec, origin, base_dir))
    target = _at(doc, (*path, "path"), refs.container_path)
    if "secret" in value:
        mode = _at(doc, (*path, "mode"), refs.parse_mode) if "mode" in value else refs.DEFAULT_MODE
        return SecretFile(doc.text((*path, "secret")), target, mode, origin)
    source = _at(doc, (*path, "host"), lambda host: refs.host_source(host, base_dir))
    return BindMount(source, target, bool(value.get("read_only", False)), origin)


_PORT_TEXT = re.compile(  # schema.PORT with named groups (JSON Schema's regex dialect spells them differently)
    r"(?:(?P<ip>[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]):)?(?:(?P<host>[0-9]+):)?(?P<container>[0-9]+)"
    r"(?:/(?P<protocol>tcp|udp))?"
)


def _ports(doc: _Document, items: list[Any]) -> tuple[Port, ...]:
    ports: list[Port] = []
    for index, item in enumerate(items):
        path: KeyPath = ("ports", index)
        port = _port_map(doc, path, item) if isinstance(item, dict) else _at(doc, path, _port_text)
        clash = _port_clash(ports, port)
        if clash:
            raise fail(doc, path, clash)
        ports.append(port)
    return tuple(ports)


def _port_clash(ports: list[Port], port: Port) -> str | None:
    """Why `port` cannot join `ports`: the engine keys bindings by container port, and a host port binds once."""
    published = port.host or port.container
    for other in ports:
        if (other.container, other.protocol) == (port.container, port.protocol):
            return f"container port {port.container}/{port.protocol} is listed twice"
        if (other.host_ip, other.host or other.container, other.protocol) == (port.host_ip, published, port.protocol):
            return f"host port {published}/{port.protocol} is published twice"
    return None


def _port_text(text: str) -> Port:
    """'8888', '8080:80', '127.0.0.1:8080:80', '[::1]:8080:80', each optionally '/udp' (shape checked by the schema)."""
    match = _PORT_TEXT.fullmatch(text)
    assert match is not None  # the schema's PORT pattern admitted it
    host = match["host"]
    return Port(
        container=_port_number(match["container"]),
        host=_port_number(host) if host else None,
        host_ip=_host_ip(match["ip"].strip("[]")) if match["ip"] else Port.host_ip,  # the model's default: loopback
        protocol=match["protocol"] or "tcp",
    )


def _port_map(doc: _Document, path: KeyPath, item: dict[str, Any]) -> Port:
    return Port(
        container=item["container"],
        host=item.get("host"),
        host_ip=_at(doc, (*path, "host_ip"), _host_ip) if "host_ip" in item else Port.host_ip,
        protocol=doc.text((*path, "protocol")) if "protocol" in item else "tcp",
    )


def _port_number(text: str) -> int:
    number = int(text)
    if not 1 <= number <= 65535:
        raise Invalid(f"port {number} is out of range (1-65535)")
    return number


def _host_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"invalid host IP address {names.shown(text)}") from None


def _resources(doc: _Document, data: dict[str, Any]) -> Resources:
    gpus = doc.text(("resources", "gpus")) if "gpus" in data else None
    return Resources(
        cpus=float(data["cpus"]) if "cpus" in data else None,
        memory=_at(doc, ("resources", "memory"), parse_size) if "memory" in data else None,
        gpus=None if gpus is None else -1 if gpus == "all" else int(gpus),
    )


def parse_size(text: str) -> int:
    """Bytes in a size like '512m', '2g', '1.5G', '64kb' or '1048576' (binary units, as Docker reads them)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([kmgt]?)b?", text.lower())
    if match is None:
        raise Invalid(f"expected a size like 512m or 2g, or a number of bytes, got {names.shown(text)}")
    size = int(float(match[1]) * _SIZE_UNITS[match[2]])
    if size < 1:
        raise Invalid(f"the size {names.shown(text)} must be at least 1 byte")
    return size


def _restart(text: str | None) -> Restart:
    """'no', 'always', 'unless-stopped', 'on-failure' or 'on-failure:N' (shape checked by the schema)."""
    if text is None:
        return Restart()
    policy, _, retries = text.partition(":")
    return Restart(policy, int(retries) if retries else 0)


# --- built-in templates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builtin:
    name: str
    path: Path
    description: str


def builtin_names() -> list[str]:
    """The names of the built-in templates, sorted (file names without .yaml)."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path | None:
    """The file of built-in template `name`, or None (only listed names: no path tricks through `name`)."""
    return BUILTIN_DIR / f"{name}.yaml" if name in builtin_names() else None


def builtins() -> list[Builtin]:
    """Every built-in template with its description (each file is loaded and validated)."""
    paths = {name: BUILTIN_DIR / f"{name}.yaml" for name in builtin_names()}
    return [Builtin(name, path, describe(path)) for name, path in paths.items()]


def find(name_or_path: str) -> Path:
    """The template `launch run NAME_OR_PATH` means: an existing file, else a built-in of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = builtin_path(name_or_path)
    if builtin is not None:
        return builtin
    names = ", ".join(builtin_names()) or "none"
    raise NotFound(f"no template file {name_or_path!r} and no built-in template of that name (built-ins: {names})")
