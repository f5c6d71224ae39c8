"""Templates: the built-ins shipped with launch, and the user's own, saved under the launch home.

Saved templates live in `<launch home>/templates/NAME.yaml` (0600, the folder 0700 like the store's), are found by
`launch run NAME`, listed by `launch templates ls` and edited in the console. A saved template may not take a
built-in's name, so a name always means one template. A template is validated before it is saved (its errors name
`NAME.yaml:line:col`); it holds references (`secret:KEY`), never a value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from launcher import paths
from launcher.errors import Conflict, NotFound, UsageError

MAX_TEMPLATE_BYTES = 256 * 1024
_DIR = "templates"


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    description: str
    path: Path
    builtin: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "path": str(self.path), "builtin": self.builtin}


def folder() -> Path:
    return paths.home() / _DIR


def _check_name(name: str) -> None:
    from launcher.names import template_name_problem

    problem = template_name_problem(name)
    if problem:
        raise UsageError(problem)


def saved_path(name: str) -> Path | None:
    """The file of saved template `name`, or None (a name that breaks the rule never reaches the file system)."""
    from launcher.names import template_name_problem

    if template_name_problem(name):
        return None
    path = folder() / f"{name}.yaml"
    return path if path.is_file() else None


def saved_names() -> list[str]:
    from launcher.names import template_name_problem

    where = folder()
    if not where.is_dir():
        return []
    return sorted(p.stem for p in where.glob("*.yaml") if p.is_file() and not template_name_problem(p.stem))


def list_templates() -> list[TemplateInfo]:
    """The built-ins, then the saved templates, each sorted by name (descriptions from the files)."""
    from launcher import template

    found = [TemplateInfo(b.name, b.description, b.path, True) for b in template.builtins()]
    for name in saved_names():
        path = folder() / f"{name}.yaml"
        try:
            description = template.describe(path)
        except Exception:  # an invalid saved file is still listed, so it can be fixed
            description = ""
        found.append(TemplateInfo(name, description, path, False))
    return found


def get(name: str) -> TemplateInfo:
    from launcher import template

    builtin = template.builtin_path(name)
    if builtin is not None:
        return TemplateInfo(name, template.describe(builtin), builtin, True)
    path = saved_path(name)
    if path is None:
        raise NotFound(f"no {_kinds()} template {name!r} ({_known()})")
    try:
        description = template.describe(path)
    except Exception:
        description = ""
    return TemplateInfo(name, description, path, False)


def text(name: str) -> str:
    return get(name).path.read_text(encoding="utf-8")


def find(name_or_path: str) -> Path:
    """The template `launch run NAME_OR_PATH` means: an existing file, else a built-in, else a saved template."""
    from launcher import template

    try:
        return template.find(name_or_path)
    except NotFound:
        saved = saved_path(name_or_path)
        if saved is not None:
            return saved
        raise NotFound(
            f"no template file {name_or_path!r} and no {_kinds()} template of that name ({_known()})"
        ) from None


def _kinds() -> str:
    return "built-in or saved" if saved_names() else "built-in"


def _known() -> str:
    """The names a template could have had, for a NotFound: `built-ins: a, b` (`; saved: c` when there are some)."""
    from launcher import template

    known = f"built-ins: {', '.join(template.builtin_names()) or 'none'}"
    saved = saved_names()
    return known + (f"; saved: {', '.join(saved)}" if saved else "")


def validate(name: str, yaml_text: str):
    """The Spec `yaml_text` describes, or TemplateError naming `NAME.yaml:line:col`."""
    from launcher import template

    if len(yaml_text.encode("utf-8", "surrogatepass")) > MAX_TEMPLATE_BYTES:
        raise UsageError(f"template {name!r}: larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
    return template.parse(yaml_text, f"{name}.yaml", base_dir=folder())


def save(name: str, yaml_text: str, *, create: bool) -> TemplateInfo:
    """Write a saved template (validated first; nothing is written when it is invalid). `create`: the name must be
    new (Conflict otherwise); else it must exist (NotFound)."""
    from launcher import template

    _check_name(name)
    if template.builtin_path(name) is not None:
        raise Conflict(f"template {name!r} is a built-in; save yours under another name")
    exists = saved_path(name) is not None
    if create and exists:
        raise Conflict(f"template {name!r} exists already; edit it instead")
    if not create and not exists:
        raise NotFound(f"no saved template {name!r}")
    validate(name, yaml_text)
    where = folder()
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the launch home: private, as the store wants it
    where.mkdir(mode=0o700, exist_ok=True)
    path = where / f"{name}.yaml"
    temp = where / f".{name}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(yaml_text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return get(name)


def delete(name: str) -> None:
    from launcher import template

    if template.builtin_path(name) is not None:
        raise Conflict(f"template {name!r} is a built-in and cannot be deleted")
    path = saved_path(name)
    if path is None:
        raise NotFound(f"no saved template {name!r}")
    path.unlink()


def using_secret(secret: str) -> list[str]:
    """Names of the saved templates that reference secret `secret` (invalid ones are skipped)."""
    from launcher import template

    found = []
    for name in saved_names():
        try:
            spec = template.load(folder() / f"{name}.yaml")
        except Exception:
            continue
        if secret in spec.secret_keys():
            found.append(name)
    return found
