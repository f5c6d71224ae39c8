"""The entry point: builds the Typer app from one sub-app per noun and turns every error into one line.

Command modules are thin adapters: they parse arguments, call the core, and render what it returns. They raise
`LaunchError`; only `main()` prints errors and chooses exit codes.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from launcher import interrupt
from launcher.cli.coercion import LaunchGroup
from launcher.errors import ExitCode, LaunchError

try:  # Typer >= 0.26 carries its own copy of click; older ones use the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

MODULES = ("secret", "run", "jobs", "templates", "ui")  # the command modules, in the order of `launch --help`

# The module that provides each top-level command. `launch run ...` imports and builds that module's commands
# only (click's "lazily loading subcommands"; 25-30 ms of every command); `launch`, `launch --help` and a
# mistyped command get them all, so that help lists every command and a typo gets its "did you mean".
PROVIDERS = {
    "secret": "secret",
    "run": "run",
    "ps": "jobs",
    "logs": "jobs",
    "stop": "jobs",
    "rm": "jobs",
    "inspect": "jobs",
    "templates": "templates",
    "ui": "ui",
}


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The CLI with the commands of `modules` (each has a `register(app)`)."""
    app = typer.Typer(
        name="launch",
        cls=LaunchGroup,  # parameters coerced without pydantic: see launcher/cli/coercion.py
        help="Run containers with secrets injected, from one command line.",
        no_args_is_help=True,
        add_completion=True,  # --install-completion, --show-completion (Typer's own; see launcher/cli/complete.py)
        # Help printed as written, by click's formatter: Rich's markup would turn `secret:KEY:/path` into
        # `secret🔑/path` (an emoji code) and `[red]` into colour, and importing Rich costs start-up.
        rich_markup_mode=None,
        # Rich's pretty tracebacks print local variables, which may hold secret values: never use them.
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_group)  # a group even when it holds a single command (`launch run`)
    for name in modules:
        importlib.import_module(f"launcher.cli.{name}").register(app)
    return app


def _group() -> None:
    pass


def app_for(argv: list[str]) -> typer.Typer:
    """The CLI `launch ARGV` needs: the one module of the command named first, else all of them."""
    provider = PROVIDERS.get(argv[0]) if argv else None
    return build_app((provider,) if provider else MODULES)


def __getattr__(name: str):
    """`from launcher.cli.main import app`: the whole CLI (tests use it with Typer's CliRunner)."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds (an SQLite error can quote schema text over two lines)."""
    from launcher.redact import scrub

    sys.stderr.write(f"launch: {one_line(scrub(message))}\n")
    sys.stderr.flush()


def one_line(text: str) -> str:
    """`text` with each run of line breaks (and blanks around them) turned into one space."""
    if "\n" not in text and "\r" not in text:
        return text
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; never returns (exits with a documented code)."""
    args = sys.argv[1:] if argv is None else list(argv)
    entry = interrupt.taken_over()  # the real CLI (not a library call from a test)
    interrupt.hand_back()
    try:
        code = _dispatch(args)
    except KeyboardInterrupt:  # while another error was being reported
        _say("interrupted")
        code = int(ExitCode.INTERRUPTED)
    if entry:
        interrupt.take_over()
    sys.stdout.flush()
    if entry:
        interrupt.ignore()
        # the work is done and flushed: end here, so that no Ctrl-C during Python's own shutdown can turn the
        # exit code into death by the signal (-2, seen 1 time in 50 under load)
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code if isinstance(code, int) else 1)
    sys.exit(code)


def _dispatch(args: list[str]) -> int:
    """Run the command; the exit code. Every error becomes one line on stderr."""
    debug = os.environ.get("LAUNCH_DEBUG") == "1"
    try:
        result = app_for(args)(args=args, prog_name="launch", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except LaunchError as exc:
        _say(f"error: {exc.message}")
        code = int(exc.code)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        # click turns Ctrl-C / EOF at a prompt into Abort; on a terminal, end the prompt's line first
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        _say("interrupted")
        code = int(ExitCode.INTERRUPTED)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # `launch secret` alone: the group's help
        else:  # one line, like our own errors, with where to look
            hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
            _say(f"error: {exc.format_message()}{hint}")
        code = exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        code = int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # stdout was closed by the reader (`launch secret ls | head`): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        code = 0
    except Exception as exc:  # a bug: one line, the type only (a message may quote input)
        if debug:
            import traceback

            from launcher.redact import scrub

            sys.stderr.write(scrub(traceback.format_exc()))
        _say(f"internal error ({type(exc).__name__}); run again with LAUNCH_DEBUG=1 for a traceback")
        code = int(ExitCode.ERROR)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
