"""The Typer commands. Each module is one noun (`secret`, `run`, jobs, `templates`); `main` composes them.

The command modules do without `from __future__ import annotations`: Typer reads every command's annotations
when it builds the command tree, at each start, and string annotations cost it a compile and an eval each
(about 5 ms of `launch --help`). Names imported only for type checking are quoted instead.
"""

from __future__ import annotations

import sys
from typing import Any


def write_json(data: Any, *, sort_keys: bool = False) -> None:
    """`--json` output on stdout. `json` is imported here, on the one path that needs it (about 4 ms of start-up
    that `launch --help` and the table views do not pay)."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
