"""One error type, with an exit code, caught once at the entry point (launcher.cli.main).

Messages must never contain a secret value: they name secrets, files, lines and keys, never contents.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of `launch` (documented in the README).

    `launch run` in the foreground exits with the job's own exit code once the job has started; the codes below
    are the launcher's own, for failures before or around the job.
    """

    OK = 0
    ERROR = 1  # an unexpected failure (a bug): one line, traceback with LAUNCH_DEBUG=1
    USAGE = 2  # bad command line or bad input value (click uses 2 as well)
    NOT_FOUND = 3  # a secret, job, template or file that does not exist
    CONFLICT = 4  # exists already, still in use, or the confirmation was not given
    STORE = 5  # the store cannot be used: permissions, tampering, wrong key or passphrase
    TEMPLATE = 6  # an invalid template (the message names file:line:col)
    ENGINE = 7  # the container engine is unreachable or refused the job (missing image, bad mount...)
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


class LaunchError(Exception):
    """An error meant for the user: printed as one line on stderr, then `launch` exits with `code`."""

    code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class UsageError(LaunchError):
    code = ExitCode.USAGE


class NotFound(LaunchError):
    code = ExitCode.NOT_FOUND


class Conflict(LaunchError):
    code = ExitCode.CONFLICT


class StoreError(LaunchError):
    code = ExitCode.STORE


class TemplateError(LaunchError):
    code = ExitCode.TEMPLATE


class EngineError(LaunchError):
    code = ExitCode.ENGINE
