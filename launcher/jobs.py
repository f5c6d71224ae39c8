"""Jobs as plain data: ids, the labels that record a job in the engine itself, durations.

Job state lives in the engine (container or service labels), never in a file of ours, so `launch ps` agrees with
`docker ps` and nothing drifts. Labels hold names, versions and a redacted description: never a value.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field

from launcher.errors import UsageError

LABEL_JOB = "launch.job"  # the job id; its presence marks a container or service as ours
LABEL_NAME = "launch.name"
LABEL_SECRETS = "launch.secrets"  # JSON {secret name: version}
LABEL_SPEC = "launch.spec"  # JSON, the redacted plan (for `launch inspect`)
LABEL_DEADLINE = "launch.deadline"  # epoch seconds after which the job is stopped (--life-span)
LABEL_RM = "launch.rm"  # "1": remove the job once it has ended
LABEL_BACKEND = "launch.backend"
LABEL_STORE = "launch.store"  # which store started the job: `Store.tag()`, a hash that reveals nothing
LABEL_SWEEP = "launch.sweep"  # the id of the sweep (launcher.app.sweep) the job belongs to

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EMPTY_NAME = "--name: empty job name: give a name, or leave --name out"
MIN_PREFIX = 4  # the shortest id prefix that names a job (git's minimum abbreviation)


def new_id() -> str:
    """A short random job id: 10 lowercase hex digits (40 bits; collisions are checked by the engine's names)."""
    return os.urandom(5).hex()  # not `secrets`: it costs an import of random, hashlib, base64 on every run


def check_name(name: str) -> str:
    """`name` if it can name a job (launcher.names, the one rule), else UsageError; an empty one is an error,
    never "no name" (`--name "$NAME"` with NAME unset)."""
    from launcher.names import job_name_problem

    if not name.strip():
        raise UsageError(EMPTY_NAME)
    problem = job_name_problem(name)
    if problem:
        raise UsageError(f"--name: {problem}")
    return name


def container_name(job_id: str, name: str | None) -> str:
    return name or f"launch-{job_id}"


MAX_DURATION = 365 * 86400  # the longest --life-span: a year


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '1d', '1h30m' -> seconds (Apolo's --life-span format), at most MAX_DURATION."""
    text = text.strip().lower()
    pos, total = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        digits = m.group(1).lstrip("0") or "0"
        # more digits than any count of seconds up to the bound: never converted (int() of 4,300 digits fails)
        total += int(digits) * _UNITS[m.group(2)] if len(digits) <= 9 else MAX_DURATION + 1
        pos = m.end()
    shown = text if len(text) <= 40 else text[:37] + "..."
    if pos != len(text) or total <= 0:
        raise UsageError(f"invalid duration {shown!r}: use e.g. 90s, 30m, 2h, 1d or 1h30m (at most 365d)")
    if total > MAX_DURATION:
        raise UsageError(f"duration {shown!r} is too long: at most 365d (a year)")
    return total


def check_count(flag: str, value: int | None, most: int) -> int | None:
    """A whole-number option (`--tail`, `--time`) from 0 to `most`; the engine would misread anything else."""
    if value is not None and not 0 <= value <= most:
        raise UsageError(
            f"{flag}: {value if len(str(value)) <= 20 else 'a number that large'} is out of range (0-{most})"
        )
    return value


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def iso_time(value) -> str | None:
    """One time format for every output: ISO 8601 UTC to the second ('2026-11-30T12:04:31Z'), from epoch seconds
    or the engine's RFC 3339 text (nanoseconds, any offset); None for what has not happened (Docker's zero time
    '0001-01-01T00:00:00Z', an empty value, 0)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
    from datetime import UTC, datetime

    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return text  # not a time we know: shown as the engine gave it
    zone = "+00:00" if match[3] == "Z" else match[3]
    moment = datetime.fromisoformat(match[1] + zone).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


TIME_FIELDS = ("created", "started_at", "finished_at", "updated_at", "deadline")


def with_iso_times(data: dict) -> dict:
    """`data` (a backend's `inspect`) with each time field in `iso_time`'s format."""
    return {key: iso_time(value) if key in TIME_FIELDS else value for key, value in data.items()}


@dataclass(frozen=True)
class Job:
    """A job as the engine reports it."""

    id: str
    name: str | None
    image: str
    status: str  # "created", "running", "exited", ...
    created: float  # epoch seconds
    exit_code: int | None
    secrets: dict[str, int] = field(default_factory=dict)
    backend: str = "docker"
    ref: str = ""  # the engine's own id (container or service id)
    deadline: float | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> str | None:
        """The tag of the store that started the job (None for a job started before jobs carried one)."""
        return self.labels.get(LABEL_STORE)

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "created", "paused", "starting", "pending")

    def to_dict(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "status": self.status,
            "age": format_age(now - self.created),
            "created": iso_time(self.created),
            "exit_code": self.exit_code,
            "secrets": self.secrets,
            "backend": self.backend,
            "store": self.store,
            "sweep": self.labels.get(LABEL_SWEEP),
        }


def job_labels(
    job_id: str,
    name: str | None,
    versions: dict[str, int],
    redacted_spec: dict,
    *,
    deadline: float | None = None,
    remove: bool = False,
    backend: str = "docker",
    user_labels: tuple[tuple[str, str], ...] = (),
    store: str | None = None,
) -> dict[str, str]:
    """The labels of a new job. `store` is the starting store's tag; by default the user's store's
    (`launcher.store.Store.tag`, made when there is none yet, so that `launch ps` finds the job again)."""
    if store is None:
        from launcher.store import Store

        store = Store.open().tag(create=True)
    labels = dict(user_labels)
    labels.update(
        {
            LABEL_JOB: job_id,
            LABEL_STORE: store,
            LABEL_SECRETS: json.dumps(versions, sort_keys=True),
            LABEL_SPEC: json.dumps(redacted_spec, sort_keys=True),
            LABEL_BACKEND: backend,
        }
    )
    if name:
        labels[LABEL_NAME] = name
    if deadline is not None:
        labels[LABEL_DEADLINE] = str(int(deadline))
    if remove:
        labels[LABEL_RM] = "1"
    return labels


def secrets_from_labels(labels: dict[str, str]) -> dict[str, int]:
    try:
        data = json.loads(labels.get(LABEL_SECRETS, "{}"))
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def check_ref(ref: str) -> str:
    """A job reference that can mean something: never empty or blank (`launch rm "$JOB"` with an empty variable)."""
    if not ref.strip():
        raise UsageError(
            f"empty job reference {ref!r}: give a job id, a prefix of it (at least {MIN_PREFIX} characters) or a name"
        )
    return ref


def match(jobs: list[Job], ref: str) -> Job:
    """The one job whose id or name is `ref`, else whose id starts with `ref` (at least MIN_PREFIX characters)."""
    from launcher.errors import NotFound

    check_ref(ref)
    exact = [j for j in jobs if ref in (j.id, j.name)]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(ref) < MIN_PREFIX:
        raise UsageError(
            f"no job is named {ref!r}, and an id prefix needs at least {MIN_PREFIX} characters (see `launch ps -a`)"
        )
    candidates = exact or [j for j in jobs if j.id.startswith(ref)]
    if not candidates:
        raise NotFound(f"no job {ref!r} (see `launch ps -a`)")
    if len(candidates) > 1:
        raise UsageError(f"job {ref!r} is ambiguous: it matches {', '.join(sorted(j.id for j in candidates))}")
    return candidates[0]
