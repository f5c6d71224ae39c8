"""Sweeps: `launch run --matrix KEY=V1,V2 ...` starts the product of the value lists, detached, from one process;
`--max-parallel` leaves the rest to a waiter that outlives the launcher; `ps` groups a sweep's jobs, `stop/rm
SWEEP` act on all of them. Through the real CLI and engine; the pure parts (axes, names) directly."""

from __future__ import annotations

import json
import os
import time

import pytest
from conftest import TEST_IMAGE, add_secret, job_containers, run_launch, sha, wait_for

from launcher.app import sweep
from launcher.errors import UsageError

VALUE = "sweep-secret-0123456789abcdef"
PRINT = 'echo "LR=$LR SEED=$SEED T=$(printf %s "$T" | sha256sum | cut -c1-64)"'


def template(tmp_path, command: str = PRINT, extra: str = "") -> str:
    path = tmp_path / "train.yaml"
    path.write_text(
        f"image: {TEST_IMAGE}\nnetwork: none\nenv:\n  T: secret:tok\n  LR: from-the-template\n"
        f"command: [sh, -c, {json.dumps(command)}]\n{extra}"
    )
    return str(path)


def sweep_containers(api, sweep_id: str) -> list[dict]:
    return api.containers(all=True, filters={"label": f"launch.sweep={sweep_id}"})


def sweep_id_of(api, job_id: str) -> str:
    (container,) = job_containers(api, job_id)
    return container["Labels"]["launch.sweep"]


def logs_of(job_id: str) -> str:
    return run_launch("logs", job_id).stdout.decode()


@pytest.mark.docker
def test_the_product_starts_detached_with_its_env_names_one_secret_resolution_and_one_group(docker, tmp_path):
    add_secret("tok", VALUE)
    result = run_launch("run", template(tmp_path), "--matrix", "lr=1e-3,1e-4", "--matrix", "seed=1,2,3")
    assert result.returncode == 0, result.stderr
    ids = result.stdout.decode().split()
    assert len(ids) == 6 and len(set(ids)) == 6  # one id per line, each job once
    sweep_id = sweep_id_of(docker, ids[0])
    assert f"launch: sweep {sweep_id}: 6 jobs started".encode() in result.stderr
    containers = sweep_containers(docker, sweep_id)
    assert sorted(c["Labels"]["launch.job"] for c in containers) == sorted(ids)
    names = sorted(c["Labels"]["launch.name"] for c in containers)
    assert names == sorted(f"train-{sweep_id}-lr{lr}-seed{seed}" for lr in ("1e-3", "1e-4") for seed in (1, 2, 3))
    for job in ids:
        wait_for(lambda j=job: "LR=" in logs_of(j), what="the job's line")
    lines = sorted(logs_of(job).strip() for job in ids)
    assert lines == sorted(f"LR={lr} SEED={s} T={sha(VALUE)}" for lr in ("1e-3", "1e-4") for s in (1, 2, 3))
    for c in containers:  # the secret reached every job through the bundle, never through the engine's env
        assert VALUE not in json.dumps(docker.inspect_container(c["Id"]))
    table = run_launch("ps", "-a").stdout.decode()
    head = table.split(f"sweep {sweep_id}: 6 jobs ")[1].splitlines()[1:7]
    assert all(line.startswith("  ") for line in head) and {line.split()[0] for line in head} == set(ids)
    assert json.loads(run_launch("ps", "-a", "--json").stdout)[0]["sweep"] == sweep_id
    removed = run_launch("rm", "--force", sweep_id)
    assert removed.returncode == 0, removed.stderr
    assert sweep_containers(docker, sweep_id) == []


@pytest.mark.docker
def test_a_templates_matrix_runs_and_a_flag_replaces_its_axis(docker, tmp_path):
    add_secret("tok", VALUE)
    path = template(tmp_path, extra="name: grid\nmatrix:\n  lr: [0.1, 0.2]\n  seed: [7]\n")
    both = run_launch("run", path)
    assert both.returncode == 0, both.stderr
    assert len(both.stdout.split()) == 2
    # `--matrix LR=...` names the same variable as the template's `lr`: it replaces that axis
    replaced = run_launch("run", path, "--name", "grid2", "--matrix", "LR=5")
    assert replaced.returncode == 0, replaced.stderr
    (job,) = replaced.stdout.decode().split()
    wait_for(lambda: "LR=" in logs_of(job), what="the job's line")
    assert logs_of(job).startswith("LR=5 SEED=7 ")
    (container,) = job_containers(docker, job)
    assert container["Labels"]["launch.name"] == "grid2-lr5-seed7"


@pytest.mark.docker
def test_a_failed_start_is_reported_and_the_others_go_on(docker, tmp_path):
    add_secret("tok", VALUE)
    taken = run_launch("run", "--detach", "--name", "clash-lr2", "--image", TEST_IMAGE, "--", "sleep", "30")
    assert taken.returncode == 0, taken.stderr
    result = run_launch("run", template(tmp_path), "--name", "clash", "--matrix", "lr=1,2,3")
    assert result.returncode == 4  # the name conflict's code
    assert len(result.stdout.split()) == 2
    errors = [line for line in result.stderr.decode().splitlines() if "error" in line]
    assert errors[0].startswith("launch: error: job clash-lr2: a container named 'clash-lr2' exists already")
    assert errors[1].endswith(": 1 of 3 jobs failed to start")
    assert "Traceback" not in result.stderr.decode()


