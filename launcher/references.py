r"""Secret references in env values and volume specs: one parser shared by templates and the command line.

An env value (in a template's `env:`, in `--env VAR=VALUE`, or on an `--env-file` line) is literal text, except:

- ``secret:KEY`` as the *whole* value: the value of secret KEY (Apolo's syntax).
- ``{{ RUNPOD_SECRET_KEY }}`` *anywhere* in the value, spaces inside the braces optional: the value of secret KEY,
  spliced into the text (RunPod's syntax): ``postgres://app:{{ RUNPOD_SECRET_db_pass }}@db/app``.
- ``secret-file:KEY`` as the whole value: secret KEY delivered as a read-only file at ``/run/secrets/KEY``, and the
  variable holds that path (the ``VAR_FILE`` convention: ``POSTGRES_PASSWORD_FILE: secret-file:db_pass``).

To write literal text that would otherwise be read as a reference, start the value with a backslash: the
backslash is dropped and nothing after it is interpreted. ``\secret:abc`` is the text ``secret:abc``,
``\{{ RUNPOD_SECRET_x }}`` is that text verbatim, and ``\\share`` is ``\share`` (so a value that really begins
with a backslash needs a second one). In a template the long form ``{value: ...}`` is never interpreted either.

A value that starts with ``secret:`` or ``secret-file:`` but does not name a valid secret is an error rather than
literal text: a typo in a reference must never silently become the job's configuration.

A volume spec is ``secret:KEY:/container/path[:MODE]`` (a secret file, MODE octal like ``0440``) or
``HOST:/container/path[:ro|rw]`` where HOST is a path (relative ones resolve against a base folder: the
template's, or the current one on the command line) or a named volume (a name without ``/`` or a leading ``.``).

Every function here is pure and raises `Invalid` with a message that names what is wrong. It quotes the offending
text where that cannot be a secret's value (paths, modes, volume names), never an env value nor a secret name
that is invalid (it may be a value pasted where a name was meant); callers add the position and pick the error
class (`TemplateError` for a template, `UsageError` for the command line).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from pathlib import Path

from launcher import names
from launcher.spec import BindMount, EnvPart, EnvVar, SecretFile, SecretRef

SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o400

# Patterns are written so that JSON Schema (ECMA-262) and Python `re.fullmatch` read them the same way; the
# template schema (launcher.schema) publishes them for editors.
SECRET_NAME = names.SECRET_NAME  # the one rule, in launcher.names
SECRET_NAME_HINT = names.SECRET_NAME_HINT
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME_HINT = "letters, digits and '_', not starting with a digit"
MODE = r"^(0o|0)?[0-7]{3}$"
MODE_HINT = "an octal file mode like 0400 or 0440"
VOLUME_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_SECRET = "secret:"
_SECRET_FILE = "secret-file:"
_RUNPOD = re.compile(r"\{\{\s*RUNPOD_SECRET_(.*?)\s*\}\}", re.DOTALL)


class Invalid(ValueError):
    """Bad input, described without quoting it; `origin` names the entry at fault when it is not the caller's."""

    def __init__(self, message: str, origin: str = ""):
        super().__init__(message)
        self.origin = origin


def _q(text: str) -> str:
    """Text that cannot be a secret's value, quoted for a message (cut short: a pasted blob must not flood)."""
    return names.shown(text)


def is_secret_name(name: str) -> bool:
    return re.fullmatch(SECRET_NAME, name) is not None


def is_env_name(name: str) -> bool:
    return re.fullmatch(ENV_NAME, name) is not None


def secret_name(text: str, syntax: str) -> str:
    """`text` if it is a valid secret name; `syntax` says where it was written, for the message."""
    if not text:
        raise Invalid(f"no secret name after {syntax}")
    if not is_secret_name(text):
        raise Invalid(f"invalid secret name after {syntax} (use {SECRET_NAME_HINT})")
    return text


def literal(text: str) -> tuple[EnvPart, ...]:
    """Literal env text as parts: empty text has none. A NUL byte cannot be passed through an environment."""
    if "\0" in text:
        raise Invalid("contains a NUL character, which an environment variable cannot hold")
    return (text,) if text else ()


def parse_env_value(text: str) -> tuple[EnvPart, ...]:
    """Literal text and `SecretRef`s, in order, for an env value (see the module docstring for the syntax).

    `secret-file:` is not handled here: it changes what the entry means, see `parse_env_entry`.
    """
    if text.startswith("\\"):
        return literal(text[1:])
    if text.startswith(_SECRET):
        return (SecretRef(secret_name(text[len(_SECRET) :], "'secret:'")),)
    parts: list[EnvPart] = []
    position = 0
    for match in _RUNPOD.finditer(text):
        parts.extend(literal(text[position : match.start()]))
        parts.append(SecretRef(secret_name(match.group(1), "'{{ RUNPOD_SECRET_'")))
        position = match.end()
    parts.extend(literal(text[position:]))
    return tuple(parts)


