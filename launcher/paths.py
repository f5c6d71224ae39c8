"""Where `launch` keeps its state. One variable, LAUNCH_HOME, moves all of it (tests set it)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The store folder: $LAUNCH_HOME, else $XDG_DATA_HOME/launch, else ~/.local/share/launch."""
    env = os.environ.get("LAUNCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / "launch"
    return Path.home() / ".local" / "share" / "launch"
