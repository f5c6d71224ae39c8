"""The use cases every face calls: the CLI (`launcher.cli`), the API and the pages (`launcher.console`).

Plain functions and classes: typed requests in, plain data out, `launcher.errors.LaunchError` (and subclasses)
for everything that goes wrong. No Typer, no HTTP, no printing: what a face should tell the user besides the
result (a warning) goes to a `warn` callable the face passes in. A rule (when `rm` is refused, which secrets mask a
job's logs) lives here once, so the CLI and the console behave the same because they call the same function.

Modules: `run` (start a job), `jobs` (the registry across backends, masking, stop/rm/inspect), `secrets` (the
store's use cases and the "in use" rule), `templates` (built-ins plus the user's saved templates).
"""

from __future__ import annotations

from collections.abc import Callable

Warn = Callable[[str], None]


def ignore(_message: str) -> None:
    """The default `warn`: a face that has nowhere to show a warning."""