@pytest.mark.docker
def test_max_parallel_leaves_the_rest_to_a_waiter_that_outlives_the_launcher(docker, tmp_path):
    add_secret("tok", VALUE)
    path = template(tmp_path, command=PRINT + "; sleep 1")
    env = {"LAUNCH_SWEEP_TEST_MARK": "not-for-the-waiter"}
    result = run_launch("run", path, "--matrix", "seed=1,2,3,4,5", "--max-parallel", "2", env=env)
    assert result.returncode == 0, result.stderr
    first = result.stdout.decode().split()
    assert len(first) == 2 and b"3 more start as others end" in result.stderr
    sweep_id = sweep_id_of(docker, first[0])
    state = json.loads((_home() / "sweeps" / sweep_id).read_text())
    pid = state["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[1:3] == [b"-m", b"launcher.app.waiter"] and VALUE.encode() not in b" ".join(argv)
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read()
    assert b"LAUNCH_SWEEP_TEST_MARK" not in environ and VALUE.encode() not in environ
    most = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        containers = sweep_containers(docker, sweep_id)
        most = max(most, sum(c["State"] in ("running", "created") for c in containers))
        if len(containers) == 5 and not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    containers = sweep_containers(docker, sweep_id)
    assert len(containers) == 5 and most <= 2
    assert not (_home() / "sweeps" / sweep_id).exists()  # the waiter is done: its pid file is gone
    for c in containers:
        job = c["Labels"]["launch.job"]
        wait_for(lambda j=job: "LR=" in logs_of(j), what="the job's line")
        assert logs_of(job).strip().endswith(f"T={sha(VALUE)}")  # the waiter's jobs got their secret too


@pytest.mark.docker
def test_stop_of_a_sweep_ends_its_waiter_and_stops_every_job(docker, tmp_path):
    add_secret("tok", VALUE)
    path = template(tmp_path, command="trap 'exit 0' TERM; while true; do sleep 0.1; done")
    result = run_launch("run", path, "--matrix", "seed=1,2,3", "--max-parallel", "1")
    assert result.returncode == 0, result.stderr
    (job,) = result.stdout.decode().split()
    sweep_id = sweep_id_of(docker, job)
    assert "1 running, 2 waiting" in run_launch("ps").stdout.decode()
    refused = run_launch("rm", sweep_id)
    assert refused.returncode == 4 and refused.stderr.count(b"\n") == 1  # running: nothing removed
    assert len(sweep_containers(docker, sweep_id)) == 1
    stopped = run_launch("stop", "--time", "2", sweep_id)
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(1.5)  # a waiter still alive would start the next job within its poll
    containers = sweep_containers(docker, sweep_id)
    assert [c["State"] for c in containers] == ["exited"]
    assert not (_home() / "sweeps" / sweep_id).exists()
    assert run_launch("rm", sweep_id).returncode == 0
    assert sweep_containers(docker, sweep_id) == []


def _home():
    from launcher import paths

    return paths.home()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--matrix", "lr"], "--matrix 'lr': expected KEY=V1,V2,..."),
        (["--matrix", "1lr=1"], "invalid key '1lr'"),
        (["--matrix", "lr=1,,2"], "matrix lr: an empty value"),
        (["--matrix", "lr=1,1"], "matrix lr: a value is listed twice"),
        (["--matrix", "lr=1", "--matrix", "LR=2"], "--matrix LR: given twice"),
        (["--max-parallel", "2"], "--max-parallel needs a sweep"),
        (["--matrix", "lr=1", "--max-parallel", "0"], "--max-parallel: 0 is out of range"),
        (["--matrix", "lr=1", "-i"], "--interactive conflicts with --matrix"),
        (
            ["--matrix", "a=" + ",".join(map(str, range(40))), "--matrix", "b=" + ",".join(map(str, range(40)))],
            "more than 1000 jobs",
        ),
    ],
)
def test_bad_sweeps_are_one_line_and_start_nothing(args, message):
    result = run_launch("run", "--image", TEST_IMAGE, *args, "--", "true")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch: error: ") and message in lines[0]
    assert result.stdout == b""


def test_a_templates_matrix_is_checked_where_it_is_written(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"image: {TEST_IMAGE}\nmatrix:\n  lr: 5\n")
    result = run_launch("run", str(path))
    assert result.returncode == 6 and result.stderr.decode().count("\n") == 1
    assert "bad.yaml:3" in result.stderr.decode() and "expected a list" in result.stderr.decode()


def test_job_names_fit_the_rule_and_stay_distinct():
    from launcher.names import job_name_problem

    assert sweep.job_name("train", (("lr", "1e-3"), ("seed", "1"))) == "train-lr1e-3-seed1"
    assert sweep.job_name("t", (("opt", "adam/w b"),)) == "t-optadam_w_b"
    long = [sweep.job_name("x" * 50, (("lr", f"0.000{i}" * 3),)) for i in range(3)]
    assert all(len(n) <= 63 and job_name_problem(n) is None for n in long) and len(set(long)) == 3


def test_axes_merge_template_first_and_a_flag_replaces_its_variable():
    axes = sweep.merge_axes((("lr", ("0.1", "0.2")), ("seed", ("1",))), ("LR=5", "bs=8,16"))
    assert axes == (("LR", ("5",)), ("seed", ("1",)), ("bs", ("8", "16")))
    with pytest.raises(UsageError):
        sweep.merge_axes((("lr", ()),), ())
