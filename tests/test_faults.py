"""Fault injection on `launch run` (issue 17): SIGINT and SIGKILL at random moments of its start-up window.

Each loop runs at least 50 real `launch run` processes with an env secret and a file secret holding a canary, and
sends the signal after a random delay spread over the first 1.2 s (before the engine is asked anything, while the
container is made, started, attached, and after the job ended). After each:
- the exit code: SIGINT gives 130, or the job's own 0 if it had finished; never a traceback (tests/signals.py;
  a stopping job's progress note may precede the last line);
  SIGKILL gives -9, or 0;
- no plaintext canary in any file under /dev/shm, /tmp and $XDG_RUNTIME_DIR, right after the signal;
- once the next `launch` command (`launch ps -a`) has run: no container of the killed run in "created" state, no
  secret folder of it left, and still no canary in those folders.
Every iteration is checked; the test fails at the end with how many iterations broke each rule and the first few
of each, so one run gives the numbers. Jobs carry a --name unique to this test and are removed by name after.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import TEST_IMAGE, add_secret, run_launch
from signals import interrupt_at

pytestmark = [pytest.mark.docker, pytest.mark.slow]

KILLS = 50  # of each signal, every run
WINDOW = 1.2  # seconds: a `launch run` of a job that ends at once takes 0.6-1 s here
RUNTIME_DIR = os.environ.get("XDG_RUNTIME_DIR")
SCANNED = [Path("/dev/shm"), Path("/tmp"), *([Path(RUNTIME_DIR)] if RUNTIME_DIR else [])]
FILE_SECRET = "secret:filec:/run/secrets/c"
SCRIPT = 'test -n "$T" && test -s /run/secrets/c'  # exit 0 proves both secrets arrived


def files_holding(needles: list[bytes], roots=SCANNED) -> list[str]:
    """Every regular file of this user under `roots` whose contents hold one of `needles` (plaintext left)."""
    found = []
    uid = os.getuid()
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not (st.st_mode & 0o170000 == 0o100000) or st.st_uid != uid or st.st_size > 8 << 20:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue  # gone meanwhile, or unreadable
                if any(needle in data for needle in needles):
                    found.append(path)
    return found


def secret_folders(job_ids: set[str]) -> list[str]:
    """The secret folders (launcher/runtime: <tmpfs>/launch-<uid>-<job>-<random>) of these jobs."""
    prefixes = tuple(f"launch-{os.getuid()}-{job}-" for job in job_ids)
    return [
        os.path.join(root, name)
        for root in SCANNED
        if root.is_dir()
        for name in os.listdir(root)
        if prefixes and name.startswith(prefixes)
    ]


class Faults:
    """The runs of one loop and what went wrong in each, by rule."""

    def __init__(self, docker, tmp_path: Path, sig: int):
        self.docker, self.sig = docker, sig
        self.tag = os.urandom(3).hex()
        self.canaries = [f"CANARY-ENV-{os.urandom(12).hex()}", f"CANARY-FILE-{os.urandom(12).hex()}"]
        add_secret("envc", self.canaries[0])
        add_secret("filec", self.canaries[1])
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.seed = random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.landed = 0  # signals that reached our code (not Python's own start-up)

    def containers(self, name: str) -> list[dict]:
        return self.docker.containers(all=True, filters={"name": f"^/{name}$"})

    def once(self, i: int) -> None:
        name = f"fault-{self.tag}-{i}"
        detach = i % 2 == 1
        args = ("run", "--name", name, "--image", TEST_IMAGE, "-e", "T=secret:envc", "-v", FILE_SECRET)
        args += ("--detach",) if detach else ("--rm",)
        outcome = interrupt_at((*args, "--", "sh", "-c", SCRIPT), self.rng.uniform(0, WINDOW), self.sig, entry=i)
        where = f"#{i} ({'detached' if detach else 'foreground --rm'}, {outcome.delay * 1000:.0f} ms)"
        if self.sig == signal.SIGINT:
            if not outcome.before_our_code:
                self.landed += 1
                if (problem := outcome.problem(finished_codes=(0,), max_lines=None)) is not None:
                    self.problems[f"SIGINT: {problem}"].append(f"{where}: {outcome.describe()}")
        else:
            self.landed += outcome.code == -signal.SIGKILL
            if outcome.code not in (0, -signal.SIGKILL):
                self.problems["SIGKILL: exit code"].append(f"{where}: {outcome.describe()}")
        needles = [c.encode() for c in self.canaries]
        for path in files_holding(needles):
            self.problems["plaintext in a file right after the signal"].append(f"{where}: {path}")
        swept = run_launch("ps", "-a")
        if swept.returncode != 0:
            self.problems["the next command failed"].append(f"{where}: {swept.stderr[-300:]!r}")
        found = self.containers(name)
        jobs = {c["Labels"].get("launch.job", "") for c in found}
        for c in found:
            if c["State"] == "created":
                self.problems["a never-started container left in 'created'"].append(f"{where}: {c['Id'][:12]}")
        for folder in secret_folders(jobs):
            self.problems["a secret folder left after the next command"].append(f"{where}: {folder}")
        for path in files_holding(needles):
            self.problems["plaintext in a file after the next command"].append(f"{where}: {path}")
        for c in found:
            self.remove(c["Id"])

    def remove(self, container: str) -> None:
        """Force-remove a job of ours; one the engine is removing already (--rm) or has removed is fine."""
        import docker.errors

        try:
            self.docker.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # "removal already in progress"
                raise

    def report(self) -> str:
        lines = [f"seed {self.seed}; {self.landed} of {KILLS} signals landed in launch's own code"]
        for rule, cases in sorted(self.problems.items()):
            runs = {case.split(" ", 1)[0] for case in cases}  # "#i": one run may break a rule in several files
            lines.append(f"{rule}: {len(runs)} of {KILLS} runs")
            lines += [f"    {case}" for case in cases[:3]]
        return "\n".join(lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signal_at_a_random_moment_of_run_leaves_no_plaintext_and_no_stuck_container(docker, tmp_path, sig):
    faults = Faults(docker, tmp_path, sig)
    started = time.monotonic()
    try:
        for i in range(KILLS):
            faults.once(i)
    finally:
        for c in docker.containers(all=True, filters={"name": f"fault-{faults.tag}-"}):
            faults.remove(c["Id"])
    report = faults.report()
    print(f"{report}\n({time.monotonic() - started:.0f} s)")
    assert not faults.problems, report
    assert faults.landed >= KILLS // 3, report  # the loop really interrupted launch, not only Python's start-up
