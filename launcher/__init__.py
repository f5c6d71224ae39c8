"""launch: run containers with secrets injected."""

import sys as _sys

__version__ = "0.1.0"


def _interrupted(signum, frame) -> None:
    """Ctrl-C where no `except KeyboardInterrupt` can catch it: one line, exit 130 (see launcher/interrupt.py)."""
    import os

    os.write(2, b"launch: interrupted\n")
    os._exit(130)  # ExitCode.INTERRUPTED


# The `launch` console script imports this package first: take Ctrl-C over here, before any other import, so that
# an early Ctrl-C exits 130 with one line. `python -m launcher` does it in __main__.py; a library import (tests,
# the reaper) keeps Python's handler. `_signal`, not `signal`: the latter builds enums on import (a few ms in which
# Python's handler would still print a traceback); the two share one table of handlers.
if _sys.argv and _sys.argv[0].rpartition("/")[2] == "launch":
    import _signal

    _signal.signal(_signal.SIGINT, _interrupted)
