"""Command-line overrides on top of a template, and the final checks a job must pass before it is resolved.

`launch run [TEMPLATE] [--image IMAGE] [--env VAR=VALUE | VAR=secret:KEY | VAR]... [--volume SPEC]...
[--env-file FILE]... [--name NAME] [-- COMMAND ARGS...]`

Precedence, lowest first: the template, each `--env-file` in order, each `--env` in order; for one variable name the
later one wins. A `--volume` on a container path the template already uses replaces the template's mount; two on
one path within the command line are an error. Values given on the command line follow the same reference rules as
template values (`launcher.references`), except `--env VAR` without `=`, which copies VAR from the caller's
environment as literal text. Command-line mistakes are `UsageError`s naming the flag; messages never quote a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from launcher import dotenv
from launcher import references as refs
from launcher.errors import LaunchError, NotFound, TemplateError, UsageError
from launcher.inputs import read_limited
from launcher.references import Invalid
from launcher.schema import IMAGE
from launcher.spec import BindMount, EnvVar, SecretFile, Spec

Mount = SecretFile | BindMount
_TEMPLATE_ORIGIN = re.compile(r".+:\d+:\d+")  # "FILE:LINE:COL"; an env file gives "FILE:LINE", a flag "--env X"


def apply(
    spec: Spec,
    *,
    image: str | None = None,
    env: Sequence[str] = (),
    volumes: Sequence[str] = (),
    env_files: Sequence[str] = (),
    name: str | None = None,
    command: Sequence[str] | None = None,
    environ: Mapping[str, str],
) -> Spec:
    """`spec` with the command line's settings applied, then `validate`d. An empty `command` keeps the template's."""
    _check_text(
        [("--image", image or ""), ("--name", name or "")]
        + [("--env", arg.partition("=")[0]) for arg in env]
        + [(f"--env {arg.partition('=')[0]}", arg) for arg in env]
        + [("--volume", text) for text in volumes]
        + [("the command", arg) for arg in command or ()]
    )
    entries = [entry for path in env_files for entry in _env_file(path)]
    entries += [_env_flag(arg, environ) for arg in env]
    variables, dropped = _merge_env(spec.env, [variable for variable, _ in entries])
    files = [file for _, file in entries if file is not None]
    cli_mounts = [*refs.shared_files(files), *(_volume(text) for text in volumes)]
    try:
        refs.check_mounts(cli_mounts)
    except Invalid as exc:
        raise UsageError(f"{exc.origin}: {exc}") from None
    mounts = _without_orphans([*spec.secret_files, *spec.binds], dropped, variables)
    mounts = [m for m in mounts if m.target not in {c.target for c in cli_mounts}] + cli_mounts
    merged = replace(
        spec,
        image=_image(image) if image is not None else spec.image,
        name=_name(name) if name is not None else spec.name,
        command=tuple(command) if command else spec.command,
        env=tuple(variables),
        secret_files=tuple(m for m in mounts if isinstance(m, SecretFile)),
        binds=tuple(m for m in mounts if isinstance(m, BindMount)),
    )
    return validate(merged)


def _check_text(values: Iterable[tuple[str, str]]) -> None:
    """The engine's API is JSON: an argument that is not UTF-8 (a shell's `$'\\xff'`) would reach the job changed
    (as U+FFFD), so it is refused, naming where it is and never quoting it (it may hold a value)."""
    for where, text in values:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{where}: not UTF-8 text (the engine's API carries only text)") from None


def validate(spec: Spec) -> Spec:
    """The checks every job passes before it runs, however it was built; returns `spec` unchanged.

    An error about an entry from a template is a TemplateError at its position, anything else a UsageError.
    """
    if not spec.image:
        raise UsageError("no image: pass --image or use a template with `image:`")
    _check_env(spec.env)
    try:
        refs.check_mounts([*spec.secret_files, *spec.binds])
    except Invalid as exc:
        raise _located(exc.origin, str(exc)) from None
    return spec


def _check_env(variables: Iterable[EnvVar]) -> None:
    seen: set[str] = set()
    for variable in variables:
        if not refs.is_env_name(variable.name):
            raise _located(variable.origin, f"invalid variable name {variable.name!r} (use {refs.ENV_NAME_HINT})")
        if variable.name in seen:
            raise _located(variable.origin, f"variable {variable.name} is set twice")
        seen.add(variable.name)


def _located(origin: str, message: str) -> LaunchError:
    kind = TemplateError if _TEMPLATE_ORIGIN.fullmatch(origin) else UsageError
    return kind(f"{origin}: {message}" if origin else message)


def _image(image: str) -> str:
    if re.fullmatch(IMAGE, image) is None:
        raise UsageError("--image: expected an image name without spaces")
    return image


def _name(name: str) -> str:
    from launcher.jobs import check_name

    return check_name(name)


def _env_flag(arg: str, environ: Mapping[str, str]) -> tuple[EnvVar, SecretFile | None]:
    """`--env VAR=VALUE` (VALUE may hold references) or `--env VAR` (VAR's value in `environ`, literal)."""
    name, equals, value = arg.partition("=")
    if not refs.is_env_name(name):
        # without '=' the argument may be a pasted value rather than a name: do not repeat it
        shown = f" '{name}=...'" if equals else ""
        raise UsageError(f"--env{shown}: invalid variable name (use {refs.ENV_NAME_HINT}); expected VAR=VALUE or VAR")
    origin = f"--env {name}"
    if not equals and name not in environ:
        raise UsageError(f"{origin}: {name} is not set in your environment (write {name}=VALUE to set it)")
    try:
        if equals:
            return refs.parse_env_entry(name, value, origin)
        _check_text([(f"{origin} (from your environment)", environ[name])])
        return EnvVar(name, refs.literal(environ[name]), origin), None
    except Invalid as exc:
        raise UsageError(f"{origin}: {exc}") from None


def _env_file(path: str) -> list[tuple[EnvVar, SecretFile | None]]:
    """The entries of a dotenv file; their values follow the reference rules, their origins are 'FILE:LINE'."""
    try:
        text = read_limited(path).decode("utf-8")
    except FileNotFoundError:
        raise NotFound(f"--env-file {path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"--env-file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"--env-file {path}: cannot read ({exc.strerror})") from None
    entries = []
    for entry in dotenv.parse(text, path):
        origin = f"{path}:{entry.line}"
        if not refs.is_env_name(entry.name):
            raise UsageError(f"{origin}: invalid variable name {entry.name!r} (use {refs.ENV_NAME_HINT})")
        try:
            entries.append(refs.parse_env_entry(entry.name, entry.value, origin))
        except Invalid as exc:
            raise UsageError(f"{origin}: {entry.name}: {exc}") from None
    return entries


def _volume(spec: str) -> Mount:
    try:
        return refs.parse_volume(spec, f"--volume {spec}", None)
    except Invalid as exc:
        raise UsageError(f"--volume {spec}: {exc}") from None


def _merge_env(base: Iterable[EnvVar], overrides: Iterable[EnvVar]) -> tuple[list[EnvVar], list[EnvVar]]:
    """The variables with later ones replacing earlier ones of the same name (in place), and those replaced."""
    merged: dict[str, EnvVar] = {variable.name: variable for variable in base}
    dropped: list[EnvVar] = []
    for variable in overrides:
        if variable.name in merged:
            dropped.append(merged[variable.name])
        merged[variable.name] = variable
    return list(merged.values()), dropped


def _without_orphans(mounts: list[Mount], dropped: list[EnvVar], kept: list[EnvVar]) -> list[Mount]:
    """`mounts` without the secret files that only a replaced `secret-file:` variable asked for.

    Overriding `HF_TOKEN_PATH: secret-file:hf_token` with `--env HF_TOKEN_PATH=/mnt/token` must not still mount
    (nor require) the secret. Such a file shares its origin with the variable, whose value is the file's path.
    """
    implied = {(v.origin, v.parts[0]) for v in dropped if len(v.parts) == 1 and isinstance(v.parts[0], str)}
    still_named = {v.parts[0] for v in kept if len(v.parts) == 1 and isinstance(v.parts[0], str)}
    return [
        m
        for m in mounts
        if not (isinstance(m, SecretFile) and (m.origin, m.target) in implied and m.target not in still_named)
    ]
