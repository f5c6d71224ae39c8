"""A last line of defence: every secret value this process has decrypted is remembered here, and every message
the entry point prints (errors, debug tracebacks) is scrubbed of them.

The first line of defence is that no code path formats a value into a message at all; this only catches
mistakes (for example an exception from a library whose text quotes its input).
"""

from __future__ import annotations

_values: set[bytes] = set()


def remember(value: bytes) -> None:
    """Note a plaintext value held by this process (called by the store when it decrypts)."""
    if value:
        _values.add(bytes(value))


def scrub(text: str) -> str:
    """`text` with every remembered value (and its UTF-8 text and repr forms) replaced by `***`."""
    if not _values or not text:
        return text
    for value in sorted(_values, key=len, reverse=True):
        forms = {repr(value)[2:-1]}
        try:
            forms.add(value.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        for form in sorted(forms, key=len, reverse=True):
            if form:
                text = text.replace(form, "***")
    return text
