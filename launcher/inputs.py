"""Reading what a user points at (a template, an env file, a value's file) without reading more than can be used.

`/dev/zero`, a 60 MB file or an endless pipe must not be read whole before a size check: `read_limited` reads at
most `limit + 1` bytes and refuses with an `OSError` (EFBIG), which callers report like any unreadable file.
"""

from __future__ import annotations

import errno
import os

MAX_FILE_BYTES = 1024 * 1024  # templates, --env-file files, `secret import` files (a value is at most 1 MiB too)


def read_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the file at `path`, at most `limit` of them; OSError(EFBIG) if it holds more."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than the limit of {describe(limit)}")
    return data


def describe(size: int) -> str:
    """'1 MiB (1048576 bytes)'."""
    return f"{size // (1024 * 1024)} MiB ({size} bytes)" if size % (1024 * 1024) == 0 else f"{size} bytes"
