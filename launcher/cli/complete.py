"""Shell completion values: secret names, job ids and names, template names, `-e VAR=secret:NAME`, `-v` specs.

Typer installs the completion (`launch --install-completion`, `--show-completion SHELL`); the shell then runs
`launch` with `_LAUNCH_COMPLETE=complete_bash` (zsh, fish...) and the words typed so far, and click calls the
parameter's `autocompletion=` function below. Each imports what it needs only when called, and offers names only,
never a value: secret names come from the store's metadata (nothing is decrypted), job ids from the engine's
labels. Any failure (no store, no engine) offers nothing rather than printing an error into the shell.
"""

from __future__ import annotations

_REFERENCES = ("secret:", "secret-file:")


def _quiet(function):
    """`function`, returning [] instead of raising: a completion must never break the shell's line."""

    def complete(incomplete: str) -> list[str]:
        try:
            return function(incomplete)
        except Exception:
            return []

    complete.__name__ = function.__name__
    complete.__doc__ = function.__doc__
    return complete


def _secret_names() -> list[str]:
    from launcher.store import Store

    return [info.name for info in Store.open().list()]


@_quiet
def secret_name(incomplete: str) -> list[str]:
    """The store's secret names starting with `incomplete`."""
    return [name for name in _secret_names() if name.startswith(incomplete)]


@_quiet
def job(incomplete: str) -> list[str]:
    """Ids and names of this store's jobs (ended ones too) starting with `incomplete`."""
    from launcher.cli.jobs import _registry

    found = []
    for item in _registry().list(all=True):
        found += [item.id] + ([item.name] if item.name else [])
    return [ref for ref in dict.fromkeys(found) if ref.startswith(incomplete)]


@_quiet
def template(incomplete: str) -> list[str]:
    """Built-in template names starting with `incomplete` (files are the shell's own completion)."""
    from launcher.template import builtin_names

    return [name for name in builtin_names() if name.startswith(incomplete)]


@_quiet
def env_value(incomplete: str) -> list[str]:
    """`VAR=secret:NAME` and `VAR=secret-file:NAME` for `-e`: the store's names once the reference has begun;
    the two reference forms after `VAR=`."""
    var, equals, value = incomplete.partition("=")
    if not equals:
        return []
    for prefix in _REFERENCES:
        if value.startswith(prefix):
            typed = value[len(prefix) :]
            return [f"{var}={prefix}{name}" for name in _secret_names() if name.startswith(typed)]
    return [f"{var}={prefix}" for prefix in _REFERENCES if prefix.startswith(value)] if value else []


@_quiet
def volume(incomplete: str) -> list[str]:
    """`secret:NAME:` for `-v`: the store's names after `secret:` (a host path is left to the shell)."""
    if not incomplete.startswith("secret:") or incomplete.count(":") > 1:
        return []
    typed = incomplete[len("secret:") :]
    return [f"secret:{name}:" for name in _secret_names() if name.startswith(typed)]
