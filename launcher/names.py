"""What a job name and a secret name may be: one rule each, used by every path (template, command line, store).

The patterns are written so that JSON Schema (ECMA-262) and Python `re.fullmatch` read them the same way: the
template schema (launcher.schema) publishes them for editors. Names are not secret: messages quote them.
"""

from __future__ import annotations

import re

# A job's name is its container's (or service's) name too: Docker's own rule, cut at 63 (a DNS label, what a
# swarm service name may be at most).
JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
JOB_NAME_HINT = "1 to 63 letters, digits, '_', '.' and '-', starting with a letter or digit"

SECRET_NAME = r"^(?!\.)[A-Za-z0-9_.-]{1,253}$"
SECRET_NAME_HINT = "1 to 253 letters, digits, '_', '.' and '-', not starting with '.'"


def shown(name: str) -> str:
    """A name as quoted in messages, cut short so a pasted blob cannot flood the terminal."""
    return repr(name) if len(name) <= 80 else repr(name[:80]) + "..."


def job_name_problem(name: str) -> str | None:
    """Why `name` cannot name a job, or None."""
    if re.fullmatch(JOB_NAME, name):
        return None
    return f"invalid job name {shown(name)}: use {JOB_NAME_HINT}"


def secret_name_problem(name: str) -> str | None:
    """Why `name` cannot name a secret, or None."""
    if re.fullmatch(SECRET_NAME, name):
        return None
    return f"invalid secret name {shown(name)}: use {SECRET_NAME_HINT}"


def template_name_problem(name: str) -> str | None:
    """Why `name` cannot name a saved template (a file NAME.yaml under the launch home), or None: the job name's
    rule, so no name is a path, hidden or too long for a file name."""
    if re.fullmatch(JOB_NAME, name):
        return None
    return f"invalid template name {shown(name)}: use {JOB_NAME_HINT}"
