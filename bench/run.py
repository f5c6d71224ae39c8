"""The "Fast" issue's benchmarks: `python3 bench/run.py [--quick] [--runs N] [--out docs/benchmarks.md]`.

Each case times `launch` (from PATH) against the floor it cannot beat: the `docker` CLI doing the same work, and/or
a hello-world Typer app (bench/hello_typer.py, run by the `python3` on PATH, so that both pay the same interpreter
shims). The compared commands run in turn, A B A B ..., so that a change in the machine's load hits them alike, and
the medians are compared as ratios. Before timing the one-job case, each side runs once with a shell check that the
five variables and five files are really there (both sides do the same work); a full run also starts every case
with one untimed round, which warms the caches.

Everything runs in temporary folders: a fresh LAUNCH_HOME per case, and every container is labelled
`launch-bench=<token of this run>`, so that only ours are removed, after each round and at the end.
`--quick` is CI's smoke run: one iteration, tiny sizes; it exits 0 when every command ran, whatever the ratios.
A full run exits 1 when a target is missed; any run exits 2 when a command failed (after writing the report when
only some of the jobs started at once failed: that case's target is "no errors", so its failures are a result).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench_mask import measure as mask_throughput

REPO = Path(__file__).resolve().parents[1]
HELLO = Path(__file__).with_name("hello_typer.py")
IMAGE = "launch-test/busybox:latest"
LABEL = "launch-bench"
N_ENV = N_FILES = 5
# run by /bin/sh in the job: every variable set, every file there and not empty (exits 1 otherwise)
CHECK = " && ".join(
    [*(f'[ -n "$E{i}" ]' for i in range(N_ENV)), *(f"[ -s /run/secrets/f{i} ]" for i in range(N_FILES))]
)


# the methods of Bench, in the order they run and are reported: the 50-at-once case last, since the engine is
# still busy removing its containers for a while after it (which skews whatever is measured next)
CASES = ("peer", "run_rm", "api", "sweep", "ps", "secret_ls", "help", "masking", "detached", "previous")
DOCKERPY_RUN = Path(__file__).with_name("dockerpy_run.py")
DOCKERPY_PS = Path(__file__).with_name("dockerpy_ps.py")
PODMAN_SETUP = (
    "podman not installed (apt-get install -y podman; `default_ulimits = []` under [containers] in "
    "/etc/containers/containers.conf; see bench/README.md)"
)


class BenchError(Exception):
    """A command of the benchmark failed: its numbers would mean nothing."""


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    case: str
    measured: str
    baseline: str
    ratio: str
    target: str
    ok: bool
    failures: str = ""  # commands of the case that exited non-zero (the run case's "no errors" target)
    skipped: bool = False  # not measured (its peer is not installed): never a pass, never a failure
    shown: bool = False  # measured for what it costs, with no target of its own


@dataclass(frozen=True)
class Sizes:
    runs: int  # alternating rounds of the one-shot cases
    bursts: int  # rounds of the concurrent case
    listed: int  # secrets in the store for `launch secret ls`
    swept: int  # jobs of the sweep case
    ps_jobs: int  # jobs `launch ps -a` lists
    concurrent: int  # jobs started at once
    mask_mb: int
    warm_up: bool  # an untimed round before the timed ones


TIMEOUT = 300  # seconds for any one command or burst: a wedged engine fails the run instead of hanging it


# -- running commands ------------------------------------------------------------------------------------------


def checked(label: str, argv: list[str], env: dict[str, str], stdout: int = subprocess.DEVNULL) -> bytes:
    """Run `argv` to its end; its stdout (if `stdout` is PIPE), or BenchError with its last stderr line."""
    try:
        proc = subprocess.run(
            argv, check=False, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{label} did not finish in {TIMEOUT} s (is the engine wedged?)") from None
    if proc.returncode != 0:
        raise BenchError(f"{label} exited {proc.returncode}: {_last_line(proc.stderr)}")
    return proc.stdout or b""


def timed(label: str, argv: list[str], env: dict[str, str]) -> float:
    """Seconds `argv` took, stdout discarded; BenchError unless it exits 0."""
    started = time.perf_counter()
    checked(label, argv, env)
    return time.perf_counter() - started


def burst(argv: list[str], env: dict[str, str], count: int) -> tuple[float, list[str]]:
    """Seconds from spawning `count` copies of `argv` at once to the last one's exit, and the last stderr line of
    each copy that failed (failures are a result here, not an accident: the case's target is "no errors")."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(count)
    ]
    deadline = started + TIMEOUT
    outcomes = []
    for proc in procs:
        try:
            outcomes.append((proc.communicate(timeout=max(1.0, deadline - time.perf_counter()))[1], proc.returncode))
        except subprocess.TimeoutExpired:
            proc.kill()
            outcomes.append((b"did not finish in time (is the engine wedged?)", -9))
    elapsed = time.perf_counter() - started
    return elapsed, [_last_line(stderr) for stderr, code in outcomes if code != 0]


