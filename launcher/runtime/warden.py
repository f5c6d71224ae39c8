"""A job's warden: stops it when its --life-span runs out, and gives it its secrets again each time the engine
restarts it (a restart policy). `launch run` starts it as `python -m launcher.runtime.warden`, detached (its own
session, no terminal), so both hold after the launcher has exited.

What it is given, and how: its argv is the module name only; its environment is the few variables that say how to
reach the engine (DOCKER_HOST and friends, PATH, HOME): never LAUNCH_PASSPHRASE or any other variable of the
launcher's. The job's ids, deadline and, for a job with a restart policy, its bundle (launcher/runtime/bundle.py)
come on a pipe as its stdin, which it reads whole and closes. The bundle then lives in this process's memory only,
never on a disk, for as long as the job may restart.

On each start of the container after the first (the launcher delivers that one), it waits until the shim is the
container's process (`top`) and writes the bundle to its stdin, as the launcher did. It never writes to a job that
is past its shim. If the engine restarts, it reconnects and delivers to a shim that waits. After a reboot it is gone:
the restarted job's shim then waits for its secrets, says so in one line in the job's log, and never runs the
command (see the README). As a backstop for the deadline, every `launch run` and `launch ps` also stops running
jobs whose `launch.deadline` label has passed (the backends' `sweep()`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

POLL = 30.0  # seconds between looks at the job when nothing happens
RECONNECT_FOR = 600.0  # how long an unreachable engine is retried before giving up
_ENV = (
    "PATH",
    "HOME",
    "LAUNCH_HOME",
    "XDG_DATA_HOME",
    "DOCKER_HOST",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_CONFIG",
    "PYTHONPATH",
)
LABEL = "launch.warden"  # "1" on a job whose warden holds its secrets for restarts (docker.LABEL_WARDEN too)


def _pidfile(job_id: str):
    from launcher import paths

    return paths.home() / "wardens" / job_id


def alive(job_id: str) -> bool:
    """Whether the warden `spawn` started for this job still runs (its pid, on this boot)."""
    from launcher.runtime.common import process_alive

    try:
        return bool(process_alive(_pidfile(job_id).read_text()))
    except OSError:
        return False


def forget(job_id: str) -> None:
    try:
        _pidfile(job_id).unlink()
    except OSError:
        pass


def detached(module: str) -> subprocess.Popen:
    """`python -m MODULE` in a session of its own (it outlives the launcher), its stdin a pipe for what it is to
    hold, no output, and an environment of only the variables in _ENV (launcher.app.waiter starts this way too)."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env={name: os.environ[name] for name in _ENV if name in os.environ},
    )


def spawn(backend: str, job_id: str, ref: str, deadline: float | None, payload=None) -> None:
    """Start the warden of one job; `payload` (a Bundle) only for a job the engine may restart."""
    process = detached("launcher.runtime.warden")
    if payload is not None:
        from launcher.runtime.common import boot_id

        path = _pidfile(job_id)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_text(f"{boot_id()}:{process.pid}")
        except OSError:
            pass  # without it, the sweep takes the warden for gone once the job restarts with no one to serve it
    header = {"backend": backend, "job": job_id, "ref": ref, "deadline": deadline, "bundle": bool(payload)}
    try:
        process.stdin.write(json.dumps(header).encode() + b"\n" + (payload.data if payload else b""))
        process.stdin.close()
    except OSError:  # it died at once; the sweep still enforces the deadline
        pass


class Warden:
    def __init__(self, backend: str, job_id: str, ref: str, deadline: float | None, data: bytes | None):
        self.backend_name = backend
        self.job_id = job_id
        self.ref = ref
        self.deadline = deadline
        self.data = data
        self.starts = 0

    def run(self) -> None:
        from launcher.runtime import open_backend

        backend = open_backend(self.backend_name)
        if self.backend_name != "docker" or self.data is None:
            return self._reap(backend)
        self._guard(backend)

    def _reap(self, backend) -> None:
        """Deadline only: poll at most every POLL seconds, exit once the job has ended."""
        while True:
            job = next((j for j in backend.jobs(all=True) if j.id == self.job_id), None)
            if job is None or not job.running:
                return
            remaining = (self.deadline or float("inf")) - time.time()
            if remaining <= 0:
                backend.stop(job)
                return
            time.sleep(min(POLL, remaining))

    def _guard(self, backend) -> None:
        """Follow the container's events: deliver on every restart, stop at the deadline, end with the job."""
        api = backend.api
        since = int(time.time()) - 5
        lost_since: float | None = None
        while True:
            try:
                until = time.time() + POLL
                if self.deadline is not None:
                    until = min(until, self.deadline)
                events = api.events(
                    since=since,
                    until=int(until) + 1,
                    filters={"container": self.ref, "type": "container"},
                    decode=True,
                )
                for event in events:
                    since = int(event.get("time", since))
                    if event.get("status") == "start":
                        self.starts += 1
                        if self.starts > 1:
                            self._deliver(api)
                    elif event.get("status") == "destroy":
                        return
                lost_since = None
                state = self._state(api)
                if state is None or state == "gone":
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    api.stop(self.ref, timeout=10)
                    return
                if state == "waiting":
                    self._deliver(api)  # a start we did not see (the engine restarted meanwhile)
            except Exception:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > RECONNECT_FOR:
                    return
                time.sleep(2)

    def _state(self, api) -> str | None:
        """'gone', 'ended' (and not restarting), 'waiting' (the shim waits for its secrets), or 'running'."""
        import docker.errors

        try:
            state = api.inspect_container(self.ref).get("State") or {}
        except docker.errors.NotFound:
            return "gone"
        if state.get("Restarting"):
            return "running"
        if not state.get("Running"):
            return "gone" if state.get("Status") in ("exited", "dead") and not self._may_restart(api) else "running"
        return "waiting" if self._shim_waits(api) else "running"

    def _may_restart(self, api) -> bool:
        policy = (api.inspect_container(self.ref).get("HostConfig") or {}).get("RestartPolicy") or {}
        return policy.get("Name") in ("always", "unless-stopped")

    def _shim_waits(self, api) -> bool:
        from launcher.runtime.docker import shim_state

        return shim_state(api, self.ref) == "shim"

    def _deliver(self, api) -> None:
        """Give a restarted job's shim its secrets: only while the shim is what runs (never into a job's stdin)."""
        for _ in range(200):  # the shim is the container's first process: it shows up within moments
            if self._shim_waits(api):
                break
            time.sleep(0.05)
        else:
            return
        sock = api.attach_socket(self.ref, params={"stdin": 1, "stream": 1})
        raw = getattr(sock, "_sock", sock)
        try:
            raw.sendall(self.data)
            raw.shutdown(socket.SHUT_WR)
        finally:
            sock.close()


def main() -> int:
    data = sys.stdin.buffer.read()
    sys.stdin.close()
    head, _, rest = data.partition(b"\n")
    try:
        header = json.loads(head)
        warden = Warden(header["backend"], header["job"], header["ref"], header["deadline"], rest or None)
    except (ValueError, KeyError, TypeError):
        return 2
    try:
        warden.run()
    except Exception:
        return 1
    finally:
        forget(warden.job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
