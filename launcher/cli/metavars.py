"""What `--help` shows beside each parameter: click's classic names, not this Typer's `<str>`-style types.

Typer 0.29 labels every parameter with its annotation (`<str>`, `<list[str]>`, `<bool>` even on flags and on
`--help`). `label()` gives each one the metavar a click or older Typer CLI shows instead: nothing for a flag,
the option's meaning where it has one (`--env VAR=VALUE`, `--life-span DURATION`: `OPTION_METAVARS`, one table
for every command), else the type's name (TEXT, INTEGER, PATH, the choices of an enum), and an argument's own
name in capitals (`NAME`, `JOB`), in the usage line as click writes it (`NAME [VALUE]`). An explicit `metavar=`
wins. Only what click itself reads is set (`metavar`, an argument's `get_usage_pieces`), plus, for arguments, a
`display_type_rich` that shows no type beside the name.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

# Option -> what its value is, for every command that has the option.
OPTION_METAVARS = {
    "--env": "VAR=VALUE",
    "--volume": "SPEC",
    "--env-file": "FILE",
    "--life-span": "DURATION",
    "--image": "IMAGE",
    "--name": "NAME",
    "--backend": "BACKEND",
    "--context": "CONTEXT",
    "--namespace": "NAMESPACE",
    "--tail": "N",
    "--time": "SECONDS",
}

_TYPE_METAVARS: dict[Any, str] = {str: "TEXT", list[str]: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}


def label(params) -> int:
    """Set the metavar of each of `params` (see the module docstring); returns how many were set."""
    count = 0
    for param in params:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.param_type_name == "argument":
            param.display_type_rich = _no_type  # the name says it: `NAME`, not `NAME <str>`
            param.get_usage_pieces = _usage(param)  # `NAME [VALUE]`, not this Typer's `{NAME} [VALUE]`
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
                count += 1
        elif param.metavar is None:
            param.metavar = _option_metavar(param)
            count += 1
    return count


def _no_type(ctx: Any = None) -> None:
    return None


def _usage(param: Any):
    """click's own usage piece for an argument: NAME, [NAME] when optional, NAME... when it takes several."""

    def pieces(ctx: Any = None) -> list[str]:
        name = param.metavar if param.required else f"[{param.metavar}]"
        return [name + ("..." if param.nargs != 1 else "")]

    return pieces


def _option_metavar(param: Any) -> str:
    for opt in param.opts:
        if opt in OPTION_METAVARS:
            return OPTION_METAVARS[opt]
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "[" + "|".join(str(member.value) for member in annotation) + "]"
    return _TYPE_METAVARS.get(annotation, "TEXT")  # Typer unwraps `str | None` to `str` already
