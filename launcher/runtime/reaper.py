"""Stops a job when its --life-span runs out: `python -m launcher.runtime.reaper JOB_ID DEADLINE`.

`launch run --life-span` starts this as a detached process (its own session, no terminal, no secret in its argv or
environment beyond what the caller's environment already held), so the deadline holds after the launcher that
started the job has exited. It polls the engine at most every 30 s and exits early when the job has ended. As a
backstop (a reboot kills this process, not the job's restart policy), every `launch run` and `launch ps` also
stops running jobs whose `launch.deadline` label has passed.
"""

from __future__ import annotations

import sys
import time

POLL = 30.0


def reap(job_id: str, deadline: float) -> None:
    from launcher import jobs as jobmod
    from launcher.runtime.docker import STOP_GRACE, connect

    api = connect().api
    while True:
        containers = api.containers(all=True, filters={"label": f"{jobmod.LABEL_JOB}={job_id}"})
        if not containers or all(c.get("State") in ("exited", "dead") for c in containers):
            return
        remaining = deadline - time.time()
        if remaining <= 0:
            for c in containers:
                try:
                    api.stop(c["Id"], timeout=STOP_GRACE)
                except Exception:  # noqa: BLE001 - it may have gone meanwhile
                    pass
            return
        time.sleep(min(POLL, remaining))


def main(argv: list[str]) -> int:
    job_id, deadline = argv[0], float(argv[1])
    try:
        reap(job_id, deadline)
    except Exception:  # noqa: BLE001 - a detached helper has nowhere to report; the sweep is the backstop
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
