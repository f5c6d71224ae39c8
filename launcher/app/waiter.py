"""A sweep's waiter: starts the jobs `--max-parallel` held back, one as another of the sweep ends, after the
launcher has exited. `launch run --matrix ... --max-parallel N` starts it as `python -m launcher.app.waiter`,
detached (its own session, no terminal), like a job's warden (launcher/runtime/warden.py), and on the same terms:

- its argv is the module name only; its environment is PATH, HOME, the launch home and the engine's variables
  (DOCKER_HOST and friends): never LAUNCH_PASSPHRASE or any other variable of the launcher's;
- the pending jobs (their resolved plans, values included) come pickled on a pipe as its stdin, which it reads
  whole and closes: they live in this process's memory only, never on a disk, in argv or in env. Pickle is safe
  here: the only writer is the parent that started this process;
- it starts each job with the same backend call as `launch run -d` (the same delivery and checks, the usage
  record before the start);
- its pid file, `sweeps/SWEEP_ID` under the launch home (0600, no value: the boot id, pid and how many jobs wait),
  lets `launch stop/rm SWEEP_ID` end it (SIGTERM: a job it is starting is stopped and removed by the backend, as
  for `launch run` itself) and lets `launch ps` say how many jobs wait. It exits when every job has started.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

POLL = 0.5  # seconds between looks at how many of the sweep's jobs still run
RECONNECT_FOR = 600.0  # how long an unreachable engine is retried before giving up
_MODULE = "launcher.app.waiter"


def _pidfile(sweep_id: str):
    """The pid file of a sweep id (10 hex digits, launcher.jobs.new_id); None for any other text (a job name or
    prefix given to `launch stop` is never a path)."""
    from launcher import paths

    if len(sweep_id) != 10 or any(c not in "0123456789abcdef" for c in sweep_id):
        return None
    return paths.home() / "sweeps" / sweep_id


def spawn(backend: str, sweep_id: str, max_parallel: int, plans: list, options) -> None:
    """Start the waiter of one sweep with the jobs it is to start (their plans), given on its stdin."""
    import pickle

    from launcher.runtime.warden import detached

    process = detached(_MODULE)
    _write_state(sweep_id, process.pid, len(plans))
    payload = pickle.dumps(
        {"backend": backend, "sweep": sweep_id, "max_parallel": max_parallel, "plans": plans, "options": options}
    )
    try:
        process.stdin.write(payload)
        process.stdin.close()
    except OSError:  # it died at once: its jobs never start, and its pid file says nothing waits
        _forget(sweep_id)


def _write_state(sweep_id: str, pid: int, pending: int) -> None:
    from launcher.runtime.common import boot_id

    path = _pidfile(sweep_id)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"boot": boot_id(), "pid": pid, "pending": pending}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # without it, `launch stop SWEEP` cannot end the waiter; its jobs still start and can be stopped


def _state(sweep_id: str) -> dict | None:
    """The waiter's pid file, if it names a live waiter of this boot."""
    from launcher.runtime.common import boot_id

    path = _pidfile(sweep_id)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("boot") != boot_id():
        return None
    try:  # the pid is this module's (a pid reused by another process is never signalled)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if _MODULE.encode() not in f.read():
                return None
    except OSError:
        return None
    return data


def pending(sweep_id: str) -> int:
    data = _state(sweep_id)
    return int(data.get("pending", 0)) if data else 0


def cancel(sweep_id: str, wait: float = 30.0) -> bool:
    """End the sweep's waiter (if it runs) and wait until it has exited; whether there was one."""
    data = _state(sweep_id)
    if data is None:
        return False
    pid = int(data["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _state(sweep_id) is not None:
        time.sleep(0.05)
    _forget(sweep_id)
    return True


def _forget(sweep_id: str) -> None:
    path = _pidfile(sweep_id)
    try:
        if path is not None:
            path.unlink()
    except OSError:
        pass


def _running(backend, sweep_id: str) -> int:
    from launcher.app.sweep import LABEL_SWEEP

    return sum(1 for job in backend.jobs(all=True) if job.labels.get(LABEL_SWEEP) == sweep_id and job.running)


def run(backend_name: str, sweep_id: str, max_parallel: int, plans: list, options) -> None:
    from launcher.app.sweep import start_one
    from launcher.errors import ExitCode, LaunchError
    from launcher.runtime import open_backend
    from launcher.store import Store

    backend = open_backend(backend_name)
    store = Store.open()
    lost_since: float | None = None
    while plans:
        try:
            free = max_parallel - _running(backend, sweep_id)
            lost_since = None
        except LaunchError:  # the engine is unreachable: retried for a while
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > RECONNECT_FOR:
                return
            time.sleep(2)
            continue
        while free > 0 and plans:
            plan = plans.pop(0)
            try:
                start_one(backend, store, plan, options)
            except LaunchError as exc:
                if exc.code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
                    raise  # `launch stop SWEEP`: the backend stopped and removed the job it was starting
                # like a job that ended at once: the next one gets its place
            free -= 1
            _write_state(sweep_id, os.getpid(), len(plans))
        if plans:
            time.sleep(POLL)


def main() -> int:
    import pickle

    from launcher.runtime.common import install_sigterm

    data = sys.stdin.buffer.read()
    sys.stdin.close()
    try:
        job = pickle.loads(data)
        sweep_id = job["sweep"]
    except Exception:
        return 2
    install_sigterm()  # SIGTERM (`launch stop SWEEP`): a job being started is stopped and removed, then we end
    try:
        run(job["backend"], sweep_id, job["max_parallel"], list(job["plans"]), job["options"])
    except BaseException:
        return 1
    finally:
        _forget(sweep_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
