"""Ctrl-C outside the places that catch `KeyboardInterrupt`: one line, exit 130, never a traceback.

`launch` takes SIGINT over at its very first line (launcher/__init__.py for the console script, launcher/__main__.py
for `python -m launcher`), before the heavy imports; `main()` hands it back to Python (KeyboardInterrupt) for the
command itself, where every path catches it, takes it over again to report and flush, and ignores it once the
command is over. Nothing is half-done when the handler exits: no store write or container is in progress then.
"""

from __future__ import annotations

import _signal as signal  # see launcher/__init__.py

from launcher import _interrupted


def take_over() -> None:
    """A Ctrl-C from now on exits 130 with one line (importing, reporting an error, flushing)."""
    signal.signal(signal.SIGINT, _interrupted)


def hand_back() -> None:
    """A Ctrl-C from now on raises KeyboardInterrupt, for the command's own handling."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore() -> None:
    """The command is over: a Ctrl-C changes nothing now (while Python shuts down it would restore the default
    action, and the process would die of the signal after its work is done)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def taken_over() -> bool:
    return signal.getsignal(signal.SIGINT) is _interrupted
