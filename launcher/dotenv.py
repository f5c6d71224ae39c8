"""A small dotenv reader: `KEY=VALUE` lines, `export KEY=VALUE`, comments, single and double quotes.

Used by `launch secret import` (values become secrets) and `launch run --env-file` (values may be references).
Errors name the file and line, never the line's content (it may be a secret).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from launcher.errors import UsageError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$", re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


@dataclass(frozen=True)
class DotenvEntry:
    name: str
    value: str
    line: int


def _unquote_double(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def parse(text: str, filename: str = "<dotenv>") -> list[DotenvEntry]:
    """Parse dotenv text. Raises UsageError("FILE:LINE: ...") on a malformed line."""
    entries: list[DotenvEntry] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            raise UsageError(f"{filename}:{lineno}: not a KEY=VALUE line")
        name, rest = m.group(1), m.group(2)
        if rest[:1] in ('"', "'"):
            quote = rest[0]
            body = rest[1:]
            # a quoted value may span lines
            while True:
                end = _closing_quote(body, quote)
                if end is not None:
                    break
                if i >= len(lines):
                    raise UsageError(f"{filename}:{lineno}: unterminated {quote} quote in the value of {name}")
                body += "\n" + lines[i]
                i += 1
            value, after = body[:end], body[end + 1 :].strip()
            if after and not after.startswith("#"):
                raise UsageError(f"{filename}:{lineno}: unexpected text after the quoted value of {name}")
            if quote == '"':
                value = _unquote_double(value)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].rstrip()
        entries.append(DotenvEntry(name, value, lineno))
    return entries


def _closing_quote(body: str, quote: str) -> int | None:
    j = 0
    while j < len(body):
        c = body[j]
        if c == "\\" and quote == '"':
            j += 2
            continue
        if c == quote:
            return j
        j += 1
    return None
