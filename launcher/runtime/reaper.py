"""Stops a job when its --life-span runs out: `python -m launcher.runtime.reaper BACKEND JOB_ID DEADLINE`.

`launch run --life-span` starts this as a detached process (`spawn`: its own session, no terminal, nothing in its
argv but the backend, the job id and the deadline), so the deadline holds after the launcher that started the job
has exited. It polls the engine at most every 30 s and exits early once the job has ended. As a backstop (a
reboot ends this process but not a job with a restart policy), every `launch run` and `launch ps` also stops
running jobs whose `launch.deadline` label has passed (the backends' `sweep()`).
"""

from __future__ import annotations

import subprocess
import sys
import time

POLL = 30.0


def spawn(backend: str, job_id: str, deadline: float) -> None:
    """Start the reaper for one job, detached from this process and its terminal."""
    subprocess.Popen(
        [sys.executable, "-m", "launcher.runtime.reaper", backend, job_id, str(int(deadline))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def reap(backend_name: str, job_id: str, deadline: float) -> None:
    from launcher.runtime import open_backend

    backend = open_backend(backend_name)
    while True:
        job = next((j for j in backend.jobs(all=True) if j.id == job_id), None)
        if job is None or not job.running:
            return
        remaining = deadline - time.time()
        if remaining <= 0:
            backend.stop(job)
            return
        time.sleep(min(POLL, remaining))


def main(argv: list[str]) -> int:
    backend, job_id, deadline = argv[0], argv[1], float(argv[2])
    try:
        reap(backend, job_id, deadline)
    except Exception:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