def alternate(commands: dict[str, Callable[[], float]], runs: int, warm_up: bool) -> dict[str, float]:
    """The median seconds of each command, run in turn (A B A B ...) `runs` times, after one untimed round if
    `warm_up` (it fills the caches: page cache, bytecode, the engine's image metadata)."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values() if warm_up else ():
        command()
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(command())
    return {name: statistics.median(values) for name, values in samples.items()}


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no message)"


def _output(argv: list[str]) -> str:
    """What a read-only command prints, or '?' when it cannot run (machine details are best effort)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# -- the job both sides run --------------------------------------------------------------------------------------


class Workload:
    """5 env and 5 file secrets (random values), as a launch template and as the equivalent `docker run`."""

    def __init__(self, folder: Path, token: str):
        self.token = token
        self.values = {f"{kind}{i}": secrets.token_hex(16) for kind in "ef" for i in range(N_ENV)}
        self.files = folder / "files"
        self.files.mkdir()
        for i in range(N_FILES):
            (self.files / f"f{i}").write_text(self.values[f"f{i}"])
        self.template = folder / "job.yaml"
        env = "".join(f"  E{i}: secret:e{i}\n" for i in range(N_ENV))
        volumes = "".join(f"  - secret:f{i}:/run/secrets/f{i}\n" for i in range(N_FILES))
        self.template.write_text(
            f'image: {IMAGE}\ncommand: ["true"]\nnetwork: none\nlabels:\n  {LABEL}: "{token}"\n'
            f"env:\n{env}volumes:\n{volumes}"
        )

    def dotenv(self) -> str:
        return "".join(f"{name}={value}\n" for name, value in self.values.items())

    def docker(self, mode: str, *command: str) -> list[str]:
        """`docker run` doing the same work: plaintext `-e` values and the files bind-mounted read-only."""
        env = [arg for i in range(N_ENV) for arg in ("-e", f"E{i}={self.values[f'e{i}']}")]
        mounts = [arg for i in range(N_FILES) for arg in ("-v", f"{self.files}/f{i}:/run/secrets/f{i}:ro")]
        label = ["--label", f"{LABEL}={self.token}"]
        return ["docker", "run", mode, "--network", "none", *label, *env, *mounts, IMAGE, *(command or ("true",))]

    def remove_containers(self) -> None:
        """Force-remove every container of this benchmark run (and only those)."""
        ids = _output(["docker", "ps", "-aq", "--filter", f"label={LABEL}={self.token}"]).split()
        if ids and ids != ["?"]:
            try:
                subprocess.run(
                    ["docker", "rm", "-f", *ids],
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                print("bench: warning: `docker rm -f` did not finish; the engine may be wedged", file=sys.stderr)


# -- the cases ---------------------------------------------------------------------------------------------------


class Bench:
    """The five cases; each returns its row of the table. Every store and file lives under `root`."""

    def __init__(self, root: Path, sizes: Sizes, previous_ref: str | None = None):
        self.root = root
        self.previous_ref = previous_ref
        self.sizes = sizes
        self.launch = os.environ.get("LAUNCH_BENCH_COMMAND") or shutil.which("launch")
        self.python = shutil.which("python3")
        if not self.launch or not self.python:
            raise BenchError("`launch` and `python3` must be on PATH (pip install -e .)")
        self.hello = [self.python, str(HELLO)]
        self.job = Workload(root, secrets.token_hex(4))
        self.imports: list[tuple[float, str]] = []  # of the one-job case's `launch run`, once it ran
        self.podman_secrets: list[str] = []  # created for the peer case; removed at the end
        # Bytecode cached as in an installed package, in our folder (the tree stays untouched), whatever this
        # shell says: under PYTHONDONTWRITEBYTECODE an editable install compiles its sources on every start.
        self.env = {**os.environ, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
        for name in ("PYTHONDONTWRITEBYTECODE", "LAUNCH_PASSPHRASE", "LAUNCH_HOME"):
            self.env.pop(name, None)

    def home(self, name: str, dotenv: str) -> dict[str, str]:
        """The environment of a fresh store under `root`, filled through `launch secret import` (a real path)."""
        env = {**self.env, "LAUNCH_HOME": str(self.root / name)}
        source = self.root / f"{name}.env"
        source.write_text(dotenv)
        timed("launch secret import", [self.launch, "secret", "import", str(source)], env)
        source.unlink()
        return env

    def run_rm(self) -> Row:
        env = self.home("run", self.job.dotenv())
        launch = [self.launch, "run", "--rm", str(self.job.template)]
        docker = self.job.docker("--rm")
        timed("launch run --rm (check)", [*launch, "--", "sh", "-c", CHECK], env)
        timed("docker run --rm (check)", self.job.docker("--rm", "sh", "-c", CHECK), env)
        m = alternate(
            {
                "launch": lambda: timed("launch run --rm", launch, env),
                "docker": lambda: timed("docker run --rm", docker, env),
                "hello": lambda: timed("hello_typer", self.hello, env),
            },
            self.sizes.runs,
            self.sizes.warm_up,
        )
        # the import profile of this very command, now, while the machine is as quiet as it gets in this run
        self.imports = import_profile(launch, env)
        floor = m["docker"] + m["hello"]
        baseline = f"docker run {_ms(m['docker'])} + hello {_ms(m['hello'])} = {_ms(floor)}"
        return _row(f"`launch run --rm`, {N_ENV} env + {N_FILES} file secrets", m["launch"], floor, baseline, 1.15)

    def peer(self) -> list[Row]:
        """`launch run --rm` against the peer a user would pick instead, `podman run --rm --secret` with the same
        secrets (when podman is installed), and against the floor of any docker-py client (bench/dockerpy_run.py:
        create, put the files, start, wait, remove, with the same values)."""
        env = self.home("peer", self.job.dotenv())
        launch = [self.launch, "run", "--rm", str(self.job.template)]
        spec = self.root / "dockerpy.json"
        spec.write_text(
            json.dumps(
                {
                    "image": IMAGE,
                    "env": {f"E{i}": self.job.values[f"e{i}"] for i in range(N_ENV)},
                    "files": {f"/run/secrets/f{i}": self.job.values[f"f{i}"] for i in range(N_FILES)},
                    "labels": {LABEL: self.job.token},
                }
            )
        )
        floor = [self.python, str(DOCKERPY_RUN), str(spec)]
        timed("launch run --rm (check)", [*launch, "--", "sh", "-c", CHECK], env)
        timed("dockerpy_run.py (check)", [*floor, "sh", "-c", CHECK], env)
        commands = {
            "launch": lambda: timed("launch run --rm", launch, env),
            "dockerpy": lambda: timed("dockerpy_run.py", floor, env),
        }
        podman = self.podman(env)
        if podman is not None:
            timed("podman run --rm (check)", [*podman[:-1], "sh", "-c", CHECK], env)
            commands["podman"] = lambda: timed("podman run --rm", podman, env)
            # the Docker engine's own client on the same job: what any client of this engine pays, against podman
            docker = self.job.docker("--rm")
            commands["docker"] = lambda: timed("docker run --rm", docker, env)
        m = alternate(commands, self.sizes.runs, self.sizes.warm_up)
        case = f"`launch run --rm`, {N_ENV} env + {N_FILES} file secrets"
        rows = []
        if podman is None:
            rows.append(Row(f"{case}, vs podman", "-", PODMAN_SETUP, "-", "<= 1.3", True, skipped=True))
        else:
            base = (
                f"`podman run --rm --secret` (same secrets) {_ms(m['podman'])}; on the Docker engine its own "
                f"`docker run --rm` takes {_ms(m['docker'])}, {m['docker'] / m['podman']:.2f}x podman"
            )
            rows.append(_row(f"{case}, vs podman", m["launch"], m["podman"], base, 1.3))
        base = f"bench/dockerpy_run.py (create, put_archive, start, wait, remove) {_ms(m['dockerpy'])}"
        rows.append(_row(f"{case}, vs docker-py floor", m["launch"], m["dockerpy"], base, 1.2))
        return rows

    def api(self) -> list[Row]:
        """A job started through the console's API (a warm `launch ui` server: POST /v2/jobs of a saved template with
        5 env + 5 file secrets, returning once the job's command runs) against the engine's own create + start of
        the same container (docker-py in this process, plain values), one request each, in turn. Twice: a job that
        keeps running (what the console starts: a notebook, a server), the target; and one whose command ends at
        once (`true`), shown for what it costs: there, that the command ran is known only from its exit code, which
        the engine reports some milliseconds after the exit."""
        import urllib.request

        import docker

        env = {**self.home("api", self.job.dotenv()), "LAUNCH_UI_TOKEN": secrets.token_hex(16)}
        server = subprocess.Popen(
            [self.launch, "ui", "--no-browser", "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rows = []
        try:
            info = Path(env["LAUNCH_HOME"]) / "ui.json"
            for _ in range(300):
                if info.exists():
                    break
                time.sleep(0.05)
            else:
                raise BenchError("`launch ui` wrote no ui.json in 15 s")
            url = json.loads(info.read_text())["url"].split("?", 1)[0].rstrip("/")
            headers = {"Authorization": f"Bearer {env['LAUNCH_UI_TOKEN']}", "Content-Type": "application/json"}

            def post(path: str, body: dict) -> dict:
                request = urllib.request.Request(url + path, json.dumps(body).encode(), headers, method="POST")
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    return json.loads(response.read())

            post("/v2/templates", {"name": "bench", "yaml": self.job.template.read_text()})
            client = docker.from_env().api
            values = {f"E{i}": self.job.values[f"e{i}"] for i in range(N_ENV)}
            for command, what in (
                (["sleep", "600"], "a job that keeps running"),
                (["true"], "a command that ends at once"),
            ):

                def engine(command: list[str] = command) -> float:
                    started = time.perf_counter()
                    cid = client.create_container(
                        IMAGE,
                        command=command,
                        environment=values,
                        labels={LABEL: self.job.token},
                        host_config=client.create_host_config(network_mode="none"),
                    )["Id"]
                    client.start(cid)
                    return time.perf_counter() - started

                def through_api(command: list[str] = command) -> float:
                    started = time.perf_counter()
                    post("/v2/jobs", {"template": "bench", "command": command})
                    return time.perf_counter() - started

                m = alternate({"api": through_api, "engine": engine}, self.sizes.runs, self.sizes.warm_up)
                self.job.remove_containers()
                extra = (m["api"] - m["engine"]) * 1000
                target = command != ["true"]
                rows.append(
                    Row(
                        f"a job through the console's API (warm server), 5 env + 5 file secrets, {what}",
                        _ms(m["api"]),
                        f"the engine's create + start (docker-py) {_ms(m['engine'])}",
                        f"+{extra:.0f} ms",
                        "<= +25 ms" if target else "-",
                        extra <= 25 or not target,
                        shown=not target,
                    )
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
            self.job.remove_containers()
        return rows

    def podman(self, env: dict[str, str]) -> list[str] | None:
        """`podman run --rm` with the same 5 env and 5 file secrets (created from stdin), or None without podman."""
        podman = shutil.which("podman")
        if podman is None:
            return None
        if subprocess.run([podman, "image", "exists", IMAGE], check=False).returncode != 0:
            save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
            subprocess.run([podman, "load"], stdin=save.stdout, check=True, stdout=subprocess.DEVNULL)
            save.wait()
        args = []
        for name, value in self.job.values.items():
            secret = f"launch-bench-{self.job.token}-{name}"
            self.podman_secrets.append(secret)
            subprocess.run([podman, "secret", "rm", secret], check=False, capture_output=True)
            subprocess.run(
                [podman, "secret", "create", secret, "-"], input=value.encode(), check=True, capture_output=True
            )
            if name.startswith("e"):
                args += ["--secret", f"{secret},type=env,target=E{name[1:]}"]
            else:
                args += ["--secret", f"{secret},target=/run/secrets/{name}"]
        return [podman, "run", "--rm", "--network", "none", *args, IMAGE, "true"]

    def sweep(self) -> Row:
        """A sweep of N jobs from one command against N `docker run -d` spawned together (first spawn to last
        exit), each job with the same 5 env and 5 file secrets."""
        n = self.sizes.swept
        env = self.home("sweep", self.job.dotenv())
        values = ",".join(str(i) for i in range(n))
        launch = [self.launch, "run", str(self.job.template), "--matrix", f"i={values}"]
        docker = self.job.docker("-d")
        failures: list[str] = []

        def one_sweep() -> float:
            try:
                started = time.perf_counter()
                checked("launch run --matrix", launch, env)
                return time.perf_counter() - started
            finally:
                self.job.remove_containers()

        runs = max(1, min(self.sizes.runs, 5))
        at_once = self._at_once("docker run -d", docker, env, n, failures)
        m = alternate({"launch": one_sweep, "docker": at_once}, runs, self.sizes.warm_up)
        row = _row(
            f"a sweep of {n} jobs from one command (`--matrix`), 5 env + 5 file secrets each",
            m["launch"],
            m["docker"],
            f"{n} `docker run -d` at once {_ms(m['docker'])} (medians of {runs})",
            1.2,
        )
        return replace(row, ok=False, failures=f"{len(failures)} failed: {failures[0]}") if failures else row

    def ps(self) -> Row:
        """`launch ps -a` with N ended jobs against a docker-py script listing the same containers with labels."""
        n = self.sizes.ps_jobs
        env = self.home("ps", self.job.dotenv())
        values = ",".join(str(i) for i in range(n))
        checked(
            "launch run --matrix (the jobs to list)",
            [self.launch, "run", str(self.job.template), "--matrix", f"i={values}"],
            env,
        )
        launch = [self.launch, "ps", "-a"]
        floor = [self.python, str(DOCKERPY_PS), f"{LABEL}={self.job.token}"]
        try:
            listed = checked("launch ps -a", launch, env, subprocess.PIPE).decode()
            if listed.count("\n") < n:
                raise BenchError(f"`launch ps -a` listed fewer than {n} jobs")
            m = alternate(
                {
                    "launch": lambda: timed("launch ps -a", launch, env),
                    "dockerpy": lambda: timed("dockerpy_ps.py", floor, env),
                },
                self.sizes.runs,
                self.sizes.warm_up,
            )
        finally:
            self.job.remove_containers()
        base = f"bench/dockerpy_ps.py, the same {n} containers with their labels {_ms(m['dockerpy'])}"
        return _row(f"`launch ps -a`, {n} jobs", m["launch"], m["dockerpy"], base, 1.1)

    def previous(self) -> Row:
        """`launch run --rm` of this checkout against the same command of an earlier commit (`--previous REF`),
        both as `python3 -m launcher` from their own source tree, each with its own store: no loss of speed."""
        if not self.previous_ref:
            raise BenchError("the `previous` case needs --previous REF (a commit to compare with)")
        old = self.root / "previous"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", self.previous_ref, "launcher"], capture_output=True
        )
        if archive.returncode != 0:
            raise BenchError(f"cannot read {self.previous_ref!r} from git: {_last_line(archive.stderr)}")
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        runs = {}
        for label, tree in (("now", REPO), ("previous", old)):
            env = {**self.env, "LAUNCH_HOME": str(self.root / f"prev-{label}"), "PYTHONPATH": str(tree)}
            source = self.root / f"prev-{label}.env"
            source.write_text(self.job.dotenv())
            timed(f"{label}: secret import", [self.python, "-m", "launcher", "secret", "import", str(source)], env)
            argv = [self.python, "-m", "launcher", "run", "--rm", str(self.job.template)]
            timed(f"{label}: launch run --rm (check)", [*argv, "--", "sh", "-c", CHECK], env)
            runs[label] = (argv, env)
        m = alternate(
            {
                label: (lambda a=argv, e=env, n=label: timed(f"{n}: launch run --rm", a, e))
                for label, (argv, env) in runs.items()
            },
            self.sizes.runs,
            self.sizes.warm_up,
        )
        baseline = f"`launch run --rm` at {self.previous_ref} {_ms(m['previous'])}"
        return _row(f"`launch run --rm` now vs at {self.previous_ref}", m["now"], m["previous"], baseline, 1.05)

    def secret_ls(self) -> Row:
        n = self.sizes.listed
        env = self.home("ls", "".join(f"S{i:05}={secrets.token_hex(16)}\n" for i in range(n)))
        listing = checked("launch secret ls", [self.launch, "secret", "ls"], env, subprocess.PIPE).splitlines()
        if len(listing) != n + 1:
            raise BenchError(f"`launch secret ls` listed {len(listing) - 1} secrets, not {n}")
        m = self._versus_hello("launch secret ls", [self.launch, "secret", "ls"], self.hello, env)
        return _row(f"`launch secret ls`, {n:,} secrets", m["launch"], m["hello"], f"hello {_ms(m['hello'])}", 1.2)

    def _at_once(
        self, label: str, argv: list[str], env: dict[str, str], n: int, failures: list[str]
    ) -> Callable[[], float]:
        """A round of `n` copies of `argv` spawned together, timed, their containers removed after; the failed
        copies' last lines go to `failures` (a result of the case, not an accident)."""

        def go() -> float:
            try:
                elapsed, errors = burst(argv, env, n)
            finally:
                self.job.remove_containers()
            failures.extend(f"{label}: {error}" for error in errors)
            return elapsed

        return go

    def help(self) -> Row:
        env = {**self.env, "LAUNCH_HOME": str(self.root / "help")}
        m = self._versus_hello("launch --help", [self.launch, "--help"], [*self.hello, "--help"], env)
        return _row("`launch --help`", m["launch"], m["hello"], f"hello --help {_ms(m['hello'])}", 1.1)

    def detached(self) -> Row:
        n = self.sizes.concurrent
        env = self.home("detach", self.job.dotenv())
        launch = [self.launch, "run", "--detach", str(self.job.template)]
        docker = self.job.docker("-d")
        if self.sizes.warm_up:
            timed("launch run --detach (warm-up)", launch, env)
            self.job.remove_containers()

        failures: list[str] = []

        def at_once(label: str, argv: list[str]) -> Callable[[], float]:
            return self._at_once(label, argv, env, n, failures)

        # n hello apps, and n bare interpreters, at once are no targets: they show what Typer alone, and Python
        # alone, take when n of them start together on these cores
        m = alternate(
            {
                "launch": at_once("launch run --detach", launch),
                "docker": at_once("docker run -d", docker),
                "hello": at_once("hello_typer", self.hello),
                "python": at_once("python3 -c pass", [self.python, "-c", "pass"]),
            },
            self.sizes.bursts,
            warm_up=False,
        )
        baseline = (
            f"{n} `docker run -d` {_ms(m['docker'])} (for reference, at once: {n} hello {_ms(m['hello'])}, "
            f"{n} `python3 -c pass` {_ms(m['python'])})"
        )
        row = _row(f"{n} `launch run --detach` at once", m["launch"], m["docker"], baseline, 1.3)
        if not failures:
            return row
        return replace(row, ok=False, failures=f"{len(failures)} commands failed, the first: {failures[0]}")

    def masking(self) -> Row:
        # the best of `bursts` passes, timeit's convention for a throughput: on a shared machine a slower pass
        # measures the other load (CPU time counts the time a VM's vCPU was taken away, too), not the masker
        speeds = [mask_throughput(self.sizes.mask_mb) for _ in range(self.sizes.bursts)]
        speed = max(speeds)
        workload = f"{self.sizes.mask_mb} MB of log lines"
        if len(speeds) > 1:
            workload += f"; best of {len(speeds)} passes ({', '.join(f'{s:.0f}' for s in speeds)} MB/s)"
        return Row(
            "Masking, 100 secrets (MB/s of CPU time)", f"{speed:.0f} MB/s", workload, "-", ">= 200 MB/s", speed >= 200
        )

    def _versus_hello(self, label: str, argv: list[str], hello: list[str], env: dict[str, str]) -> dict[str, float]:
        return alternate(
            {"launch": lambda: timed(label, argv, env), "hello": lambda: timed("hello_typer", hello, env)},
            self.sizes.runs,
            self.sizes.warm_up,
        )


def _row(case: str, measured: float, floor: float, baseline: str, limit: float) -> Row:
    ratio = measured / floor
    return Row(case, _ms(measured), baseline, f"{ratio:.2f}", f"<= {limit}", ratio <= limit)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# -- the report --------------------------------------------------------------------------------------------------


def machine(launch: str, python: str) -> dict[str, str]:
    """What the numbers depend on: hardware, kernel, interpreter, engine, the code measured, the load."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    git = ["git", "--no-optional-locks", "-C", str(REPO)]  # read-only: never refreshes the index
    dirty = _output([*git, "status", "--porcelain", "--untracked-files=no"])
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "Memory": f"{memory:.1f} GiB",
        "Kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Docker engine": _output(["docker", "version", "--format", "{{.Server.Version}}"]),
        "launch commit": _output([*git, "rev-parse", "--short", "HEAD"]) + (" + uncommitted changes" if dirty else ""),
        "Commands": f"launch = {launch}, python3 = {python}",
        # other work on the machine skews the medians; ours (50 processes at once) would skew a later reading
        "Load average before the run (1, 5, 15 min)": ", ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def import_profile(argv: list[str], env: dict[str, str], top: int = 12, runs: int = 3) -> list[tuple[float, str]]:
    """What the command `argv` spends importing: (ms, module) of its `top` costliest top-level imports (each
    with everything it imports in turn), the least of `runs` runs, and ("all imports", their sum) first. Python's
    import profile misses modules loaded by `importlib.import_module` (our command module, about 1 ms)."""
    best: dict[str, float] = {}
    for _ in range(runs):
        proc = subprocess.run(
            argv, check=False, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True
        )
        seen: dict[str, float] = {}
        for line in proc.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].startswith(" ") and parts[2][1] != " ":
                seen[parts[2].strip()] = int(parts[1]) / 1000  # a top-level import: one space of indent
        for name, ms in seen.items():
            best[name] = min(ms, best.get(name, ms))
    rows = sorted(((ms, name) for name, ms in best.items()), reverse=True)
    return [(sum(ms for ms, _ in rows), "all imports"), *rows[:top]]


def render(rows: list[Row], facts: dict[str, str], imports: list[tuple[float, str]], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        (
            f"Generated by `{command}` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Times are medians"
            " of alternating runs (A B A B ...) on the same machine, Python's bytecode cached as in an installed"
            " package; ratio = launch / baseline. See bench/README.md."
        ),
        "",
        "| Case | launch | Baseline | Ratio | Target | Result |",
        "|---|---|---|---|---|---|",
        *(f"| {r.case} | {r.measured} | {r.baseline} | {r.ratio} | {r.target} | {_verdict(r)} |" for r in rows),
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "",
    ]
    if imports:
        lines += [
            "<details><summary>What <code>launch run --rm job.yaml</code> spends importing (the one-job case; each "
            "top-level import with all it imports in turn, least of 3 runs)</summary>",
            "",
            "| Time | Module |",
            "|---|---|",
            *(f"| {ms:.1f} ms | `{name}` |" for ms, name in imports),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _verdict(row: Row) -> str:
    if row.skipped:
        return "not measured"
    if row.shown:
        return "no target"
    return ("pass" if row.ok else "FAIL") + (f" ({row.failures})" if row.failures else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one iteration, tiny sizes (CI's smoke run)")
    parser.add_argument("--runs", type=int, default=11, help="alternating rounds per case (default 11)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md", help="the Markdown report")
    parser.add_argument(
        "--case",
        action="append",
        choices=CASES,
        help="only this case (repeatable); the report then has only these rows, so write it elsewhere with --out",
    )
    parser.add_argument("--previous", metavar="REF", help="a commit for the `previous` case to compare with")
    args = parser.parse_args()
    cases = args.case or [c for c in CASES if c != "previous" or args.previous]
    runs = max(1, args.runs)
    if args.quick:
        sizes = Sizes(runs=1, bursts=1, listed=20, swept=3, ps_jobs=5, concurrent=5, mask_mb=2, warm_up=False)
    else:
        sizes = Sizes(
            runs=runs, bursts=min(runs, 3), listed=10000, swept=20, ps_jobs=200, concurrent=50, mask_mb=64, warm_up=True
        )
    with tempfile.TemporaryDirectory(prefix="launch-bench-") as folder:
        try:
            bench = Bench(Path(folder), sizes, args.previous)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        facts = machine(bench.launch, bench.python)
        try:
            rows = []
            for case in cases:
                result = getattr(bench, case)()
                for r in result if isinstance(result, list) else [result]:
                    rows.append(r)
                    print(
                        f"bench: {r.case}: {r.measured}; {r.baseline}; ratio {r.ratio}; {_verdict(r)}", file=sys.stderr
                    )
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        finally:
            bench.job.remove_containers()
            for secret in bench.podman_secrets:
                subprocess.run(["podman", "secret", "rm", secret], check=False, capture_output=True)
        imports = bench.imports
    command = "python3 bench/run.py" + (" --quick" if args.quick else f" --runs {sizes.runs}")
    command += "".join(f" --case {case}" for case in args.case or ())
    command += f" --previous {args.previous}" if args.previous else ""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, facts, imports, command))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    if any(r.failures for r in rows):
        return 2
    return 0 if args.quick or all(r.ok or r.skipped for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
