"""Signals at random moments on a real `launch` process, and what each outcome means (tests of issue 17).

`interrupt_at(args, delay, sig)` starts `launch ARGS`, sends `sig` after `delay` seconds and returns an `Outcome`.
`Outcome.problem()` says what is wrong with the outcome of a SIGINT, or None: it must exit 130 (or the command's own
code if it had finished), print at most one line on stderr, and never a traceback. A signal that lands before the
package's first line ran (Python's own start-up: the interpreter, `site` and the .pth files of the installation) is
out of our hands: Python prints its traceback there, naming no file of ours; `Outcome.before_our_code` tells it apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

OUR_FILES = f"{REPO / 'launcher'}{os.sep}"


@dataclass
class Outcome:
    args: tuple[str, ...]
    delay: float
    sig: int
    code: int
    stdout: bytes
    stderr: bytes

    @property
    def before_our_code(self) -> bool:
        """The signal stopped Python before launcher/__init__.py's first line: killed by it before Python set its
        handler (no output), a KeyboardInterrupt traceback that names no file of ours, or a KeyboardInterrupt
        Python reports with no traceback at all: raised where no Python frame runs yet, the interpreter reading
        the script it is about to run (exit 1, not the -2 of an interrupt that escapes running code; seen once
        in CI under load, at 33 ms)."""
        if self.code == -self.sig and not self.stderr:
            return True
        if self.code == 1 and self.stderr == b"KeyboardInterrupt\n":
            return True
        return b"Traceback" in self.stderr and OUR_FILES.encode() not in self.stderr

    def problem(self, finished_codes: tuple[int, ...] = (0,), max_lines: int | None = 1) -> str | None:
        """What is wrong with this outcome of a SIGINT, or None; `max_lines` None lets a stopping job's progress
        notes through."""
        lines = self.stderr.decode(errors="replace").splitlines()
        if b"Traceback" in self.stderr:
            return "a traceback on stderr"
        if max_lines is not None and len(lines) > max_lines and self.code == 130:
            return f"{len(lines)} lines on stderr"
        if self.code != 130 and self.code not in finished_codes:
            return f"exit code {self.code}"
        return None

    def describe(self) -> str:
        tail = self.stderr.decode(errors="replace")[-600:]
        command = " ".join(self.args)
        when = f"signal {self.sig} after {self.delay * 1000:.0f} ms"
        return f"`launch {command}`, {when}: exit {self.code}, stderr {tail!r}"


def entry_points() -> list[list[str]]:
    """The ways to start `launch` without a wrapper in between (a pyenv shim is a bash script that would take the
    signal itself): the console script next to this Python, and `python -m launcher`."""
    script = Path(sys.executable).parent / "launch"
    module = [sys.executable, "-m", "launcher"]
    return [[str(script)], module] if script.exists() else [module]


def interrupt_at(args: tuple[str, ...], delay: float, sig: int = signal.SIGINT, entry: int = 0, **popen) -> Outcome:
    """Run `launch ARGS` (through entry point number `entry`), send `sig` after `delay` seconds if it still runs,
    and wait for it to end."""
    points = entry_points()
    proc = subprocess.Popen(
        [*points[entry % len(points)], *args],
        stdin=popen.pop("stdin", subprocess.DEVNULL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return Outcome(tuple(args), delay, sig, proc.returncode, stdout, stderr)