def secret_file_key(text: str) -> str | None:
    """The secret name of a whole `secret-file:KEY` value, or None when the value is something else."""
    if not text.startswith(_SECRET_FILE):
        return None
    return secret_name(text[len(_SECRET_FILE) :], "'secret-file:'")


def default_file_path(key: str) -> str:
    return f"{SECRETS_DIR}/{key}"


def parse_env_entry(name: str, text: str, origin: str) -> tuple[EnvVar, SecretFile | None]:
    """One `NAME=text` entry: the variable, plus the secret file it asks for when the text is `secret-file:KEY`."""
    key = secret_file_key(text)
    if key is None:
        return EnvVar(name, parse_env_value(text), origin), None
    file = SecretFile(key, default_file_path(key), DEFAULT_MODE, origin)
    return EnvVar(name, (file.target,), origin), file


def parse_mode(text: str) -> int:
    """An octal mode ("0400", "440", "0o440") that lets the owner read the file."""
    if re.fullmatch(MODE, text) is None:
        raise Invalid(f"expected {MODE_HINT}, got {_q(text)}")
    mode = int(text[-3:], 8)
    if not mode & 0o400:
        raise Invalid(f"the mode {_q(text)} must let the owner read the file (e.g. 0400)")
    return mode


def container_path(text: str) -> str:
    """`text` normalised, once it is known to be absolute and free of `..` (a mount must not escape its place)."""
    if not text.startswith("/"):
        raise Invalid(f"container path {_q(text)} must be absolute (start with '/')")
    if ".." in text.split("/"):
        raise Invalid(f"container path {_q(text)} must not contain '..'")
    path = posixpath.normpath("/" + text.lstrip("/"))
    if path == "/":
        raise Invalid(f"container path {_q(text)} would mount over the container's root '/'")
    return path


def host_source(text: str, base_dir: Path | None) -> str:
    """An absolute host path, or a named volume: a name without '/' and without a leading '.'."""
    if not text:
        raise Invalid("empty host path")
    if text.startswith("~"):
        text = os.path.expanduser(text)
    if "/" not in text and not text.startswith("."):
        if re.fullmatch(VOLUME_NAME, text) is None:
            raise Invalid(
                f"invalid volume name {_q(text)} (use letters, digits, '_', '.' and '-'; or write ./NAME for a folder)"
            )
        return text
    base = base_dir if base_dir is not None else Path.cwd()
    return os.path.normpath(os.path.join(base, text))


def parse_volume(spec: str, origin: str, base_dir: Path | None) -> SecretFile | BindMount:
    """A `secret:KEY:/path[:MODE]` or `HOST:/path[:ro|rw]` volume spec (see the module docstring)."""
    fields = spec.split(":")
    if fields[0] == "secret":
        if len(fields) not in (3, 4):
            raise Invalid("a secret volume is secret:KEY:/container/path[:MODE]")
        mode = parse_mode(fields[3]) if len(fields) == 4 else DEFAULT_MODE
        return SecretFile(secret_name(fields[1], "'secret:'"), container_path(fields[2]), mode, origin)
    if len(fields) not in (2, 3):
        raise Invalid("expected HOST:/container/path[:ro|rw] or secret:KEY:/container/path[:MODE]")
    if len(fields) == 3 and fields[2] not in ("ro", "rw"):
        raise Invalid(f"the third field of a volume must be 'ro' or 'rw', got {_q(fields[2])}")
    read_only = len(fields) == 3 and fields[2] == "ro"
    return BindMount(host_source(fields[0], base_dir), container_path(fields[1]), read_only, origin)


def shared_files(files: Iterable[SecretFile]) -> list[SecretFile]:
    """`files` with each (key, path, mode) once: two `secret-file:KEY` variables share one mount."""
    unique: dict[tuple[str, str, int], SecretFile] = {}
    for file in files:
        unique.setdefault((file.key, file.target, file.mode), file)
    return list(unique.values())


def check_mounts(mounts: Iterable[SecretFile | BindMount]) -> None:
    """Container paths absolute and without '..', one mount per path (compared in normal form).

    Raises `Invalid` carrying the origin of the mount at fault.
    """
    seen: dict[str, SecretFile | BindMount] = {}
    for mount in mounts:
        try:
            path = container_path(mount.target)
        except Invalid as exc:
            raise Invalid(str(exc), mount.origin) from None
        if path in seen:
            raise Invalid(f"two mounts on container path {path} (the other at {seen[path].origin})", mount.origin)
        seen[path] = mount
