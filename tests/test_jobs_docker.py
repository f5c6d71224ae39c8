"""Jobs you can come back to: ps, logs, stop, rm, inspect, --life-span, masking, the usage record."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import TEST_IMAGE, add_secret, detach, job_containers, launch_cmd, run_launch, sh_job, wait_for

pytestmark = pytest.mark.docker

VALUE = "mask-me-0123456789abcdef"


def ps_json(*flags: str) -> list[dict]:
    result = run_launch("ps", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_job_lifecycle_by_id_and_name(docker):
    add_secret("tok", VALUE)
    job = detach("--name", "web-1", *sh_job("echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"))
    (row,) = [r for r in ps_json() if r["id"] == job]
    assert row["name"] == "web-1" and row["image"] == TEST_IMAGE and row["status"] == "running"
    assert row["secrets"] == {"tok": 1} and row["exit_code"] is None
    table = run_launch("ps").stdout.decode()
    assert job in table and "web-1" in table and "tok@v1" in table
    wait_for(lambda: b"started" in run_launch("logs", "web-1").stdout)
    assert run_launch("rm", job).returncode == 4  # running: refused without --force
    assert run_launch("stop", job[:6]).returncode == 0  # a unique id prefix names it too
    assert [r for r in ps_json() if r["id"] == job] == []  # ps shows running jobs only
    (ended,) = [r for r in ps_json("-a") if r["id"] == job]
    assert ended["status"] == "exited" and ended["exit_code"] == 0
    again = run_launch("run", "--detach", "--name", "web-1", "--image", TEST_IMAGE, "--", "true")
    assert again.returncode == 4 and b"web-1" in again.stderr  # a name is unique
    assert run_launch("rm", "web-1").returncode == 0
    assert job_containers(docker, job) == []
    missing = run_launch("logs", "no-such-job")
    assert missing.returncode == 3 and missing.stderr.startswith(b"launch: error:")


def test_logs_are_masked_across_reads_lines_and_streams(docker):
    add_secret("tok", VALUE)
    add_secret("pem", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----")
    half = len(VALUE) // 2
    script = (
        f"printf '{VALUE[:half]}'; sleep 0.3; printf '{VALUE[half:]}\\n'; "  # one value split over two writes
        'echo "err $T" >&2; '
        "printf '%s\\n' \"$P\"; "  # a multi-line value
        "printf '\\033[32m%s\\033[0m\\n' \"$T\"; sleep 0.2; echo done"  # last, after stderr settles
    )
    job = detach("--image", TEST_IMAGE, "--env", "T=secret:tok", "--env", "P=secret:pem", "--", "sh", "-c", script)
    wait_for(lambda: b"done" in run_launch("logs", job).stdout)
    result = run_launch("logs", job)
    assert result.stdout == b"***\n***\n\x1b[32m***\x1b[0m\ndone\n"
    assert b"err ***" in result.stderr and VALUE.encode() not in result.stderr
    raw = run_launch("logs", "--no-mask", job)
    assert VALUE.encode() + b"\n" in raw.stdout
    tail = run_launch("logs", "--tail", "1", job)
    assert tail.stdout == b"done\n"


def test_logs_follow_streams_until_the_job_ends(docker):
    add_secret("tok", VALUE)
    job = detach(*sh_job('for i in 1 2 3; do echo "line $i $T"; sleep 0.3; done'))
    follow = subprocess.run([*launch_cmd(), "logs", "-f", job], capture_output=True, timeout=30)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == b"line 1 ***\nline 2 ***\nline 3 ***\n"


def test_inspect_shows_the_job_as_run_without_values(docker, tmp_path):
    add_secret("tok", VALUE)
    template = tmp_path / "job.yaml"
    template.write_text(
        f"image: {TEST_IMAGE}\nnetwork: none\nenv:\n  T: secret:tok\n  PLAIN: visible\n"
        "volumes:\n  - secret:tok:/run/secrets/tok\ncommand: [sleep, '30']\n"
    )
    job = detach(str(template))
    result = run_launch("inspect", job, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == job and data["image"] == TEST_IMAGE and data["secrets"] == {"tok": 1}
    assert data["spec"]["template"] == str(template)
    text = json.dumps(data["spec"])
    assert "secret:tok" in text and "/run/secrets/tok" in text and "visible" in text and "sleep" in text
    assert VALUE not in result.stdout.decode()
    human = run_launch("inspect", job)
    assert human.returncode == 0 and job.encode() in human.stdout and VALUE.encode() not in human.stdout


def test_life_span_stops_the_job_after_the_launcher_exited(docker):
    job = detach(
        "--life-span",
        "2s",
        "--image",
        TEST_IMAGE,
        "--",
        "sh",
        "-c",
        "trap 'echo reaped; exit 0' TERM; while true; do sleep 0.1; done",
    )
    # the launcher has exited; a detached reaper enforces the deadline
    container = job_containers(docker, job)[0]["Id"]
    wait_for(lambda: docker.inspect_container(container)["State"]["Status"] == "exited", timeout=30)
    assert b"reaped" in docker.logs(container)


def test_ps_backstop_stops_expired_jobs(docker):
    """If the reaper died (a reboot), the next ps stops jobs whose deadline label has passed."""
    job = detach("--life-span", "1s", "--image", TEST_IMAGE, "--", "sleep", "60")
    subprocess.run(["pkill", "-f", f"launcher.runtime.reaper docker {job}"], check=False)
    time.sleep(1.5)
    run_launch("ps")
    container = job_containers(docker, job)[0]["Id"]
    assert docker.inspect_container(container)["State"]["Status"] == "exited"


def test_usage_record_and_stale_versions(docker, launch_home):
    add_secret("tok", VALUE)
    job = detach("--image", TEST_IMAGE, "--env", "T=secret:tok", "--", "sleep", "30")
    shown = run_launch("secret", "show", "tok", "--json")
    assert shown.returncode == 0, shown.stderr
    assert job in shown.stdout.decode()
    record = json.loads((launch_home / "usage.log").read_text().splitlines()[-1])
    assert record["job"] == job and record["secrets"] == {"tok": 1} and record["image"] == TEST_IMAGE
    assert (launch_home / "usage.log").stat().st_mode & 0o777 == 0o600
    assert VALUE.encode() not in (launch_home / "usage.log").read_bytes()
    edit = run_launch("secret", "edit", "tok", "-", input="new-value\n")
    assert edit.returncode == 0, edit.stderr
    (row,) = [r for r in ps_json() if r["id"] == job]
    assert row["stale_secrets"] == ["tok"]
    assert "(old)" in run_launch("ps").stdout.decode()


def test_secret_rm_refuses_while_a_running_job_uses_it(docker):
    add_secret("tok", VALUE)
    job = detach("--name", "user-of-tok", "--image", TEST_IMAGE, "--env", "T=secret:tok", "--", "sleep", "30")
    refused = run_launch("secret", "rm", "--yes", "tok")
    assert refused.returncode == 4, refused.stderr
    assert job.encode() in refused.stderr or b"user-of-tok" in refused.stderr
    assert run_launch("secret", "show", "tok").returncode == 0  # nothing deleted
    forced = run_launch("secret", "rm", "--yes", "--force", "tok")
    assert forced.returncode == 0, forced.stderr
    assert run_launch("secret", "show", "tok").returncode == 3
