"""Plain coercion for the parameter types our commands take, so that no command imports pydantic.

Typer (0.26 and later) converts every parameter value, other than a flag's, through a pydantic TypeAdapter, and
building the first one imports pydantic: 120-200 ms of start-up on the machine of docs/benchmarks.md, more than
everything `launch run` does itself before it talks to the engine. Any command given an argument pays it
(`launch run job.yaml`, `launch logs ID`, `launch stop ID`: the commands people put in loops). For the types
those commands use, `str`, `list[str]`, `int` and flags, the conversion is trivial: click hands over strings
(and flags' booleans) already. Even a command with no argument paid it: its help option's value is coerced too.
`LaunchGroup`, the class of the top-level command, gives those parameters a plain coercion once the command tree
is built (by `launch` itself or by a test's CliRunner). Other types (the `Path` of `secret import`, the enum of
`secret rotate-key`) keep Typer's.

Typer's hook for this (`_TyperParameter._runtime_param`, `typer._coercion.RuntimeParam`) is internal: if a Typer
release moves it, `install` changes nothing and Typer's own coercion runs (slower, never wrong), and
tests/test_lazy_imports.py fails on the pydantic import, which is how we notice.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class LaunchGroup(TyperGroup):
    """The top-level group; its subcommands and sub-groups exist by the time it is made, so it installs the
    plain coercion on all of them, and the help's metavars (launcher/cli/metavars.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install(self)
        from launcher.cli import metavars

        metavars.label(_params(self, ["--help"]))

    def get_params(self, ctx: Any) -> list:
        """Also cover the options Typer adds to the group after making it (--install-completion and
        --show-completion): they are coerced too, when the group parses its own arguments."""
        if not getattr(self, "_late_params_done", False):
            self._late_params_done = True
            install(self, recurse=False)
        return super().get_params(ctx)


def install(command: Any, recurse: bool = True) -> int:
    """Give each str, list[str], int and flag parameter under `command` (help options included; with
    recurse=False, only `command`'s own parameters) the plain coercion. Returns how many it changed: 0 when this
    Typer has no such hook."""
    kinds = _kinds()
    if kinds is None:
        return 0
    count = 0
    for param in _params(command, ["--help"]) if recurse else command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or not hasattr(param, "_runtime_param") or not _plain(descriptor):
            continue
        annotation = descriptor.annotation
        if annotation is bool and not getattr(param, "is_flag", False):
            continue
        kind = kinds.get(annotation)
        if kind is not None:
            param._runtime_param = kind(parameter_info=descriptor.parameter_info, annotation=annotation)
            count += 1
    return count


class _HelpNames:
    """What `get_help_option` reads of a context: the help option's names."""

    def __init__(self, names: list[str]):
        self.help_option_names = names


def _params(command: Any, help_names: list[str]):
    """Every parameter of `command` and its subcommands, with each one's help option. That option is made on
    first use and cached; making it now, with the names a context would give it (its own context settings, else
    its parent's), lets it be covered too: Typer coerces its missing value like any other."""
    help_names = (command.context_settings or {}).get("help_option_names", help_names)
    yield from command.params
    try:
        help_option = command.get_help_option(_HelpNames(help_names))
    except Exception:  # pragma: no cover - another Typer: its own coercion stays for this option
        help_option = None
    if help_option is not None:
        yield help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from _params(sub, help_names)


def _plain(descriptor: Any) -> bool:
    """No custom parser, click type, bounds or file handling: Typer's adapter would only check the type."""
    info = descriptor.parameter_info
    custom = (getattr(info, name, None) for name in ("parser", "click_type", "min", "max"))
    return descriptor.file_annotation is None and all(value is None for value in custom)


_KINDS: dict[Any, type] | None = None


def _kinds() -> dict[Any, type] | None:
    """The plain RuntimeParam classes by annotation, made once; None when this Typer has no such hook."""
    global _KINDS
    if _KINDS is not None:
        return _KINDS
    try:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover - a Typer without pydantic coercion: nothing to avoid
        return None

    class Exact(RuntimeParam):
        """A value click gives in the right type already: a string, a flag's boolean."""

        kind: type = str

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, self.kind):
                return value
            raise BadParameter(f"Input should be a valid {self.kind.__name__}", ctx=ctx, param=param)

    class Text(Exact):
        kind = str

    class Flag(Exact):
        kind = bool

    class TextList(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> list[str]:
            if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
                return list(value)
            raise BadParameter("Input should be a list of strings", ctx=ctx, param=param)

    class Integer(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            number = whole_number(value) if isinstance(value, str) else None
            if number is None:
                raise BadParameter(f"{value!r} is not a whole number", ctx=ctx, param=param)
            return number

    _KINDS = {str: Text, list[str]: TextList, int: Integer, bool: Flag}
    return _KINDS


def whole_number(text: str) -> int | None:
    """An integer as pydantic's lax mode reads one: surrounding blanks, a sign, and a fraction of zeros allowed
    (" 5", "-3", "+7", "10.0"); None for anything else ("x", "1.5", "1e3", "1_000", "")."""
    whole, dot, fraction = text.strip().partition(".")
    digits = whole[1:] if whole[:1] in "+-" else whole
    if not (digits.isascii() and digits.isdigit()) or (dot and fraction.strip("0")):
        return None
    if len(digits.lstrip("0")) > 100:  # int() refuses 4,300 digits; any option's range check refuses this one
        return -HUGE if whole[:1] == "-" else HUGE
    return int(whole)


HUGE = 10**100  # what a whole number of more than 100 digits reads as
